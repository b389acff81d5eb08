"""seapig vs synthperf side by side on identical inputs (issue 15 acceptance, spec ``seapig.md`` §0).

Every score class, in each API mode, is fitted and applied to the same ``.npy`` inputs by seapig
(in its own interpreter: ``--seapig-python``, default ``$SEAPIG_PYTHON`` or ``/work/seapig-venv``)
and by synthperf (this interpreter); the scores of the query rows and the selections at the
0.9-quantile threshold are compared.

API modes: ``A`` = seapig git main (``fit(X=, Y=)``, ``score(X)``, models with ``.embed``/``.logits``),
run from a seapig git tree given by ``--seapig-git-src`` / ``$SEAPIG_GIT_SRC`` (the directory holding
``seapig/``; skipped when absent); ``B`` = the PyPI 0.3.0 package installed in the side interpreter
(``fit(ref=, cal=)``, ``score(query=)``, models with ``.extract(batch) -> dict``, logit scores with
``convention="B"`` on the synthperf side). Classes that a version does not have (class-wise, MI, PV in
A) are run in B only. ``[model]`` cases fit and score through a model and loaders.

Data (float32, seed 0): 1500 reference, 400 calibration, 600 query embeddings of dimension 12 in
3 Gaussian classes; logits for 4 classes (also binary single/two-logit, multilabel, and 5-member
ensembles). The reference set stays <= 10,000 rows, so seapig's faiss index is exact (flat) and
exact agreement is expected; KNN distances agree to float32 round-off.

Tolerance: |d| <= 1e-5 * max(1, max|score|) (1e-4 with a fitted temperature, see ``TOL_FIT``) (a few hundred float32 ulps of the score scale:
faiss's ||x||^2 + ||y||^2 - 2x.y against synthperf's exact path). Selections must be identical.
Rows where seapig's score is NaN and synthperf's finite (seapig's float32 Bernoulli entropy:
1 - 1e-12 rounds to 1, log1p(-1) = -inf, for multilabel logits beyond ~17·T) are counted, reported
and left out of the comparison. Fitted temperatures are reported per case (seapig, synthperf).

Usage: ``python side_by_side.py [--seapig-python PY] [--seapig-git-src DIR] [--json OUT]``; exit 0
iff every case agrees. ``--worker LIB --mode M --data DIR --out DIR`` is the internal per-library run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

Q = 0.9
TOL = 1e-5
#: cases with a fitted temperature: seapig fits T on a float32 NLL, whose optimum is flat to float32
#: resolution (dNLL = c/2 dT^2 ~ 6e-8 NLL gives |dT|/T up to ~1e-4); synthperf fits in float64.
TOL_FIT = 1e-4
LOGIT_CLASSES = ("Softmax", "Entropy", "Energy", "Margin")
LOGIT_TASKS = ("multiclass", "binary1", "binary2", "multilabel")


# ---------------------------------------------------------------- data
def make_data(out: Path, seed: int = 0) -> None:
    """Write the shared inputs as .npy files under ``out``."""
    rng = np.random.default_rng(seed)
    d, c, m = 12, 4, 5
    centers = rng.normal(0, 3, size=(3, d))

    def emb(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, size=n)
        return (centers[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, size=d)).astype(np.float32), y

    arrays: dict[str, np.ndarray] = {}
    for split, n in (("ref", 1500), ("cal", 400), ("query", 600)):
        x, y = emb(n)
        arrays[f"{split}"], arrays[f"{split}_y"] = x, y.astype(np.int64)
        arrays[f"{split}_pred"] = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, size=n)).astype(np.int64)
        ml = (rng.random((n, 3)) < 0.4).astype(np.int64)
        ml[np.arange(n), y] = 1
        arrays[f"{split}_ml"] = ml
        arrays[f"{split}_mlpred"] = np.where(rng.random((n, 3)) < 0.9, ml, 1 - ml).astype(np.int64)
    for split, n in (("cal", 400), ("query", 600)):
        y = rng.integers(0, c, size=n)
        logits = rng.normal(0, 1.5, size=(n, c)) + 2.5 * np.eye(c)[y]
        arrays[f"lg_{split}_multiclass"], arrays[f"lg_{split}_multiclass_y"] = logits.astype(np.float32), y
        yb = rng.integers(0, 2, size=n)
        arrays[f"lg_{split}_binary1"] = (rng.normal(0, 2, size=n) + 2 * (2 * yb - 1)).astype(np.float32)
        arrays[f"lg_{split}_binary1_y"] = yb.astype(np.int64)
        arrays[f"lg_{split}_binary2"] = (rng.normal(0, 1.5, size=(n, 2)) + 2 * np.eye(2)[yb]).astype(np.float32)
        arrays[f"lg_{split}_binary2_y"] = yb.astype(np.int64)
        yml = (rng.random((n, c)) < 0.5).astype(np.int64)
        arrays[f"lg_{split}_multilabel"] = (rng.normal(0, 1.5, size=(n, c)) + 3 * (2 * yml - 1)).astype(np.float32)
        arrays[f"lg_{split}_multilabel_y"] = yml
        base = logits[:, :, None] + rng.normal(0, 1.0, size=(n, c, m))
        arrays[f"ens_{split}_multiclass"], arrays[f"ens_{split}_multiclass_y"] = base.astype(np.float32), y
        arrays[f"ens_{split}_multilabel"] = (arrays[f"lg_{split}_multilabel"][:, :, None]
                                             + rng.normal(0, 1.5, size=(n, c, m))).astype(np.float32)
        arrays[f"ens_{split}_multilabel_y"] = yml
    arrays["model_w"] = rng.normal(0, 0.5, size=(d, d)).astype(np.float32)
    arrays["model_wl"] = rng.normal(0, 0.5, size=(d, c)).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        np.save(out / f"{k}.npy", v)


# ---------------------------------------------------------------- cases (run inside either library)
class Ctx:
    """What a case needs: the library (``sp`` = seapig or synthperf.selective), its name, the mode, data."""

    def __init__(self, lib: str, mode: str, data: Path) -> None:
        import torch

        self.torch, self.lib, self.mode, self.data = torch, lib, mode, data
        if lib == "seapig":
            import seapig.scores as scores
            from seapig.scores.utils import TensorPCA
        else:
            import synthperf.selective as scores
            from synthperf.selective import TensorPCA
        self.sp, self.TensorPCA = scores, TensorPCA

    def t(self, name: str):
        return self.torch.from_numpy(np.load(self.data / f"{name}.npy"))

    def kw(self, cls_name: str, **kwargs: Any) -> Any:
        """Instantiate a score; synthperf's logit scores take ``convention=mode``."""
        cls = getattr(self.sp, cls_name)
        if self.lib == "synthperf" and issubclass(cls, self.sp.LogitScore):
            kwargs["convention"] = self.mode
        return cls(**kwargs)

    # API-mode call conventions
    def fit_emb(self, score, ref, cal=None, **kw):
        if self.mode == "A":
            return score.fit(X=ref, Y=cal, **kw)
        return score.fit(ref=ref, cal=cal, **kw)

    last_t = float("nan")

    def run(self, score, query) -> tuple[Any, Any]:
        self.last_t = float(getattr(score, "temperature", None) or float("nan"))
        score.set_threshold(Q)
        if self.mode == "A":
            s, sel = score.score(query), score.select(query)
        else:
            s, sel = score.score(query=query), score.select(query=query)
        return s, sel["selected"]

    def model_loaders(self, kind: str):
        """A deterministic linear model and loaders over ref/cal/query in the mode's protocol."""
        torch = self.torch
        w, wl = self.t("model_w"), self.t("model_wl")

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lin = torch.nn.Linear(w.shape[0], w.shape[1], bias=False)
                self.head = torch.nn.Linear(wl.shape[0], wl.shape[1], bias=False)
                with torch.no_grad():
                    self.lin.weight.copy_(w.T)
                    self.head.weight.copy_(wl.T)
                self.requires_grad_(False)  # seapig A fits T on model logits; graph-free outputs

            def embed(self, x):
                return torch.tanh(self.lin(x))

            def logits(self, x):
                return self.head(x)

            def extract(self, batch):
                x = batch["image"]
                return {"embedding": self.embed(x), "logit": self.logits(x), "label": batch["label"]}

        def loader(split: str):
            x, y = self.t(split), self.t(f"{split}_y")
            items = [{"image": x[i], "label": y[i] % 4} for i in range(len(x))]
            return torch.utils.data.DataLoader(items, batch_size=64)

        return Net(), loader


def _knn(cls: str, k: int, stat: str, cal: bool = True, pca: int | None = None, q: float | None = None):
    def case(c: Ctx):
        kwargs: dict[str, Any] = {"k": k, "stat": stat}
        if pca:
            kwargs["pca"] = c.TensorPCA(n_components=pca)
        s = c.kw(cls, **kwargs)
        extra = {"q": q} if q else {}
        c.fit_emb(s, c.t("ref"), c.t("cal") if cal else None, **extra)
        return c.run(s, c.t("query"))
    return case


def _pca(rff: bool):
    def case(c: Ctx):
        c.torch.manual_seed(0)
        pca = c.TensorPCA(n_components=6, gamma=0.05, M=64) if rff else c.TensorPCA(n_components=0.9)
        s = c.kw("PCAScore", pca=pca)
        c.fit_emb(s, c.t("ref").double() if not rff else c.t("ref"), c.t("cal"))
        return c.run(s, c.t("query"))
    return case


def _logit(cls: str, task: str, fit_t: bool, per_member: bool = False, prefix: str = "lg"):
    def case(c: Ctx):
        name = {"binary1": "binary", "binary2": "binary"}.get(task, task)
        kwargs: dict[str, Any] = {"task": name}
        if not fit_t:
            kwargs["temperature"] = 2.0
        if per_member:
            kwargs["per_member"] = True
        s = c.kw(f"{cls}Score", **kwargs)
        x, y = c.t(f"{prefix}_cal_{task}"), c.t(f"{prefix}_cal_{task}_y")
        if c.mode == "A":
            s.fit(X=x, Y=y if fit_t else None)
        else:
            s.fit(cal={"logit": x, "label": y}, temp_scale=fit_t)
        return c.run(s, c.t(f"{prefix}_query_{task}"))
    return case


def _ensemble(cls: str, task: str):
    def case(c: Ctx):
        s = c.kw(cls, task=task)
        s.fit(cal={"logit": c.t(f"ens_cal_{task}"), "label": c.t(f"ens_cal_{task}_y")})
        return c.run(s, c.t(f"ens_query_{task}"))
    return case


def _classwise(cls: str, multi: bool):
    def case(c: Ctx):
        s = getattr(c.sp, cls)(k=5, stat="mean")
        lab, pred = ("_ml", "_mlpred") if multi else ("_y", "_pred")
        s.fit(ref={"embedding": c.t("ref"), "label": c.t("ref" + lab)},
              cal={"embedding": c.t("cal"), "label": c.t("cal" + lab)})
        s.set_threshold(Q)
        query = {"embedding": c.t("query"), "prediction": c.t("query" + pred)}
        return s.score(query=query), s.select(query=query)["selected"]
    return case


def _random(c: Ctx):
    s = c.sp.RandomScore()
    c.torch.manual_seed(0)
    x = c.t("query")
    out = s.score(x) if c.mode == "A" else s.score(query=x)
    c.torch.manual_seed(1)
    sel = (s.select(x) if c.mode == "A" else s.select(query=x))["selected"]
    return out, sel


def _pyod(c: Ctx):
    from pyod.models.knn import KNN

    s = c.sp.PyODScore(KNN(n_neighbors=5))
    c.fit_emb(s, c.t("ref"), c.t("cal"))
    return c.run(s, c.t("query"))


def _model_knn(c: Ctx):
    model, loader = c.model_loaders("embed")
    s = c.kw("EuclideanScore", k=5, stat="mean")
    cal_key = "val" if c.mode == "A" else "cal"
    s.fit(model=model, loaders={"train": loader("ref"), cal_key: loader("cal")})
    s.set_threshold(Q)
    return (s.score(model=model, loader=loader("query")), s.select(model=model, loader=loader("query"))["selected"])


def _model_logit(c: Ctx):
    model, loader = c.model_loaders("logits")
    s = c.kw("SoftmaxScore", task="multiclass", temperature=1.5)
    s.fit(model=model, loader=loader("cal"))  # A fits T (the loader has labels), B keeps T = 1.5
    c.last_t = float(s.temperature or float("nan"))
    s.set_threshold(Q)
    if c.mode == "A":  # seapig A scores logits only: score(query_logits)
        z = model.logits(c.t("query"))
        return s.score(z), s.select(z)["selected"]
    return (s.score(model=model, loader=loader("query")), s.select(model=model, loader=loader("query"))["selected"])


def cases() -> dict[str, tuple[Callable[[Ctx], Any], tuple[str, ...]]]:
    """``{case name: (function, API modes it runs in)}``."""
    both, b_only = ("A", "B"), ("B",)
    out: dict[str, tuple[Callable[[Ctx], Any], tuple[str, ...]]] = {
        "Euclidean k=1 max": (_knn("EuclideanScore", 1, "max"), both),
        "Euclidean k=5 mean": (_knn("EuclideanScore", 5, "mean"), both),
        "Euclidean k=4 median": (_knn("EuclideanScore", 4, "median"), both),
        "Euclidean k=5 min, no cal (self-scores)": (_knn("EuclideanScore", 5, "min", cal=False), both),
        "Euclidean k=5 max, PCA 6": (_knn("EuclideanScore", 5, "max", pca=6), both),
        "Euclidean k=5 mean, q-trim 0.9": (_knn("EuclideanScore", 5, "mean", q=0.9), both),
        "Cosine k=5 max": (_knn("CosineScore", 5, "max"), both),
        "Mahalanobis k=5 mean": (_knn("MahalanobisScore", 5, "mean"), both),
        "PCAScore linear 0.9 (float64 ref)": (_pca(False), both),
        "PCAScore RFF M=64": (_pca(True), both),
        "Random": (_random, both),
        "PyOD KNN": (_pyod, both),
        "Euclidean k=5 mean [model]": (_model_knn, both),
        "Softmax multiclass T=1.5 [model]": (_model_logit, both),
    }
    for cls in LOGIT_CLASSES:
        for task in LOGIT_TASKS:
            for fit_t in (False, True):
                out[f"{cls} {task} {'T fitted' if fit_t else 'T=2'}"] = (_logit(cls, task, fit_t), both)
        out[f"{cls} multiclass per_member T=2"] = (_logit(cls, "multiclass", False, True, "ens"), both)
    for cls in ("MutualInformationScore", "PredictiveVarianceScore"):
        for task in ("multiclass", "multilabel"):
            out[f"{cls[:-5]} {task}"] = (_ensemble(cls, task), b_only)
    for cls in ("EuclideanClassWiseScore", "CosineClassWiseScore", "MahalanobisClassWiseScore"):
        out[f"{cls[:-5]} single-label"] = (_classwise(cls, False), b_only)
    out["EuclideanClassWise multi-label"] = (_classwise("EuclideanClassWiseScore", True), b_only)
    return out


def worker(lib: str, mode: str, data: Path, out: Path) -> None:
    """Run every case of ``mode`` in ``lib``; write ``<i>.npz`` (score, selected) or errors.json."""
    import warnings

    warnings.simplefilter("ignore")
    ctx = Ctx(lib, mode, data)
    errors: dict[str, str] = {}
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, (fn, modes)) in enumerate(cases().items()):
        if mode not in modes:
            continue
        try:
            s, sel = fn(ctx)
            np.savez(out / f"{i}.npz", score=s.detach().cpu().double().numpy(),
                     selected=sel.detach().cpu().numpy().astype(bool), temperature=np.float64(ctx.last_t))
        except Exception as exc:  # reported per case, never fatal
            errors[name] = f"{type(exc).__name__}: {exc}"[:300]
    (out / "errors.json").write_text(json.dumps(errors))


# ---------------------------------------------------------------- driver
def default_seapig_python() -> str | None:
    for cand in (os.environ.get("SEAPIG_PYTHON"), "/work/seapig-venv/bin/python"):
        if cand and Path(cand).exists():
            return cand
    return None


def compare(seapig_python: str, git_src: str | None, workdir: Path) -> list[dict[str, Any]]:
    """Run both libraries on the same data; one row per (case, mode)."""
    data = workdir / "data"
    make_data(data)
    here = str(Path(__file__).resolve())
    rows: list[dict[str, Any]] = []
    for mode in ("A", "B"):
        runs: dict[str, Path] = {}
        for lib in ("seapig", "synthperf"):
            out = workdir / f"{lib}-{mode}"
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
            py = sys.executable
            if lib == "seapig":
                py = seapig_python
                env.pop("PYTHONPATH", None)
                if mode == "A":
                    if not git_src:
                        continue
                    env["PYTHONPATH"] = git_src
            proc = subprocess.run([py, here, "--worker", lib, "--mode", mode, "--data", str(data), "--out", str(out)],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{lib} worker (mode {mode}) failed:\n{proc.stderr[-3000:]}")
            runs[lib] = out
        if "seapig" not in runs:
            continue
        errs = {lib: json.loads((p / "errors.json").read_text()) for lib, p in runs.items()}
        for i, (name, (_, modes)) in enumerate(cases().items()):
            if mode not in modes:
                continue
            row: dict[str, Any] = {"case": name, "mode": mode}
            missing = [lib for lib in runs if not (runs[lib] / f"{i}.npz").exists()]
            if missing:
                row["error"] = "; ".join(f"{lib}: {errs[lib].get(name, '?')}" for lib in missing)
                row["ok"] = False
                rows.append(row)
                continue
            a, b = (np.load(runs[lib] / f"{i}.npz") for lib in ("seapig", "synthperf"))
            if a["score"].shape != b["score"].shape:
                row.update(ok=False, error=f"shapes {a['score'].shape} vs {b['score'].shape}")
            else:
                sa, sb = a["score"], b["score"]
                tol = TOL_FIT if ("fitted" in name or (name.startswith("Softmax") and "[model]" in name)) else TOL
                upstream_nan = np.isnan(sa) & np.isfinite(sb)  # seapig NaN where synthperf is finite
                keep = ~upstream_nan
                diff = float(np.max(np.abs(sa[keep] - sb[keep]))) if keep.any() else 0.0
                scale = max(1.0, float(np.max(np.abs(sa[keep]))) if keep.any() else 1.0)
                n_sel = int(np.sum(a["selected"][keep] != b["selected"][keep]))
                row.update(max_abs_diff=diff, scale=scale, selection_identical=n_sel == 0, n_selection_diff=n_sel,
                           seapig_nan_rows=int(upstream_nan.sum()),
                           temperature=[float(a["temperature"]), float(b["temperature"])],
                           tol=tol, ok=bool(diff <= tol * scale and n_sel == 0))
                if upstream_nan.any() and diff <= tol * scale:
                    # seapig's NaN calibration scores also move its nanquantile threshold
                    row["explained"] = "seapig NaN scores (float32 Bernoulli entropy); finite rows agree"
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| class / case | mode | max abs diff | selection identical |", "|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['mode']} | error: {r['error']} | - |")
        else:
            sel = "yes" if r["selection_identical"] else f"no ({r['n_selection_diff']} rows)"
            note = (f" (seapig NaN on {r['seapig_nan_rows']} rows, synthperf finite; compared elsewhere)"
                    if r.get("seapig_nan_rows") else "")
            lines.append(f"| {r['case']} | {r['mode']} | {r['max_abs_diff']:.2e}{note} | {sel} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seapig-python", default=None)
    p.add_argument("--seapig-git-src", default=os.environ.get("SEAPIG_GIT_SRC"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--worker", choices=["seapig", "synthperf"], default=None)
    p.add_argument("--mode", choices=["A", "B"], default="B")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.mode, args.data, args.out)
        return 0
    py = args.seapig_python or default_seapig_python()
    if py is None:
        print("no seapig interpreter: pass --seapig-python or set SEAPIG_PYTHON", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="seapig-sbs-") as tmp:
        rows = compare(py, args.seapig_git_src, Path(tmp))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    bad = [r for r in rows if not r["ok"] and "explained" not in r]
    explained = [r for r in rows if not r["ok"] and "explained" in r]
    print(f"{sum(r['ok'] for r in rows)} of {len(rows)} (case, mode) pairs agree; {len(explained)} differ only by "
          f"seapig's NaN scores; {len(bad)} disagree")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
