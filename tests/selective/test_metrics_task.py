"""Risk-coverage (AURC, E-AURC), SelectiveMetric, RiskCoverageMetric, SelectiveInferenceTask with Lightning."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torchmetrics")  # a dependency of synthperf.selective's metrics (test extra)
from torchmetrics.classification import BinaryAccuracy  # noqa: E402

from synthperf.selective import (EuclideanScore, RiskCoverageMetric, SelectiveInferenceTask,  # noqa: E402
                                 SelectiveMetric, aurc, eaurc, risk_coverage)


def test_risk_coverage_closed_form():
    score = torch.tensor([0.1, 0.2, 0.3, 0.4])
    res = torch.tensor([0.0, 1.0, 0.0, 1.0])
    rc = risk_coverage(score, res, "generalized")
    torch.testing.assert_close(rc.coverage, torch.tensor([0.25, 0.5, 0.75, 1.0]))  # float32 in, float32 out
    torch.testing.assert_close(rc.risk, torch.tensor([0.0, 0.25, 0.25, 0.5]))
    torch.testing.assert_close(rc.reference, torch.tensor([0.0, 0.0, 0.25, 0.5]))
    # trapezoids over coverage: emp = 0.25*(0.125+0.25+0.375) ; ref = 0.25*(0+0.125+0.375)
    assert rc.aurc == pytest.approx(0.1875) and float(rc.auc_reference) == pytest.approx(0.125)
    assert rc.eaurc == pytest.approx(0.0625)
    sel = risk_coverage(score, res, "selective")
    torch.testing.assert_close(sel.risk, torch.tensor([0.0, 0.5, 1 / 3, 0.5]))
    rc64 = risk_coverage(score.double(), res.double(), "selective")  # float64 in, float64 out
    torch.testing.assert_close(rc64.risk, torch.tensor([0.0, 0.5, 1 / 3, 0.5], dtype=torch.float64))
    assert rc64.auc_excess.dtype == torch.float64 and sel.auc_excess.dtype == torch.float32
    assert "RiskCoverage(risk_type='generalized', n_points=4" in repr(rc)


def test_perfect_score_has_zero_excess_and_binning():
    g = torch.Generator().manual_seed(0)
    res = torch.rand(1000, generator=g)
    assert eaurc(res, res) == pytest.approx(0.0, abs=1e-12)
    assert eaurc(-res, res) > 0.1  # the worst ordering
    rc = risk_coverage(torch.rand(1000, generator=g), res, n_bins=50)
    assert rc.coverage.numel() == 50 and float(rc.coverage[-1]) == 1.0
    # full resolution (aurc) vs 50 bins: the binned area differs by at most the first bin's share
    assert aurc(res, res) == pytest.approx(float(rc.auc_reference), abs=1.0 / 50)
    assert float(risk_coverage(torch.rand(1000, generator=g), res.double(), n_bins=1000).auc_reference) == \
        pytest.approx(aurc(res, res), rel=1e-12)


def test_risk_coverage_errors_and_plot(tmp_path):
    with pytest.raises(TypeError):
        risk_coverage([0.1], torch.tensor([1.0]))
    with pytest.raises(ValueError, match="same length"):
        risk_coverage(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="risk must be"):
        risk_coverage(torch.zeros(3), torch.zeros(3), risk="bad")
    rc = risk_coverage(torch.rand(20), torch.rand(20))
    fig = rc.plot()
    fig.savefig(tmp_path / "rc.png")
    assert (tmp_path / "rc.png").stat().st_size > 0
    with pytest.raises(ValueError, match="At least one"):
        rc.plot(False, False, False)


def test_selective_metric_subsets():
    m = SelectiveMetric(BinaryAccuracy())
    preds = torch.tensor([1, 0, 1, 1, 0])
    target = torch.tensor([1, 0, 0, 0, 0])
    selected = torch.tensor([True, True, False, False, True])
    m.update(preds, target, selected)
    out = m.compute()
    assert set(out) == {"full/BinaryAccuracy", "selected/BinaryAccuracy", "rejected/BinaryAccuracy"}
    assert out["full/BinaryAccuracy"].item() == pytest.approx(0.6)
    assert out["selected/BinaryAccuracy"].item() == pytest.approx(1.0)
    assert out["rejected/BinaryAccuracy"].item() == pytest.approx(0.0)
    m.reset()
    m.update(preds, target, torch.ones(5, dtype=torch.bool))
    assert m.compute()["rejected/BinaryAccuracy"].item() == 0.0  # never updated -> 0
    with pytest.raises(ValueError, match="batch size"):
        m.update(preds, target, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError):
        SelectiveMetric(object())


def test_risk_coverage_metric_matches_function():
    g = torch.Generator().manual_seed(1)
    preds, target, scores = torch.rand(40, generator=g), torch.rand(40, generator=g), torch.rand(40, generator=g)
    m = RiskCoverageMetric(n_bins=10)
    assert m.compute()["rc/auc_empirical"].item() == 0.0
    m.reset()
    for sl in (slice(0, 15), slice(15, 40)):
        m.update(preds[sl], target[sl], scores[sl])
    out = m.compute()
    rc = risk_coverage(scores, (preds - target).abs(), n_bins=10)
    assert out["rc/auc_empirical"].item() == pytest.approx(float(rc.auc_empirical), rel=1e-6)
    assert out["rc/auc_excess"].item() == pytest.approx(float(rc.auc_excess), rel=1e-6)
    assert m.get_curve().coverage.numel() == 10
    with pytest.raises(ValueError, match="risk must be"):
        RiskCoverageMetric(risk="x")


class _Task(torch.nn.Module):
    """Predicts the sign of feature 0; embeds with the identity."""

    def __init__(self):
        super().__init__()
        self.test_metrics = BinaryAccuracy()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return (x[:, 0] > 0).long()

    def embed(self, x):
        return x


def _data():
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(200, 2, generator=g)
    x = torch.cat([torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g) + 8.0])
    y = (x[:, 0] > 0).long()
    y[20:] = 1 - y[20:]  # the far-away half is mislabelled: rejecting it helps
    return ref, x, y


def test_selective_inference_task_with_trainer():
    lightning = pytest.importorskip("lightning")  # a dependency of SelectiveInferenceTask (test extra)
    ref, x, y = _data()
    score = EuclideanScore(k=3).fit(X=ref, Y=ref[:50] + 0.01)
    score.set_threshold(0.95)
    rc = RiskCoverageMetric()
    task = SelectiveInferenceTask(_Task(), score, acc_test_outputs=True, rc_metric=rc)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=40)
    trainer = lightning.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                                enable_model_summary=False)
    metrics = trainer.test(task, dataloaders=loader, verbose=False)[0]
    sel = score.select(x)["selected"]
    correct = ((x[:, 0] > 0).long() == y).float()
    assert not sel[20:].any() and sel[:20].sum() >= 15  # far half rejected, most of the near half kept
    assert metrics["full/BinaryAccuracy"] == pytest.approx(0.5)
    assert metrics["selected/BinaryAccuracy"] == pytest.approx(correct[sel].mean().item())
    assert metrics["rejected/BinaryAccuracy"] == pytest.approx(correct[~sel].mean().item())
    assert 0.0 <= metrics["rc/auc_empirical"] <= 1.0
    assert len(task.test_outputs) == 1 and task.get_risk_coverage_curve() is not None
    preds = trainer.predict(task, dataloaders=loader)
    assert set(preds[0]) == {"predictions", "score", "selected"}
    assert preds[0]["selected"][:20].float().mean() > 0.8 and not preds[0]["selected"][20:].any()


def test_task_validation():
    pytest.importorskip("lightning")
    score = EuclideanScore().fit(X=torch.randn(5, 2))
    with pytest.raises(TypeError, match="embed"):
        SelectiveInferenceTask(torch.nn.Linear(2, 2), score)
    with pytest.raises(TypeError, match="UncertaintyScore"):
        SelectiveInferenceTask(_Task(), object())
    with pytest.raises(ValueError, match="input_key"):
        SelectiveInferenceTask(_Task(), score, input_key="pixels")
    with pytest.raises(TypeError, match="RiskCoverageMetric"):
        SelectiveInferenceTask(_Task(), score, rc_metric=BinaryAccuracy())
    task = SelectiveInferenceTask(_Task(), score, input_key="image", target_key="label")
    x = torch.randn(3, 2)
    out = task.predict_step({"image": x, "label": torch.zeros(3)}, 0)
    assert out["predictions"].shape == (3,) and out["selected"].dtype == torch.bool
    np.testing.assert_array_equal(out["score"].numpy(), score.score(x).numpy())
