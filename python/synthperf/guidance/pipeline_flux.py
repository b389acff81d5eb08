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

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .._threads import ThreadGovernor
from ._batch import Rows
from ._diffusers_api import FeedbackGuidedPipelineOutput, Generators, NoiseSource, expand_rows, per_row_strings
from .adapters import FluxDecoder, FluxDenoiser
from .criteria import CriterionSpec, HardnessCriterion
from .pipeline import FeedbackGuidedPipeline
from .step import IMAGENET_MEAN, IMAGENET_STD, FeedbackGuidanceStep

try:
    from diffusers import (AutoencoderKL, DiffusionPipeline, FlowMatchEulerDiscreteScheduler,
                           FluxTransformer2DModel)
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift, retrieve_timesteps
    from diffusers.utils.torch_utils import randn_tensor
    from transformers import CLIPTextModel, PreTrainedTokenizerBase, T5EncoderModel  # loaded by FluxPipeline
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the FLUX family needs the 'diffusion' extra (diffusers>=0.30 with FluxPipeline): "
                      "pip install 'synthperf[diffusion]'") from exc

#: Schedulers whose step is the flow-matching Euler update the FLUX guidance assumes.
FLOW_SCHEDULERS: tuple[str, ...] = ("FlowMatchEulerDiscreteScheduler",)


def check_flux_scheduler(scheduler: object) -> None:
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
    _callback_tensor_inputs = ["latents", "prompt_embeds"]

    def __init__(self, scheduler: FlowMatchEulerDiscreteScheduler, vae: AutoencoderKL, text_encoder: CLIPTextModel,
                 tokenizer: PreTrainedTokenizerBase, text_encoder_2: T5EncoderModel,
                 tokenizer_2: PreTrainedTokenizerBase, transformer: FluxTransformer2DModel,
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
                 seeds: int | Sequence[int] | None = None,
                 criterion: CriterionSpec | Sequence[CriterionSpec] = "entropy",
                 fg_scale: float | Sequence[float] = 0.03, guidance_freq: int = 5, guidance_scale: float = 3.5,
                 true_cfg_scale: float = 1.0, negative_prompt: str | Sequence[str] | None = "",
                 num_inference_steps: int = 28, height: int | None = None, width: int | None = None,
                 max_sequence_length: int = 512, num_images_per_prompt: int = 1,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, output_type: str = "pt", image_size: int | tuple | None = None,
                 return_dict: bool = True, callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
                 mode: str = "latent_shift_normalized",
                 hardness: HardnessCriterion | None = None, custom_criteria: Mapping[str, Callable] | None = None,
                 classifier_mean: Sequence[float] = IMAGENET_MEAN, classifier_std: Sequence[float] = IMAGENET_STD,
                 classifier_size: int | None = None, compile: bool | str = False,
                 retry_corrupted: bool = True) -> FeedbackGuidedPipelineOutput | tuple:
        """Generate ``num_images_per_prompt`` images per row (FLUX family).

        Per-row arguments as :meth:`FeedbackGuidedPipeline.__call__` (``prompt``, ``class_ids``,
        ``criterion``, ``fg_scale``, ``seeds``). ``guidance_scale``: FLUX's distilled guidance
        embedding (used when ``transformer.config.guidance_embeds``, ignored otherwise, as in
        FluxPipeline); ``true_cfg_scale`` > 1 adds real CFG against ``negative_prompt`` (str or
        one per row; default "" so true CFG needs no negative prompt; None = none, which turns
        true CFG off as in FluxPipeline). ``height``/``width`` must be divisible by 2 x the VAE
        scale factor (2x2 packing). ``num_images_per_prompt``, ``generator``, ``output_type``
        ("latent" = the packed (B*n, N, 4C) latents, as FluxPipeline), ``image_size``,
        ``return_dict`` and ``callback_on_step_end`` (tensor inputs "latents" (packed),
        "prompt_embeds" (T5)) as the SD family; ``latents`` are packed (B*n, N, 4C) as FluxPipeline's.
        Returns :class:`~._diffusers_api.FeedbackGuidedPipelineOutput`.
        """
        check_flux_scheduler(self.scheduler)
        call = self._begin_call(guidance_scale=guidance_scale, output_type=output_type, image_size=image_size,
                                callback=callback_on_step_end, callback_inputs=callback_on_step_end_tensor_inputs,
                                num_images_per_prompt=num_images_per_prompt, seeds=seeds, generator=generator)
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
        rows, fns = self._prepare_rows(prompt, class_ids, criterion, fg_scale, call["seeds"],
                                       guidance_freq=guidance_freq, num_inference_steps=num_inference_steps,
                                       probe_size=classifier_size or height, device=device, hardness=hardness,
                                       custom_criteria=custom_criteria)
        negatives = per_row_strings(negative_prompt, "negative_prompt", len(rows.seeds), None)
        rows, src = expand_rows(rows, num_images_per_prompt)
        negatives = None if negatives is None else [negatives[r] for r in src]
        lh, lw = height // self.vae_scale_factor, width // self.vae_scale_factor
        C = self.transformer.config.in_channels // 4
        noise = NoiseSource(generator, latents, len(rows.seeds), (len(rows.seeds), (lh // 2) * (lw // 2), 4 * C))
        step = None
        if self.classifier is not None:
            denoiser = self.__dict__.setdefault("_fg_flux_denoiser", FluxDenoiser(self.transformer))
            step = self._guidance_step(denoiser, self._decoder(lh, lw), fns, mode=mode, mean=classifier_mean,
                                       std=classifier_std, classifier_size=classifier_size, compile=compile)

        def run(r: Rows, crit_index: torch.Tensor, idx: list[int], gen: Generators, init: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
            negs = None if negatives is None or true_cfg_scale <= 1.0 else [negatives[i] for i in idx]
            return self._sample_flux(r, crit_index, step, negs, gen, init, call, callback_on_step_end,
                                     guidance_freq=guidance_freq, guidance_scale=guidance_scale,
                                     true_cfg_scale=true_cfg_scale, num_inference_steps=num_inference_steps,
                                     latent_hw=(lh, lw), max_sequence_length=max_sequence_length, device=device,
                                     decode=output_type != "latent")

        return self._run_with_retry(rows, self._sample_fn(fns, hardness, custom_criteria, device, run),
                                    retry_corrupted, noise, call, output_type, return_dict)

    def _sample_flux(self, rows: Rows, crit_index: torch.Tensor, step: FeedbackGuidanceStep | None,
                     negatives: list[str] | None, generators: Generators, init: torch.Tensor | None, call: dict,
                     callback: Callable | None, *, guidance_freq: int, guidance_scale: float, true_cfg_scale: float,
                     num_inference_steps: int, latent_hw: tuple[int, int], max_sequence_length: int, device,
                     decode: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One run: (images (B,3,H,W) in [0,1] or the packed final latents, criterion or None)."""
        B = len(rows.prompts)
        lh, lw = latent_hw
        prompt_embeds, pooled, text_ids = self._encode_flux(rows.prompts, device, max_sequence_length)
        do_true_cfg = negatives is not None
        if do_true_cfg:
            neg_embeds, neg_pooled, neg_ids = self._encode_flux(negatives, device, max_sequence_length)
        C = self.transformer.config.in_channels // 4
        if init is None:
            latents = randn_tensor((B, C, lh, lw), generator=generators, device=device, dtype=prompt_embeds.dtype)
            latents = FluxPipeline._pack_latents(latents, B, C, lh, lw)                # (B, N, 4C)
        else:
            latents = init.to(device=device, dtype=prompt_embeds.dtype)
        img_ids = FluxPipeline._prepare_latent_image_ids(B, lh // 2, lw // 2, device, prompt_embeds.dtype)
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if getattr(self.scheduler.config, "use_flow_sigmas", False):
            sigmas = None
        cfg = self.scheduler.config
        mu = calculate_shift(latents.shape[1], cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                             cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device, sigmas=sigmas, mu=mu)
        self._num_timesteps = len(timesteps)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full([1], guidance_scale, device=device, dtype=torch.float32).expand(B)
        guidance_arg = guidance if guidance is not None else torch.empty(0, device=device)
        y = rows.class_ids.to(device)
        w = rows.fg_scales.to(device)
        guided_any = step is not None and bool((w != 0).any())
        self.scheduler.set_begin_index(0)
        with self.progress_bar(total=len(timesteps)) as bar:
            governor = ThreadGovernor()
            for i, t in enumerate(timesteps):
                governor.tick()
                if self.interrupt:
                    continue
                timestep = t.expand(B).to(latents.dtype)
                v = self.transformer(hidden_states=latents, timestep=timestep / 1000, guidance=guidance,
                                     pooled_projections=pooled, encoder_hidden_states=prompt_embeds, txt_ids=text_ids,
                                     img_ids=img_ids, joint_attention_kwargs={}, return_dict=False)[0]
                if do_true_cfg:
                    v_neg = self.transformer(hidden_states=latents, timestep=timestep / 1000, guidance=guidance,
                                             pooled_projections=neg_pooled, encoder_hidden_states=neg_embeds,
                                             txt_ids=neg_ids, img_ids=img_ids, joint_attention_kwargs={},
                                             return_dict=False)[0]
                    v = v_neg + true_cfg_scale * (v - v_neg)
                if guided_any and i % guidance_freq == 0:                               # §2 step 2
                    sigma = self.scheduler.sigmas[i].to(device=device, dtype=torch.float32)
                    t_in = (t.to(latents.dtype) / 1000).to(device)
                    delta, _ = step(latents, y, w, crit_index, sigma, t_in, sigma, prompt_embeds, pooled, text_ids,
                                    img_ids, guidance_arg)
                    latents = latents + delta                                           # §2 j
                latents = self.scheduler.step(v, t, latents, return_dict=False)[0]      # §2 step 3
                new = self._step_end(call, callback, i, t, {"latents": latents, "prompt_embeds": prompt_embeds})
                latents = new.pop("latents", latents)
                prompt_embeds = new.pop("prompt_embeds", prompt_embeds)
                bar.update()
        if not decode:
            return latents, None
        z = FluxPipeline._unpack_latents(latents, lh * self.vae_scale_factor, lw * self.vae_scale_factor,
                                         self.vae_scale_factor)
        z = z / self.vae.config.scaling_factor + self.vae.config.shift_factor
        image = self.vae.decode(z, return_dict=False)[0]
        images01 = (image * 0.5 + 0.5).clamp(0, 1)
        crit = None
        if step is not None:
            crit = step.criterion_on_images(images01, y, crit_index)
        return images01, crit
