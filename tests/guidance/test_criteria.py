"""Criteria (spec §3): closed forms, hardness against an explicit Mahalanobis, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf.guidance.criteria import (HardnessCriterion, entropy_criterion, evaluate_criteria, loss_criterion,
                                         resolve_criteria)


def test_loss_and_entropy_closed_forms():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(loss_criterion(logits, y), -torch.log(p[torch.arange(6), y]))
    torch.testing.assert_close(entropy_criterion(logits, y), -(p * p.log()).sum(-1))
    # entropy of uniform logits is log K
    assert entropy_criterion(torch.zeros(2, 7), y[:2]).sub(np.log(7)).abs().max() < 1e-6


def test_hardness_matches_explicit_mahalanobis(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat(np.arange(4), 10)
    X += y[:, None]
    h = HardnessCriterion(shrinkage=0.2).fit(X, y)
    means = np.stack([X[y == k].mean(0) for k in range(4)])
    R = X - means[y]
    S = R.T @ R / (40 - 4)
    Sig = 0.8 * S + 0.2 * np.trace(S) / 3 * np.eye(3)
    q = rng.normal(size=(5, 3))
    qy = np.array([0, 1, 2, 3, 1])
    d = q - means[qy]
    expect = 0.5 * np.einsum("bi,ij,bj->b", d, np.linalg.inv(Sig), d)
    got = h(torch.zeros(5, 4), torch.tensor(qy), torch.tensor(q, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-4)
    h.save(tmp_path / "h.safetensors")
    h2 = HardnessCriterion.load(tmp_path / "h.safetensors")
    torch.testing.assert_close(h2(None, torch.tensor(qy), torch.tensor(q, dtype=torch.float32)), got)
    # Ledoit-Wolf default gives a shrinkage in [0, 1] and a positive definite precision
    lw = HardnessCriterion().fit(X, y)
    assert 0.0 <= lw.shrinkage_ <= 1.0
    assert torch.linalg.eigvalsh(lw.precision_).min() > 0


def test_hardness_errors(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        HardnessCriterion()(torch.zeros(1, 2), torch.tensor([0]), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="no real features"):
        HardnessCriterion().fit(np.zeros((3, 2)), np.array([0, 0, 2]))
    with pytest.raises(ValueError, match="NaN"):
        HardnessCriterion().fit(np.full((3, 2), np.nan), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="rows"):
        HardnessCriterion().fit(np.zeros((3, 2)), np.array([0, 1]))
    h = HardnessCriterion().fit(np.random.default_rng(0).normal(size=(6, 2)), np.array([0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="needs classifier features"):
        h(torch.zeros(1, 2), torch.tensor([0]), None)
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not read"):
        HardnessCriterion.load(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="does not exist"):
        HardnessCriterion.load(tmp_path / "missing.safetensors")


def test_resolve_and_mixed_evaluation():
    def margin(logits, y, features):
        return logits.max(-1).values - logits[torch.arange(len(y)), y]

    fns, idx = resolve_criteria(["loss", "entropy", margin, "loss", "m"], custom={"m": margin})
    assert len(fns) == 3 and idx.tolist() == [0, 1, 2, 0, 2]
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0])
    c = evaluate_criteria(fns, idx, logits, y, None)
    for b, fn in enumerate([loss_criterion, entropy_criterion, margin, loss_criterion, margin]):
        assert torch.allclose(c[b], fn(logits, y, None)[b])
    with pytest.raises(ValueError, match="unknown criterion 'nope'"):
        resolve_criteria(["loss", "nope"])
    with pytest.raises(ValueError, match="hardness"):
        resolve_criteria(["hardness"])
    with pytest.raises(TypeError, match="position 0"):
        resolve_criteria([3])
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        evaluate_criteria([lambda lo, y, f: lo], torch.zeros(5, dtype=torch.long), logits, y, None)
