"""ResNet-20, SGDW, augmentation, BigGAN-deep, checkpoints and exact resume (spec sections 2, 3)."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from synthperf.gafi import _io
from synthperf.gafi import classifier as C
from synthperf.gafi import gan_train as GT
from synthperf.gafi.augment import noise_cutout, random_pad_crop
from synthperf.gafi.data import ImageData
from synthperf.gafi.gan import Discriminator, GANConfig, Generator

from ._stubs import interrupting_progress


def test_resnet20_shapes_and_option_a():
    m = C.ResNet20(7, width=4, in_channels=1)
    assert m(torch.randn(3, 1, 8, 8)).shape == (3, 7)
    assert sum(isinstance(b, C._Block) for b in m.blocks) == 9
    blk = C._Block(4, 8, 2)
    x = torch.randn(2, 4, 8, 8)
    # option A: parameter-free shortcut = subsample + zero channel pad (first/last 2 channels zero)
    with torch.no_grad():
        for p in blk.parameters():
            p.zero_()
        out = blk(x)
    sc = torch.relu(torch.nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2)))
    assert torch.allclose(out, sc)


def test_sgdw_matches_tfa_formula():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = C.SGDW([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    ref, v = torch.tensor([1.0, -2.0]), torch.zeros(2)
    for step, lr in enumerate([0.1, 0.1, 0.01]):
        opt.param_groups[0]["lr"] = lr
        g = torch.tensor([0.5, 0.25]) * (step + 1)
        w.grad = g.clone()
        opt.step()
        ref = ref - 0.01 * ref                  # decoupled, NOT scaled by lr
        v = 0.9 * v - lr * g
        ref = ref + 0.9 * v - lr * g
        assert torch.allclose(w.detach(), ref, atol=1e-7)


def test_lr_schedule_is_one_indexed():
    cfg = C.ClassifierConfig(lr=0.1, lr_milestones=(60, 80))
    assert [round(cfg.lr_at(e), 6) for e in (1, 59, 60, 79, 80, 300)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


def test_cutout_and_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    y = noise_cutout(x, g)
    changed = (y != x)
    assert changed.flatten(1).any(1).all()                      # every image is erased
    for i in range(16):                                         # fill stays inside the image's range
        assert y[i].min() >= x[i].min() - 1e-6 and y[i].max() <= x[i].max() + 1e-6
    ones = torch.ones(4, 1, 8, 8)
    c = random_pad_crop(ones, torch.Generator().manual_seed(1), padding=2)
    assert c.shape == ones.shape and set(c.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("size", [8, 16, 32])
def test_biggan_shapes(size):
    cfg = GANConfig(image_size=size, channels=3, num_classes=5, latent_dim=8, shared_dim=4, g_conv_dim=4,
                    d_conv_dim=4, g_depth=1, d_depth=1)
    G, D = Generator(cfg), Discriminator(cfg)
    y = torch.tensor([0, 4])
    x = G(torch.randn(2, 8), y)
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert D(x, y).shape == (2,)
    with pytest.raises(ValueError, match="image_size"):
        GANConfig(image_size=12)


def test_ema_copy_then_decay():
    a, b = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        b.weight.fill_(3.0)
        b.running_mean.fill_(1.0)
    GT.ema_update(a, b, 0.9, copy_only=True)
    assert torch.equal(a.weight, b.weight)
    with torch.no_grad():
        b.weight.fill_(13.0)
        b.running_mean.fill_(11.0)
    GT.ema_update(a, b, 0.9, copy_only=False)
    assert torch.allclose(a.weight, torch.full((2,), 4.0)) and torch.allclose(a.running_mean, torch.full((2,), 2.0))


@contextmanager
def _interrupt_after(n_epochs):
    yield interrupting_progress(n_epochs)


def _toy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, torch.arange(n) % 4)


def test_classifier_resume_is_identical(tmp_path, monkeypatch):
    data, cfg = _toy(), C.ClassifierConfig(width=2, epochs=3, batch_size=32, crop_padding=1)
    ev = {"val": _toy(32, 1)}
    full = C.fit_classifier(data, 4, cfg, eval_sets=ev, select_on="val")
    with _interrupt_after(2) as fake:
        monkeypatch.setattr(C, "progress_task", fake)
        with pytest.raises(KeyboardInterrupt):
            C.fit_classifier(data, 4, cfg, eval_sets=ev, select_on="val", checkpoint_dir=tmp_path)
    monkeypatch.undo()
    resumed = C.fit_classifier(data, 4, cfg, eval_sets=ev, select_on="val", checkpoint_dir=tmp_path, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert full.history == resumed.history
    assert C.accuracy(C.load_classifier(tmp_path / "best"), ev["val"]) == resumed.best_row()["val_accuracy"]


def test_gan_resume_is_identical_and_checkpoints_every_epoch(tmp_path, monkeypatch):
    data = _toy(64)
    gcfg = GANConfig(image_size=8, channels=1, num_classes=4, latent_dim=8, shared_dim=4, g_conv_dim=4,
                     d_conv_dim=4, g_depth=1, d_depth=1)
    tcfg = GT.GANTrainConfig(epochs=3, batch_size=16, d_updates_per_step=2, g_ema_start=2, g_ema_decay=0.5,
                             horizontal_flip=False, diff_augment="color,translation,cutout")
    full = GT.train_gan(data, gcfg, tcfg, out_dir=tmp_path / "a")
    assert GT.available_checkpoint_epochs(tmp_path / "a") == [1, 2, 3]
    with _interrupt_after(2) as fake:
        monkeypatch.setattr(GT, "progress_task", fake)
        with pytest.raises(KeyboardInterrupt):
            GT.train_gan(data, gcfg, tcfg, out_dir=tmp_path / "b")
    monkeypatch.undo()
    res = GT.train_gan(data, gcfg, tcfg, out_dir=tmp_path / "b", resume=True)
    for k, v in full.ema.state_dict().items():
        assert torch.equal(v, res.ema.state_dict()[k]), k
    g3 = GT.load_generator(GT.ema_checkpoint_path(tmp_path / "b", 3))
    z, y = torch.randn(4, 8), torch.arange(4)
    assert torch.equal(g3(z, y), full.ema.eval()(z, y))


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(_io.CheckpointError, match="missing"):
        GT.load_generator(tmp_path / "nope")
    _io.save_checkpoint(tmp_path / "ck", {"w": torch.ones(2)}, {"kind": "generator"})
    (tmp_path / "ck.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(_io.CheckpointError, match="corrupt"):
        GT.load_generator(tmp_path / "ck")
    _io.save_checkpoint(tmp_path / "c2", {"w": torch.ones(2)}, {"kind": "classifier"})
    (tmp_path / "c2.json").write_text("{not json")
    with pytest.raises(_io.CheckpointError, match="corrupt JSON"):
        C.load_classifier(tmp_path / "c2")
    _io.save_checkpoint(tmp_path / "c3", {"w": torch.ones(2)},
                        {"kind": "classifier", "num_classes": 3, "in_channels": 1, "config": {"width": 2}})
    with pytest.raises(_io.CheckpointError, match="does not match"):
        C.load_classifier(tmp_path / "c3")
