"""Classifier and hardness-statistics files are synthperf._io checkpoints (issue 17: corrupt files are detected).

A saved SmallResNet or HardnessCriterion round-trips; a bit flip, a truncation or a directory in
place of the weights raises CheckpointError (a ValueError) naming the file; bare SmallResNet
weights without a JSON sidecar (weights from elsewhere) still load, as documented.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf._io import CheckpointError
from synthperf.guidance import SmallResNet
from synthperf.guidance.classifiers import ClassifierInfo, load_classifier, save_classifier
from synthperf.guidance.criteria import HardnessCriterion


def _saved_classifier(tmp_path):
    torch.manual_seed(0)
    model = SmallResNet(3, width=4)
    path = save_classifier(model, ClassifierInfo(mean=(0.5,) * 3, std=(0.25,) * 3, size=8,
                                                 class_names=["a", "b", "c"]), tmp_path / "clf.safetensors")
    return model.eval(), path


def test_classifier_round_trip_and_bare_weights(tmp_path):
    model, path = _saved_classifier(tmp_path)
    loaded, info = load_classifier(path)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(loaded(x), model(x))
    assert info.class_names == ["a", "b", "c"] and info.size == 8 and info.mean == (0.5,) * 3
    path.with_suffix(".json").unlink()  # bare weights: shapes give n_classes/width, ImageNet mean/std apply
    bare, info2 = load_classifier(path)
    torch.testing.assert_close(bare(x), model(x))
    assert info2.n_classes == 3 and info2.class_names == []


@pytest.mark.parametrize("damage", ["bitflip", "truncate", "directory"])
def test_damaged_classifier_names_the_file(tmp_path, damage):
    _, path = _saved_classifier(tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "bitflip":
        raw[-7] ^= 0x04
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(ValueError) as err:  # "does not exist" for the directory: it is not a file
        load_classifier(path)
    assert str(path) in str(err.value)
    if damage != "directory":
        assert isinstance(err.value, CheckpointError) and "corrupt" in str(err.value)


def test_damaged_hardness_statistics_name_the_file(tmp_path):
    rng = np.random.default_rng(0)
    h = HardnessCriterion(shrinkage=0.1).fit(rng.normal(size=(12, 3)), np.repeat(np.arange(3), 4))
    path = tmp_path / "hardness.safetensors"
    h.save(path)
    h2 = HardnessCriterion.load(path)
    assert torch.equal(h2.means_, h.means_) and torch.equal(h2.precision_, h.precision_)
    assert h2.shrinkage == 0.1 and h2.shrinkage_ == h.shrinkage_
    raw = bytearray(path.read_bytes())
    raw[-2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="could not read hardness statistics.*SHA-256") as err:
        HardnessCriterion.load(path)
    assert str(path) in str(err.value)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        HardnessCriterion.load(path)
