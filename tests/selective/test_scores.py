"""KNN scores: closed-form distances and stats, Mahalanobis vs explicit inverse, lifecycle errors, aliases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf.selective import (CosineScore, EuclideanClassWiseScore, EuclideanScore, MahalanobisScore,
                                 RandomScore, TensorPCA)
from synthperf.selective.knn_scores import reduce_stat

REF = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])


@pytest.mark.parametrize("stat,expected", [("max", 3.0), ("min", 1.0), ("median", 2.0), ("mean", 2.0),
                                           ("rms", float(np.sqrt((1 + 4 + 9) / 3)))])
def test_euclidean_closed_form(stat, expected):
    # query at origin-shifted point (0, 0) excluded: use query (0, 0) against ref without the origin
    s = EuclideanScore(k=3, stat=stat).fit(X=REF[1:], Y=REF[1:2])
    out = s.score(torch.tensor([[0.0, 0.0]]))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_reduce_stat_branches():
    d = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
    assert reduce_stat(d, "max").item() == 4.0 and reduce_stat(d, "min").item() == 1.0
    assert reduce_stat(d, "mean").item() == 2.5 and reduce_stat(d, "median").item() == 2.0  # lower median
    assert reduce_stat(d, "rms").item() == pytest.approx(np.sqrt(30 / 4), rel=1e-7)
    with pytest.raises(ValueError, match="stat"):
        reduce_stat(d, "sum")


def test_cosine_zero_one_two():
    ref = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    s = CosineScore(k=1).fit(X=ref, Y=torch.tensor([[5.0, 0.0]]))
    q = torch.tensor([[3.0, 0.0], [0.0, 7.0], [-1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(s.score(q), torch.tensor([0.0, 1.0, 2.0, 1 - np.sqrt(0.5)], dtype=torch.float32),
                               atol=1e-6, rtol=0)
    assert s.scores.tolist() == [0.0]


def test_mahalanobis_vs_explicit_inverse():
    g = torch.Generator().manual_seed(0)
    A = torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]])
    ref = torch.randn(300, 3, generator=g) @ A
    q = torch.randn(5, 3, generator=g)
    s = MahalanobisScore(k=2, stat="max", ridge=0.0).fit(X=ref, Y=q)
    vi = torch.linalg.inv(torch.cov(ref.double().T))
    diff = q.double()[:, None, :] - ref.double()[None, :, :]
    d2 = torch.einsum("qnd,de,qne->qn", diff, vi, diff)
    expected = d2.topk(2, largest=False).values.amax(1).sqrt()
    torch.testing.assert_close(s.score(q).double(), expected, rtol=1e-4, atol=1e-5)
    # ridge: same with Σ + ridge·mean(diag Σ)·I
    s2 = MahalanobisScore(k=1, ridge=0.5).fit(X=ref, Y=q)
    cov = torch.cov(ref.double().T)
    vi2 = torch.linalg.inv(cov + 0.5 * cov.diagonal().mean() * torch.eye(3, dtype=torch.float64))
    d2r = torch.einsum("qnd,de,qne->qn", diff, vi2, diff)
    torch.testing.assert_close(s2.score(q).double(), d2r.amin(1).sqrt(), rtol=1e-4, atol=1e-5)


def test_mahalanobis_degenerate_errors():
    with pytest.raises(ValueError, match="zero variance"):
        MahalanobisScore().fit(X=torch.ones(10, 3))
    with pytest.raises(ValueError, match="at least 2"):
        MahalanobisScore().fit(X=torch.ones(1, 3))
    collinear = torch.randn(50, 1).repeat(1, 3)
    with pytest.raises(ValueError, match="rank 1 < 3"):
        MahalanobisScore(ridge=0.0, singular="raise").fit(X=collinear)
    with pytest.warns(UserWarning, match="pseudo-inverse"):
        MahalanobisScore().fit(X=collinear)  # rank-deficient: pseudo-inverse fallback
    with pytest.raises(ValueError, match="singular"):
        MahalanobisScore(singular="ridge")
    with pytest.raises(ValueError, match="ridge"):
        MahalanobisScore(ridge=-1.0)


def test_float64_input_works_for_mahalanobis():
    ref = torch.randn(50, 4, dtype=torch.float64)
    s = MahalanobisScore(k=3).fit(X=ref, Y=ref[:10] + 0.1)
    assert s.score(ref[:3]).dtype == torch.float32


def test_threshold_is_linear_quantile_and_selection_strict():
    g = torch.Generator().manual_seed(1)
    ref, cal = torch.randn(200, 4, generator=g), torch.randn(101, 4, generator=g)
    s = EuclideanScore(k=3, stat="mean").fit(X=ref, Y=cal)
    assert s.is_trained() and s.is_calibrated()
    thr = s.set_threshold(q=0.8)
    assert thr.item() == pytest.approx(torch.quantile(s.scores.double(), 0.8).item(), rel=1e-6)
    out = s.select(cal)
    assert set(out) == {"score", "selected"} and out["selected"].dtype == torch.bool
    assert torch.equal(out["selected"], out["score"] < thr)
    # with 101 calibration scores and linear interpolation, exactly 80 lie strictly below q=0.8
    assert int(out["selected"].sum()) == 80


def test_select_sets_threshold_with_warning(caplog):
    s = EuclideanScore(k=1).fit(X=torch.randn(30, 2), Y=torch.randn(10, 2))
    with caplog.at_level("WARNING", logger="synthperf"):
        s.select(torch.randn(3, 2))
    assert "set_threshold" in caplog.text
    assert s.threshold is not None


def test_no_calibration_uses_leave_one_out():
    s = EuclideanScore(k=1).fit(X=REF)
    assert not s.is_calibrated()
    torch.testing.assert_close(s.scores, torch.tensor([1.0, 1.0, 2.0, 2.0]))


def test_version_b_aliases_and_dicts():
    g = torch.Generator().manual_seed(2)
    ref, cal, q = torch.randn(60, 3, generator=g), torch.randn(20, 3, generator=g), torch.randn(5, 3, generator=g)
    a = EuclideanScore(k=2).fit(X=ref, Y=cal)
    b = EuclideanScore(k=2).fit(ref={"embedding": ref}, cal=cal)
    torch.testing.assert_close(a.scores, b.scores)
    torch.testing.assert_close(a.score(q), b.score(query={"embedding": q}))
    torch.testing.assert_close(a.select(q)["score"], b.select(query=q)["score"])
    with pytest.raises(ValueError, match="aliases"):
        EuclideanScore().fit(X=ref, ref=ref)
    with pytest.raises(KeyError, match="embedding"):
        EuclideanScore().fit(ref={"emb": ref})


def test_bad_input_errors():
    s = EuclideanScore(k=2)
    with pytest.raises(RuntimeError, match="fit"):
        s.select(torch.randn(2, 3))
    with pytest.raises(ValueError, match="Must specify either"):
        s.fit()
    s.fit(X=torch.randn(20, 3), Y=torch.randn(5, 3))
    with pytest.raises(ValueError, match="dimension"):
        s.select(torch.randn(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        s.score(torch.tensor([[float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        EuclideanScore().fit(X=torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]))
    for q in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"q must lie in \(0, 1\]"):
            s.set_threshold(q)
    with pytest.raises(TypeError):
        s.set_threshold("0.9")
    with pytest.raises(ValueError, match="dimension"):
        EuclideanScore().fit(X=torch.randn(5, 3), Y=torch.randn(5, 2))
    with pytest.raises(ValueError, match="2-D"):
        s.score(torch.randn(3))
    with pytest.raises(ValueError, match="stat"):
        EuclideanScore(stat="sum")
    with pytest.raises(ValueError, match="k must be"):
        EuclideanScore(k=0)
    with pytest.raises(ValueError, match="Cannot specify both"):
        s.fit(X=torch.randn(5, 3), model=torch.nn.Linear(3, 3), loaders={"train": []})


def test_q_trim_keeps_inliers():
    g = torch.Generator().manual_seed(3)
    ref = torch.cat([torch.randn(99, 2, generator=g), torch.tensor([[50.0, 50.0]])])
    s = EuclideanScore(k=1).fit(X=ref, q=0.95)
    assert s.ref_embeddings.shape[0] < 100
    assert not (s.ref_embeddings == 50.0).all(1).any()


def test_pca_option_equivalent_to_projecting_first():
    g = torch.Generator().manual_seed(4)
    ref, cal, q = torch.randn(80, 6, generator=g), torch.randn(20, 6, generator=g), torch.randn(7, 6, generator=g)
    s = EuclideanScore(k=3, pca=TensorPCA(n_components=3)).fit(X=ref, Y=cal)
    assert s.ident == "euclidean-k3-pca"
    p = TensorPCA(n_components=3).fit(ref)
    plain = EuclideanScore(k=3).fit(X=p.transform(ref), Y=p.transform(cal))
    torch.testing.assert_close(s.score(q), plain.score(p.transform(q)), rtol=1e-5, atol=1e-5)


def test_save_index_writes_and_reloads(tmp_path, monkeypatch):
    ref = torch.randn(30, 3)
    path = tmp_path / "idx" / "e.bin"
    s = EuclideanScore(k=2, save_index=path).fit(X=ref)
    assert path.is_file()
    with pytest.warns(UserWarning, match="already exists"):
        s2 = EuclideanScore(k=2, save_index=path).fit(X=ref)
    torch.testing.assert_close(s.scores, s2.scores)
    monkeypatch.chdir(tmp_path)
    EuclideanScore(k=5, save_index=True).fit(X=ref)
    assert (tmp_path / "euclidean-k5-full_index.bin").is_file()
    with pytest.raises(ValueError, match=".bin"):
        EuclideanScore(save_index=tmp_path / "x.idx")


def test_knn_search_offset():
    s = EuclideanScore(k=1).fit(X=REF)
    d, i = s.knn_search(REF, offset=1)
    assert i[:, 0].tolist() == [1, 0, 0, 1]
    d0, i0 = s.knn_search(REF)
    assert i0[:, 0].tolist() == [0, 1, 2, 3] and float(d0.max()) == 0.0


def test_state_dict_has_threshold_and_reference():
    s = EuclideanScore(k=1).fit(X=REF, Y=REF)
    s.set_threshold(0.5)
    assert sorted(s.state_dict()) == ["ref_embeddings", "threshold"]


def test_random_score():
    s = RandomScore(generator=torch.Generator().manual_seed(0))
    out = s.select(torch.zeros(4000, 2))
    assert out["score"].shape == (4000,) and ((out["score"] >= 0) & (out["score"] < 1)).all()
    # accepted fraction ~ Binomial(4000, 0.99): 5 standard errors
    assert abs(out["selected"].float().mean().item() - 0.99) < 5 * np.sqrt(0.99 * 0.01 / 4000)
    s.set_threshold(0.5)
    assert s.threshold.item() == 0.5
    with pytest.raises(NotImplementedError):
        s.fit()
    with pytest.raises(ValueError):
        s.set_threshold(2.0)


def test_classwise_single_label():
    g = torch.Generator().manual_seed(5)
    e0, e1 = torch.randn(40, 2, generator=g), torch.randn(40, 2, generator=g) + 10
    ref = {"embedding": torch.cat([e0, e1]), "label": torch.tensor([0] * 40 + [1] * 40)}
    cal = {"embedding": torch.cat([e0[:10] + 0.1, e1[:10] + 0.1]), "label": torch.tensor([0] * 10 + [1] * 10)}
    s = EuclideanClassWiseScore(k=2).fit(ref=ref, cal=cal)
    thr = s.set_threshold(0.9)
    assert set(thr) == {0, 1}
    q = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    right = s.score(query={"embedding": q, "prediction": torch.tensor([0, 1])})
    wrong = s.score(q, prediction=torch.tensor([1, 0]))
    assert (right < 3).all() and (wrong > 10).all()
    per_class = EuclideanScore(k=2).fit(X=e0, Y=cal["embedding"][:10])
    torch.testing.assert_close(right[0:1], per_class.score(q[:1]))
    out = s.select(q, prediction=torch.tensor([1, 0]))
    assert not out["selected"].any()
    assert s.score(q, full_matrix=True).shape == (2, 2)
    with pytest.raises(TypeError, match="KNNScore"):
        from synthperf.selective import ClassWiseScore, PCAScore

        ClassWiseScore(PCAScore)
    with pytest.raises(ValueError, match="labels"):
        EuclideanClassWiseScore().fit(X=torch.randn(4, 2))


def test_classwise_multi_label_aggregation():
    g = torch.Generator().manual_seed(6)
    emb = torch.randn(60, 3, generator=g)
    y = (torch.rand(60, 2, generator=g) > 0.5).long()
    y[:2] = torch.tensor([[1, 0], [0, 1]])
    s = EuclideanClassWiseScore(k=1, aggregation="max").fit(X=emb, labels=y)
    full = s.score(emb[:5], full_matrix=True)
    agg = s.score(emb[:5], prediction=torch.tensor([[1, 1]] * 5))
    torch.testing.assert_close(agg, full.amax(1))
    none = s.score(emb[:5], prediction=torch.zeros(5, 2, dtype=torch.long))
    torch.testing.assert_close(none, full.mean(1))
    s.set_threshold(0.5)
    assert s.get_threshold().ndim == 0
    # no calibration set: own-class columns are leave-one-out, so no self-distance 0 for singly-labelled rows
    assert s.scores.shape == (60,) and bool(torch.isfinite(s.scores).all())
    assert float(s.scores[0]) > 0.0 and float(s.scores[1]) > 0.0


def test_synthetic_sppi_threshold():
    from synthperf.conformal import coverage_bounds, sppi_threshold

    g = torch.Generator().manual_seed(7)
    ref, cal = torch.randn(300, 4, generator=g), torch.randn(15, 4, generator=g)
    synth = torch.randn(1000, 4, generator=g) * 1.1  # a slightly wrong generator
    s = EuclideanScore(k=3, stat="mean").fit(X=ref, Y=cal)
    thr = s.set_threshold(0.9, synthetic=synth, beta=0.4)
    expected = sppi_threshold(s.scores.double().numpy(), s.score(synth).double().numpy(), 0.1, beta=0.4)
    assert float(thr) == pytest.approx(expected, rel=1e-6) and float(thr) > float(np.float32(expected)) - 1e-7
    assert s.coverage_bounds_ == coverage_bounds(15, 1000, 0.1, 0.4) == (13 / 16, 15 / 16)
    # the threshold is sandwiched between real order statistics r+ = 13 and r- = 15 (spec worked example)
    real = np.sort(s.scores.numpy())
    assert real[12] <= float(thr) and float(thr) <= np.nextafter(real[14], np.inf)
    # synthetic scores passed directly (1-D) give the same threshold
    s2 = EuclideanScore(k=3, stat="mean").fit(X=ref, Y=cal)
    assert float(s2.set_threshold(0.9, synthetic=s.score(synth))) == float(thr)
    # adversarial synthetic data cannot push the threshold outside the real sandwich
    bad = s2.set_threshold(0.9, synthetic=torch.full((1000,), 1e6))
    assert float(bad) == pytest.approx(float(real[14]), rel=1e-6)
    assert s2.select(cal)["selected"].all()  # every real calibration score <= S_(15) is accepted (s <= q)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        s2.set_threshold(1.0, synthetic=synth)
