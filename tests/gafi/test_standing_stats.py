"""Standing BatchNorm statistics of the checkpointed GAN sampler (gan_train.apply_standing_stats, issue 13)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from synthperf.gafi.data import ImageData
from synthperf.gafi.gan import GANConfig, Generator
from synthperf.gafi.gan_train import (GANTrainConfig, apply_standing_stats, ema_checkpoint_path, load_generator,
                                      train_gan)
from synthperf.gafi._io import load_checkpoint

_CFG = GANConfig(image_size=8, channels=1, num_classes=10, latent_dim=8, shared_dim=4, g_conv_dim=4, g_depth=1,
                 d_conv_dim=4, d_depth=1, apply_g_attn=False, apply_d_attn=False)


def _bns(g):
    return [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_running_stats_are_the_plain_mean_over_passes_and_the_source_is_untouched():
    torch.manual_seed(0)
    g = Generator(_CFG).eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    seen: dict[int, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: seen.setdefault(i, []).append(
        (inp[0].mean((0, 2, 3)), inp[0].var((0, 2, 3), unbiased=True)))) for i, m in enumerate(_bns(g))]
    # the hooks are copied along with the modules, so they record the copy's passes
    s = apply_standing_stats(g, 3, 16, torch.Generator().manual_seed(1))
    for h in hooks:
        h.remove()
    assert not s.training and s is not g
    for k, v in g.state_dict().items():
        assert torch.equal(v, before[k]), k  # the EMA generator itself is unchanged
    for i, bn in enumerate(_bns(s)):
        means = torch.stack([m for m, _ in seen[i]])
        vars_ = torch.stack([v for _, v in seen[i]])
        assert len(means) == 3
        torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, vars_.mean(0), rtol=1e-5, atol=1e-6)
        assert bn.momentum == _bns(g)[i].momentum  # restored after the passes
    # weights are unchanged; the spectral norms' u/v are re-converged: sigma = u^T W v is the true norm
    sd_s, sd_g = s.state_dict(), g.state_dict()
    for k, v in sd_s.items():
        if "running" not in k and "num_batches" not in k and not k.endswith(("._u", "._v")):
            assert torch.equal(v, sd_g[k]), k
    checked = 0
    for name, mod in s.named_modules():
        if torch.nn.utils.parametrize.is_parametrized(mod, "weight"):
            sn = mod.parametrizations.weight[0]
            w = mod.parametrizations.weight.original.flatten(1)
            true = torch.linalg.matrix_norm(w, 2)
            est = torch.dot(sn._u, torch.mv(w, sn._v))
            assert abs(float((est / true).detach()) - 1) < 1e-3, name
            checked += 1
    assert checked >= 10


def test_standing_stats_fix_averaged_spectral_norm_vectors():
    """An EMA-like average of unit SN vectors is shorter than 1: eval-mode sigma too small, output too large."""
    torch.manual_seed(0)
    g = Generator(_CFG).eval()
    for mod in g.modules():
        if torch.nn.utils.parametrize.is_parametrized(mod, "weight"):
            sn = mod.parametrizations.weight[0]
            sn._u.mul_(0.5)  # what averaging two nearly opposite unit vectors gives
    with torch.no_grad():
        w_bad = g.linear.weight.clone()
        s = apply_standing_stats(g, 1, 8, torch.Generator().manual_seed(0))
        w_ok = s.linear.weight
    true = torch.linalg.matrix_norm(g.linear.parametrizations.weight.original, 2)
    torch.testing.assert_close(torch.linalg.matrix_norm(w_ok, 2), torch.tensor(1.0), rtol=1e-3, atol=0)
    assert float(torch.linalg.matrix_norm(w_bad, 2)) > 1.5  # sigma halved -> norm ~2
    assert float(true) > 0


@pytest.mark.parametrize("n, bs, word", [(0, 8, "n_batches"), (2, 1, "batch_size"), (True, 8, "n_batches")])
def test_bad_arguments(n, bs, word):
    with pytest.raises(ValueError, match=word):
        apply_standing_stats(Generator(_CFG), n, bs, torch.Generator())


def test_config_rejects_negative_or_bool():
    for v in (-1, True, 1.5):
        with pytest.raises(ValueError, match="standing_stats"):
            GANTrainConfig(standing_stats=v)


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return ImageData(torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, torch.arange(n) % 10)


def test_checkpoints_hold_standing_stats_and_resume_is_exact(tmp_path, monkeypatch):
    import synthperf.gafi.gan_train as gt

    cfg = GANTrainConfig(epochs=2, batch_size=16, d_updates_per_step=1, g_ema_start=2, g_ema_decay=0.9,
                         horizontal_flip=False, standing_stats=2, seed=3)
    data = _data()
    full = train_gan(data, _CFG, cfg, out_dir=tmp_path / "a")
    real_save = gt.save_checkpoint

    def crash_at_epoch_2(path, tensors, meta):
        if meta.get("epoch") == 2:
            raise KeyboardInterrupt("killed")
        return real_save(path, tensors, meta)

    monkeypatch.setattr(gt, "save_checkpoint", crash_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_gan(data, _CFG, cfg, out_dir=tmp_path / "c")
    monkeypatch.setattr(gt, "save_checkpoint", real_save)
    part = train_gan(data, _CFG, cfg, out_dir=tmp_path / "c", resume=True)  # continues with epoch 2
    assert [h["epoch"] for h in part.history] == [1, 2]
    a, c = load_generator(ema_checkpoint_path(tmp_path / "a", 2)), load_generator(ema_checkpoint_path(tmp_path / "c", 2))
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(va, vc), k
    # the checkpoint is the EMA with re-estimated BN statistics, and train_gan returns that sampler
    raw, _ = load_checkpoint(tmp_path / "a" / "last_epoch" / "state")
    ema = {k[4:]: v for k, v in raw.items() if k.startswith("EMA.")}
    differs = [k for k, v in a.state_dict().items() if "running_mean" in k and not torch.equal(v, ema[k])]
    assert differs
    for k, v in a.state_dict().items():
        assert torch.equal(v, full.ema.state_dict()[k]), k
        assert torch.equal(v, part.ema.state_dict()[k]), k
        if "running" not in k and "num_batches" not in k and not k.endswith(("._u", "._v")):
            assert torch.equal(v, ema[k]), k  # the averaged weights themselves
