"""Fuzz targets per module (issue 17 item 2): the public entry points of conformal, ops,
selective, flows, guidance (criteria and the step) and gafi (sampling/filtering), each with a
generator of valid arguments, the bad kinds that apply to each argument and the array
arguments whose layout is varied. See :mod:`_harness` for the outcomes."""
from __future__ import annotations

import numpy as np

from _harness import Target

ARR = ("nan", "empty", "0d", "3d", "ragged", "object", "str", "complex", "mismatch", "requires_grad", "float16")
ARR_INF = ARR + ("inf",)
NO_SHAPE = ("nan", "inf", "empty", "0d", "ragged", "object", "str", "complex", "requires_grad", "float16")
Q_ROWS = tuple(k for k in ARR_INF if k not in ("empty", "mismatch"))  # query rows: any number, 0 too
LBL = ("empty", "0d", "3d", "ragged", "object", "str", "mismatch", "nan")
WORDS_PROBS = ("probs", "probabilities")


def _probs(rng, n, c=4):
    p = rng.random((n, c)) + 0.05
    return p / p.sum(1, keepdims=True)


def _extra_probs(fn):
    """Invalid probabilities (aps/lac accepted them, issue 17): unnormalised, negative, > 1."""
    return [("probs", lambda a: {**a, "probs": a["probs"] * 2.0}),
            ("probs", lambda a: {**a, "probs": a["probs"] - a["probs"].max()}),
            ("probs", lambda a: {**a, "probs": np.where(np.arange(a["probs"].shape[1]) == 0, 1.5, -0.5 /
                                                        (a["probs"].shape[1] - 1)) + 0 * a["probs"]}),
            ("labels", lambda a: {**a, "labels": np.full_like(a["labels"], a["probs"].shape[1])}),
            ("labels", lambda a: {**a, "labels": a["labels"] - 10}),
            ("labels", lambda a: {**a, "labels": a["labels"] + 0.5})]


def conformal() -> list[Target]:
    from synthperf import conformal as c

    t = []
    t.append(Target("split_conformal_threshold", lambda **a: c.split_conformal_threshold(**a),
                    lambda r, n: {"scores": r.random(n + 10), "alpha": 0.1},
                    arrays={"scores": ARR}, scalars={"alpha": "alpha"}, layouts=("scores",)))
    t.append(Target("split_conformal_thresholds", lambda **a: c.split_conformal_thresholds(**a),
                    lambda r, n: {"scores": r.random((3, n + 10)), "alphas": np.array([0.1, 0.2])},
                    arrays={"scores": ARR, "alphas": ("nan", "empty", "3d", "object", "str")},
                    scalars={"alphas": "alpha"}, layouts=("scores",)))
    t.append(Target("sppi_threshold", lambda **a: c.sppi_threshold(**a),
                    lambda r, n: {"real_scores": r.random(n + 5), "synth_scores": r.random(10 * n + 30),
                                  "alpha": 0.1, "beta": 0.4},
                    arrays={"real_scores": ARR, "synth_scores": ARR}, scalars={"alpha": "alpha", "beta": "prob"},
                    layouts=("real_scores", "synth_scores"), names={"real_scores": ("real",),
                                                                    "synth_scores": ("synth",)}))
    t.append(Target("sppi_thresholds", lambda **a: c.sppi_thresholds(**a),
                    lambda r, n: {"real": r.random((2, n + 5)), "synth": r.random((2, 10 * n + 30)),
                                  "alphas": np.array([0.1]), "beta": 0.4},
                    arrays={"real": ARR, "synth": ARR}, scalars={"alphas": "alpha", "beta": "prob"},
                    layouts=("real", "synth")))
    t.append(Target("transport_windows", lambda **a: c.transport_windows(**a),
                    lambda r, n: {"n_real": n, "n_synth": 10 * n, "beta": 0.4},
                    scalars={"n_real": "count", "n_synth": "count", "beta": "prob"},
                    extra=[("n_real", lambda a: {**a, "n_real": 10 ** 12, "n_synth": 10 ** 13}),
                           ("n_synth", lambda a: {**a, "n_synth": a["n_real"]})]))
    t.append(Target("coverage_bounds", lambda **a: c.coverage_bounds(**a),
                    lambda r, n: {"n_real": n, "n_synth": 10 * n, "alpha": 0.1, "beta": 0.4},
                    scalars={"n_real": "count", "alpha": "alpha", "beta": "prob"}))
    for name in ("aps_scores", "lac_scores", "raps_scores", "saps_scores", "topk_scores"):
        fn = getattr(c, name)
        kw = {"random_state": 0} if name in ("aps_scores", "raps_scores", "saps_scores") else {}
        t.append(Target(name, (lambda fn, kw: lambda **a: fn(**a, **kw))(fn, kw),
                        lambda r, n: {"probs": _probs(r, n), "labels": r.integers(0, 4, n)},
                        arrays={"probs": ARR_INF, "labels": LBL + ("bool",)}, layouts=("probs",),
                        names={"probs": WORDS_PROBS, "labels": ("label",)}, extra=_extra_probs(fn)))
    for name in ("abs_residual_scores", "gamma_scores"):
        fn = getattr(c, name)
        t.append(Target(name, (lambda fn: lambda **a: fn(**a))(fn),
                        lambda r, n: {"pred": r.random(n) + 0.5, "y": r.random(n) + 0.5},
                        arrays={"pred": ARR_INF, "y": ARR_INF}, layouts=("pred", "y")))
    t.append(Target("normalized_residual_scores", lambda **a: c.normalized_residual_scores(**a),
                    lambda r, n: {"pred": r.random(n), "sigma": r.random(n) + 0.5, "y": r.random(n)},
                    arrays={"pred": ARR_INF, "sigma": ARR_INF, "y": ARR_INF}, layouts=("pred", "sigma", "y"),
                    scalars={"sigma": [0.0, -1.0, float("nan")]},
                    extra=[("sigma", lambda a: {k: v.astype(np.float32) for k, v in a.items()}
                            | {"sigma": np.full(a["y"].shape, 1e-45, np.float32)})]))
    t.append(Target("gamma_scores_float32", lambda **a: c.gamma_scores(**a),
                    lambda r, n: {"pred": (r.random(n) + 0.5).astype(np.float32), "y": r.random(n).astype(np.float32)},
                    extra=[("pred", lambda a: {**a, "pred": np.full(a["y"].shape, 1e-40, np.float32)})]))
    t.append(Target("cqr_asymmetric_scores", lambda **a: c.cqr_asymmetric_scores(**a),
                    lambda r, n: {"intervals": np.sort(r.random((n, 2)), 1), "y": r.random(n)},
                    arrays={"intervals": ARR, "y": ARR_INF}, layouts=("intervals", "y")))
    t.append(Target("cqr_scores", lambda **a: c.cqr_scores(**a),
                    lambda r, n: {"intervals": np.sort(r.random((n, 2)), 1), "y": r.random(n)},
                    arrays={"intervals": ARR, "y": ARR_INF}, layouts=("intervals", "y")))  # +-inf bounds are valid
    for name in ("cvm_statistics", "wasserstein_distances"):
        fn = getattr(c, name)
        t.append(Target(name, (lambda fn: lambda **a: fn(**a))(fn),
                        lambda r, n: {"x": r.random(n), "y": r.random((3, n + 4))},
                        # 3-D (batched leading axes) and unequal sizes are valid here
                        arrays={"x": NO_SHAPE, "y": NO_SHAPE}, layouts=("x", "y")))
    t.append(Target("weighted_split_conformal_thresholds", lambda **a: c.weighted_split_conformal_thresholds(**a),
                    lambda r, n: {"scores": r.random(n + 10), "calibration_weights": r.random(n + 10) + 0.1,
                                  "test_weights": r.random(4) + 0.1, "alpha": 0.1},
                    arrays={"scores": ARR, "calibration_weights": ARR_INF, "test_weights": ARR_INF},
                    scalars={"alpha": "alpha"}, layouts=("scores", "calibration_weights"),
                    names={"calibration_weights": ("weights",), "test_weights": ("weights",)}))
    t.append(Target("evaluate_sets", lambda **a: c.evaluate_sets(**a),
                    lambda r, n: {"scores": r.random((n, 4)).astype(np.float32), "labels": r.integers(0, 4, n),
                                  "thresholds": r.random((2, 3))},
                    # [T, n, C] scores and [...] thresholds (any batch, possibly empty) are valid
                    arrays={"scores": tuple(k for k in ARR if k != "3d"), "labels": LBL,
                            "thresholds": ("nan", "object", "str")},
                    layouts=("scores", "thresholds")))
    return t


def ops() -> list[Target]:
    from synthperf import ops as o

    t = []
    t.append(Target("discrete_score", lambda **a: o.discrete_score(**a, backend="cpu"),
                    lambda r, n: {"x": r.standard_normal((n, 3)), "data": r.standard_normal((n + 7, 3)),
                                  "gamma": r.random(3) + 0.1},
                    # 0 query rows and a scalar gamma are valid
                    arrays={"x": Q_ROWS, "data": ARR_INF, "gamma": tuple(k for k in ARR_INF if k != "0d")},
                    scalars={"gamma": [0.0, -1.0, float("nan"), np.float32(1e-50), 1e-320, None]},
                    extra=[("gamma", lambda a: {**a, "x": a["x"].astype(np.float32),
                                                "data": a["data"].astype(np.float32),
                                                "gamma": np.full(3, 1e-50)})],
                    layouts=("x", "data")))
    t.append(Target("discrete_score_reference", lambda **a: o.discrete_score(**a, backend="reference"),
                    lambda r, n: {"x": r.standard_normal((n, 2)), "data": r.standard_normal((n + 3, 2)),
                                  "gamma": r.random(2) + 0.1},
                    arrays={"x": Q_ROWS, "data": ARR_INF}, layouts=("x", "data")))
    t.append(Target("order_statistics", lambda **a: o.order_statistics(**a, backend="cpu"),
                    lambda r, n: {"x": r.standard_normal((3, n + 5)), "ranks": np.tile([1, 2, n + 5], (3, 1))},
                    arrays={"x": ARR, "ranks": ("nan", "empty", "3d", "object", "str", "mismatch", "float16")},
                    extra=[("ranks", lambda a: {**a, "ranks": a["ranks"] + a["x"].shape[1]}),
                           ("ranks", lambda a: {**a, "ranks": a["ranks"] - 5}),
                           ("lengths", lambda a: {**a, "lengths": np.full(3, a["x"].shape[1] + 1)}),
                           ("lengths", lambda a: {**a, "lengths": np.full(2, a["x"].shape[1])})],
                    layouts=("x", "ranks")))
    t.append(Target("integrate_discrete", lambda **a: o.integrate_discrete(**a, backend="cpu"),
                    lambda r, n: {"z0": r.standard_normal((n, 2)), "data": r.standard_normal((n + 4, 2)),
                                  "tables": {"s": np.ones((3, 2)), "r": np.zeros((3, 2)), "a": np.full((3, 2), 0.5),
                                             "gamma": np.full((3, 2), 0.3)}, "times": np.linspace(0, 1, 3)},
                    arrays={"z0": Q_ROWS, "data": ARR_INF, "times": ("nan", "empty", "0d", "3d", "object")},
                    extra=[("tables", lambda a: {**a, "tables": {**a["tables"], "gamma": -a["tables"]["gamma"]}}),
                           ("tables", lambda a: {**a, "tables": {k: v for k, v in a["tables"].items() if k != "s"}}),
                           ("tables", lambda a: {**a, "tables": {**a["tables"], "s": a["tables"]["s"][:2]}})],
                    layouts=("z0", "data")))
    return t


def selective() -> list[Target]:
    import torch

    from synthperf import selective as s

    def knn(ref, query, k):
        return s.knn_search(ref, query, k, backend="cpu")

    def softmax(X, query):
        return s.SoftmaxScore().fit(torch.as_tensor(X) if isinstance(X, np.ndarray) else X).score(query)

    def euclid(X, query, k):
        return s.EuclideanScore(k=k).fit(X).score(query)

    t = [Target("knn_search", knn, lambda r, n: {"ref": r.standard_normal((n + 5, 3)).astype(np.float32),
                                                 "query": r.standard_normal((n, 3)).astype(np.float32), "k": 2},
                arrays={"ref": ARR_INF, "query": ARR_INF}, scalars={"k": "count"}, layouts=("ref", "query")),
         Target("EuclideanScore", euclid, lambda r, n: {"X": r.standard_normal((n + 5, 3)).astype(np.float32),
                                                        "query": r.standard_normal((n, 3)).astype(np.float32), "k": 2},
                arrays={"X": ARR_INF, "query": ARR_INF}, scalars={"k": "count"}, layouts=("X", "query"),
                names={"X": ("reference", "embeddings", "ref")}),
         Target("SoftmaxScore", softmax, lambda r, n: {"X": r.standard_normal((n, 4)).astype(np.float32),
                                                       "query": r.standard_normal((n, 4)).astype(np.float32)},
                arrays={"query": ("nan", "0d", "3d", "ragged", "object", "str", "complex")},
                layouts=("query",), names={"query": ("logits", "X")})]
    return t


def flows() -> list[Target]:
    from synthperf import flows as f

    t = [Target("pca_eigenbasis", lambda **a: f.pca_eigenbasis(**a), lambda r, n: {"x": r.standard_normal((n + 5, 3))},
                arrays={"x": ARR_INF}, layouts=("x",)),
         Target("make_toy", lambda **a: f.make_toy(**a), lambda r, n: {"name": "circles", "n": n},
                scalars={"n": "count", "name": ["bogus", None, 3, ""]}, names={"name": ("toy dataset",)}),
         Target("time_grid", lambda **a: f.time_grid(**a), lambda r, n: {"grid": "ifs", "direction": "melt", "n": n},
                scalars={"n": "count", "grid": ["bogus", None], "direction": ["bogus", None], "h": "positive"}),
         Target("g_vector", lambda **a: f.g_vector(**a), lambda r, n: {"data_dim": n, "dims_to_keep": 2},
                scalars={"data_dim": "count", "dims_to_keep": [0, -1, 1000, 1.5, None], "inflation_gap": "positive",
                         "g_type": ["bogus"]}),
         Target("ifs_times", lambda **a: f.ifs_times(**a), lambda r, n: {"n": n, "h": 0.01},
                scalars={"n": "count", "h": "positive"}),
         Target("vp_ode_times", lambda **a: f.vp_ode_times(**a), lambda r, n: {"n": n},
                # eps_s = 0 is valid (spec §1.4: the grid is linear in eps_s; gamma(0) = gamma0 > 0), so its
                # bad values are the negative, non-finite, non-numeric and >= end_time ones
                scalars={"n": "count", "end_time": "positive",
                         "eps_s": [-1.0, float("nan"), float("inf"), None, "1", True, 15.01, 20.0]})]

    def schedule_from(x):
        sched, W = f.InflationSchedule.from_data(x)
        return sched.to_dict(), W

    t.append(Target("InflationSchedule.from_data", schedule_from, lambda r, n: {"x": r.standard_normal((n + 5, 2))},
                    arrays={"x": ARR_INF}, layouts=("x",)))
    return t


def guidance() -> list[Target]:
    import torch

    from synthperf.guidance.criteria import HardnessCriterion, entropy_criterion, loss_criterion
    from synthperf.guidance.step import FeedbackGuidanceStep

    def crit(fn):  # numpy goes in as given: the criteria convert it (any layout, issue 17)
        return lambda logits, y: fn(logits, y)

    def hard(features, labels):
        return HardnessCriterion().fit(features, labels, n_classes=3).means_

    class Clf(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    clf = Clf()

    def step(mode="latent_shift_normalized", mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), classifier_size=None,
             z=None, y=None, w=None):
        st = FeedbackGuidanceStep(torch.nn.Identity(), torch.nn.Identity(), clf, [loss_criterion], mode=mode,
                                  mean=mean, std=std, classifier_size=classifier_size)
        return st(z, y, w, torch.zeros(len(y), dtype=torch.int64), torch.tensor(0.5))  # numpy as given

    return [Target("loss_criterion", crit(loss_criterion),
                   lambda r, n: {"logits": r.standard_normal((n, 3)).astype(np.float32), "y": r.integers(0, 3, n)},
                   arrays={"logits": ("nan", "empty", "0d", "3d", "object", "str", "mismatch"),
                           "y": ("empty", "0d", "3d", "object", "str", "mismatch", "nan")},
                   extra=[("y", lambda a: {**a, "y": np.full_like(a["y"], 3)}),
                          ("y", lambda a: {**a, "y": a["y"] - 5})], layouts=("logits",)),
            Target("entropy_criterion", crit(entropy_criterion),
                   lambda r, n: {"logits": r.standard_normal((n, 3)).astype(np.float32), "y": r.integers(0, 3, n)},
                   arrays={"logits": ("nan", "empty", "0d", "3d", "object", "str")}, layouts=("logits",)),
            Target("HardnessCriterion.fit", hard,
                   lambda r, n: {"features": r.standard_normal((3 * n + 6, 4)).astype(np.float32),
                                 "labels": np.arange(3 * n + 6) % 3},
                   arrays={"features": ARR_INF, "labels": LBL}, layouts=("features",),
                   extra=[("labels", lambda a: {**a, "labels": a["labels"] + 3})]),
            Target("FeedbackGuidanceStep", step,
                   lambda r, n: {"z": r.random((n, 3, 4, 4)).astype(np.float32), "y": r.integers(0, 3, n),
                                 "w": np.ones(n, np.float32)},
                   arrays={"z": ("nan", "empty", "0d", "object", "str"), "y": ("mismatch", "nan", "empty"),
                           "w": ("mismatch", "nan")},
                   scalars={"mode": ["bogus", None], "std": [(0.0, 1.0, 1.0), (1.0,), (-1.0, 1.0, 1.0)],
                            "classifier_size": [0, -3]},
                   extra=[("y", lambda a: {**a, "y": np.full_like(a["y"], 7)})], layouts=("z",))]


def gafi() -> list[Target]:
    import torch

    from synthperf.gafi import sampling as g

    class Gen(torch.nn.Module):
        num_classes, latent_dim = 3, 8

        def forward(self, z, y):
            return torch.tanh(z[:, :4]).view(-1, 1, 2, 2) + y.view(-1, 1, 1, 1).float()

    class Clf(torch.nn.Module):
        num_classes = 3

        def __init__(self, kind="ok"):
            super().__init__()
            self.kind = kind

        def forward(self, x):
            lab = x.mean(dim=(1, 2, 3)).round().long().clamp(0, 2)
            out = torch.nn.functional.one_hot(lab, 3).float() * 5
            if self.kind == "never":  # always predicts another class than the requested one
                out = torch.nn.functional.one_hot((lab + 1) % 3, 3).float() * 5
            if self.kind == "nan":
                out = out * float("nan")
            return out

    def gen_filtered(class_counts=(4, 4, 4), tau=0.0, sigma=1.0, max_attempts=-1, batch_size=8, clf="ok"):
        return g.generate_filtered(Gen(), Clf(clf), list(class_counts) if isinstance(class_counts, tuple)
                                   else class_counts, tau=tau, sigma=sigma, max_attempts=max_attempts,
                                   batch_size=batch_size, seed=0, stall_attempts=5)

    def latent(n, latent_dim, sigma):
        return g.sample_latent(n, latent_dim, sigma, torch.Generator().manual_seed(0))

    return [Target("sample_latent", latent, lambda r, n: {"n": n, "latent_dim": 8, "sigma": 1.0},
                   scalars={"n": [-1, 1.5, float("nan"), True, None, "3"], "latent_dim": "count", "sigma": "positive"},
                   extra=[("n", lambda a: {**a, "n": 10 ** 12}), ("sigma", lambda a: {**a, "sigma": (2.0, 1.0)})]),
            Target("check_tau", lambda tau: g.check_tau(tau), lambda r, n: {"tau": 0.5},
                   scalars={"tau": [float("nan"), -0.1, 1.5, None, "x", True, float("inf")]}),
            Target("check_sigma", lambda sigma: g.check_sigma(sigma), lambda r, n: {"sigma": 1.0},
                   scalars={"sigma": "positive"}),
            Target("generate_filtered", gen_filtered, lambda r, n: {"class_counts": (n, 2, 3)},
                   scalars={"class_counts": [[0, -1, 2], [1.5, 2, 2], [], None, "3", 10 ** 30, [1, 2]],
                            "tau": [float("nan"), -0.1, 1.5], "sigma": "positive",
                            "max_attempts": [0, -2, 1.5, True], "batch_size": [0, -1, 1.5]},
                   extra=[("classifier", lambda a: {**a, "clf": "never"}),   # used to loop forever
                          ("classifier", lambda a: {**a, "clf": "nan"})],
                   names={"classifier": ("classifier", "DSF", "filter", "max_attempts")}, errors=(g.DSFStallError,))]


def selftest() -> list[Target]:
    """Harness check (not a package module): a signal death, a hang, a silently accepted NaN
    and a layout-dependent answer must each be reported, and the run must go on after them."""
    import os
    import signal
    import time

    def fragile(x):
        x = np.asarray(x)
        if x.size == 0:
            os.kill(os.getpid(), signal.SIGSEGV)
        if x.ndim == 0:
            time.sleep(60)
        if x.dtype == object:
            raise ValueError("x must be numeric")
        return x.sum() if x.flags.c_contiguous else x.sum() + 1

    return [Target("fragile", fragile, lambda r, n: {"x": r.random((n, 2))},
                   arrays={"x": ("empty", "0d", "nan", "object")}, layouts=("x",))]


MODULES = {"conformal": conformal, "ops": ops, "selective": selective, "flows": flows, "guidance": guidance,
           "gafi": gafi, "_selftest": selftest}
