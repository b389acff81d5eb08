"""Keras/TensorFlow classifiers (``tf`` extra): forward criterion only, clear errors for gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import synthperf
from _tiny import sd_components

synthperf.disable_progress()


@pytest.fixture(scope="module")
def keras_model():
    pytest.importorskip("tensorflow")
    from synthperf.interop.keras import import_tensorflow  # Triton before TensorFlow

    tf = import_tensorflow()
    tf.random.set_seed(0)
    inp = tf.keras.Input((8, 8, 3))
    out = tf.keras.layers.Dense(3, activation="softmax")(tf.keras.layers.Flatten()(inp))
    return tf.keras.Model(inp, out)


def test_forward_gives_log_probabilities_and_refuses_gradients(keras_model):
    from synthperf.guidance.adapters import KerasTorchClassifier

    clf = KerasTorchClassifier(keras_model)
    x = torch.rand(2, 3, 8, 8)
    probs = keras_model.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    logits = clf(x)
    assert logits.shape == (2, 3) and logits.dtype == torch.float32 and clf.num_classes == 3
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), probs, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="gradients through a TensorFlow/Keras model"):
        clf(x.requires_grad_(True))


def test_pipeline_scores_with_keras_but_refuses_guidance(keras_model):
    from synthperf.guidance import FeedbackGuidedPipeline
    from synthperf.guidance.adapters import KerasTorchClassifier

    fp = FeedbackGuidedPipeline(**sd_components(), classifier=KerasTorchClassifier(keras_model))
    kw = dict(num_inference_steps=2, height=16, width=16, classifier_size=8)
    out = fp(["cat", "dog"], [0, 2], seeds=[0, 1], fg_scale=0.0, criterion=["loss", "entropy"], **kw)
    assert np.isfinite(out.criterion).all() and not out.corrupted.any()
    with pytest.raises(ValueError, match="fg_scale must be 0 with KerasTorchClassifier"):
        fp("cat", 0, fg_scale=0.1, **kw)
