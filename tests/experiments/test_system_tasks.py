"""End-to-end runs of the gafi, flows and guidance experiment kinds (``synthperf run``) on the
shipped configs shrunk by overrides: shards written and loadable, sane values, resume computes
nothing on a finished run, report and plots written. Nothing is downloaded: GaFi uses
scikit-learn digits, flows the toy sets, guidance a tiny SD folder built in-process.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synthperf.experiments import load_results, run_experiment
from synthperf.experiments.store import chunk_files

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# short flows simulations never reach a Gaussian latent; the schedule warns about it
pytestmark = pytest.mark.filterwarnings("ignore:.*the latent will not be Gaussian:RuntimeWarning")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: one thread is the fastest on a shared 2-core machine (and fixes the thread count)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name + str(p.parent.parent.name): p.stat().st_mtime_ns for p in chunk_files(out)}


def _rerun_computes_nothing(config: Path, out: Path, overrides: list[str], **kw) -> None:
    before = _mtimes(out)
    again = run_experiment(config, out, overrides, **kw)
    assert again.computed == 0 and again.chunks == len(before)
    assert _mtimes(out) == before  # finished shards are skipped, not rewritten


def _check_report(out: Path, plot: str) -> None:
    report = out / "report.md"
    assert report.is_file() and f"plots/{plot}.png" in report.read_text(encoding="utf-8")
    for ext in ("png", "pdf"):
        assert (out / "plots" / f"{plot}.{ext}").stat().st_size > 0
    assert (out / "tables" / "summary.md").is_file() and (out / "tables" / "summary.tex").is_file()


# ----------------------------------------------------------------------------------------
# GaFi
# ----------------------------------------------------------------------------------------
def test_gafi_digits_micro_end_to_end(tmp_path):
    config, out = CONFIGS / "gafi" / "digits.yaml", tmp_path / "gafi"
    overrides = ["preset=micro", "gan_seeds=7", "seed=3"]  # scalar to a list-valued key: [7]
    s = run_experiment(config, out, overrides, report=True)
    assert (s.points, s.chunks, s.computed) == (1, 1, 1)
    assert [p.name for p in chunk_files(out)] == ["trials_000000_000001.parquet"]
    df, configs = load_results(out, with_config=True)
    assert configs[0]["preset"] == "micro" and configs[0]["gan_seeds"] == [7]
    assert list(df["method"]) == ["real", "baseline", "gafi", "multigan"]
    assert (df["point"] == 0).all() and (df["trial"] == 0).all() and (df["seed"] == 3).all()
    assert (df["protocol"] == "clean").all()
    for col in ("cas", "selection_score"):
        v = df[col].to_numpy(float)
        assert np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all(), col
    assert df.set_index("method").loc["real", "cas"] > 0.3  # 10 classes: well above chance even at micro size
    assert (np.isfinite(df["seconds"]) & (df["seconds"] >= 0)).all()
    gafi_dir = out / "points" / "p0000" / "gafi"
    assert (gafi_dir / "cas.parquet").is_file() and (gafi_dir / "gan_seed7").is_dir()
    assert s.report == out / "report.md"
    _check_report(out, "cas")
    _rerun_computes_nothing(config, out, overrides, report=True)


# ----------------------------------------------------------------------------------------
# Flows
# ----------------------------------------------------------------------------------------
FLOWS_SMALL = ["simulate.steps=41", "simulate.total_samples=96", "simulate.save_freq=10"]


def _check_flows(df, n: int) -> None:
    assert sorted(df["simulation"].unique()) == ["gen", "melt", "rdtrp"]
    assert (df["n"] == n).all() and (df["trial"] == 0).all()
    for col in ("final_mean_abs", "final_std"):
        v = df[col].to_numpy(float)
        assert np.isfinite(v).all() and (v > 0).all() and (v < 10).all(), col
    rd = df["simulation"] == "rdtrp"
    mse = df.loc[rd, "roundtrip_mse"].to_numpy(float)
    assert np.isfinite(mse).all() and (mse >= 0).all() and (mse < 0.1).all()  # melt then back: near the data
    assert df.loc[~rd, "roundtrip_mse"].isna().all()


def test_flows_discrete_grid_via_cli(tmp_path):
    import synthperf.cli as root

    root._register_groups()
    config, out = CONFIGS / "flows" / "toy_circles.yaml", tmp_path / "flows"
    overrides = ["rho=[1.0, 2.0]", *FLOWS_SMALL]
    res = CliRunner().invoke(root.app, ["run", str(config), *overrides, "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "2 grid point(s), 2 chunk(s), 2 computed now" in res.output
    assert len(chunk_files(out)) == 2
    df = load_results(out)
    assert len(df) == 6 and sorted(df["point"].unique()) == [0, 1]
    assert df.groupby("point")["rho"].unique().map(list).to_dict() == {0: [1.0], 1: [2.0]}  # grid column
    _check_flows(df, 96)
    assert all(f.startswith("circles_") for f in df["file"])
    _check_report(out, "final_std")  # a metric, never the sample count n
    _rerun_computes_nothing(config, out, overrides)


def test_flows_trained_network(tmp_path):
    config, out = CONFIGS / "flows" / "toy_trained.yaml", tmp_path / "flows_trained"
    overrides = ["train.steps=20", "train.batch=64", "train.width=16", *FLOWS_SMALL]
    s = run_experiment(config, out, overrides, report=False)
    assert (s.chunks, s.computed, s.report) == (1, 1, None)
    df = load_results(out)
    assert len(df) == 3 and all("_net_" in f for f in df["file"])  # simulated with the trained denoiser
    _check_flows(df, 96)
    assert (out / "points" / "p0000" / "network" / "network.safetensors").is_file()
    _rerun_computes_nothing(config, out, overrides, report=False)


# ----------------------------------------------------------------------------------------
# Guidance
# ----------------------------------------------------------------------------------------
def test_guidance_tiny_sd_end_to_end(tmp_path):
    pytest.importorskip("diffusers", reason="needs the 'diffusion' extra")
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guidance"))
    from _tiny import sd_components

    from synthperf.guidance import FeedbackGuidedPipeline, SmallResNet
    from synthperf.guidance.classifiers import ClassifierInfo, load_classifier, save_classifier

    FeedbackGuidedPipeline(**sd_components()).save_pretrained(tmp_path / "sd")
    torch.manual_seed(0)
    clf_path = tmp_path / "clf.safetensors"
    save_classifier(SmallResNet(3, width=4), ClassifierInfo(mean=(0.5,) * 3, std=(0.25,) * 3, size=8,
                                                            class_names=["cat", "dog", "goldfish"]), clf_path)
    config, out = CONFIGS / "guidance" / "sd_local.yaml", tmp_path / "run"
    overrides = [f"model_dir={tmp_path / 'sd'}", f"classifier={clf_path}", "num_classes=3",
                 "labels=[cat, dog, goldfish]", "class_ids=[0, 2]", "seeds=[0, 1]", "chunk_size=3",
                 "num_inference_steps=2", "guidance_freq=1", "fg_scale=0.2", "height=16", "width=16",
                 "device=cpu"]
    s = run_experiment(config, out, overrides, report=True)
    assert (s.points, s.chunks, s.computed) == (1, 2, 2)  # 4 (class, seed) rows in chunks of 3
    assert [p.name for p in chunk_files(out)] == ["trials_000000_000003.parquet", "trials_000003_000004.parquet"]
    df = load_results(out)
    assert list(df["trial"]) == [0, 1, 2, 3]
    assert list(zip(df["class_id"], df["seed"])) == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert list(df["prompt"]) == ["a photo of a cat"] * 2 + ["a photo of a goldfish"] * 2
    assert (df["kept_seed"] == df["seed"]).all() and not df["corrupted"].any()
    crit = df["criterion"].to_numpy(float)
    assert np.isfinite(crit).all() and ((crit >= 0) & (crit <= math.log(3) + 1e-6)).all()  # entropy, K=3
    from PIL import Image

    for name in df["image"]:
        with Image.open(out / "points" / "p0000" / "images" / name) as im:
            assert im.size == (16, 16)

    # the classifier sees images normalised with its own mean/std/size (as `guidance generate`)
    clf, info = load_classifier(clf_path)
    pipe = FeedbackGuidedPipeline.from_local(tmp_path / "sd", classifier=clf)
    ref = np.concatenate([pipe([f"a photo of a {lab}" for lab in labs], ids, seeds=seeds, criterion="entropy",
                               fg_scale=0.2, guidance_freq=1, guidance_scale=5.0, num_inference_steps=2,
                               height=16, width=16, classifier_mean=info.mean, classifier_std=info.std,
                               classifier_size=info.size).criterion
                          for labs, ids, seeds in ((["cat", "cat", "goldfish"], [0, 0, 2], [0, 1, 0]),
                                                   (["goldfish"], [2], [1]))])
    np.testing.assert_allclose(crit, ref, rtol=1e-5, atol=1e-6)

    assert s.report == out / "report.md"
    _check_report(out, "criterion")
    _rerun_computes_nothing(config, out, overrides, report=True)


def test_guidance_class_ids_must_lie_in_range():
    from synthperf.experiments import ConfigError, load_config, resolve

    raw = load_config(CONFIGS / "guidance" / "sd_local.yaml")
    assert resolve(raw, ["model_dir=/m"])[0][0].class_ids == list(range(10))
    for bad in ("class_ids=[-1]", "class_ids=[0, 10]"):  # -1 would silently take the last label
        with pytest.raises(ConfigError, match=r"class_ids must lie in \[0, num_classes=10\)"):
            resolve(raw, ["model_dir=/m", bad])


# ----------------------------------------------------------------------------------------
# SPPI: the public trial-range API the experiments layer calls (issue 14 item 2)
# ----------------------------------------------------------------------------------------
def _small_sppi_config(**kw):
    from synthperf.conformal import SPPITrialConfig, generate_imagenet_like

    real = generate_imagenet_like(4, 60, 4, seed=0, signal=3.0)
    synth = generate_imagenet_like(4, 120, 4, seed=1, signal=3.0, shift=0.3)
    return SPPITrialConfig(real=real, synth=synth, alpha=(0.1, 0.2), n_seeds=7, n_cal=12, n_test=40,
                           n_cal_maj=60, seed=3, **kw)


@pytest.mark.parametrize("class_conditional", [False, True])
def test_trial_ranges_concatenate_to_the_full_run(class_conditional):
    import pandas as pd

    from synthperf.conformal import run_sppi_trials

    cfg = _small_sppi_config(class_conditional=class_conditional)
    full = run_sppi_trials(cfg)
    parts = [run_sppi_trials(cfg, trial_range=r) for r in [(0, 3), range(3, 4), (4, 7)]]
    joined = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(joined, full)
    assert sorted(set(parts[2]["trial"])) == [4, 5, 6]


def test_trial_range_errors_name_the_argument():
    from synthperf.conformal import run_sppi_trials

    cfg = _small_sppi_config()
    for bad in [(3, 3), (-1, 2), (0, 8), range(0, 6, 2)]:
        with pytest.raises(ValueError, match="trial_range"):
            run_sppi_trials(cfg, trial_range=bad)
    for bad in [(0.0, 2), 5, (True, 2)]:
        with pytest.raises(TypeError, match="trial_range"):
            run_sppi_trials(cfg, trial_range=bad)


def test_tasks_call_no_conformal_private():
    import ast
    import synthperf.experiments.tasks as tasks

    tree = ast.parse(Path(tasks.__file__).read_text(encoding="utf-8"))
    private = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_run_")
               or isinstance(n, ast.Attribute) and n.attr == "_config"]
    assert private == []
