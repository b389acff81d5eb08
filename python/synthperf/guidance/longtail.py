"""The paper's feedback-guidance claim in miniature: long-tailed digits topped up with synthetic data.

Setting (spec §5, §7, one-shot feedback): the real training half of scikit-learn's digits
(the shared CAS split: ``train_test_split(test_size=0.5, random_state=0, stratify=y)``) is made
long-tailed by keeping only ``n_minority`` images of ``n_minority_classes`` classes (chosen per
seed). A classifier f (SmallResNet, :func:`~synthperf.guidance.classifiers.train_digits_classifier`)
is trained on that long-tailed set; it is the guidance classifier. A class-conditional diffusion
model (:mod:`synthperf.guidance.digits`) generates the top-up: every class c gets
``max(target - count_c, 1)`` synthetic images (upstream's CSV rule, spec §5, target = the
largest class count by default). Arms, each a fresh classifier of the same kind trained on:

- ``real``: the long-tailed real set only (no top-up);
- ``unguided``: real + unguided diffusion samples (fg_scale = 0);
- ``loss`` / ``entropy`` / ``hardness``: real + samples guided by f with that criterion (spec §3).

Metrics on the held-out real half (899 images): ``minority_acc`` (pooled over the minority
classes' test images), ``majority_acc`` and ``overall_acc``. ``generator_data`` chooses what the
diffusion model is trained on: ``"longtail"`` (default: it sees only the imbalanced set, so no
information beyond the classifier's data enters) or ``"balanced"`` (the whole real training half,
a stand-in for the paper's pretrained LDM, which was not trained on the long-tailed set).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .._io import save_figure
from .._typing import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # annotations resolve to pandas' classes; importing this module does not import pandas
    pd = LazyModule("pandas")

ARMS: tuple[str, ...] = ("real", "unguided", "loss", "entropy", "hardness")
GENERATOR_DATA: tuple[str, ...] = ("longtail", "balanced")


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shared CAS split (:func:`synthperf.metrics.digits_split`): (x_train (898, 64) float32 [0,1],
    y_train int64, x_test (899, 64), y_test)."""
    from ..metrics import digits_split as shared_split

    return shared_split()


def cas_score(x_syn: np.ndarray, y_syn: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, seed: int = 0) -> float:
    """Shared CAS protocol: MLPClassifier((128,), alpha=1e-3, max_iter=500) on synthetic data, real test accuracy."""
    from ..metrics import default_cas_classifier

    return float(default_cas_classifier(int(seed)).fit(x_syn, y_syn).score(x_test, y_test))


def make_longtail(y: np.ndarray, *, n_minority_classes: int = 3, n_minority: int = 8, seed: int = 0,
                  minority_classes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices into y of the long-tailed subset (sorted), minority classes (sorted)).

    Minority classes keep ``n_minority`` images chosen at random (seeded); other classes keep all.
    ``minority_classes`` fixes the classes; otherwise ``n_minority_classes`` are drawn per seed.
    """
    rng = np.random.default_rng(int(seed))
    classes = np.unique(y)
    if minority_classes is None:
        if not 1 <= n_minority_classes < len(classes):
            raise ValueError(f"n_minority_classes must lie in [1, {len(classes)}), got {n_minority_classes}")
        minority = np.sort(rng.choice(classes, size=n_minority_classes, replace=False))
    else:
        minority = np.sort(np.asarray(list(minority_classes), dtype=np.int64))
        if len(set(minority.tolist())) != len(minority) or not np.isin(minority, classes).all():
            raise ValueError(f"minority_classes must be distinct labels present in y, got {minority.tolist()}")
    if isinstance(n_minority, bool) or not isinstance(n_minority, (int, np.integer)) or n_minority < 1:
        raise ValueError(f"n_minority must be a positive integer, got {n_minority!r}")
    keep = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if c in minority:
            if n_minority > len(idx):
                raise ValueError(f"n_minority={n_minority} exceeds the {len(idx)} images of class {c}")
            idx = rng.choice(idx, size=n_minority, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep)), minority


def topup_counts(y_lt: np.ndarray, *, target: int | None = None, n_classes: int = 10) -> np.ndarray:
    """Synthetic images per class: max(target - count_c, 1) (spec §5); target = max count by default."""
    counts = np.bincount(y_lt, minlength=n_classes)
    t = int(counts.max()) if target is None else int(target)
    return np.maximum(t - counts, 1)


def _train_eval(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, minority: np.ndarray, *,
                seed: int, epochs: int, evaluator: str) -> dict[str, float]:
    import torch

    if evaluator == "mlp":
        from sklearn.neural_network import MLPClassifier

        pred = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=500,
                             random_state=int(seed)).fit(x, y).predict(x_test)
    else:
        from .classifiers import _upsample_digits, train_digits_classifier

        model, info = train_digits_classifier(size=16, width=8, epochs=epochs, seed=int(seed), data=(x, y),
                                              val_fraction=0.0)
        xt, _ = _upsample_digits(x_test, y_test, size=16)
        mean = torch.tensor(info.mean).view(1, -1, 1, 1)
        std = torch.tensor(info.std).view(1, -1, 1, 1)
        with torch.no_grad():
            pred = model((xt - mean) / std).argmax(1).numpy()
    minor = np.isin(y_test, minority)
    correct = pred == y_test
    return {"minority_acc": float(correct[minor].mean()), "majority_acc": float(correct[~minor].mean()),
            "overall_acc": float(correct.mean()), "n_test_minority": int(minor.sum())}


def run_longtail_experiment(*, seeds: Sequence[int] = (0, 1, 2), out_dir: str | os.PathLike,
                            arms: Sequence[str] = ARMS, budget: str | dict[str, object] = "demo",
                            fg_scale: float | dict[str, float] = 0.02,
                            guidance_freq: int = 5, n_minority_classes: int = 3, n_minority: int = 8,
                            target: int | None = None, generator_data: str = "longtail", evaluator: str = "resnet",
                            classifier_epochs: int = 15, generator_seed: int | None = None,
                            model_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Run the long-tail top-up experiment; returns a pandas DataFrame, one row per (seed, arm).

    Columns: seed, arm, generator_data, evaluator, minority_classes ("7,8,9"), n_real, n_synth,
    minority_acc, majority_acc, overall_acc, n_test_minority, mean_criterion (the guidance
    classifier's criterion on the final synthetic images; NaN for real/unguided), fg_scale,
    seconds. ``fg_scale``: one scale for all criteria or {criterion: scale}. ``budget``: the
    diffusion preset (:data:`synthperf.guidance.digits.PRESETS`). Models and samples are cached
    under ``out_dir`` (a rerun reuses them). ``evaluator``: "resnet" (the downstream classifier
    is a fresh SmallResNet like the guidance classifier, the paper's setting) or "mlp" (the CAS
    protocol's MLPClassifier). ``generator_seed`` (only with ``generator_data="balanced"``, whose
    training data do not change with the seed): train one diffusion model with that seed and share
    it across all seeds instead of one per seed. ``model_root``: where models are cached (default
    ``out_dir/models``); pointing it at another run's model folder reuses a model trained there on
    the same data, seed and budget.
    """
    import pandas as pd

    from ..progress import track
    from .classifiers import digits_hardness, train_digits_classifier
    from .digits import sample_digits, train_digits_diffusion

    arms = list(arms)
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise ValueError(f"arms must be a non-empty subset of {ARMS}, got {arms}")
    if generator_data not in GENERATOR_DATA:
        raise ValueError(f"generator_data must be one of {GENERATOR_DATA}, got {generator_data!r}")
    if evaluator not in ("resnet", "mlp"):
        raise ValueError(f"evaluator must be 'resnet' or 'mlp', got {evaluator!r}")
    if generator_seed is not None:
        if generator_data != "balanced":
            raise ValueError("generator_seed shares one generator across seeds; it needs generator_data='balanced'")
        if isinstance(generator_seed, bool) or not isinstance(generator_seed, (int, np.integer)) or generator_seed < 0:
            raise ValueError(f"generator_seed must be None or a non-negative integer, got {generator_seed!r}")
    seeds = [int(s) for s in seeds]
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds}")
    scales = dict(fg_scale) if isinstance(fg_scale, dict) else {c: float(fg_scale) for c in ("loss", "entropy", "hardness")}
    for c in ("loss", "entropy", "hardness"):
        if c in arms and (c not in scales or not math.isfinite(float(scales[c])) or float(scales[c]) == 0):
            raise ValueError(f"fg_scale for criterion {c!r} must be a finite non-zero number, got {scales.get(c)!r}")
    x_tr, y_tr, x_te, y_te = digits_split()
    out = Path(out_dir)
    models = out / "models" if model_root is None else Path(model_root)
    rows: list[dict[str, Any]] = []
    for seed in track(seeds, "long-tail experiment"):
        lt_idx, minority = make_longtail(y_tr, n_minority_classes=n_minority_classes, n_minority=n_minority, seed=seed)
        x_lt, y_lt = x_tr[lt_idx], y_tr[lt_idx]
        per = topup_counts(y_lt, target=target)
        class_ids = np.repeat(np.arange(10, dtype=np.int64), per)
        gx, gy = (x_lt, y_lt) if generator_data == "longtail" else (x_tr, y_tr)
        gen_seed = seed if generator_seed is None else int(generator_seed)
        model_dir, tinfo = train_digits_diffusion(gx, gy, out_dir=models, seed=gen_seed, budget=budget)
        clf = train_digits_classifier(size=16, width=8, epochs=classifier_epochs, seed=seed, data=(x_lt, y_lt),
                                      val_fraction=0.0)
        hardness = digits_hardness(*clf, data=(x_lt, y_lt)) if "hardness" in arms else None
        base = {"seed": seed, "generator_data": generator_data, "evaluator": evaluator,
                "minority_classes": ",".join(str(int(c)) for c in minority), "n_real": int(len(y_lt)),
                "generator_seed": gen_seed, "diffusion_train_seconds": float(tinfo["train_seconds"]),
                "generator_reused": int(tinfo.get("reused", 0))}
        for arm in arms:
            t0 = time.perf_counter()
            crit, scale = float("nan"), 0.0
            if arm == "real":
                x_fit, y_fit, n_synth = x_lt, y_lt, 0
            else:
                criterion = None if arm == "unguided" else arm
                scale = 0.0 if criterion is None else float(scales[arm])
                xs, sinfo = sample_digits(model_dir, class_ids, seed=seed, budget=budget, criterion=criterion,
                                          fg_scale=scale, classifier=clf if criterion else None, hardness=hardness,
                                          guidance_freq=guidance_freq)
                crit = sinfo["mean_criterion"]
                x_fit, y_fit, n_synth = np.concatenate([x_lt, xs]), np.concatenate([y_lt, class_ids]), len(xs)
            metrics = _train_eval(x_fit, y_fit, x_te, y_te, minority, seed=seed, epochs=classifier_epochs,
                                  evaluator=evaluator)
            rows.append({**base, "arm": arm, "n_synth": int(n_synth), **metrics, "mean_criterion": crit,
                         "fg_scale": scale, "seconds": float(time.perf_counter() - t0)})
    return pd.DataFrame(rows)


def summarize_longtail(df: pd.DataFrame) -> pd.DataFrame:
    """Per arm: mean and standard error (std / sqrt(n_seeds)) of minority/majority/overall accuracy."""
    g = df.groupby("arm", sort=False)
    out = g[["minority_acc", "majority_acc", "overall_acc"]].agg(["mean", "sem"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["n_seeds"] = g.size()
    return out.reset_index()


def paired_difference(df: pd.DataFrame, arm: str, baseline: str = "unguided",
                      metric: str = "minority_acc") -> tuple[float, float, int]:
    """Mean and SE over seeds of metric(arm) - metric(baseline), paired by seed; (mean, se, n)."""
    a = df[df.arm == arm].set_index("seed")[metric]
    b = df[df.arm == baseline].set_index("seed")[metric]
    d = (a - b).dropna()
    n = len(d)
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return float(d.mean()) if n else float("nan"), se, n


def plot_longtail(df: pd.DataFrame, path: str | os.PathLike) -> list[Path]:
    """Bar chart of minority and overall accuracy per arm (mean +- SE over seeds); writes PATH.png and PATH.pdf."""
    from matplotlib.figure import Figure

    s = summarize_longtail(df)
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    xpos = np.arange(len(s))
    for k, (metric, label) in enumerate((("minority_acc", "minority classes"), ("overall_acc", "overall"))):
        ax.bar(xpos + (k - 0.5) * 0.38, s[f"{metric}_mean"], width=0.38, yerr=s[f"{metric}_sem"].fillna(0),
               capsize=3, label=label)
    ax.set_xticks(xpos)
    ax.set_xticklabels(s["arm"])
    ax.set_ylabel("test accuracy (held-out real digits)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    gd = ",".join(sorted(set(df["generator_data"])))
    ax.set_title(f"long-tailed digits top-up (generator trained on: {gd}; n={int(s['n_seeds'].max())} seeds)")
    fig.tight_layout()
    base = Path(path)
    if base.suffix.lower() in (".png", ".pdf"):  # PATH.png / PATH.pdf name the stem PATH
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, base, dpi=150)  # PATH.png + PATH.pdf, each written atomically
