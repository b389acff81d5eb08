"""Issue 15 acceptance "Bad input" and issue 17's +inf logit: clear errors naming the argument,
padding warning for k > reference size, no NaN score for an infinitely confident sample."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from synthperf.selective import (CosineScore, EnergyScore, EntropyScore, EuclideanClassWiseScore, EuclideanScore,
                                 MahalanobisScore, MarginScore, PCAScore, SoftmaxScore, TensorPCA)

INF = float("inf")


@pytest.mark.parametrize("make", [lambda: EuclideanScore(k=2), lambda: CosineScore(k=2),
                                  lambda: MahalanobisScore(k=2), lambda: PCAScore(TensorPCA(2))])
def test_dimension_mismatch_names_the_argument(make):
    ref = torch.randn(50, 4)
    with pytest.raises(ValueError, match=r"Y \(calibration embeddings\) has dimension 3 .* dimension 4"):
        make().fit(X=ref, Y=torch.randn(5, 3))
    s = make().fit(X=ref)
    with pytest.raises(ValueError, match=r"X \(query embeddings\) has dimension 5 .* dimension 4"):
        s.score(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"X \(query embeddings\) has dimension 5"):
        s.select(query=torch.randn(2, 5))


@pytest.mark.parametrize("bad", [float("nan"), INF])
def test_non_finite_embeddings_name_the_argument(bad):
    x = torch.randn(20, 3)
    x[4, 1] = bad
    word = "NaN" if bad != bad else "inf"
    with pytest.raises(ValueError, match=rf"X \(reference embeddings\) contains {word}"):
        EuclideanScore().fit(X=x)
    with pytest.raises(ValueError, match=rf"Y \(calibration embeddings\) contains {word}"):
        EuclideanScore().fit(X=torch.randn(20, 3), Y=x)
    s = EuclideanScore().fit(X=torch.randn(20, 3))
    with pytest.raises(ValueError, match=rf"X \(query embeddings\) contains {word}"):
        s.score(x)


def test_nan_embeddings_from_a_model_name_the_loader():
    class NaNModel(torch.nn.Module):
        def embed(self, x):
            out = x.clone()
            out[0, 0] = float("nan")
            return out

    loader = DataLoader(TensorDataset(torch.randn(8, 3)), batch_size=4)
    with pytest.raises(ValueError, match=r"embeddings of loaders\['train'\] contains NaN"):
        EuclideanScore().fit(model=NaNModel(), loaders={"train": loader})


def test_k_larger_than_reference_pads_with_a_warning():
    ref, q = torch.randn(3, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    with pytest.warns(UserWarning, match="k=5 exceeds the number of neighbours available"):
        s = EuclideanScore(k=5, stat="mean").fit(X=ref, Y=q)
    d = torch.cdist(q, ref).sort(dim=1).values  # all 3 neighbours, then 2 copies of the farthest
    padded = torch.cat([d, d[:, -1:].expand(-1, 2)], dim=1)
    torch.testing.assert_close(s.scores.double(), padded.mean(1), rtol=1e-5, atol=1e-6)
    assert float(s.scores.max()) < 1e3  # no FLT_MAX garbage as faiss alone


@pytest.mark.parametrize("stat", ["avg", "MEAN", 3, None])
def test_unknown_stat_names_stat(stat):
    with pytest.raises(ValueError, match="stat must be one of"):
        EuclideanScore(stat=stat)
    with pytest.raises(ValueError, match="stat must be one of"):
        EuclideanClassWiseScore(stat=stat)


def test_wrong_protocol_names_the_model_method():
    loader = DataLoader(TensorDataset(torch.randn(8, 3)), batch_size=4)

    class NoEmbed(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"model is required to have a `\.embed\(\)`"):
        EuclideanScore().fit(model=NoEmbed(), loaders={"train": loader})
    s = EuclideanScore().fit(X=torch.randn(10, 3))
    with pytest.raises(TypeError, match=r"model is required to have a `\.embed\(\)`"):
        s.score(model=NoEmbed(), loader=loader)
    with pytest.raises(TypeError, match=r"model is required to have a `\.logits\(\)`"):
        SoftmaxScore().fit(model=NoEmbed(), loader=loader)

    class NotCallable(torch.nn.Module):
        embed = 3

    with pytest.raises(TypeError, match=r"\.embed\(\)"):
        EuclideanScore().fit(model=NotCallable(), loaders={"train": loader})


# -- issue 17: +inf logits ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SoftmaxScore, EntropyScore, EnergyScore, MarginScore])
@pytest.mark.parametrize("task,inf_row", [("multiclass", [INF, 1.0, -2.0]), ("binary", [INF]),
                                          ("binary", [-INF]), ("multilabel", [INF, -INF, INF])])
def test_infinite_logit_is_most_confident_not_nan(cls, task, inf_row):
    g = torch.Generator().manual_seed(0)
    C = len(inf_row)
    shape = (200,) if (task == "binary" and C == 1) else (200, C)
    s = cls(task=task).fit(X=3 * torch.randn(shape, generator=g))
    s.set_threshold(0.9)
    row = torch.tensor(inf_row) if C > 1 else torch.tensor(inf_row[:1])
    query = torch.stack([row, torch.zeros(C) if C > 1 else torch.zeros(1)])
    if shape == (200,):
        query = query[:, 0]
    out = s.select(query)
    assert not torch.isnan(out["score"]).any()
    assert bool(out["selected"][0]), f"{cls.__name__} {task}: the infinitely confident sample was rejected"
    assert float(out["score"][0]) <= float(s.scores.min())  # at least as confident as any finite sample


def test_softmax_limit_for_infinite_logits():
    z = torch.tensor([[INF, 0.0, 1.0], [INF, INF, 0.0], [0.0, 1.0, 2.0]])
    np.testing.assert_allclose(SoftmaxScore().fit(X=torch.randn(5, 3)).score(z).numpy(),
                               [-1.0, -0.5, -float(torch.softmax(z[2], 0).max())], rtol=1e-6)
    ent = EntropyScore().fit(X=torch.randn(5, 3)).score(z)
    assert float(ent[0]) < 1e-9 and float(ent[1]) == pytest.approx(np.log(2), rel=1e-6)
    mar = MarginScore().fit(X=torch.randn(5, 3)).score(z)
    assert float(mar[0]) == -INF and float(mar[1]) == 0.0  # a tie of two +inf logits has margin 0
    assert float(EnergyScore().fit(X=torch.randn(5, 3)).score(z)[0]) == -INF


def test_threshold_is_defined_when_calibration_holds_infinite_scores():
    cal = torch.randn(100, 3)
    cal[:30, 0] = INF  # 30 % of the calibration samples have energy -inf
    s = EnergyScore().fit(X=cal)
    thr = s.set_threshold(0.2)
    assert float(thr) == -INF
    thr = s.set_threshold(0.5)
    assert torch.isfinite(thr)
    with pytest.raises(ValueError, match="NaN"):
        EnergyScore().fit(X=torch.tensor([[float("nan"), 0.0]]))


@pytest.mark.parametrize("task,z", [("binary", torch.tensor([30.0, -40.0, 0.0])),
                                    ("multilabel", torch.tensor([[30.0, -25.0], [0.0, 1.0]]))])
def test_bernoulli_entropy_of_large_float32_logits_is_finite(task, z):
    out = EntropyScore(task=task).fit(X=torch.randn(*z.shape)).score(z)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    p = torch.sigmoid(z.double()).clamp(1e-12, 1 - 1e-12)
    h = -(p * p.log() + (1 - p) * torch.log1p(-p))
    torch.testing.assert_close(out.double(), h if h.ndim == 1 else h.amax(1), rtol=1e-6, atol=1e-12)


def test_seapig_asserted_inputs_raise_an_error_that_is_both_valueerror_and_assertionerror():
    """Where seapig ``assert``s (fit with a model but no loaders, loaders but no model, label/row count
    mismatch), synthperf raises SelectiveInputError: a ValueError naming the argument that seapig-style
    ``except AssertionError`` code also catches."""
    from synthperf.selective._common import SelectiveInputError

    assert issubclass(SelectiveInputError, ValueError) and issubclass(SelectiveInputError, AssertionError)
    loader = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    with pytest.raises(SelectiveInputError, match="model is required"):
        EuclideanScore(k=1).fit(loaders={"train": loader})
    with pytest.raises(SelectiveInputError, match="loaders is required"):
        EuclideanScore(k=1).fit(model=torch.nn.Identity())
    with pytest.raises(AssertionError, match="2 embeddings but 3 labels"):
        EuclideanClassWiseScore(k=1).fit(ref={"embedding": torch.randn(4, 2), "label": torch.tensor([0, 1, 0, 1])},
                                         cal={"embedding": torch.randn(2, 2), "label": torch.tensor([0, 1, 0])})
