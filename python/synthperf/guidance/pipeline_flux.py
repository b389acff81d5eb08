"""FeedbackGuidedFluxPipeline: classifier feedback guidance for the FLUX family (spec §2 on flow matching).

FLUX is a rectified-flow transformer: z_sigma = (1 - sigma) x0 + sigma eps, and the network
predicts the velocity v = eps - x0, so the clean estimate is x0_hat = z - sigma v. The guidance
schedule and criteria are those of the SD family (spec §2), with the flow's sigma_t in the
role of sqrt(1 - alpha_bar_t):

=====================  ==========================================  ==============================
quantity               SD family (spec §2)                          FLUX family (here)
=====================  ==========================================  ==============================
x0_hat                 (z - sqrt(1-ab) eps) / sqrt(ab)              z - sigma v
blend (§2 d)           s x0_hat + (1 - s) z, s = sqrt(1-ab)         s x0_hat + (1 - s) z, s = sigma
decode (§2 e)          D(z_tilde / s_vae)                           D(unpack(z_tilde) / s_vae + shift)
update (§2 i-j)        z += w ||z|| g / (||g|| + 1e-8)              same, per sample, on packed z
model step (§2 3)      scheduler.step(eps_cfg, t, z)                FlowMatchEuler: z += (s' - s) v
=====================  ==========================================  ==============================

Per iteration i: v = transformer(z) (no grad; with ``true_cfg_scale > 1`` also the negative
prompt branch, v = v_neg + true_cfg (v - v_neg), as diffusers' FluxPipeline); if
``i % guidance_freq == 0`` and some fg_scale != 0, the guided update of
:class:`~synthperf.guidance.step.FeedbackGuidanceStep` (text-conditional branch only, spec
quirk 2); then ``scheduler.step(v, t, z)``. With all fg_scale == 0 the loop is exactly
diffusers' FluxPipeline (tested to 1e-5). Latents are packed (B, (h/2)(w/2), 4C) as in FLUX.

Only ``mode="latent_shift_normalized"`` exists here: the ``eps_shift`` variant needs the
eps -> v map dv = d eps / (1 - sigma), which is singular at sigma = 1 (FLUX's first step).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..progress import track
from ._batch import Rows
from .adapters import FluxDecoder, FluxDenoiser
from .criteria import HardnessCriterion
from .pipeline import FeedbackGuidedOutput, FeedbackGuidedPipeline
from .step import IMAGENET_MEAN, IMAGENET_STD, FeedbackGuidanceStep

try:
    from diffusers import DiffusionPipeline
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift, retrieve_timesteps
    from diffusers.utils.torch_utils import randn_tensor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the FLUX family needs the 'diffusion' extra (diffusers>=0.30 with FluxPipeline): "
                      "pip install 'synthperf[diffusion]'") from exc

#: Schedulers whose step is the flow-matching Euler update the FLUX guidance assumes.
FLOW_SCHEDULERS: tuple[str, ...] = ("FlowMatchEulerDiscreteScheduler",)


def check_flux_scheduler(scheduler: Any) -> None:
    """Raise ValueError unless ``scheduler`` is a flow-matching Euler scheduler (sigma in [0, 1])."""
    name = type(scheduler).__name__
    if name not in FLOW_SCHEDULERS:
        raise ValueError(f"scheduler {name} is not a flow-matching scheduler: the FLUX guidance formula "
                         f"x0_hat = z - sigma v needs one of {FLOW_SCHEDULERS}. Swap it, e.g. "
                         "FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)")


class FeedbackGuidedFluxPipeline(FeedbackGuidedPipeline):
    """FLUX-family pipeline with classifier feedback guidance (spec §2, flow-matching form).

    Components (as diffusers' FluxPipeline): ``scheduler`` (FlowMatchEulerDiscreteScheduler),
    ``vae`` (AutoencoderKL with ``shift_factor``), ``text_encoder`` (CLIPTextModel, pooled
    output), ``tokenizer``, ``text_encoder_2`` (T5EncoderModel), ``tokenizer_2``,
    ``transformer`` (FluxTransformer2DModel), and ``classifier`` (optional torch nn.Module on
    normalised [0,1] images -> (B, K) logits). All parameters are frozen.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->vae"
    _optional_components = ["classifier"]

    def __init__(self, scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer,
                 classifier: nn.Module | None = None) -> None:
        DiffusionPipeline.__init__(self)
        if classifier is not None and not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch nn.Module, got {type(classifier).__name__}")
        self.register_modules(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
                              classifier=classifier)
        for m in (vae, text_encoder, text_encoder_2, transformer, classifier):
            if isinstance(m, nn.Module):
                m.requires_grad_(False).eval()
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.default_sample_size = 128

    # ------------------------------------------------------------------ prompts
    def _encode_flux(self, prompts: list[str], device, max_sequence_length: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(T5 embeddings (B, L, d), CLIP pooled (B, p), text ids (L, 3)) as FluxPipeline.encode_prompt."""
        tok = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
        pooled = self.text_encoder(tok.input_ids.to(device), output_hidden_states=False).pooler_output
        pooled = pooled.to(dtype=self.text_encoder.dtype, device=device)
        tok2 = self.tokenizer_2(prompts, padding="max_length", max_length=max_sequence_length, truncation=True,
                                return_tensors="pt")
        embeds = self.text_encoder_2(tok2.input_ids.to(device), output_hidden_states=False)[0]
        embeds = embeds.to(dtype=self.text_encoder_2.dtype, device=device)
        text_ids = torch.zeros(embeds.shape[1], 3).to(device=device, dtype=self.text_encoder.dtype)
        return embeds, pooled, text_ids

    def _decoder(self, latent_h: int, latent_w: int) -> FluxDecoder:
        cache = self.__dict__.setdefault("_fg_flux_decoders", {})
        if (latent_h, latent_w) not in cache:
            cache[(latent_h, latent_w)] = FluxDecoder(self.vae, latent_h, latent_w)
        return cache[(latent_h, latent_w)]

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str], class_ids: int | Sequence[int] = 0, *,
                 seeds: int | Sequence[int] = 0, criterion: Any = "entropy", fg_scale: float | Sequence[float] = 0.03,
                 guidance_freq: int = 5, guidance_scale: float = 3.5, true_cfg_scale: float = 1.0,
                 negative_prompt: str = "", num_inference_steps: int = 28, height: int | None = None,
                 width: int | None = None, max_sequence_length: int = 512, mode: str = "latent_shift_normalized",
                 hardness: HardnessCriterion | None = None, custom_criteria: Mapping[str, Callable] | None = None,
                 classifier_mean: Sequence[float] = IMAGENET_MEAN, classifier_std: Sequence[float] = IMAGENET_STD,
                 classifier_size: int | None = None, compile: bool | str = False,
                 retry_corrupted: bool = True) -> FeedbackGuidedOutput:
        """Generate one image per row (FLUX family).

        Per-row arguments as :meth:`FeedbackGuidedPipeline.__call__` (``prompt``, ``class_ids``,
        ``criterion``, ``fg_scale``, ``seeds``). ``guidance_scale``: FLUX's distilled guidance
        embedding (used when ``transformer.config.guidance_embeds``, ignored otherwise, as in
        FluxPipeline); ``true_cfg_scale`` > 1 adds real CFG against ``negative_prompt``.
        ``height``/``width`` must be divisible by 2 x the VAE scale factor (2x2 packing).
        Returns :class:`FeedbackGuidedOutput` (images (B,3,H,W) float32 in [0,1]).
        """
        check_flux_scheduler(self.scheduler)
        if mode != "latent_shift_normalized":
            raise ValueError(f"mode {mode!r} is not available for the FLUX family: only 'latent_shift_normalized' "
                             "(eps_shift needs d v = d eps / (1 - sigma), singular at sigma = 1)")
        if isinstance(max_sequence_length, bool) or not isinstance(max_sequence_length, int) or \
                not 1 <= max_sequence_length <= 512:
            raise ValueError(f"max_sequence_length must be an integer in [1, 512], got {max_sequence_length!r}")
        height = height or self.default_sample_size * self.vae_scale_factor
        width = width or self.default_sample_size * self.vae_scale_factor
        multiple = 2 * self.vae_scale_factor
        for name, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v % multiple:
                raise ValueError(f"{name}={v!r} must be a positive multiple of {multiple} "
                                 "(VAE scale factor x 2 for FLUX's 2x2 latent packing)")
        device = self._execution_device
        rows, fns = self._prepare_rows(prompt, class_ids, criterion, fg_scale, seeds, guidance_freq=guidance_freq,
                                       num_inference_steps=num_inference_steps, probe_size=classifier_size or height,
                                       device=device, hardness=hardness, custom_criteria=custom_criteria)
        lh, lw = height // self.vae_scale_factor, width // self.vae_scale_factor
        step = None
        if self.classifier is not None:
            denoiser = self.__dict__.setdefault("_fg_flux_denoiser", FluxDenoiser(self.transformer))
            step = self._guidance_step(denoiser, self._decoder(lh, lw), fns, mode=mode, mean=classifier_mean,
                                       std=classifier_std, classifier_size=classifier_size, compile=compile)

        def run(r: Rows, crit_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self._sample_flux(r, crit_index, step, guidance_freq=guidance_freq, guidance_scale=guidance_scale,
                                     true_cfg_scale=true_cfg_scale, negative_prompt=negative_prompt,
                                     num_inference_steps=num_inference_steps, latent_hw=(lh, lw),
                                     max_sequence_length=max_sequence_length, device=device)

        return self._run_with_retry(rows, self._sample_fn(fns, hardness, custom_criteria, device, run),
                                    retry_corrupted)

    def _sample_flux(self, rows: Rows, crit_index: torch.Tensor, step: FeedbackGuidanceStep | None, *,
                     guidance_freq: int, guidance_scale: float, true_cfg_scale: float, negative_prompt: str,
                     num_inference_steps: int, latent_hw: tuple[int, int], max_sequence_length: int,
                     device) -> tuple[torch.Tensor, torch.Tensor | None]:
        B = len(rows.prompts)
        lh, lw = latent_hw
        embeds, pooled, text_ids = self._encode_flux(rows.prompts, device, max_sequence_length)
        do_true_cfg = true_cfg_scale > 1.0
        if do_true_cfg:
            neg_embeds, neg_pooled, neg_ids = self._encode_flux([negative_prompt] * B, device, max_sequence_length)
        C = self.transformer.config.in_channels // 4
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in rows.seeds]
        latents = randn_tensor((B, C, lh, lw), generator=generators, device=device, dtype=embeds.dtype)
        latents = FluxPipeline._pack_latents(latents, B, C, lh, lw)                    # (B, N, 4C)
        img_ids = FluxPipeline._prepare_latent_image_ids(B, lh // 2, lw // 2, device, embeds.dtype)
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if getattr(self.scheduler.config, "use_flow_sigmas", False):
            sigmas = None
        cfg = self.scheduler.config
        mu = calculate_shift(latents.shape[1], cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                             cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device, sigmas=sigmas, mu=mu)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full([1], guidance_scale, device=device, dtype=torch.float32).expand(B)
        guidance_arg = guidance if guidance is not None else torch.empty(0, device=device)
        y = rows.class_ids.to(device)
        w = rows.fg_scales.to(device)
        guided_any = step is not None and bool((w != 0).any())
        self.scheduler.set_begin_index(0)
        for i, t in enumerate(track(timesteps, "feedback-guided sampling (FLUX)")):
            timestep = t.expand(B).to(latents.dtype)
            v = self.transformer(hidden_states=latents, timestep=timestep / 1000, guidance=guidance,
                                 pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=text_ids,
                                 img_ids=img_ids, joint_attention_kwargs={}, return_dict=False)[0]
            if do_true_cfg:
                v_neg = self.transformer(hidden_states=latents, timestep=timestep / 1000, guidance=guidance,
                                         pooled_projections=neg_pooled, encoder_hidden_states=neg_embeds,
                                         txt_ids=neg_ids, img_ids=img_ids, joint_attention_kwargs={},
                                         return_dict=False)[0]
                v = v_neg + true_cfg_scale * (v - v_neg)
            if guided_any and i % guidance_freq == 0:                                   # §2 step 2
                sigma = self.scheduler.sigmas[i].to(device=device, dtype=torch.float32)
                t_in = (t.to(latents.dtype) / 1000).to(device)
                delta, _ = step(latents, y, w, crit_index, sigma, t_in, sigma, embeds, pooled, text_ids, img_ids,
                                guidance_arg)
                latents = latents + delta                                               # §2 j
            latents = self.scheduler.step(v, t, latents, return_dict=False)[0]          # §2 step 3
        z = FluxPipeline._unpack_latents(latents, lh * self.vae_scale_factor, lw * self.vae_scale_factor,
                                         self.vae_scale_factor)
        z = z / self.vae.config.scaling_factor + self.vae.config.shift_factor
        image = self.vae.decode(z, return_dict=False)[0]
        images01 = (image * 0.5 + 0.5).clamp(0, 1)
        crit = None
        if step is not None:
            crit = step.criterion_on_images(images01, y, crit_index)
        return images01, crit
