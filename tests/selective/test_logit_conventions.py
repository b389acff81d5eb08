"""LogitScore ``convention``: seapig git main (A) vs PyPI 0.3.0 (B) logit conventions, one switch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf.selective import (EnergyScore, EntropyScore, MarginScore, MutualInformationScore, SoftmaxScore)


def _softplus(x):
    return np.logaddexp(0.0, x)


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_single_logit_energy_and_margins_per_convention(T):
    x = torch.tensor([-4.0, -0.5, 0.0, 2.0, 7.0], dtype=torch.float64)
    xn = x.numpy()
    ea = EnergyScore(temperature=T, task="binary").fit(X=x).score(x).numpy()
    eb = EnergyScore(temperature=T, task="binary", convention="B").fit(X=x).score(x).numpy()
    np.testing.assert_allclose(ea, -T * _softplus(np.abs(xn) / T), rtol=1e-12)
    np.testing.assert_allclose(eb, -T * _softplus(xn / T), rtol=1e-12)
    ma = MarginScore(temperature=T, task="binary").fit(X=x).score(x).numpy()
    mb = MarginScore(temperature=T, task="binary", convention="B").fit(X=x).score(x).numpy()
    np.testing.assert_allclose(ma, -np.abs(xn), rtol=1e-12)
    np.testing.assert_allclose(mb, -np.abs(xn) / T, rtol=1e-12)
    z = torch.tensor([[1.0, -3.0, 0.5], [-2.0, 4.0, 6.0]], dtype=torch.float64)
    mla = MarginScore(temperature=T, task="multilabel").fit(X=z).score(z).numpy()
    mlb = MarginScore(temperature=T, task="multilabel", convention="B").fit(X=z).score(z).numpy()
    np.testing.assert_allclose(mla, -np.abs(z.numpy()).min(1), rtol=1e-12)
    np.testing.assert_allclose(mlb, -np.abs(z.numpy() / T).min(1), rtol=1e-12)
    # shared: multiclass softmax / entropy / energy / margin are the same in both conventions
    for cls in (SoftmaxScore, EntropyScore, EnergyScore, MarginScore):
        a = cls(temperature=T).fit(X=z).score(z)
        b = cls(temperature=T, convention="B").fit(X=z).score(z)
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_temperature_fitting_default_per_convention():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (300,), generator=g)
    z = 4 * torch.nn.functional.one_hot(y, 4).double() + 2 * torch.randn(300, 4, generator=g, dtype=torch.float64)
    a = SoftmaxScore().fit(X=z, Y=y)
    assert a.temperature is not None and a.temperature != pytest.approx(1.0, abs=1e-3)
    b = SoftmaxScore(convention="B").fit(ref={"logit": z, "label": y})
    assert b.temperature is None  # B: labels alone do not fit T
    b2 = SoftmaxScore(convention="B").fit(cal={"logit": z, "label": y}, temp_scale=True)
    assert b2.temperature == pytest.approx(a.temperature, rel=1e-6)
    assert MutualInformationScore().convention == "B"
    with pytest.raises(ValueError, match="convention must be"):
        SoftmaxScore(convention="pypi")
