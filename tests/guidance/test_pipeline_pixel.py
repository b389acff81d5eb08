"""FeedbackGuidedPixelPipeline: loading by family, parity with a plain CFG-DDIM loop, guidance effect, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import synthperf
from _tiny import TinyClassifier
from synthperf.guidance import FeedbackGuidedPipeline
from synthperf.guidance.criteria import HardnessCriterion
from synthperf.guidance.pipeline_pixel import FeedbackGuidedPixelPipeline

synthperf.disable_progress()
NULL = 5  # labels 0..4, label 5 = "no class"


def pixel_components(seed: int = 0, channels: int = 1):
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=8, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), num_class_embeds=NULL + 1, norm_num_groups=4,
                       add_attention=False).eval()
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                          set_alpha_to_one=True, timestep_spacing="trailing")
    return dict(unet=unet, scheduler=sched)


@pytest.fixture(scope="module")
def comps():
    return pixel_components()


def reference_cfg_ddim(unet, scheduler, labels, seeds, *, steps, cfg):
    """Plain class-conditional CFG-DDIM sampling written out by hand (no synthperf code)."""
    x = torch.stack([torch.randn((1, 8, 8), generator=torch.Generator().manual_seed(s)) for s in seeds])
    y = torch.tensor(labels)
    scheduler.set_timesteps(steps)
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(torch.cat([x, x]), t, class_labels=torch.cat([torch.full_like(y, NULL), y])).sample
            u, c = out.chunk(2)
            x = scheduler.step(u + cfg * (c - u), t, x).prev_sample
    return (x * 0.5 + 0.5).clamp(0, 1)


def test_constructor_and_from_pretrained_pick_the_pixel_family(comps, tmp_path):
    fp = FeedbackGuidedPipeline(**comps, null_class_id=NULL)
    assert type(fp) is FeedbackGuidedPixelPipeline
    fp.save_pretrained(tmp_path / "px")
    for loaded in (FeedbackGuidedPipeline.from_pretrained(tmp_path / "px"),
                   FeedbackGuidedPipeline.from_local(tmp_path / "px", classifier=TinyClassifier())):
        assert type(loaded) is FeedbackGuidedPixelPipeline and loaded.config.null_class_id == NULL
        a = fp(None, [0, 4], seeds=[1, 2], fg_scale=0.0, num_inference_steps=3, guidance_scale=2.0)
        b = loaded(None, [0, 4], seeds=[1, 2], fg_scale=0.0, num_inference_steps=3, guidance_scale=2.0)
        assert torch.equal(a.images, b.images)


@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_zero_scale_equals_plain_class_conditional_ddim(comps, cfg):
    fp = FeedbackGuidedPixelPipeline(**comps, classifier=TinyClassifier(), null_class_id=NULL)
    out = fp(None, [0, 3, 4], seeds=[3, 4, 5], fg_scale=0.0, num_inference_steps=4, guidance_scale=cfg)
    ref = reference_cfg_ddim(comps["unet"], comps["scheduler"], [0, 3, 4], [3, 4, 5], steps=4, cfg=cfg)
    assert out.images.shape == (3, 3, 8, 8)
    for ch in range(3):  # grey model: the three channels are the same image
        assert (out.images[:, ch] - ref[:, 0]).abs().max() <= 1e-5
    assert np.isfinite(out.criterion).all() and not out.corrupted.any()


@pytest.mark.parametrize("criterion", ["loss", "entropy", "hardness"])
def test_guidance_moves_criterion_up_on_average(comps, criterion):
    clf = TinyClassifier()
    hardness = None
    if criterion == "hardness":
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            _, feats = clf.forward_with_features(torch.rand(200, 3, 8, 8, generator=g))
        hardness = HardnessCriterion().fit(feats.numpy(), np.arange(200) % 5, n_classes=5)
    fp = FeedbackGuidedPixelPipeline(**comps, classifier=clf, null_class_id=NULL)
    kw = dict(criterion=criterion, guidance_freq=1, num_inference_steps=3, hardness=hardness)
    seeds = list(range(8))
    base = fp(None, [1] * 8, seeds=seeds, fg_scale=0.0, **kw).criterion
    guided = fp(None, [1] * 8, seeds=seeds, fg_scale=0.3, **kw).criterion
    assert guided.mean() > base.mean(), (criterion, base, guided)


def test_eps_shift_and_batching_independence(comps):
    fp = FeedbackGuidedPixelPipeline(**comps, classifier=TinyClassifier(), null_class_id=NULL)
    kw = dict(criterion=["loss", "entropy"], fg_scale=[0.2, 0.0], guidance_freq=1, num_inference_steps=3)
    batched = fp(None, [2, 3], seeds=[7, 8], **kw)
    single = fp(None, 2, seeds=7, criterion="loss", fg_scale=0.2, guidance_freq=1, num_inference_steps=3)
    assert (single.images[0] - batched.images[0]).abs().max() <= 1e-5
    plain = fp(None, 3, seeds=8, fg_scale=0.0, num_inference_steps=3)
    assert (plain.images[0] - batched.images[1]).abs().max() <= 1e-5
    eps = fp(None, 2, seeds=7, criterion="loss", fg_scale=0.2, guidance_freq=1, num_inference_steps=3, mode="eps_shift")
    assert (eps.images - single.images).abs().max() > 1e-4


def test_bad_inputs(comps):
    from diffusers import EulerDiscreteScheduler, UNet2DModel

    fp = FeedbackGuidedPixelPipeline(**comps, classifier=TinyClassifier(), null_class_id=NULL)
    with pytest.raises(ValueError, match="height"):
        fp(None, 0, height=16)
    with pytest.raises(ValueError, match="class_ids"):
        fp(None, [NULL], fg_scale=0.0)
    with pytest.raises(ValueError, match="null_class_id"):
        FeedbackGuidedPixelPipeline(**comps)(None, 0, fg_scale=0.0, guidance_scale=2.0)
    with pytest.raises(ValueError, match="null_class_id"):
        FeedbackGuidedPixelPipeline(**comps, null_class_id=NULL + 1)
    with pytest.raises(ValueError, match="fg_scale != 0 needs a classifier"):
        FeedbackGuidedPixelPipeline(**comps, null_class_id=NULL)(None, 0, fg_scale=0.1)
    with pytest.raises(ValueError, match="DDPM-type"):
        FeedbackGuidedPixelPipeline(comps["unet"], EulerDiscreteScheduler())(None, 0, fg_scale=0.0)
    with pytest.raises(ValueError, match="class-conditional"):
        FeedbackGuidedPixelPipeline(UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                                block_out_channels=(8, 16), norm_num_groups=4,
                                                down_block_types=("DownBlock2D",) * 2,
                                                up_block_types=("UpBlock2D",) * 2), comps["scheduler"])
    with pytest.raises(TypeError, match="nn.Module"):
        FeedbackGuidedPixelPipeline(**comps, classifier=lambda x: x)
