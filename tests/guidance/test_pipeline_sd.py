"""FeedbackGuidedPipeline on tiny SD components (spec §2): parity, effect, gradients, batching, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import synthperf
from _tiny import TinyClassifier, sd_components, tiny_scheduler
from synthperf.guidance import FeedbackGuidedPipeline, FeedbackGuidanceStep
from synthperf.guidance.adapters import SDDecoder, SDDenoiser
from synthperf.guidance.criteria import HardnessCriterion, resolve_criteria

synthperf.disable_progress()
KW = dict(num_inference_steps=2, height=16, width=16, guidance_scale=3.0)
PROMPTS = ["a photo of tench", "cat", "goldfish shark"]


@pytest.fixture(scope="module")
def comps():
    return sd_components()


@pytest.mark.parametrize("pred,sched", [("epsilon", "ddim"), ("v_prediction", "ddpm")])
def test_parity_with_stable_diffusion_pipeline_at_zero_scale(pred, sched):
    from diffusers import StableDiffusionPipeline

    c = sd_components(pred, sched)
    sd = StableDiffusionPipeline(**c, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    sd.set_progress_bar_config(disable=True)
    ref = sd(PROMPTS, output_type="pt", generator=[torch.Generator().manual_seed(s) for s in (3, 4, 5)], **KW).images
    fp = FeedbackGuidedPipeline(**c, classifier=TinyClassifier())
    out = fp(PROMPTS, [0, 1, 2], seeds=[3, 4, 5], fg_scale=0.0, **KW)
    assert (out.images - ref).abs().max() <= 1e-5
    assert np.isfinite(out.criterion).all() and not out.corrupted.any()


def test_rows_are_independent_of_batching(comps):
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())
    args = dict(criterion=["loss", "entropy", "loss"], fg_scale=[0.2, 0.0, 0.1], guidance_freq=1, **KW)
    batched = fp(PROMPTS, [0, 3, 4], seeds=[7, 8, 9], **args)
    for b in (0, 2):
        single = fp(PROMPTS[b], [0, 3, 4][b], seeds=[7, 8, 9][b], criterion=args["criterion"][b],
                    fg_scale=args["fg_scale"][b], guidance_freq=1, **KW)
        assert (single.images[0] - batched.images[b]).abs().max() <= 1e-5
        assert abs(single.criterion[0] - batched.criterion[b]) <= 1e-5
    # the row with fg_scale=0 is the unguided sample, whatever its neighbours do
    plain = fp(PROMPTS[1], 3, seeds=8, fg_scale=0.0, **KW)
    assert (plain.images[0] - batched.images[1]).abs().max() <= 1e-5


@pytest.mark.parametrize("criterion", ["loss", "entropy"])
def test_guidance_moves_criterion_up_on_average(comps, criterion):
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())
    seeds = list(range(8))
    kw = dict(criterion=criterion, guidance_freq=1, num_inference_steps=2, height=16, width=16, guidance_scale=1.0)
    base = fp(["cat"] * 8, [1] * 8, seeds=seeds, fg_scale=0.0, **kw).criterion
    guided = fp(["cat"] * 8, [1] * 8, seeds=seeds, fg_scale=0.5, **kw).criterion
    assert guided.mean() > base.mean(), (criterion, base, guided)


def _double(comps):
    import copy

    c = {k: (copy.deepcopy(v).double() if isinstance(v, torch.nn.Module) else v) for k, v in comps.items()}
    return c


@pytest.mark.parametrize("criterion", ["loss", "entropy", "hardness"])
def test_latent_gradient_matches_finite_differences(comps, criterion):
    c = _double(comps)
    clf = TinyClassifier(n_classes=3).double().requires_grad_(False)
    rng = np.random.default_rng(0)
    hard = HardnessCriterion(shrinkage=0.1).fit(rng.normal(size=(30, 32)), np.arange(30) % 3)
    fns, idx = resolve_criteria([criterion] * 2, hardness=hard)
    for m in (c["unet"], c["vae"]):
        m.requires_grad_(False)
    step = FeedbackGuidanceStep(SDDenoiser(c["unet"], "epsilon"), SDDecoder(c["vae"]), clf, fns, mode="eps_shift")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 2, 2, generator=g, dtype=torch.float64)
    emb = torch.randn(2, 8, 16, generator=g, dtype=torch.float64)
    ab = torch.tensor(0.4, dtype=torch.float64)
    s = (1 - ab).sqrt()
    y, w = torch.tensor([1, 2]), torch.ones(2, dtype=torch.float64)
    cond = (torch.tensor(400), ab.sqrt(), s, emb)
    delta, _ = step(z, y, w, idx, s, *cond)
    grad = -delta / s                                          # eps_shift: delta = -w s dC/dz
    v = torch.randn(z.shape, generator=g, dtype=torch.float64)
    h = 1e-5
    # the spec's gradient treats the rescale's min/max as constants: freeze them at z for the FD
    with torch.no_grad():
        x = step.decoder(s * step.denoiser(z, *cond) + (1 - s) * z) / 2 + 0.5
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = (x - lo).amax(dim=(1, 2, 3), keepdim=True)
        step.rescale = lambda x_: (x_ / 2 + 0.5 - lo) / hi
        cp = step._objective(z + h * v, y, idx, s, cond)[0]
        cm = step._objective(z - h * v, y, idx, s, cond)[0]
    fd = (cp - cm) / (2 * h)
    an = (grad * v).sum()
    assert abs(float(fd - an)) <= 1e-5 * max(1.0, abs(float(an))), (float(fd), float(an))


def test_norm_matched_step_size(comps):
    """latent_shift_normalized: ||delta_b|| = w_b ||z_b|| per sample (spec §2 i, §9 7)."""
    clf = TinyClassifier().requires_grad_(False)
    fns, idx = resolve_criteria(["entropy", "loss"])
    step = FeedbackGuidanceStep(SDDenoiser(comps["unet"], "epsilon"), SDDecoder(comps["vae"]), clf, fns)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 4, 2, 2, generator=g)
    ab = torch.tensor(0.5)
    w = torch.tensor([0.03, 0.3])
    delta, C = step(z, torch.tensor([0, 1]), w, idx, (1 - ab).sqrt(), torch.tensor(500), ab.sqrt(), (1 - ab).sqrt(),
                    torch.randn(2, 8, 16, generator=g))
    torch.testing.assert_close(delta.flatten(1).norm(dim=1), w * z.flatten(1).norm(dim=1), rtol=1e-4, atol=1e-6)
    assert C.shape == (2,) and torch.isfinite(C).all()


def test_eps_shift_mode_runs_and_differs(comps):
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())
    a = fp("cat", 1, seeds=0, fg_scale=0.0, **KW)
    b = fp("cat", 1, seeds=0, fg_scale=5.0, mode="eps_shift", guidance_freq=1, **KW)
    assert np.isfinite(b.criterion).all() and (a.images - b.images).abs().max() > 1e-4


class _NaNFirst(TinyClassifier):
    """Returns NaN logits for the first `n_bad` final evaluations (no-grad calls on 16x16 images)."""

    def __init__(self, n_bad):
        super().__init__()
        self.n_bad = n_bad
        self.n_classes = 5  # read by the pipeline, so no probe forward consumes a NaN call

    def forward_with_features(self, x):
        logits, f = super().forward_with_features(x)
        if not torch.is_grad_enabled() and x.shape[0] > 0 and x.shape[-1] == 16 and self.n_bad > 0:
            self.n_bad -= 1
            logits = logits * float("nan")
        return logits, f


def test_nan_image_regenerated_once_then_reported(comps):
    fp = FeedbackGuidedPipeline(**comps, classifier=_NaNFirst(n_bad=1))
    out = fp(["cat", "dog"], [0, 1], seeds=[1, 2], fg_scale=0.0, **KW)
    assert out.regenerated.all() and not out.corrupted.any() and np.isfinite(out.criterion).all()
    assert out.seeds.tolist() != [1, 2]
    fp2 = FeedbackGuidedPipeline(**comps, classifier=_NaNFirst(n_bad=2))
    out2 = fp2(["cat", "dog"], [0, 1], seeds=[1, 2], fg_scale=0.0, **KW)
    assert out2.corrupted.all() and np.isnan(out2.criterion).all()


def test_bad_inputs(comps, tmp_path):
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier(n_classes=5))
    with pytest.raises(ValueError, match="unknown criterion 'bogus'"):
        fp("cat", 1, criterion="bogus", **KW)
    with pytest.raises(ValueError, match=r"class_ids\[1\]=5 is outside the classifier's range \[0, 5\)"):
        fp(["cat", "dog"], [0, 5], **KW)
    with pytest.raises(ValueError, match="different lengths"):
        fp(["cat", "dog"], [0, 1, 2], **KW)
    with pytest.raises(ValueError, match="guidance_freq"):
        fp("cat", 1, guidance_freq=0, **KW)
    with pytest.raises(ValueError, match="unknown guidance mode"):
        fp("cat", 1, mode="sideways", **KW)
    c = dict(comps, scheduler=tiny_scheduler("euler"))
    with pytest.raises(ValueError, match="EulerDiscreteScheduler is not a DDPM-type scheduler"):
        FeedbackGuidedPipeline(**c, classifier=TinyClassifier())("cat", 1, **KW)
    with pytest.raises(ValueError, match="needs a classifier"):
        FeedbackGuidedPipeline(**comps)("cat", 1, fg_scale=0.1, **KW)
    with pytest.raises(ValueError, match="does not exist"):
        FeedbackGuidedPipeline.from_local(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="model_index.json"):
        FeedbackGuidedPipeline.from_local(tmp_path)
    with pytest.raises(TypeError, match="nn.Module"):
        FeedbackGuidedPipeline(**comps, classifier=lambda x: x)


def test_from_local_round_trip(comps, tmp_path):
    fp = FeedbackGuidedPipeline(**comps)
    fp.save_pretrained(tmp_path / "sd")
    loaded = FeedbackGuidedPipeline.from_local(tmp_path / "sd", classifier=TinyClassifier())
    a = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())("cat", 1, seeds=4, fg_scale=0.1, **KW)
    b = loaded("cat", 1, seeds=4, fg_scale=0.1, **KW)
    assert (a.images - b.images).abs().max() <= 1e-5


def test_latents_gone_nan_mid_loop_fail_one_row_not_the_batch(comps):
    """A row whose latents turn NaN during guidance (e.g. an fp16 overflow) stays NaN for that row
    only: the guided step propagates it (``nonfinite_z="propagate"``) and the post-loop rule
    (spec §2) regenerates that one sample; the other row is untouched."""
    calls = {"n": 0}

    def poison_first_row_once(pipe, i, t, kw):
        calls["n"] += 1
        if calls["n"] == 1:
            lat = kw["latents"].clone()
            lat[0] = float("nan")
            return {"latents": lat}
        return {}

    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())
    out = fp(["cat", "dog"], [0, 1], seeds=[1, 2], fg_scale=0.5, guidance_freq=1, callback_on_step_end=poison_first_row_once,
             **dict(KW, num_inference_steps=3))
    assert out.regenerated.tolist() == [True, False]
    assert not out.corrupted.any() and np.isfinite(out.criterion).all()
