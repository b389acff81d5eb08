"""diffusers' call conventions on the three families (issue 16, "Guidance (anchor: diffusers)").

At fg_scale=0 each family is compared with diffusers' own pipeline (StableDiffusionPipeline,
FluxPipeline; the pixel family with a hand-written CFG-DDIM loop, diffusers having no
class-conditional UNet2DModel pipeline) under the same generator=, latents=,
num_images_per_prompt, negative_prompt and callback_on_step_end. Tolerance 1e-5: float32
rounding of the same operations in a different batch layout (as the existing parity tests).
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import TinyClassifier, flux_components, sd_components
from synthperf import progress
from synthperf.guidance import FeedbackGuidedPipeline, FeedbackGuidedPipelineOutput
from synthperf.guidance._diffusers_api import image_seed
from test_pipeline_pixel import NULL, pixel_components

progress.disable_progress()
SD_KW = dict(num_inference_steps=3, height=16, width=16, guidance_scale=3.0)
FLUX_KW = dict(num_inference_steps=3, height=16, width=16, max_sequence_length=8, guidance_scale=4.0)
PROMPTS = ["a photo of tench", "cat"]
TOL = 1e-5


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.fixture(scope="module")
def sd():
    from diffusers import StableDiffusionPipeline

    c = sd_components("v_prediction", "ddpm")  # DDPM: the scheduler step also draws from the generator
    ref = StableDiffusionPipeline(**c, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    ref.set_progress_bar_config(disable=True)
    return ref, FeedbackGuidedPipeline(**c, classifier=TinyClassifier())


@pytest.fixture(scope="module")
def flux():
    from diffusers import FluxPipeline

    c = flux_components()
    ref = FluxPipeline(**c)
    ref.set_progress_bar_config(disable=True)
    return ref, FeedbackGuidedPipeline(**c, classifier=TinyClassifier())


@pytest.fixture(scope="module")
def pixel():
    return FeedbackGuidedPipeline(**pixel_components(), classifier=TinyClassifier(), null_class_id=NULL)


def _diff(a, b) -> float:
    return float((torch.as_tensor(np.asarray(a)) - torch.as_tensor(np.asarray(b))).abs().max())


# ----------------------------------------------------------------------------- SD family
@pytest.mark.parametrize("as_list", [False, True])
def test_sd_generator_reproduces_stable_diffusion_pipeline(sd, as_list):
    ref, fp = sd
    g = (lambda: gens(3, 4)) if as_list else (lambda: torch.Generator().manual_seed(3))
    want = ref(PROMPTS, output_type="pt", generator=g(), **SD_KW).images
    out = fp(PROMPTS, [0, 1], generator=g(), fg_scale=0.0, **SD_KW)
    assert isinstance(out, FeedbackGuidedPipelineOutput) and out["images"] is out.images
    assert _diff(out.images, want) <= TOL
    seeds = [3, 4] if as_list else [3, 3]
    assert out.seeds.tolist() == seeds and np.isfinite(out.criterion).all()


def test_sd_output_types(sd):
    ref, fp = sd
    kw = dict(seeds=[1, 2], fg_scale=0.0, **SD_KW)
    pt = fp(PROMPTS, [0, 1], output_type="pt", **kw).images
    assert isinstance(pt, torch.Tensor) and pt.shape == (2, 3, 16, 16) and pt.dtype == torch.float32
    arr = fp(PROMPTS, [0, 1], output_type="np", **kw).images
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 16, 16, 3) and arr.dtype == np.float32
    assert arr.min() >= 0 and arr.max() <= 1 and _diff(arr, pt.permute(0, 2, 3, 1)) == 0
    pil = fp(PROMPTS, [0, 1], output_type="pil", **kw).images
    assert isinstance(pil, list) and len(pil) == 2 and all(isinstance(im, Image.Image) for im in pil)
    assert pil[0].size == (16, 16) and pil[0].mode == "RGB"
    assert all(np.array_equal(np.asarray(im), (a * 255).round().astype(np.uint8)) for im, a in zip(pil, arr))
    # diffusers' own "pil": same uint8 up to the rounding of values within 1e-5 of a half level
    want = ref(PROMPTS, output_type="pil", generator=gens(1, 2), **SD_KW).images
    assert max(np.abs(np.asarray(a, int) - np.asarray(b, int)).max() for a, b in zip(pil, want)) <= 1
    lat = fp(PROMPTS, [0, 1], output_type="latent", **kw)
    assert lat.images.shape == (2, 4, 8, 8) and np.isnan(lat.criterion).all() and not lat.corrupted.any()
    want_lat = ref(PROMPTS, output_type="latent", generator=gens(1, 2), **SD_KW).images
    assert _diff(lat.images, want_lat) <= TOL
    with pytest.raises(ValueError, match="output_type must be one of"):
        fp(PROMPTS, [0, 1], output_type="jpeg", **kw)


def test_sd_return_dict_false_is_the_output_tuple(sd):
    _, fp = sd
    out = fp("cat", 1, seeds=5, fg_scale=0.0, **SD_KW)
    tup = fp("cat", 1, seeds=5, fg_scale=0.0, return_dict=False, **SD_KW)
    assert isinstance(tup, tuple) and len(tup) == 5 and torch.equal(tup[0], out.images)
    assert np.array_equal(tup[1], out.criterion) and tup[3].tolist() == [5]


def test_sd_callback_called_every_step_and_replacement_matches_diffusers(sd):
    ref, fp = sd
    seen = []

    def record(pipe, i, t, kw):
        seen.append((pipe, i, int(t), kw["latents"].clone(), tuple(kw["prompt_embeds"].shape)))
        return kw

    out = fp(PROMPTS, [0, 1], seeds=[1, 2], fg_scale=0.3, guidance_freq=1, output_type="latent",
             callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"], **SD_KW)
    assert [s[1] for s in seen] == [0, 1, 2] and all(s[0] is fp for s in seen)
    assert [s[2] for s in seen] == fp.scheduler.timesteps.tolist()
    assert torch.equal(seen[-1][3], out.images)       # the step-end latents are the loop's
    assert seen[0][4] == (4, 8, 16)                    # [negative; prompt] under CFG, as diffusers

    def halve_first(pipe, i, t, kw):
        if i == 0:
            kw["latents"] = kw["latents"] * 0.5
        return kw

    kw = dict(callback_on_step_end=halve_first, output_type="pt", **SD_KW)
    mine = fp(PROMPTS, [0, 1], generator=gens(1, 2), fg_scale=0.0, **kw).images
    want = ref(PROMPTS, generator=gens(1, 2), **kw).images
    plain = fp(PROMPTS, [0, 1], generator=gens(1, 2), fg_scale=0.0, **SD_KW).images
    assert _diff(mine, want) <= TOL and _diff(mine, plain) > 1e-3


def test_sd_cfg_cutoff_callback_object_as_diffusers(sd):
    from diffusers.callbacks import SDCFGCutoffCallback

    ref, fp = sd
    cb = SDCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=1)
    mine = fp("cat", 1, generator=gens(9), fg_scale=0.0, callback_on_step_end=cb, **SD_KW).images
    want = ref("cat", generator=gens(9), callback_on_step_end=cb, output_type="pt", **SD_KW).images
    plain = fp("cat", 1, generator=gens(9), fg_scale=0.0, **SD_KW).images
    assert _diff(mine, want) <= TOL and _diff(mine, plain) > 1e-4


def test_sd_callback_bad_input(sd):
    _, fp = sd
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        fp("cat", 1, fg_scale=0.0, callback_on_step_end=lambda *a: a[-1],
           callback_on_step_end_tensor_inputs=["noise_pred"], **SD_KW)
    with pytest.raises(TypeError, match="callback_on_step_end must return a dict"):
        fp("cat", 1, fg_scale=0.0, callback_on_step_end=lambda *a: None, **SD_KW)
    with pytest.raises(TypeError, match="callback_on_step_end must be callable"):
        fp("cat", 1, fg_scale=0.0, callback_on_step_end=3, **SD_KW)


def test_sd_num_images_per_prompt(sd):
    ref, fp = sd
    out = fp(PROMPTS, [0, 1], generator=gens(1, 2, 3, 4), num_images_per_prompt=2, fg_scale=0.0, **SD_KW)
    want = ref(PROMPTS, generator=gens(1, 2, 3, 4), num_images_per_prompt=2, output_type="pt", **SD_KW).images
    assert out.images.shape == (4, 3, 16, 16) and _diff(out.images, want) <= TOL and out.criterion.shape == (4,)
    # with seeds: image k of row r is seeded image_seed(seed_r, k); image 0 keeps the row's seed
    multi = fp(PROMPTS, [0, 1], seeds=[5, 6], num_images_per_prompt=2, fg_scale=[0.0, 0.2], guidance_freq=1,
               **SD_KW)
    assert multi.seeds.tolist() == [5, image_seed(5, 1), 6, image_seed(6, 1)]
    assert _diff(multi.images[0], multi.images[1]) > 1e-3
    single = fp(PROMPTS[1], 1, seeds=image_seed(6, 1), fg_scale=0.2, guidance_freq=1, **SD_KW)
    assert _diff(single.images[0], multi.images[3]) <= TOL
    with pytest.raises(ValueError, match="num_images_per_prompt"):
        fp("cat", 1, num_images_per_prompt=0, **SD_KW)
    with pytest.raises(ValueError, match="list of 3 generators but the batch has 4"):
        fp(PROMPTS, [0, 1], generator=gens(1, 2, 3), num_images_per_prompt=2, **SD_KW)


def test_sd_negative_prompt(sd):
    ref, fp = sd
    kw = dict(fg_scale=0.0, **SD_KW)
    none = fp(PROMPTS, [0, 1], generator=gens(1, 2), **kw).images
    neg = fp(PROMPTS, [0, 1], negative_prompt="dog", generator=gens(1, 2), **kw).images
    want = ref(PROMPTS, negative_prompt=["dog", "dog"], generator=gens(1, 2), output_type="pt", **SD_KW).images
    assert _diff(neg, none) > 1e-3 and _diff(neg, want) <= TOL
    per_row = fp(PROMPTS, [0, 1], negative_prompt=["dog", ""], generator=gens(1, 2), **kw).images
    assert _diff(per_row[0], neg[0]) <= TOL and _diff(per_row[1], none[1]) <= TOL
    with pytest.raises(ValueError, match="negative_prompt has 3 entries"):
        fp(PROMPTS, [0, 1], negative_prompt=["a", "b", "c"], **SD_KW)
    with pytest.raises(TypeError, match="negative_prompt"):
        fp(PROMPTS, [0, 1], negative_prompt=3, **SD_KW)


def test_sd_latents_argument(sd):
    ref, fp = sd
    lat = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    mine = fp(PROMPTS, [0, 1], latents=lat, generator=gens(1, 2), fg_scale=0.0, **SD_KW).images
    want = ref(PROMPTS, latents=lat, generator=gens(1, 2), output_type="pt", **SD_KW).images
    assert _diff(mine, want) <= TOL
    with pytest.raises(ValueError, match=r"latents has shape \(1, 4, 8, 8\), expected \(2, 4, 8, 8\)"):
        fp(PROMPTS, [0, 1], latents=lat[:1], **SD_KW)
    with pytest.raises(ValueError, match="seeds= or generator=, not both"):
        fp(PROMPTS, [0, 1], seeds=[1, 2], generator=gens(1, 2), **SD_KW)


def test_sd_image_size_resizes_the_output(sd):
    _, fp = sd
    kw = dict(seeds=[1, 2], fg_scale=0.0, **SD_KW)
    native = fp(PROMPTS, [0, 1], output_type="pil", **kw)
    small = fp(PROMPTS, [0, 1], output_type="pil", image_size=8, **kw)
    for a, b in zip(native.images, small.images):  # upstream: PIL resize of the uint8 image (bicubic)
        assert b.size == (8, 8) and np.array_equal(np.asarray(b), np.asarray(a.resize((8, 8), Image.BICUBIC)))
    assert np.array_equal(native.criterion, small.criterion)  # the criterion is taken before resizing
    arr = fp(PROMPTS, [0, 1], output_type="np", image_size=(8, 12), **kw).images
    pt = fp(PROMPTS, [0, 1], output_type="pt", image_size=(8, 12), **kw).images
    assert arr.shape == (2, 8, 12, 3) and arr.dtype == np.float32 and pt.shape == (2, 3, 8, 12)
    # "np"/"pt" are the saved uint8 image / 255: what upstream wrote to disk, whatever the output type
    up = np.stack([np.asarray(im.resize((12, 8), Image.BICUBIC)) for im in native.images]).astype(np.float32) / 255
    assert np.array_equal(arr, up) and np.array_equal(pt.permute(0, 2, 3, 1).numpy(), up)
    with pytest.raises(ValueError, match="image_size"):
        fp("cat", 1, image_size=0, **SD_KW)
    with pytest.raises(ValueError, match="image_size.*latent"):
        fp("cat", 1, image_size=8, output_type="latent", **SD_KW)


def test_progress_bar_config_disable_silences_it(sd, caplog, capfd):
    _, fp = sd
    fp = FeedbackGuidedPipeline(**fp.components)
    progress.enable_progress()
    try:
        with caplog.at_level(logging.INFO, logger="synthperf.progress"):
            fp("cat", 1, fg_scale=0.0, **SD_KW)
            lines = [r.getMessage() for r in caplog.records if r.name == "synthperf.progress"]
            assert any("feedback-guided sampling" in m and "started (3 items)" in m for m in lines), lines
            caplog.clear()
            capfd.readouterr()
            fp.set_progress_bar_config(disable=True)
            fp("cat", 1, fg_scale=0.0, **SD_KW)
            assert not [r for r in caplog.records if r.name == "synthperf.progress"]
            cap = capfd.readouterr()
            assert cap.err == "" and cap.out == ""
            fp.set_progress_bar_config(disable=False)  # diffusers' own tqdm bar, on stderr
            fp("cat", 1, fg_scale=0.0, **SD_KW)
            cap = capfd.readouterr()
            assert "3/3" in cap.err and cap.out == ""
    finally:
        progress.disable_progress()


# ----------------------------------------------------------------------------- FLUX family
def test_flux_generator_output_types_and_negative_prompt_match_flux_pipeline(flux):
    ref, fp = flux
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    want = ref(PROMPTS, output_type="np", generator=g(), **FLUX_KW).images
    out = fp(PROMPTS, [0, 1], generator=g(), fg_scale=0.0, output_type="np", **FLUX_KW)
    assert isinstance(out.images, np.ndarray) and out.images.shape == (2, 16, 16, 3) and _diff(out.images, want) <= TOL
    pil = fp(PROMPTS, [0, 1], generator=g(), fg_scale=0.0, output_type="pil", **FLUX_KW).images
    assert all(isinstance(im, Image.Image) and im.size == (16, 16) for im in pil)
    lat = fp(PROMPTS, [0, 1], generator=g(), fg_scale=0.0, output_type="latent", **FLUX_KW).images
    assert _diff(lat, ref(PROMPTS, output_type="latent", generator=g(), **FLUX_KW).images) <= TOL
    kw = dict(true_cfg_scale=2.5, output_type="pt", **FLUX_KW)
    neg = fp(PROMPTS, [0, 1], generator=g(), fg_scale=0.0, negative_prompt="dog", **kw).images
    want = ref(PROMPTS, generator=g(), negative_prompt="dog", **kw).images
    empty = fp(PROMPTS, [0, 1], generator=g(), fg_scale=0.0, **kw).images  # default negative ""
    assert _diff(neg, want) <= TOL and _diff(neg, empty) > 1e-3
    off = fp(PROMPTS, [0, 1], generator=g(), fg_scale=0.0, negative_prompt=None, **kw).images
    assert _diff(off, ref(PROMPTS, generator=g(), **kw).images) <= TOL  # no negative: no true CFG


def test_flux_num_images_latents_and_callback_match_flux_pipeline(flux):
    ref, fp = flux
    kw = dict(num_images_per_prompt=2, output_type="pt", **FLUX_KW)
    out = fp(PROMPTS, [0, 1], generator=gens(1, 2, 3, 4), fg_scale=0.0, **kw)
    assert out.images.shape == (4, 3, 16, 16)
    assert _diff(out.images, ref(PROMPTS, generator=gens(1, 2, 3, 4), **kw).images) <= TOL
    lat = torch.randn(2, 16, 4, generator=torch.Generator().manual_seed(0))  # packed (B, (8/2)(8/2), 4C)
    seen = []

    def cb(pipe, i, t, k):
        seen.append(i)
        if i == 1:
            k["latents"] = k["latents"] + 0.1
        return k

    kw = dict(latents=lat, callback_on_step_end=cb, output_type="pt", **FLUX_KW)
    mine = fp(PROMPTS, [0, 1], fg_scale=0.0, **kw).images
    assert seen == [0, 1, 2]
    want = ref(PROMPTS, **kw).images
    plain = fp(PROMPTS, [0, 1], latents=lat, fg_scale=0.0, **FLUX_KW).images
    assert _diff(mine, want) <= TOL and _diff(mine, plain) > 1e-3
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        fp("cat", 1, callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["negative_prompt_embeds"],
           **FLUX_KW)


def test_flux_progress_bar_config_disable(flux, caplog):
    _, fp = flux
    fp = FeedbackGuidedPipeline(**fp.components)
    progress.enable_progress()
    try:
        with caplog.at_level(logging.INFO, logger="synthperf.progress"):
            fp.set_progress_bar_config(disable=True)
            fp("cat", 1, fg_scale=0.0, **FLUX_KW)
        assert not [r for r in caplog.records if r.name == "synthperf.progress"]
    finally:
        progress.disable_progress()


# ----------------------------------------------------------------------------- pixel family
def _reference(unet, scheduler, x, labels, *, steps, cfg, callback=None):
    """Hand-written class-conditional CFG-DDIM from initial noise x (no synthperf code)."""
    y = torch.tensor(labels)
    scheduler.set_timesteps(steps)
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            out = unet(torch.cat([x, x]), t, class_labels=torch.cat([torch.full_like(y, NULL), y])).sample
            u, c = out.chunk(2)
            x = scheduler.step(u + cfg * (c - u), t, x).prev_sample
            if callback is not None:
                x = callback(None, i, t, {"latents": x})["latents"]
    return (x * 0.5 + 0.5).clamp(0, 1)


def test_pixel_conventions(pixel):
    fp = pixel
    kw = dict(fg_scale=0.0, num_inference_steps=3, guidance_scale=2.0)
    x = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(4))
    out = fp(None, [0, 3], generator=torch.Generator().manual_seed(4), **kw)
    ref = _reference(fp.unet, fp.scheduler, x, [0, 3], steps=3, cfg=2.0)
    assert _diff(out.images[:, :1], ref) <= TOL and out.seeds.tolist() == [4, 4]

    def shift(pipe, i, t, k):
        if i == 0:
            k["latents"] = k["latents"] * 0.8
        return k

    seen = []
    rec = lambda pipe, i, t, k: seen.append((i, k["latents"].clone())) or k  # noqa: E731
    both = lambda pipe, i, t, k: shift(pipe, i, t, rec(pipe, i, t, k))  # noqa: E731
    mine = fp(None, [0, 3], latents=x, callback_on_step_end=both, **kw)
    assert [s[0] for s in seen] == [0, 1, 2]
    assert _diff((seen[-1][1] * 0.5 + 0.5).clamp(0, 1).expand(-1, 3, -1, -1), mine.images) <= TOL
    want = _reference(fp.unet, fp.scheduler, x, [0, 3], steps=3, cfg=2.0, callback=shift)
    assert _diff(mine.images[:, :1], want) <= TOL and _diff(want, ref) > 1e-3
    many = fp(None, [0, 3], seeds=[1, 2], num_images_per_prompt=3, output_type="np", **kw)
    assert many.images.shape == (6, 8, 8, 3) and many.seeds.tolist()[::3] == [1, 2]
    pil = fp(None, 1, seeds=1, output_type="pil", image_size=16, **kw).images
    assert pil[0].size == (16, 16)
    tup = fp(None, 1, seeds=1, return_dict=False, **kw)
    assert isinstance(tup, tuple) and tup[0].shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="output_type must be one of"):
        fp(None, 1, output_type="latent", **kw)


# ----------------------------------------------------------------------------- regeneration and interrupt
class _NaNFirst(TinyClassifier):
    """NaN logits for the first ``n_bad`` no-grad evaluations (the final criterion)."""

    def __init__(self, n_bad):
        super().__init__()
        self.n_bad, self.n_classes = n_bad, 5

    def forward_with_features(self, x):
        logits, f = super().forward_with_features(x)
        if not torch.is_grad_enabled() and self.n_bad > 0:
            self.n_bad -= 1
            logits = logits * float("nan")
        return logits, f


def test_regeneration_with_generator_continues_its_stream_and_never_overrides_latents(sd):
    _, fp = sd
    c = {k: v for k, v in fp.components.items() if k != "classifier"}
    g = torch.Generator().manual_seed(11)
    out = FeedbackGuidedPipeline(**c, classifier=_NaNFirst(1))("cat", 1, generator=g, fg_scale=0.0, **SD_KW)
    assert out.regenerated.all() and not out.corrupted.any() and out.seeds.tolist() == [11]
    # the kept image is the second draw of the same generator
    g2 = torch.Generator().manual_seed(11)
    FeedbackGuidedPipeline(**c)("cat", 1, generator=g2, fg_scale=0.0, **SD_KW)
    again = FeedbackGuidedPipeline(**c)("cat", 1, generator=g2, fg_scale=0.0, **SD_KW)
    assert _diff(out.images, again.images) <= TOL
    lat = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    fixed = FeedbackGuidedPipeline(**c, classifier=_NaNFirst(1))("cat", 1, latents=lat, fg_scale=0.0, **SD_KW)
    assert fixed.corrupted.all() and not fixed.regenerated.any()


def test_interrupt_from_a_callback_skips_the_remaining_steps(sd):
    _, fp = sd
    seen = []

    def stop(pipe, i, t, kw):
        seen.append(i)
        pipe._interrupt = True
        return kw

    out = fp("cat", 1, seeds=2, fg_scale=0.0, output_type="latent", callback_on_step_end=stop, **SD_KW)
    assert seen == [0] and fp.interrupt  # as diffusers: reset at the start of the next call
    first = []
    full = fp("cat", 1, seeds=2, fg_scale=0.0, output_type="latent", **SD_KW,
              callback_on_step_end=lambda pipe, i, t, kw: first.append(kw["latents"].clone()) or kw)
    assert not fp.interrupt and len(first) == 3
    assert torch.equal(out.images, first[0]) and _diff(full.images, first[0]) > 1e-4


def test_regeneration_restores_the_call_state_a_callback_changed(sd):
    """SDCFGCutoffCallback sets pipe._guidance_scale = 0 mid-run; the regeneration of a corrupted
    row starts again from the call's guidance_scale (CFG on until the cutoff step)."""
    from diffusers.callbacks import SDCFGCutoffCallback

    _, fp = sd
    c = {k: v for k, v in fp.components.items() if k != "classifier"}
    cb = SDCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=1)
    out = FeedbackGuidedPipeline(**c, classifier=_NaNFirst(1))("cat", 1, generator=gens(5)[0], fg_scale=0.0,
                                                                callback_on_step_end=cb, **SD_KW)
    g = gens(5)[0]
    plain = FeedbackGuidedPipeline(**c)
    plain("cat", 1, generator=g, fg_scale=0.0, callback_on_step_end=cb, **SD_KW)
    want = plain("cat", 1, generator=g, fg_scale=0.0, callback_on_step_end=cb, **SD_KW)
    assert out.regenerated.all() and _diff(out.images, want.images) <= TOL
