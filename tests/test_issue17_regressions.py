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
