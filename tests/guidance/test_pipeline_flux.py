"""FLUX family (flow matching, x0_hat = z - sigma v) on tiny in-process components: parity with
diffusers' FluxPipeline at fg_scale=0, effect of guidance, latent gradients vs finite differences,
batching, NaN regeneration, loading from a local folder and bad input."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import synthperf
from _tiny import TinyClassifier, flux_components, tiny_scheduler
from synthperf.guidance import FeedbackGuidanceStep, FeedbackGuidedPipeline
from synthperf.guidance.adapters import FluxDecoder, FluxDenoiser
from synthperf.guidance.criteria import HardnessCriterion, resolve_criteria

synthperf.disable_progress()
KW = dict(num_inference_steps=3, height=16, width=16, max_sequence_length=8)
PROMPTS = ["a photo of tench", "cat", "goldfish shark"]


@pytest.fixture(scope="module")
def comps():
    return flux_components()


@pytest.mark.parametrize("guidance_embeds,true_cfg", [(True, 1.0), (False, 2.5)])
def test_parity_with_flux_pipeline_at_zero_scale(guidance_embeds, true_cfg):
    from diffusers import FluxPipeline

    c = flux_components(guidance_embeds)
    ref_pipe = FluxPipeline(**c)
    ref_pipe.set_progress_bar_config(disable=True)
    extra = dict(true_cfg_scale=true_cfg, negative_prompt="") if true_cfg > 1 else {}
    ref = ref_pipe(PROMPTS, output_type="pt", guidance_scale=4.0, **extra, **KW,
                   generator=[torch.Generator().manual_seed(s) for s in (3, 4, 5)]).images
    fp = FeedbackGuidedPipeline(**c, classifier=TinyClassifier())
    assert type(fp).__name__ == "FeedbackGuidedFluxPipeline" and isinstance(fp, FeedbackGuidedPipeline)
    out = fp(PROMPTS, [0, 1, 2], seeds=[3, 4, 5], fg_scale=0.0, guidance_scale=4.0, true_cfg_scale=true_cfg, **KW)
    assert (out.images - ref).abs().max() <= 1e-5
    assert np.isfinite(out.criterion).all() and not out.corrupted.any()


def test_rows_are_independent_of_batching(comps):
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())
    args = dict(criterion=["loss", "entropy", "loss"], fg_scale=[0.2, 0.0, 0.1], guidance_freq=1, **KW)
    batched = fp(PROMPTS, [0, 3, 4], seeds=[7, 8, 9], **args)
    for b in (0, 1):
        single = fp(PROMPTS[b], [0, 3, 4][b], seeds=[7, 8, 9][b], criterion=args["criterion"][b],
                    fg_scale=args["fg_scale"][b], guidance_freq=1, **KW)
        assert (single.images[0] - batched.images[b]).abs().max() <= 1e-5
        assert abs(single.criterion[0] - batched.criterion[b]) <= 1e-5


@pytest.mark.parametrize("criterion", ["loss", "entropy"])
def test_guidance_moves_criterion_up_on_average(comps, criterion):
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())
    seeds = list(range(8))
    kw = dict(criterion=criterion, guidance_freq=1, **KW)
    base = fp(["cat"] * 8, [1] * 8, seeds=seeds, fg_scale=0.0, **kw).criterion
    guided = fp(["cat"] * 8, [1] * 8, seeds=seeds, fg_scale=0.5, **kw).criterion
    assert guided.mean() > base.mean(), (criterion, base, guided)


@pytest.mark.parametrize("criterion", ["loss", "entropy", "hardness"])
def test_latent_gradient_matches_finite_differences(comps, criterion):
    """dC/dz through classifier, VAE decoder and the flow transformer, in float64 (packed latents)."""
    tr = copy.deepcopy(comps["transformer"]).double().requires_grad_(False)
    vae = copy.deepcopy(comps["vae"]).double().requires_grad_(False)
    clf = TinyClassifier(n_classes=3).double().requires_grad_(False)
    rng = np.random.default_rng(0)
    hard = HardnessCriterion(shrinkage=0.1).fit(rng.normal(size=(30, 32)), np.arange(30) % 3)
    fns, idx = resolve_criteria([criterion] * 2, hardness=hard)
    step = FeedbackGuidanceStep(FluxDenoiser(tr), FluxDecoder(vae, 8, 8), clf, fns)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 16, 4, generator=g, dtype=torch.float64)                  # (B, (8/2)(8/2), 4*1)
    sigma = torch.tensor(0.7, dtype=torch.float64)
    img_ids = torch.from_numpy(np.stack(np.meshgrid(np.zeros(1), np.arange(4), np.arange(4), indexing="ij"),
                                        -1).reshape(-1, 3)).double()
    cond = (sigma, sigma, torch.randn(2, 8, 16, generator=g, dtype=torch.float64),
            torch.randn(2, 16, generator=g, dtype=torch.float64), torch.zeros(8, 3, dtype=torch.float64), img_ids,
            torch.full((2,), 3.5, dtype=torch.float64))
    y = torch.tensor([1, 2])
    w = torch.ones(2, dtype=torch.float64)
    delta, _ = step(z, y, w, idx, sigma, *cond)
    # latent_shift_normalized: delta_b = w ||z_b|| g_b / ||g_b||; recover the direction and scale from C's FD
    v = torch.randn(z.shape, generator=g, dtype=torch.float64)
    # diffusers' apply_rotary_emb computes in float32 even for a float64 model, so C carries about
    # 1e-10 absolute rounding noise: the central difference errs by ~1e-10/h (noise) + ~h^2 (truncation);
    # h = 1e-4 keeps both below ~2e-6, inside the 1e-5 relative tolerance.
    h = 1e-4
    with torch.no_grad():  # freeze the rescale's min/max at z (the spec's stop-gradient)
        x = step.decoder(sigma * step.denoiser(z, *cond) + (1 - sigma) * z) / 2 + 0.5
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = (x - lo).amax(dim=(1, 2, 3), keepdim=True)
        step.rescale = lambda x_: (x_ / 2 + 0.5 - lo) / hi
        # per-sample FD: perturb one sample at a time along v_b
        for b in range(2):
            vb = torch.zeros_like(v)
            vb[b] = v[b]
            fd = (step._objective(z + h * vb, y, idx, sigma, cond)[1][b]
                  - step._objective(z - h * vb, y, idx, sigma, cond)[1][b]) / (2 * h)
            with torch.enable_grad():
                zg = z.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(step._objective(zg, y, idx, sigma, cond)[0], zg)
            assert abs(float(fd - (grad[b] * v[b]).sum())) <= 1e-5 * max(1.0, abs(float(fd))), (b, float(fd))
            # the step's delta is the norm-matched gradient of the same objective
            expect = grad[b] * z[b].norm() / (grad[b].norm() + 1e-8)
            torch.testing.assert_close(delta[b], expect, rtol=1e-6, atol=1e-9)


class _NaNFirst(TinyClassifier):
    def __init__(self, n_bad):
        super().__init__()
        self.n_bad, self.n_classes = n_bad, 5

    def forward_with_features(self, x):
        logits, f = super().forward_with_features(x)
        if not torch.is_grad_enabled() and self.n_bad > 0:
            self.n_bad -= 1
            logits = logits * float("nan")
        return logits, f


def test_nan_image_regenerated_once_then_reported(comps):
    out = FeedbackGuidedPipeline(**comps, classifier=_NaNFirst(1))(["cat", "dog"], [0, 1], seeds=[1, 2],
                                                                   fg_scale=0.0, **KW)
    assert out.regenerated.all() and not out.corrupted.any() and np.isfinite(out.criterion).all()
    out2 = FeedbackGuidedPipeline(**comps, classifier=_NaNFirst(2))(["cat", "dog"], [0, 1], seeds=[1, 2],
                                                                    fg_scale=0.0, **KW)
    assert out2.regenerated.all() and out2.corrupted.all() and np.isnan(out2.criterion).all()


def test_from_local_dispatches_to_flux(comps, tmp_path):
    FeedbackGuidedPipeline(**comps).save_pretrained(tmp_path / "flux")
    loaded = FeedbackGuidedPipeline.from_local(tmp_path / "flux", classifier=TinyClassifier())
    assert type(loaded).__name__ == "FeedbackGuidedFluxPipeline"
    a = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())("cat", 1, seeds=4, fg_scale=0.1, **KW)
    b = loaded("cat", 1, seeds=4, fg_scale=0.1, **KW)
    assert (a.images - b.images).abs().max() <= 1e-5


def test_bad_inputs(comps):
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier(n_classes=5))
    with pytest.raises(ValueError, match="unknown criterion 'bogus'"):
        fp("cat", 1, criterion="bogus", **KW)
    with pytest.raises(ValueError, match=r"class_ids\[0\]=7 is outside the classifier's range \[0, 5\)"):
        fp("cat", 7, **KW)
    with pytest.raises(ValueError, match="eps_shift.*not available for the FLUX family"):
        fp("cat", 1, mode="eps_shift", **KW)
    with pytest.raises(ValueError, match="height=18 must be a positive multiple of 4"):
        fp("cat", 1, **dict(KW, height=18))
    with pytest.raises(ValueError, match="max_sequence_length"):
        fp("cat", 1, **dict(KW, max_sequence_length=0))
    c = dict(comps, scheduler=tiny_scheduler("ddim"))
    with pytest.raises(ValueError, match="DDIMScheduler is not a flow-matching scheduler"):
        FeedbackGuidedPipeline(**c, classifier=TinyClassifier())("cat", 1, **KW)
