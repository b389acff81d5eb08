"""The digits diffusion demo contract (make_digits_synthetic) on the 'tiny' preset: shapes, caching, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest

import synthperf
from synthperf.guidance import FeedbackGuidedPipeline
from synthperf.guidance.digits import make_digits_synthetic, train_digits_diffusion
from synthperf.guidance.longtail import digits_split
from synthperf.guidance.pipeline_pixel import FeedbackGuidedPixelPipeline

synthperf.disable_progress()


@pytest.fixture(scope="module")
def data():
    x, y, _, _ = digits_split()
    return x[:200], y[:200]


def test_contract_shapes_cache_and_determinism(data, tmp_path):
    x, y = data
    a, ya, info = make_digits_synthetic(x, y, 3, out_dir=tmp_path / "a", seed=1, budget="tiny")
    assert a.shape == (30, 64) and a.dtype == np.float32 and ya.dtype == np.int64
    assert np.array_equal(np.bincount(ya, minlength=10), np.full(10, 3))
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.std() > 0
    assert info["reused"] == 0 and info["samples_reused"] == 0 and info["criterion"] == "none"
    assert all(isinstance(v, (int, float, str)) for v in info.values())
    again, _, info2 = make_digits_synthetic(x, y, 3, out_dir=tmp_path / "a", seed=1, budget="tiny")
    assert info2["reused"] == 1 and info2["samples_reused"] == 1 and np.array_equal(a, again)
    fresh, _, _ = make_digits_synthetic(x, y, 3, out_dir=tmp_path / "b", seed=1, budget="tiny")
    assert np.array_equal(a, fresh)  # deterministic for a fixed seed on CPU
    other, _, _ = make_digits_synthetic(x, y, 3, out_dir=tmp_path / "a", seed=2, budget="tiny")
    assert not np.array_equal(a, other)
    # the saved folder is a diffusers pipeline that FeedbackGuidedPipeline loads as the pixel family
    pipe = FeedbackGuidedPipeline.from_pretrained(info["model_dir"])
    assert isinstance(pipe, FeedbackGuidedPixelPipeline)
    meta = json.loads((tmp_path / "a" / info["model_dir"].split("/")[-1] / "synthperf_train.json").read_text())
    assert meta["train_steps"] == 30


def test_damaged_sample_cache_is_recomputed_once(data, tmp_path):
    """The sample cache is a checksummed checkpoint: a bit flip is detected, said once, and redone."""
    from synthperf._io import is_temp_file

    x, y = data
    a, _, info = make_digits_synthetic(x, y, 2, out_dir=tmp_path, seed=3, budget="tiny")
    (cache,) = (tmp_path / info["model_dir"].split("/")[-1] / "samples").glob("*.safetensors")
    raw = bytearray(cache.read_bytes())
    raw[-1] ^= 0x10  # one bit of the last sample: safetensors alone would load it silently
    cache.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="recomputing the digits sample cache.*SHA-256") as rec:
        b, _, info2 = make_digits_synthetic(x, y, 2, out_dir=tmp_path, seed=3, budget="tiny")
    assert len(rec) == 1 and info2["samples_reused"] == 0 and info2["reused"] == 1 and np.array_equal(a, b)
    _, _, info3 = make_digits_synthetic(x, y, 2, out_dir=tmp_path, seed=3, budget="tiny")
    assert info3["samples_reused"] == 1
    assert not [p for p in tmp_path.rglob("*") if is_temp_file(p)]


def test_guided_samples_move_the_criterion(data, tmp_path):
    from synthperf.guidance.digits import guidance_classifier

    x, y = data
    clf = guidance_classifier(x, y, seed=0, epochs=2)
    _, _, plain = make_digits_synthetic(x, y, 2, out_dir=tmp_path, budget="tiny", criterion="loss", fg_scale=1e-9,
                                        classifier=clf)
    _, _, guided = make_digits_synthetic(x, y, 2, out_dir=tmp_path, budget="tiny", criterion="loss", fg_scale=0.3,
                                         classifier=clf)
    assert guided["mean_criterion"] > plain["mean_criterion"]
    assert guided["reused"] == 1  # same diffusion model, new samples


def test_bad_arguments(data, tmp_path):
    x, y = data
    with pytest.raises(ValueError, match="per_class"):
        make_digits_synthetic(x, y, 0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="x_train"):
        make_digits_synthetic(x[:, :10], y, 1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="x_train"):
        make_digits_synthetic(x * 2, y, 1, out_dir=tmp_path)
    with pytest.raises(TypeError, match="y_train"):
        make_digits_synthetic(x, y.astype(float), 1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="y_train"):
        make_digits_synthetic(x, y + 5, 1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="budget"):
        make_digits_synthetic(x, y, 1, out_dir=tmp_path, budget="huge")
    with pytest.raises(ValueError, match="criterion"):
        make_digits_synthetic(x, y, 1, out_dir=tmp_path, criterion="margin", fg_scale=0.1)
    with pytest.raises(ValueError, match="fg_scale"):
        make_digits_synthetic(x, y, 1, out_dir=tmp_path, criterion="loss", fg_scale=0.0)
    with pytest.raises(ValueError, match="seed"):
        train_digits_diffusion(x, y, out_dir=tmp_path, seed=-1)
    with pytest.raises(TypeError, match="x_train"):
        make_digits_synthetic(x.tolist(), y, 1, out_dir=tmp_path)
