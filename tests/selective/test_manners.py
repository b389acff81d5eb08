"""Issue 14 item 7 inside selective: plots leave pyplot's backend alone, select() never fits or
calibrates silently, KNN estimators follow the process backend setting (backend=None)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import synthperf.backend as sb
from synthperf.selective import (EnergyScore, EuclideanClassWiseScore, EuclideanScore, MahalanobisScore,
                                 risk_coverage)


def test_plots_leave_the_users_backend_and_pyplot_state_unchanged():
    pytest.importorskip("matplotlib")
    # fresh interpreter: a backend chosen by the user (not Agg) must survive both plot() calls
    code = textwrap.dedent("""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        import torch
        from synthperf.selective import EuclideanScore, risk_coverage
        s = EuclideanScore(k=2).fit(X=torch.randn(50, 3), Y=torch.randn(20, 3))
        s.set_threshold(0.9)
        fig1 = s.plot(torch.randn(10), show=False)
        fig2 = risk_coverage(torch.rand(300), torch.rand(300), n_bins=20).plot()
        from matplotlib.figure import Figure
        assert isinstance(fig1, Figure) and isinstance(fig2, Figure)
        assert len(fig1.axes) == 1 and len(fig2.axes) == 1
        print(matplotlib.get_backend(), len(plt.get_fignums()))
        # show=True (the default, seapig's behaviour): a pyplot figure, shown once, backend kept
        from unittest import mock
        with mock.patch("matplotlib.pyplot.show") as shown:
            fig3 = s.plot(torch.randn(10))
        assert shown.call_count == 1 and isinstance(fig3, Figure) and plt.fignum_exists(fig3.number)
        print(matplotlib.get_backend(), len(plt.get_fignums()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # backend unchanged; show=False registers no figure with pyplot, show=True exactly one
    assert out.stdout.split() == ["svg", "0", "svg", "1"]


def test_plot_in_process_keeps_backend():
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    s = EuclideanScore(k=1).fit(X=torch.randn(30, 2))
    s.set_threshold(0.5)
    fig = s.plot(show=False)
    assert matplotlib.get_backend() == before
    assert fig.axes[0].get_xlabel().startswith("euclidean")


def test_select_before_fit_raises_and_fits_nothing():
    s = EuclideanScore(k=2)
    with pytest.raises(RuntimeError, match=r"not fitted: call fit\(...\) before score\(\)/select\(\)"):
        s.select(torch.randn(3, 2))
    assert s.index is None and s.scores is None and s.threshold is None
    with pytest.raises(ValueError, match="no stored scores"):
        EnergyScore().select(torch.randn(3, 4))  # logit scores need fit() for a threshold
    cw = EuclideanClassWiseScore(k=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        cw.select({"embedding": torch.randn(3, 2), "prediction": torch.zeros(3)})


def test_select_without_threshold_warns_and_uses_documented_default():
    g = torch.Generator().manual_seed(0)
    s = EuclideanScore(k=2).fit(X=torch.randn(100, 3, generator=g), Y=torch.randn(50, 3, generator=g))
    ref_scores = s.scores.clone()
    with pytest.warns(UserWarning, match=r"default q=0\.99"):
        out = s.select(torch.randn(5, 3, generator=g))
    assert float(s.threshold) == pytest.approx(float(torch.quantile(ref_scores.double(), 0.99)), rel=1e-6)
    assert torch.equal(s.scores, ref_scores)  # the calibration scores were not refitted
    torch.testing.assert_close(out["selected"], out["score"] < s.threshold)


def test_knn_backend_default_follows_the_process_setting():
    ref = torch.randn(40, 3, dtype=torch.float64)
    s = EuclideanScore(k=2)
    assert s.backend is None  # not the literal "auto": resolved from synthperf.backend at fit
    with sb.use_backend("reference"):
        s.fit(X=ref)
    assert s.index.backend == "reference"
    s2 = EuclideanScore(k=2).fit(X=ref)
    assert s2.index.backend == sb.resolve_backend(None, supported=("reference", "cpu"), kernel="selective KNN")
    torch.testing.assert_close(s.scores, s2.scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        EuclideanScore(backend="gpu-please")
    with pytest.raises(ValueError, match="backend"):
        MahalanobisScore(backend="nope")


def test_plot_embs_tsne_umap_and_errors(monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    import sys

    g = torch.Generator().manual_seed(0)
    ref = torch.cat([torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g) + 8])
    s = EuclideanScore(k=1).fit(X=ref)
    fig = s.plot_embs(torch.randn(10, 4, generator=g) + 8, method="tsne",
                      method_args={"perplexity": 5, "random_state": 0, "init": "random"})
    xy = fig.embedding_xy_
    assert xy.shape == (70, 2) and len(fig.axes[0].collections) == 2
    # the two far-apart clusters stay apart in the map: between-cluster > within-cluster spread
    a, b = xy[:30], xy[30:60]
    import numpy as np

    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    assert gap > 2 * max(a.std(0).max(), b.std(0).max())
    with pytest.raises(ValueError, match="method must be 'tsne' or 'umap'"):
        s.plot_embs(method="pca")
    with pytest.raises(ValueError, match="dimension 3"):
        s.plot_embs(torch.randn(2, 3))
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ImportError, match="UMAP is not installed"):
        s.plot_embs(method="umap")
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match="t-SNE is not installed"):
        s.plot_embs()
