"""``synthperf demo``: generators compared as SPPI sources on scikit-learn's bundled digits.

Real data -> synthetic data -> calibrated predictions, end to end on 2 CPU cores, nothing
downloaded, no weights shipped (every generator trains from scratch):

1. Split the 1797 digits (stratified, seed 0): half is the *training split* (generators and the
   classifier see only it), half the *pool* from which each trial draws n=15 real calibration
   points and 500 real test points. The classifier whose prediction sets we calibrate is a
   multinomial logistic regression on half of the training split.
2. Each generator family makes ``per_class`` labelled synthetic digits per class from the training
   split (each module's ``make_digits_synthetic``, ``budget="demo"``): GaFi's conditional
   BigGAN-deep with Dynamic Sample Filtering (:mod:`synthperf.gafi.digits`), a class-conditional
   diffusers UNet (:mod:`synthperf.guidance.digits`) and a class-conditional inflationary flow
   (:mod:`synthperf.flows.digits`).
3. Quality of every synthetic set (:mod:`synthperf.metrics`): CAS, the real classifier's accuracy
   on it per class, the Frechet distance on a digits feature network, and the two-sample
   distance between real and synthetic calibration-score distributions (what SPPI depends on).
4. Per generator: SPPI (SPI) vs SC (15 real points) vs SC (synthetic only, no guarantee) over
   >= 200 trials through the experiments platform (``sppi`` task, ``data.kind: npz``).
5. Selective prediction with the best generator, thresholds compared within a guarantee type.
6. The long-tail feedback-guidance experiment in miniature, the flows trajectories, a sample
   grid per generator, the timings, and ``OUT/report.md`` whose findings state their
   uncertainty (:mod:`.demo_report`).
"""
from __future__ import annotations

import importlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._threads import configure_threads
from ..progress import track
from .runner import run_experiment
from .store import atomic_write_bytes, load_results, write_chunk

__all__ = ["GENERATORS", "GeneratorSpec", "ALPHAS", "QS", "run_demo", "digits_split"]

ALPHAS = [0.02, 0.05, 0.1, 0.2]
QS = [0.8, 0.9, 0.95]
N_CAL, N_TEST, BETA = 15, 500, 0.4


@dataclass(frozen=True)
class GeneratorSpec:
    """One generator family: ``module.make_digits_synthetic(..., **options)`` (shared contract)."""

    key: str
    label: str
    module: str
    options: dict[str, Any] = field(default_factory=dict)
    quick_budget: str = "tiny"  # the module's smallest preset (``--quick``: plumbing, not quality)


GENERATORS: tuple[GeneratorSpec, ...] = (
    GeneratorSpec("gafi", "GaFi (BigGAN-deep + DSF)", "synthperf.gafi.digits", {"method": "gafi"}),
    GeneratorSpec("diffusion", "diffusion (class-cond. UNet)", "synthperf.guidance.digits", {}),
    GeneratorSpec("flows", "inflationary flow (PRP)", "synthperf.flows.digits", {"schedule": "PRP"}),
)


def digits_split(seed: int = 0):
    """(x_train [N,64] float32 in [0,1], y_train int64, x_pool, y_pool): stratified halves, the shared
    protocol's split (:func:`synthperf.metrics.digits_split`) with ``random_state=seed``."""
    from ..metrics import digits_split as shared_split

    return shared_split(seed)


def _stage(timings: dict[str, float], name: str, threads: str | int | None):
    """Re-size the threads to the cores free now (other load may have come or gone)."""
    if threads == "auto":
        configure_threads(None)
    timings.setdefault(name, 0.0)
    return time.perf_counter()


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _sppi_run(out: Path, spec: GeneratorSpec, probs_pool, y_pool, probs_syn, y_syn, n_trials: int, seed: int,
              workers: int):
    scores = _npz(out / "data" / f"scores_{spec.key}.npz", real_probs=probs_pool, real_labels=y_pool,
                  synth_probs=probs_syn, synth_labels=y_syn)
    config = {"experiment": "sppi", "name": f"digits_{spec.key}", "data": {"kind": "npz", "path": str(scores)},
              "dataset": f"digits_{spec.key}", "alpha": ALPHAS, "methods": ["SC", "SC (synth)", "SPI"],
              "beta": BETA, "seed": 42 + seed, "n_seeds": n_trials, "n_cal": N_CAL, "n_test": N_TEST,
              "n_cal_maj": min(1000, len(y_syn) // 10 * 10 - 10), "chunk_trials": 50}
    run_experiment(config, out / "sppi" / spec.key, executor="local", workers=workers, report=False)
    df = load_results(out / "sppi" / spec.key)
    df.insert(0, "generator", spec.key)
    return df


def _conformal_rank(n: int, q: float) -> int:
    """Split-conformal rank ceil((n+1) q) (n+1 = accept everything), exact for float q."""
    k = int(np.ceil((n + 1) * q - 1e-12))
    return min(max(k, 1), n + 1)


def _selective(out: Path, logits_pool, y_pool, logits_syn, n_trials: int, seed: int):
    """Accepted fraction / selective risk of four thresholds on the same trials.

    Guarantee types: "SC (real, conformal)" is the rank-ceil((n+1)q) score of the 15 real
    points (accepted fraction >= q in expectation over calibration draws); "SPPI" carries the
    worst-case bounds ``coverage_bounds_`` whatever the synthetic data are; "quantile (real)"
    (seapig's interpolated quantile of the 15 scores) and "synthetic only" carry none.
    """
    import pandas as pd
    import torch

    from ..selective import SoftmaxScore

    rng = np.random.default_rng(seed)
    syn = torch.as_tensor(logits_syn)
    synth_score = SoftmaxScore()
    synth_score.fit(X=syn)
    rows = []
    for t in track(range(n_trials), "selective trials", total=n_trials):
        perm = rng.permutation(len(y_pool))
        cal, test = perm[:N_CAL], perm[N_CAL:N_CAL + N_TEST]
        Xc, Xt = torch.as_tensor(logits_pool[cal]), torch.as_tensor(logits_pool[test])
        wrong = torch.as_tensor(logits_pool[test].argmax(1) != y_pool[test])
        real = SoftmaxScore()
        real.fit(X=Xc)
        real_sorted = torch.sort(real.scores.reshape(-1)).values
        for q in QS:
            for method in ("SC (real, conformal)", "SPPI", "quantile (real)", "synthetic only"):
                lo = hi = float("nan")
                if method == "synthetic only":
                    score = synth_score
                    score.set_threshold(q)
                else:
                    score = real
                    if method == "SPPI":
                        score.set_threshold(q, synthetic=syn, beta=BETA)
                        lo, hi = score.coverage_bounds_
                    elif method == "quantile (real)":
                        score.set_threshold(q)
                    else:
                        k = _conformal_rank(N_CAL, q)
                        inf = torch.tensor(float("inf"), dtype=real_sorted.dtype)
                        thr = real_sorted[k - 1] if k <= N_CAL else inf
                        score.threshold = torch.nextafter(thr, inf)  # accept score <= S_(k); select() uses <
                sel = score.select(X=Xt)["selected"]
                n_sel = int(sel.sum())
                rows.append({"trial": t, "seed": seed, "q": q, "Method": method, "accepted": n_sel / len(test),
                             "risk": float(wrong[sel].float().mean()) if n_sel else float("nan"),
                             "lower": lo, "upper": hi})
    df = pd.DataFrame(rows)
    write_chunk(df, out / "selective.parquet")
    return df


def _make_generator(spec: GeneratorSpec, x_tr, y_tr, per_class: int, out: Path, seed: int, quick: bool):
    mod = importlib.import_module(spec.module)
    return mod.make_digits_synthetic(x_tr, y_tr, per_class, out_dir=out / "generators" / spec.key, seed=seed,
                                     budget=spec.quick_budget if quick else "demo", **spec.options)


def run_demo(out: str | Path = "synthperf_demo", *, quick: bool = False, seed: int = 0, workers: int = 1,
             generators: tuple[str, ...] | None = None, threads: str | int | None = "auto",
             longtail: bool = True, force: bool = False) -> Path:
    """Run the demo into ``out``; returns the path of ``report.md`` (see the module docstring).

    ``quick``: the CI-sized variant (tiny generators, 40 trials; same code paths).
    ``generators``: keys of :data:`GENERATORS` to compare (default: all).
    ``threads``: "auto" re-sizes the threads to the free cores before every stage, an int pins
    them, None leaves them as they are. A rerun into the same ``out`` reuses finished models,
    samples and SPPI shards. One demo writes ``out`` at a time: the whole run holds the output
    lock ``out/.synthperf.lock`` (:class:`synthperf._lock.RunLock`), so a second demo on the same
    ``out`` raises :class:`synthperf._lock.OutputLockedError` (an ``OSError`` naming the folder
    and the holder's pid and host) before it writes anything; ``force`` takes over a lock whose
    holder cannot be shown alive (another host, a dead pid).
    """
    from .._lock import RunLock
    from .._threads import preserved_threads

    keys = tuple(g.key for g in GENERATORS)
    chosen = keys if generators is None else tuple(generators)
    bad = [k for k in chosen if k not in keys]
    if bad or not chosen:
        raise ValueError(f"generators must be a non-empty subset of {keys}, got {generators!r}")
    if threads not in ("auto", None) and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be 'auto', None or an integer >= 1, got {threads!r}")
    with RunLock(Path(out), force=force), preserved_threads():
        return _run_demo(Path(out), quick=quick, seed=seed, workers=workers, chosen=chosen, threads=threads,
                         longtail=longtail)


def _run_demo(out: Path, *, quick, seed, workers, chosen, threads, longtail) -> Path:
    from sklearn.linear_model import LogisticRegression

    from . import demo_report
    from .demo_quality import digits_quality

    if isinstance(threads, int):
        configure_threads(threads)
    (out / "data").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    budget = "quick" if quick else "demo"

    t0 = _stage(timings, "classifier", threads)
    x_tr, y_tr, x_pool, y_pool = digits_split(seed)
    part = np.random.default_rng(seed).permutation(len(y_tr))[: len(y_tr) // 2]
    clf = LogisticRegression(C=0.05, max_iter=500).fit(x_tr[part], y_tr[part])
    clf_acc = float((clf.predict(x_pool) == y_pool).mean())
    probs_pool = clf.predict_proba(x_pool).astype(np.float32)
    timings["classifier"] += time.perf_counter() - t0

    per_class = 60 if quick else 150
    n_trials = 40 if quick else 200
    specs = [g for g in GENERATORS if g.key in chosen]
    results: dict[str, dict[str, Any]] = {}
    frames, real_cas = [], None
    for spec in specs:
        name = f"generator: {spec.key}"
        t0 = _stage(timings, name, threads)
        x_syn, y_syn, info = _make_generator(spec, x_tr, y_tr, per_class, out, seed, quick)
        timings[name] += time.perf_counter() - t0

        t0 = _stage(timings, "quality metrics", threads)
        probs_syn = clf.predict_proba(x_syn).astype(np.float32)
        quality = digits_quality(x_syn, y_syn, x_real_train=x_tr, y_real_train=y_tr, x_real_test=x_pool,
                                 y_real_test=y_pool, real_classifier=clf, seeds=(0,) if quick else (0, 1, 2),
                                 real_cas=real_cas)
        real_cas = quality["real_cas"]
        timings["quality metrics"] += time.perf_counter() - t0

        t0 = _stage(timings, "SPPI trials", threads)
        frames.append(_sppi_run(out, spec, probs_pool, y_pool, probs_syn, y_syn, n_trials, seed, workers))
        timings["SPPI trials"] += time.perf_counter() - t0
        results[spec.key] = {"spec": spec, "x": x_syn, "y": y_syn, "info": info, "quality": quality,
                             "logits": clf.decision_function(x_syn).astype(np.float32)}

    import pandas as pd

    sppi = pd.concat(frames, ignore_index=True)
    best = demo_report.best_generator(sppi, results)

    t0 = _stage(timings, "selective prediction", threads)
    sel = _selective(out, clf.decision_function(x_pool).astype(np.float32), y_pool, results[best]["logits"],
                     20 if quick else 100, seed)
    timings["selective prediction"] += time.perf_counter() - t0

    lt = None
    if longtail:
        from ..guidance.longtail import run_longtail_experiment

        t0 = _stage(timings, "long-tail guidance", threads)
        # One generator trained on the whole (balanced) real training half, shared across seeds: the
        # paper's setting (a pretrained model not fitted to the long-tailed set). With the default
        # seed its data equal the diffusion generator's, so its cached model is reused.
        lt = run_longtail_experiment(out_dir=out / "longtail", budget="tiny" if quick else "demo",
                                     seeds=(seed,) if quick else (seed, seed + 1, seed + 2),
                                     generator_data="balanced", generator_seed=seed,
                                     model_root=out / "generators" / "diffusion")
        timings["long-tail guidance"] += time.perf_counter() - t0

    context = {"quick": quick, "seed": seed, "n_train": len(y_tr), "n_pool": len(y_pool), "n_clf": len(part),
               "clf_acc": clf_acc, "per_class": per_class, "n_trials": n_trials, "best": best,
               "budget": budget}
    report = demo_report.write_demo_report(out, sppi=sppi, results=results, selective=sel, longtail=lt,
                                           timings=timings, context=context)
    return report
