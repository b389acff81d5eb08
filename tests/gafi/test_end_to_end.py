"""End to end on digits (issue acceptance), at the smallest sizes that run every stage.

``test_digits_pipeline_end_to_end`` runs preset "micro": real classifier -> 2 GANs -> synthetic
baseline -> GaFi search (ckpt, sigma, tau, best) -> MultiGAN, then Parquet + plots, then
resume. Numbers on the fixed seed, 1 torch thread (2-core CPU, ~10 s, resume ~3 s):
real 0.700, baseline 0.100, GaFi 0.164, MultiGAN 0.106 (test accuracy, 360 test images).
The micro GANs train for 2 epochs and are far from converged, so synthetic CAS sits near
chance and a GaFi >= baseline comparison at this size would be a coin flip. The test
asserts only what is robust (real accuracy above chance by 5 binomial standard errors) and
the plumbing; the GaFi-vs-baseline quality comparison is in
``benchmarks/bench_gafi_pipeline.py`` (preset "tiny"/"small").

``test_dsf_recovers_cas_lost_to_wrong_labels`` checks DSF's effect on CAS where the effect
size is known from theory: a replay "generator" with 60 % of labels shifted to the next class.
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from synthperf.gafi import classifier as C
from synthperf.gafi import gan_train as GT
from synthperf.gafi import sampling as S
from synthperf.gafi.data import load_dataset
from synthperf.gafi.experiment import digits_preset, run_experiment
from synthperf.gafi.pipeline import run_cas
from synthperf.gafi.sampling import SamplerSpec, SyntheticSource

from ._stubs import ReplayGenerator

K = 10


def _above_chance(acc: float, n: int, z: float = 5.0) -> bool:
    """acc exceeds chance 1/K by z binomial standard errors of a chance-level classifier."""
    p0 = 1.0 / K
    return acc > p0 + z * math.sqrt(p0 * (1 - p0) / n)


def _boom(*args, **kwargs):
    raise AssertionError("a finished stage was recomputed on resume")


def test_digits_pipeline_end_to_end(tmp_path, monkeypatch):
    cfg = digits_preset("micro")
    df = run_experiment(tmp_path, cfg)
    n_test = len(load_dataset("digits").test)
    print(df.to_string())

    assert list(df["method"]) == ["real", "baseline", "gafi", "multigan"]
    assert df["cas"].between(0, 1).all() and set(df["protocol"]) == {"clean"}
    assert _above_chance(float(df.loc[0, "cas"]), n_test)
    saved = pd.read_parquet(tmp_path / "cas.parquet")
    assert saved["cas"].tolist() == df["cas"].tolist()
    for ext in ("png", "pdf"):
        assert (tmp_path / f"cas.{ext}").stat().st_size > 0
    # classifier, per-epoch EMA checkpoints of both GANs
    assert (tmp_path / "classifier" / "best.safetensors").is_file()
    for seed in cfg.gan_seeds:
        assert GT.available_checkpoint_epochs(tmp_path / f"gan_seed{seed}") == [1, 2]
    # GaFi search on GAN 1: every step, with its table, histories and plot
    g1 = tmp_path / "pipeline" / "gan_seed42"
    for step, n_runs in (("ckpt", 2), ("stddev", 2), ("threshold", 2), ("best", 1)):
        res = pd.read_parquet(g1 / step / "results.parquet")
        assert len(res) == n_runs and (g1 / step / "histories.parquet").is_file()
        if step != "best":
            assert (g1 / step / "search.png").is_file() and (g1 / step / "search.pdf").is_file()
    ckpt = pd.read_parquet(g1 / "ckpt" / "results.parquet")
    stddev = pd.read_parquet(g1 / "stddev" / "results.parquet")
    best = pd.read_parquet(g1 / "best" / "results.parquet")
    assert sorted(ckpt["ckpt"]) == [1, 2] and ckpt["DS"].tolist() == [2, 2]
    # greedy: sigma search runs at the argmax checkpoint; the final run uses the argmax triple (DS=1)
    assert set(stddev["ckpt"]) == {int(ckpt.loc[ckpt["selection_score"].idxmax(), "ckpt"])}
    assert best["DS"].tolist() == [1] and best["sigma"].iloc[0] == stddev.loc[stddev["selection_score"].idxmax(), "sigma"]
    assert float(df.loc[2, "cas"]) == float(best["cas"].iloc[0])
    # GAN 2 (MultiGAN member) gets a checkpoint-only search
    assert {p.parent.name for p in (tmp_path / "pipeline" / "gan_seed137").glob("*/results.parquet")} == {"ckpt"}

    # resume on a finished directory: nothing is trained or generated again, same numbers
    with monkeypatch.context() as m:
        m.setattr(C, "_train_epoch", _boom)
        m.setattr(GT, "hinge_d_loss", _boom)
        m.setattr(S, "generate_filtered", _boom)
        again = run_experiment(tmp_path, cfg)
    assert again["cas"].tolist() == df["cas"].tolist()

    # an interrupted final run is redone alone, and deterministically; a kill between its
    # histories and its results (the fault matrix's write 36/37) leaves no duplicated history rows
    hist_before = pd.read_parquet(g1 / "best" / "histories.parquet")
    (g1 / "best" / "results.parquet").unlink()
    calls = []
    real_run_cas = run_cas

    def counting_run_cas(*a, **k):
        calls.append(k.get("description"))
        return real_run_cas(*a, **k)

    monkeypatch.setattr("synthperf.gafi.pipeline.run_cas", counting_run_cas)
    redo = run_experiment(tmp_path, cfg)
    assert len(calls) == 1 and calls[0].startswith("best ")
    assert redo["cas"].tolist() == df["cas"].tolist()
    hist_after = pd.read_parquet(g1 / "best" / "histories.parquet")
    assert len(hist_after) == len(hist_before) and hist_after.equals(hist_before)


def test_dsf_recovers_cas_lost_to_wrong_labels():
    """60 % of the replayed images carry the next class's label. Unfiltered, a classifier learns
    the shifted mapping (its CAS is at most about the 40 % correct share); DSF with the real
    classifier rejects most wrong-label samples, so its CAS approaches the real classifier's.
    The gap must exceed 4 standard errors of a difference of two binomial proportions."""
    splits = load_dataset("digits")
    cfg = digits_preset("micro").classifier
    real = C.fit_classifier(splits.train, K, cfg, eval_sets={"val": splits.val}, select_on="val")
    filt = real.model.eval()
    filt.load_state_dict(real.best_state)
    gen = ReplayGenerator(splits.train.x, splits.train.y, K, swap_prob=0.6)
    cs = splits.class_samples()
    scores = {}
    for name, spec, clf in (("baseline", SamplerSpec(gen, filter=False), None), ("dsf", SamplerSpec(gen), filt)):
        src = SyntheticSource([spec], clf, cs, regen_every=None, max_attempts=20, seed=0)
        scores[name] = run_cas(src, splits, cfg).cas
        if name == "dsf":
            kept = src.dataset(1)
            assert torch.equal(torch.bincount(kept.y, minlength=K), torch.full((K,), cs))
    n = len(splits.test)
    p1, p2 = scores["dsf"], scores["baseline"]
    se = math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
    print(scores)
    assert p1 - p2 > 4 * se
    assert _above_chance(p1, n)
