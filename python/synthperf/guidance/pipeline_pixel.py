"""FeedbackGuidedPixelPipeline: feedback guidance for a class-conditional pixel-space UNet (spec §2).

The family for small image models without a VAE or a text encoder (e.g. the digits model of
:mod:`synthperf.guidance.digits`): ``unet`` is a diffusers ``UNet2DModel`` with a class
embedding (``num_class_embeds``), ``scheduler`` a DDPM-type scheduler (the guidance formula
reads ``alphas_cumprod[t]``). The spec's quantities map as follows:

=====================  ==========================================  ==============================
quantity               SD family (spec §2)                          pixel family (here)
=====================  ==========================================  ==============================
conditioning           text embedding c; CFG against ""            class label y; CFG against
                                                                    the null label ``null_class_id``
x0_hat                 (z - sqrt(1-ab) eps) / sqrt(ab)              same (z = pixels in [-1, 1])
blend (§2 d)           s x0_hat + (1 - s) z                         same
decode (§2 e)          D(z_tilde / s_vae)                           identity (grey -> 3 channels)
update (§2 i-j)        z += w ||z|| g / (||g|| + 1e-8)              same, per sample
=====================  ==========================================  ==============================

The guidance UNet call is label-conditional only and unscaled (spec quirk 2, as the SD family).
With all fg_scale == 0 the loop is plain (CFG-)DDIM/DDPM sampling of the UNet (tested against a
hand-written loop). ``FeedbackGuidedPipeline.from_pretrained`` / ``from_local`` of a folder
holding only ``unet`` + ``scheduler`` (+ optional ``classifier``) returns this class.
"""
from __future__ import annotations

import numbers
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .._threads import ThreadGovernor
from ._batch import Rows, check_sd_scheduler
from ._diffusers_api import FeedbackGuidedPipelineOutput, Generators, NoiseSource, expand_rows
from .adapters import PixelDecoder, PixelDenoiser
from .criteria import CriterionSpec, HardnessCriterion
from .pipeline import FeedbackGuidedPipeline
from .step import FeedbackGuidanceStep

try:
    from diffusers import DiffusionPipeline, SchedulerMixin, UNet2DModel
    from diffusers.utils.torch_utils import randn_tensor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("synthperf.guidance needs the 'diffusion' extra: pip install 'synthperf[diffusion]'") from exc

#: Classifier normalisation for the pixel family: the rescaled [0,1] image as is.
PIXEL_MEAN = (0.0, 0.0, 0.0)
PIXEL_STD = (1.0, 1.0, 1.0)


class FeedbackGuidedPixelPipeline(FeedbackGuidedPipeline):
    """Class-conditional pixel-space pipeline with classifier feedback guidance.

    Components: ``unet`` (UNet2DModel with ``num_class_embeds``; in/out channels 1 or 3),
    ``scheduler`` (DDPM-type, see ``DDPM_TYPE_SCHEDULERS``), ``classifier`` (optional torch
    nn.Module on normalised [0,1] images (B,3,H',W') -> (B,K) logits). ``null_class_id``: the
    label the UNet was trained with as "no class" (label dropout), needed for CFG
    (``guidance_scale > 1``); None = no CFG. Stored in model_index.json. All parameters frozen.
    """

    model_cpu_offload_seq = "unet"
    _optional_components = ["classifier"]
    _callback_tensor_inputs = ["latents"]

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin, classifier: nn.Module | None = None,
                 null_class_id: int | None = None) -> None:
        DiffusionPipeline.__init__(self)
        if classifier is not None and not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch nn.Module, got {type(classifier).__name__}")
        n_embeds = getattr(unet.config, "num_class_embeds", None)
        if not n_embeds:
            raise ValueError("unet must be class-conditional: UNet2DModel(num_class_embeds=K, ...)")
        if null_class_id is not None:
            if isinstance(null_class_id, bool) or not isinstance(null_class_id, numbers.Integral) or \
                    not 0 <= null_class_id < n_embeds:
                raise ValueError(f"null_class_id must be an integer in [0, {n_embeds}), got {null_class_id!r}")
            null_class_id = int(null_class_id)
        self.register_modules(unet=unet, scheduler=scheduler, classifier=classifier)
        self.register_to_config(null_class_id=null_class_id)
        for m in (unet, classifier):
            if isinstance(m, nn.Module):
                m.requires_grad_(False).eval()
        self.vae_scale_factor = 1

    @property
    def num_labels(self) -> int:
        """Labels the UNet can be conditioned on (excluding the null label)."""
        n = int(self.unet.config.num_class_embeds)
        return n - 1 if self.config.null_class_id is not None else n

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str] | None = None, class_ids: int | Sequence[int] = 0, *,
                 seeds: int | Sequence[int] | None = None,
                 criterion: CriterionSpec | Sequence[CriterionSpec] = "entropy",
                 fg_scale: float | Sequence[float] = 0.03, guidance_freq: int = 5, guidance_scale: float = 1.0,
                 num_inference_steps: int = 30, height: int | None = None, width: int | None = None,
                 eta: float = 0.0, num_images_per_prompt: int = 1,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, output_type: str = "pt", image_size: int | tuple | None = None,
                 return_dict: bool = True, callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
                 mode: str = "latent_shift_normalized", hardness: HardnessCriterion | None = None,
                 custom_criteria: Mapping[str, Callable] | None = None,
                 classifier_mean: Sequence[float] = PIXEL_MEAN, classifier_std: Sequence[float] = PIXEL_STD,
                 classifier_size: int | None = None, compile: bool | str = False,
                 retry_corrupted: bool = True) -> FeedbackGuidedPipelineOutput | tuple:
        """Generate ``num_images_per_prompt`` images per row, conditioned on its class id.

        ``prompt`` is accepted for call compatibility with the other families (plan rows carry
        one) and is not used; give None or strings (there is no text, so no ``negative_prompt``:
        CFG's unconditional branch is the null label). Per-row: ``class_ids`` (UNet labels, also
        the classifier targets y), ``criterion``, ``fg_scale``, ``seeds`` as
        :meth:`FeedbackGuidedPipeline.__call__`. ``guidance_scale``: CFG weight on the class
        label (on when > 1; needs ``null_class_id``). ``height``/``width``: None or the UNet's
        ``sample_size`` (no resizing in pixel space; ``image_size`` resizes the output).
        ``num_images_per_prompt``, ``generator``, ``latents`` ((B*n, C, S, S) pixels in [-1, 1]
        noise), ``output_type`` ("pt" | "np" | "pil"; no latent space here), ``return_dict`` and
        ``callback_on_step_end`` (tensor input "latents" = the pixel tensor being denoised) as
        the SD family. Returns :class:`~._diffusers_api.FeedbackGuidedPipelineOutput` with
        images (B*n,3,H,W) float32 in [0,1] for "pt" (grey models replicated to 3 channels).
        """
        check_sd_scheduler(self.scheduler)
        call = self._begin_call(guidance_scale=guidance_scale, output_type=output_type, image_size=image_size,
                                callback=callback_on_step_end, callback_inputs=callback_on_step_end_tensor_inputs,
                                num_images_per_prompt=num_images_per_prompt, seeds=seeds, generator=generator,
                                allowed_outputs=("pt", "np", "pil"))
        size = int(self.unet.config.sample_size if isinstance(self.unet.config.sample_size, int)
                   else self.unet.config.sample_size[0])
        for name, v in (("height", height), ("width", width)):
            if v is not None and v != size:
                raise ValueError(f"{name}={v}: the pixel-space UNet generates {size}x{size} images only")
        if guidance_scale > 1.0 and self.config.null_class_id is None:
            raise ValueError("guidance_scale > 1 (CFG) needs a UNet trained with a null label: "
                             "null_class_id is None for this pipeline")
        if prompt is None:
            prompt = ""
        device = self._execution_device
        rows, fns = self._prepare_rows(prompt, class_ids, criterion, fg_scale, call["seeds"],
                                       guidance_freq=guidance_freq, num_inference_steps=num_inference_steps,
                                       probe_size=classifier_size or size, device=device, hardness=hardness,
                                       custom_criteria=custom_criteria)
        bad = [int(c) for c in rows.class_ids if int(c) >= self.num_labels]
        if bad:
            raise ValueError(f"class_ids {bad[:5]} are outside the UNet's labels [0, {self.num_labels})")
        rows, _ = expand_rows(rows, num_images_per_prompt)
        noise = NoiseSource(generator, latents, len(rows.seeds),
                            (len(rows.seeds), self.unet.config.in_channels, size, size))
        pred = self.scheduler.config.prediction_type
        denoiser = self.__dict__.setdefault("_fg_pixel_denoisers", {}).setdefault(pred, PixelDenoiser(self.unet, pred))
        decoder = self.__dict__.setdefault("_fg_pixel_decoder", PixelDecoder())
        step = None
        if self.classifier is not None:
            step = self._guidance_step(denoiser, decoder, fns, mode=mode, mean=classifier_mean, std=classifier_std,
                                       classifier_size=classifier_size, compile=compile)

        def run(r: Rows, crit_index: torch.Tensor, idx: list[int], gen: Generators, init: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self._sample_pixels(r, crit_index, step, gen, init, call, callback_on_step_end,
                                       guidance_freq=guidance_freq, num_inference_steps=num_inference_steps,
                                       size=size, eta=eta, mode=mode, device=device)

        sample = self._sample_fn(fns, hardness, custom_criteria, device, run)
        return self._run_with_retry(rows, sample, retry_corrupted, noise, call, output_type, return_dict)

    def _sample_pixels(self, rows: Rows, crit_index: torch.Tensor, step: FeedbackGuidanceStep | None,
                       generators: Generators, init: torch.Tensor | None, call: dict, callback: Callable | None, *,
                       guidance_freq: int, num_inference_steps: int, size: int, eta: float, mode: str,
                       device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One run: (images (B,3,S,S) in [0,1], criterion (B,) or None)."""
        B = len(rows.seeds)
        dtype = self.unet.dtype
        y = rows.class_ids.to(device)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        shape = (B, self.unet.config.in_channels, size, size)
        latents = randn_tensor(shape, generator=generators, device=device, dtype=dtype) if init is None \
            else init.to(device=device, dtype=dtype)
        latents = latents * self.scheduler.init_noise_sigma
        extra = self._extra_step_kwargs(generators, eta)
        w = rows.fg_scales.to(device)
        guided_any = step is not None and bool((w != 0).any())
        acp = self.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
        with self.progress_bar(total=len(timesteps)) as bar:
            governor = ThreadGovernor()
            for i, t in enumerate(timesteps):
                governor.tick()
                if self.interrupt:
                    continue
                do_cfg = self.do_classifier_free_guidance
                labels = torch.cat([torch.full_like(y, int(self.config.null_class_id)), y]) if do_cfg else y
                model_in = torch.cat([latents] * 2) if do_cfg else latents                   # §2 step 1
                model_in = self.scheduler.scale_model_input(model_in, t)
                out = self.unet(model_in, t, class_labels=labels, return_dict=False)[0]
                if do_cfg:
                    out_u, out_c = out.chunk(2)
                    out = out_u + self.guidance_scale * (out_c - out_u)
                if guided_any and i % guidance_freq == 0:                                     # §2 step 2
                    ab = acp[t]
                    sqrt_ab, sqrt_1mab = ab.sqrt(), (1 - ab).sqrt()
                    delta, _ = step(latents, y, w, crit_index, sqrt_1mab, t, sqrt_ab, sqrt_1mab, y)
                    if mode == "latent_shift_normalized":
                        latents = latents + delta                                             # §2 j
                    else:
                        if self.scheduler.config.prediction_type == "v_prediction":
                            delta = delta / sqrt_ab.to(delta.dtype)
                        elif self.scheduler.config.prediction_type == "sample":
                            raise ValueError("mode 'eps_shift' needs an epsilon or v_prediction UNet")
                        out = out + delta
                latents = self.scheduler.step(out, t, latents, **extra, return_dict=False)[0]   # §2 step 3
                latents = self._step_end(call, callback, i, t, {"latents": latents}).pop("latents", latents)
                bar.update()
        images01 = PixelDecoder()(latents.float() * 0.5 + 0.5).clamp(0, 1)
        crit = None
        if step is not None:
            crit = step.criterion_on_images(images01, y, crit_index)
        return images01, crit
