"""Keras classifiers as DSF filter / CAS evaluator (the ``tf`` extra; issue acceptance "Keras path").

A tiny Keras model is built in-process, saved as ``.keras`` (and ``.h5``), wrapped with
:class:`KerasClassifier` and compared with the same computation done by hand in torch:
identical DSF output (same kept samples, same attempt sizes) and identical accuracy.
TensorFlow is an optional extra, hence the importorskip; CI installs it. Collection imports
TensorFlow, so Triton is loaded first (the two bundle clashing LLVMs; see synthperf.interop.keras).
"""
from __future__ import annotations

import pytest
import torch

from synthperf.gafi.classifier import accuracy
from synthperf.gafi.data import load_dataset
from synthperf.interop.keras import KerasClassifier, _preload_triton
from synthperf.gafi.sampling import generate_filtered

_preload_triton()  # before TensorFlow: see synthperf.interop.keras (LLVM clash)
tf = pytest.importorskip("tensorflow")

K = 10


def _dense_model(classes: int = K, softmax: bool = True, scale: float = 4.0):
    keras = tf.keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(classes, activation="softmax" if softmax else None)(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    w, b = model.layers[-1].get_weights()
    model.layers[-1].set_weights([w * scale, b + 0.1])
    return model


class TorchTwin(torch.nn.Module):
    """The Keras model by hand: NHWC flatten, x @ W + b (logits, float64)."""

    def __init__(self, model) -> None:
        super().__init__()
        w, b = model.layers[-1].get_weights()
        self.w, self.b = torch.from_numpy(w).double(), torch.from_numpy(b).double()
        self.num_classes = w.shape[1]

    def forward(self, x):
        return x.double().permute(0, 2, 3, 1).reshape(len(x), -1) @ self.w + self.b


class PatternGenerator(torch.nn.Module):
    """x = pattern[y] + 0.7 * z, with pattern[y] the Dense column of class y: most, not all,
    samples are classified as their label, so DSF both accepts and rejects."""

    def __init__(self, twin: TorchTwin) -> None:
        super().__init__()
        self.pattern = (twin.w.T / twin.w.norm(dim=0)[:, None]).float()
        self.num_classes, self.latent_dim = twin.num_classes, 64

    def forward(self, z, y):
        return (self.pattern[y] + 0.7 * z).view(len(y), 8, 8, 1).permute(0, 3, 1, 2)


def test_keras_filter_and_evaluator_match_torch(tmp_path):
    model = _dense_model()
    model.save(tmp_path / "f.keras")
    model.save(tmp_path / "f.h5")
    twin = TorchTwin(model)
    wrapped = KerasClassifier(tmp_path / "f.keras")
    assert wrapped.num_classes == K

    x = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    ref = torch.log_softmax(twin(x), 1)
    assert torch.allclose(wrapped(x).double(), ref, atol=1e-5)
    assert torch.allclose(KerasClassifier(tmp_path / "f.h5")(x).double(), ref, atol=1e-5)

    gen = PatternGenerator(twin)
    for tau in (0.0, 0.6):
        xk, yk, sk = generate_filtered(gen, wrapped, 12, tau=tau, seed=5, max_attempts=10)
        xt, yt, st = generate_filtered(gen, twin, 12, tau=tau, seed=5, max_attempts=10)
        assert torch.equal(xk, xt) and torch.equal(yk, yt)
        assert [a.tolist() for a in sk.attempt_sizes] == [a.tolist() for a in st.attempt_sizes]
        assert torch.equal(sk.accepted, st.accepted) and 0 < sk.acceptance_rate < 1
        p = torch.softmax(twin(xk), 1)                        # every kept sample obeys the rule by hand
        assert bool(((p.argmax(1) == yk) & (p[torch.arange(len(yk)), yk] > tau)).all())

    test = load_dataset("digits").test                         # CAS evaluator on real data
    by_hand = float((twin(test.x).argmax(1) == test.y).double().mean())
    assert accuracy(wrapped, test) == by_hand

    logit_model = _dense_model(softmax=False)
    logits = KerasClassifier(logit_model, outputs="logits")(x).double()
    assert torch.allclose(logits, TorchTwin(logit_model)(x), atol=1e-4)


def test_keras_bad_inputs(tmp_path):
    five = _dense_model(classes=5)
    with pytest.raises(ValueError, match="class-count mismatch"):
        generate_filtered(PatternGenerator(TorchTwin(_dense_model())), KerasClassifier(five), 3, seed=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        KerasClassifier(tmp_path / "nope.keras")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.keras or \.h5"):
        KerasClassifier(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="outputs"):
        KerasClassifier(five, outputs="scores")
    b = torch.from_numpy(five.layers[-1].get_weights()[1]).double()      # zero image -> softmax(bias)
    assert torch.allclose(KerasClassifier(five)(torch.zeros(2, 1, 8, 8)).double(),
                          torch.log_softmax(b, 0).expand(2, 5), atol=1e-6)
