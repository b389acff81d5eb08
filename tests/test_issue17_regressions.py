"""Issue 17 regression tests for "Found by a fuzz" items of conformal and GaFi: the transport
windows hang, invalid probabilities, infinite regression targets, the DSF infinite loop and the
GaFi size checks. Possible hangs run in a child process under a timeout."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest


def _child(code: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={"OMP_NUM_THREADS": "1", "SYNTHPERF_NUM_THREADS": "1",
                                                "PATH": "/usr/bin:/bin"})


# -- transport_windows: the hang sizes -------------------------------------------------

def test_transport_windows_1000_by_1e6_is_fast_and_exact_on_sampled_rows():
    """(1000, 10**6) took 160 s with the Python big-int recheck; now the C++ relative bound and
    double-double settle every row (a few seconds). Sampled rows equal upstream's big-int value."""
    from synthperf.conformal.windows import exact_window_row, transport_windows, window_recheck_counts

    out = _child("""
        import time
        from synthperf.conformal import transport_windows
        t = time.perf_counter(); transport_windows(1000, 10**6, 0.4); print(time.perf_counter() - t)
        """, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 60.0
    assert window_recheck_counts(1000, 10 ** 6, 0.4)["big_int"] == 0
    L, U = transport_windows(200, 20000, 0.4)
    for r in (1, 57, 200, 201):
        assert (L[r - 1], U[r - 1]) == exact_window_row(20000, 201, r, 0.4)


@pytest.mark.parametrize("n_real,n_synth", [(10 ** 12, 10 ** 13), (15, 10 ** 12), (10 ** 6, 10 ** 6 + 2)])
def test_transport_windows_refuses_hours_of_work(n_real, n_synth):
    """Sizes beyond MAX_WINDOW_WORK raise at once (they ran for hours, or raised MemoryError)."""
    from synthperf.conformal import coverage_bounds, transport_windows
    from synthperf.conformal.windows import MAX_WINDOW_WORK

    assert (n_real + 1) * n_synth > MAX_WINDOW_WORK
    with pytest.raises(ValueError, match="n_real=.*n_synth=.*too large"):
        transport_windows(n_real, n_synth, 0.4)
    with pytest.raises(ValueError, match="too large"):
        coverage_bounds(n_real, n_synth, 0.1)


# -- conformal scores ---------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["aps_scores", "lac_scores", "raps_scores", "saps_scores", "topk_scores"])
@pytest.mark.parametrize("bad", ["unnormalised", "negative", "above_one", "inf"])
def test_probability_scores_refuse_invalid_probabilities(fn, bad):
    from synthperf import conformal

    p = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    p = {"unnormalised": p * 2, "negative": np.array([[1.2, -0.2, 0.0], [0.1, 0.1, 0.8]]),
         "above_one": np.array([[1.5, -0.25, -0.25], [0.1, 0.1, 0.8]]),
         "inf": np.array([[np.inf, 0.0, 0.0], [0.1, 0.1, 0.8]])}[bad]
    with pytest.raises(ValueError, match="probs"):
        getattr(conformal, fn)(p, np.array([0, 2]))


@pytest.mark.parametrize("fn,args", [
    ("abs_residual_scores", lambda y: (np.array([1.0, 2.0]), y)),
    ("gamma_scores", lambda y: (np.array([1.0, 2.0]), y)),
    ("cqr_scores", lambda y: (np.array([[0.0, 1.0], [0.0, 2.0]]), y)),
    ("normalized_residual_scores", lambda y: (np.array([1.0, 2.0]), np.ones(2), y)),
])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_regression_scores_refuse_infinite_targets(fn, args, value):
    """An infinite target gave an infinite (or, with an infinite prediction, NaN) score that then
    decided the conformal threshold silently."""
    from synthperf import conformal

    with pytest.raises(ValueError, match="y contains inf"):
        getattr(conformal, fn)(*args(np.array([0.5, value])))


def test_residual_scores_refuse_infinite_predictions_but_cqr_keeps_infinite_bounds():
    from synthperf.conformal import abs_residual_scores, cqr_scores

    with pytest.raises(ValueError, match="pred contains inf"):
        abs_residual_scores(np.array([np.inf, 1.0]), np.array([np.inf, 1.0]))  # was NaN (inf - inf)
    s = cqr_scores(np.array([[-np.inf, 1.0], [0.0, np.inf]]), np.array([0.5, 3.0]))
    np.testing.assert_array_equal(s, [-0.5, -3.0])


# -- GaFi sampling --------------------------------------------------------------------------------

class _Gen:
    num_classes, latent_dim = 3, 4

    def __call__(self, z, y):
        import torch

        return torch.zeros(len(y), 1, 2, 2) + y.view(-1, 1, 1, 1).float()


@pytest.mark.parametrize("kind", ["never", "nan"])
def test_generate_filtered_default_attempts_terminates(kind):
    """The default max_attempts=-1 looped forever (memory growing) when the classifier never
    agreed or gave NaN; now it stops with a clear error, in a child under a timeout."""
    out = _child(f"""
        import torch
        from synthperf.gafi.sampling import DSFStallError, generate_filtered
        class G:
            num_classes, latent_dim = 3, 4
            def __call__(self, z, y):
                return torch.zeros(len(y), 1, 2, 2) + y.view(-1, 1, 1, 1).float()
        class C:
            num_classes = 3
            def __call__(self, x):
                lab = (x.mean(dim=(1, 2, 3)).round().long() + 1) % 3
                out = torch.nn.functional.one_hot(lab, 3).float()
                return out * float("nan") if {kind!r} == "nan" else out
        try:
            generate_filtered(G(), C(), [5, 5, 5], seed=0, stall_attempts=20)
        except (DSFStallError, ValueError) as e:
            print(type(e).__name__, e)
        """, timeout=120)
    assert out.returncode == 0, out.stderr
    word = "non-finite" if kind == "nan" else "DSFStallError"
    assert word in out.stdout, out.stdout


@pytest.mark.parametrize("counts,err", [([1.5, 2, 2], TypeError), ([True, 2, 2], TypeError), (None, TypeError),
                                        ("3", TypeError), ([1, 2], ValueError), ([-1, 2, 2], ValueError),
                                        (10 ** 30, ValueError)])
def test_generate_filtered_class_counts_checked(counts, err):
    """[1.5, 2, 2] was truncated to 1 silently; None/'3'/10**30 raised unrelated errors."""
    from synthperf.gafi.sampling import generate_filtered

    with pytest.raises(err, match="class_counts"):
        generate_filtered(_Gen(), None, counts, filter=False, seed=0)


@pytest.mark.parametrize("bs", [0, -1, 1.5])
def test_generate_filtered_batch_size_checked(bs):
    from synthperf.gafi.sampling import generate_filtered

    with pytest.raises((TypeError, ValueError), match="batch_size"):
        generate_filtered(_Gen(), None, 2, filter=False, seed=0, batch_size=bs)


@pytest.mark.parametrize("n,dim,err", [(-1, 4, ValueError), (2, 0, ValueError), (2, 1.5, TypeError),
                                       (2, True, TypeError), (10 ** 12, 8, ValueError), (None, 4, TypeError)])
def test_sample_latent_sizes_checked(n, dim, err):
    """n=-1 / latent_dim=0 / 10**12 rows gave torch errors, an empty tensor or a failed allocation."""
    from synthperf.gafi.sampling import sample_latent

    with pytest.raises(err, match="n|latent_dim"):
        sample_latent(n, dim, 1.0)
    assert tuple(sample_latent(0, 3, 1.0).shape) == (0, 3)


@pytest.mark.parametrize("fn,args,name", [
    ("gamma_scores", lambda t: (np.array([1e-40, 1.0], t), np.array([1.0, 1.0], t)), "pred"),
    ("normalized_residual_scores", lambda t: (np.zeros(2, t), np.array([1e-45, 1.0], t), np.ones(2, t)), "sigma"),
])
def test_tiny_float32_divisors_raise_instead_of_infinite_scores(fn, args, name):
    """A positive float32 divisor of 1e-40 passed the > 0 check and gave an inf score (the
    conformal analogue of the float32 gamma 1e-50 defect); float64 keeps the finite score."""
    from synthperf import conformal

    with pytest.raises(ValueError, match=f"{name} = .*too small.*float32"):
        getattr(conformal, fn)(*args(np.float32))
    out = getattr(conformal, fn)(*args(np.float64))
    assert np.isfinite(out).all() and out[0] > 1e39


# -- YAML alias bomb: every YAML reader and the CLI ---------------------------------------------

_BOMB = "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9 if p else ['"lol"'] * 9) + "]\n"
                for p, c in zip([None] + list("abcdefgh"), "abcdefghi")) + "experiment: sppi\n"


def test_alias_bomb_refused_by_gafi_config_and_synthperf_run(tmp_path):
    """A 450-byte alias bomb hung ``synthperf run`` (the deep copy ran before the key check); the
    GaFi YAML reader must refuse it too. Both run in children under a timeout."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_BOMB)
    assert len(_BOMB.encode()) < 600
    out = _child(f"""
        from synthperf.gafi.config import load_yaml
        try:
            load_yaml({str(path)!r})
        except ValueError as e:
            print("REJECTED", e)
        """, timeout=60)
    assert "REJECTED" in out.stdout and "alias" in out.stdout, out.stdout + out.stderr
    cli = subprocess.run([sys.executable, "-m", "synthperf", "run", str(path)], capture_output=True, text=True,
                         timeout=60, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 2, cli.stderr
    assert cli.stderr.startswith("error:") and "alias" in cli.stderr and "Traceback" not in cli.stderr


# -- flows / ops / guidance fuzz cases (criteria, step, discrete score, grids, figures) ----------

def test_vp_ode_grid_accepts_eps_s_zero_and_refuses_negative():
    """Spec §1.4: t_k = T + k/(n-1) (eps_s - T) is linear in eps_s (no log or ratio) and
    gamma(0) = gamma0 > 0, so eps_s = 0 is a valid grid ending exactly at 0; eps_s < 0 or
    >= end_time is refused naming eps_s."""
    from synthperf.flows import time_grid, vp_ode_times

    t = vp_ode_times(5, 1.0, 0.0)
    np.testing.assert_array_equal(t, [1.0, 0.75, 0.5, 0.25, 0.0])
    assert time_grid("vp_ode", "melt", 5, end_time=1.0, eps_s=0.0)[0] == 0.0
    for bad in (-1e-3, 1.0, 2.0):
        with pytest.raises(ValueError, match="eps_s"):
            vp_ode_times(5, 1.0, bad)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_subnormal_gamma_refused_naming_gamma_numpy_and_torch(dtype):
    """A subnormal variance (1e-320 float64, 1e-40 float32) overflowed 1/gamma to inf and gave
    NaN scores; it is refused on the numpy and the tensor path; finfo.tiny itself is finite."""
    import torch

    from synthperf.ops import discrete_score

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 2)).astype(dtype), rng.standard_normal((6, 2)).astype(dtype)
    sub = 1e-320 if dtype == "float64" else 1e-40
    for gamma in (np.array([sub, 1.0]), torch.tensor([sub, 1.0], dtype=getattr(torch, dtype))):
        with pytest.raises(ValueError, match="gamma"):
            discrete_score(x, y, gamma, backend="cpu")
        with pytest.raises(ValueError, match="gamma"):
            discrete_score(torch.from_numpy(x), torch.from_numpy(y), gamma, backend="cpu")
    tiny = float(np.finfo(dtype).tiny)
    score = discrete_score(x, y, np.array([tiny, 1.0], dtype), mode="clamp", backend="cpu")
    assert np.isfinite(np.asarray(score)).all()


def test_make_toy_huge_augment_to_named_before_allocating():
    from synthperf.flows import make_toy

    with pytest.raises(ValueError, match="augment_to"):
        make_toy("circles", 10, augment_to=10 ** 30)
    with pytest.raises(ValueError, match="n = "):
        make_toy("circles", 10 ** 15)


def test_flows_sample_latent_huge_n_named_before_allocating():
    from synthperf.flows import InflationSchedule, sample_latent

    sch = InflationSchedule(data_dim=2, dims_to_keep=2, xi=(1.0, 0.5))
    assert sample_latent(sch, 3).shape == (3, 2)
    with pytest.raises(ValueError, match="n = 1000000000000000000000000000000 is too large"):
        sample_latent(sch, 10 ** 30)


def test_criteria_refuse_inf_logits_and_accept_numpy_of_any_layout():
    import torch

    from synthperf.guidance.criteria import entropy_criterion, loss_criterion

    rng = np.random.default_rng(0)
    lg, y = rng.standard_normal((5, 3)).astype(np.float32), np.array([0, 1, 2, 0, 1])
    lg_inf = lg.copy()
    lg_inf[2, 1] = np.inf
    for fn in (loss_criterion, entropy_criterion):
        with pytest.raises(ValueError, match="logits contains inf"):
            fn(torch.from_numpy(lg_inf), torch.from_numpy(y))
        ref = fn(torch.from_numpy(lg), torch.from_numpy(y))
        for view in (np.asfortranarray(lg), np.ascontiguousarray(lg[::-1])[::-1]):
            assert torch.equal(fn(view, y), ref)
    with pytest.raises(TypeError, match="y must hold integer"):
        loss_criterion(torch.from_numpy(lg), torch.tensor([0.0, 1, 2, 0, 1]))
    # gradients still flow through validated tensor logits
    t = torch.from_numpy(lg).requires_grad_(True)
    loss_criterion(t, torch.from_numpy(y)).sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()


def test_hardness_forward_checks_labels_and_features():
    import torch

    from synthperf.guidance.criteria import HardnessCriterion

    rng = np.random.default_rng(0)
    h = HardnessCriterion().fit(rng.standard_normal((12, 4)), np.arange(12) % 3)
    f = torch.randn(5, 4)
    with pytest.raises(ValueError, match="y holds class 3"):
        h(None, torch.tensor([0, 1, 2, 3, 0]), f)
    with pytest.raises(ValueError, match="y has 4 entries but features has 5"):
        h(None, torch.tensor([0, 1, 2, 0]), f)
    with pytest.raises(ValueError, match="features contains NaN"):
        h(None, torch.tensor([0, 1, 2, 0, 1]), f.index_fill(1, torch.tensor([2]), float("nan")))


def test_guidance_step_checks_crit_index_and_classifier_size():
    import torch

    from synthperf.guidance.criteria import loss_criterion
    from synthperf.guidance.step import FeedbackGuidanceStep

    class Clf(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    idn = torch.nn.Identity()
    with pytest.raises(TypeError, match="classifier_size"):
        FeedbackGuidanceStep(idn, idn, Clf(), [loss_criterion], classifier_size=True)
    with pytest.raises(ValueError, match="classifier_size"):
        FeedbackGuidanceStep(idn, idn, Clf(), [loss_criterion], classifier_size=0)
    st = FeedbackGuidanceStep(idn, idn, Clf(), [loss_criterion])
    z, y, w = torch.rand(2, 3, 4, 4), torch.tensor([0, 2]), torch.ones(2)
    with pytest.raises(ValueError, match="crit_index holds class 1"):
        st(z, y, w, torch.tensor([0, 1]), torch.tensor(0.5))
    with pytest.raises(ValueError, match="y holds class -1"):
        st(z, torch.tensor([0, -1]), w, torch.zeros(2, dtype=torch.int64), torch.tensor(0.5))
    # a channels_last / strided z gives exactly the contiguous answer
    ref = st(z, y, w, torch.zeros(2, dtype=torch.int64), torch.tensor(0.5))
    got = st(z.to(memory_format=torch.channels_last), y, w, torch.zeros(2, dtype=torch.int64), torch.tensor(0.5))
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


@pytest.mark.parametrize("stem", ["longtail_alpha0.1", "longtail.png"])
def test_plot_longtail_writes_png_and_pdf_atomically(tmp_path, stem, monkeypatch):
    """plot_longtail goes through synthperf._io.save_figure (atomic PNG + PDF); a stem with a
    dot keeps it (the old with_suffix dropped '.1'), PATH.png names the stem PATH."""
    pytest.importorskip("matplotlib")
    import pandas as pd

    import synthperf.guidance.longtail as lt

    calls = []
    real = lt.save_figure
    monkeypatch.setattr(lt, "save_figure", lambda fig, s, **kw: calls.append(s) or real(fig, s, **kw))
    df = pd.DataFrame({"arm": ["real", "real", "unguided", "unguided"], "seed": [0, 1, 0, 1],
                       "minority_acc": [0.5, 0.6, 0.4, 0.45], "majority_acc": [0.9, 0.9, 0.8, 0.85], "overall_acc": [0.8, 0.82, 0.7, 0.72],
                       "generator_data": ["longtail"] * 4})
    paths = lt.plot_longtail(df, tmp_path / stem)
    base = stem[:-4] if stem.endswith(".png") else stem
    assert [p.name for p in paths] == [f"{base}.png", f"{base}.pdf"] and len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{base}.pdf", f"{base}.png"]  # no temp files left
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"


def test_guidance_step_nan_z_raises_by_default_and_propagates_row_wise_on_request():
    """Direct calls refuse a NaN z naming it; nonfinite_z='propagate' (for a sampling loop, spec §2
    post-loop regeneration) gives NaN delta/C for that row only and the exact answer elsewhere."""
    import torch

    from synthperf.guidance.criteria import evaluate_criteria, loss_criterion
    from synthperf.guidance.step import FeedbackGuidanceStep

    class Clf(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    clf, idn = Clf(), torch.nn.Identity()
    z, y, w, ci = torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 2]), torch.ones(3), torch.zeros(3, dtype=torch.int64)
    zn = z.clone()
    zn[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="z contains NaN"):
        FeedbackGuidanceStep(idn, idn, clf, [loss_criterion])(zn, y, w, ci, torch.tensor(0.5))
    with pytest.raises(ValueError, match="nonfinite_z"):
        FeedbackGuidanceStep(idn, idn, clf, [loss_criterion], nonfinite_z="ignore")
    st = FeedbackGuidanceStep(idn, idn, clf, [loss_criterion], nonfinite_z="propagate")
    d_ref, c_ref = st(z, y, w, ci, torch.tensor(0.5))
    d, c = st(zn, y, w, ci, torch.tensor(0.5))
    assert torch.isnan(c[1]) and torch.isnan(d[1]).all()
    for b in (0, 2):
        assert torch.equal(d[b], d_ref[b]) and torch.equal(c[b], c_ref[b])
    # the pipeline path: a NaN logit row gives a NaN criterion for that row only
    lg = torch.randn(3, 3)
    lg[2, 0] = float("nan")
    out = evaluate_criteria([loss_criterion], ci, lg, y, None)
    assert torch.isnan(out[2]) and torch.isfinite(out[:2]).all()
