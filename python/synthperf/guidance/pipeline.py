"""FeedbackGuidedPipeline: classifier-feedback-guided diffusers sampling (spec §1-§2).

Built from components plus any torch classifier ``nn.Module``, or with
:meth:`FeedbackGuidedPipeline.from_local` (a local diffusers folder, ``local_files_only``).
The family follows the components: ``unet`` (+ ``vae``, ``text_encoder``, ``tokenizer``,
``scheduler``) is the Stable Diffusion family implemented here; ``transformer`` (+ ``vae``,
``text_encoder(_2)``, ``tokenizer(_2)``, ``scheduler``) gives a
:class:`~synthperf.guidance.pipeline_flux.FeedbackGuidedFluxPipeline` (a subclass), and
``from_local`` on a FLUX folder does the same. SD per denoising iteration i with timestep t:

1. eps_cfg = eps_u + cfg (eps_c - eps_u) at the pre-update z_t (no grad, scale_model_input);
2. if fg_scale != 0 and i % guidance_freq == 0: the guided update of
   :class:`~synthperf.guidance.step.FeedbackGuidanceStep` (UNet -> x0_hat -> blend -> VAE
   decode -> [0,1] -> normalise -> classifier -> criterion -> norm-matched ascent on z_t, or
   the ``eps_shift`` variant that shifts eps_cfg instead);
3. z_{t-1} = scheduler.step(eps_cfg, t, z_t).

With all fg_scale == 0 the loop is exactly diffusers' StableDiffusionPipeline (tested to 1e-5).
Rows are independent: each has its own prompt, class id, criterion, scale and seed, and
its initial noise comes from its own ``torch.Generator(seed)``, so results do not depend on
how rows are batched.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..progress import track
from ._batch import Rows, check_sd_scheduler, is_corrupted, make_rows, retry_seed
from .adapters import SDDecoder, SDDenoiser
from .criteria import HardnessCriterion, resolve_criteria
from .step import IMAGENET_MEAN, IMAGENET_STD, FeedbackGuidanceStep, compile_step

try:
    from diffusers import DiffusionPipeline
    from diffusers.utils.torch_utils import randn_tensor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("synthperf.guidance needs the 'diffusion' extra: pip install 'synthperf[diffusion]'") from exc


@dataclass
class FeedbackGuidedOutput:
    """images (B,3,H,W) float32 in [0,1]; criterion (B,) float64 final value (NaN without a
    classifier); corrupted (B,) bool (NaN/black after one regeneration); seeds (B,) the seed
    of the kept image (the retry seed for regenerated rows); regenerated (B,) bool."""

    images: torch.Tensor
    criterion: np.ndarray
    corrupted: np.ndarray
    seeds: np.ndarray
    regenerated: np.ndarray


def infer_num_classes(classifier: nn.Module, size: int, device, dtype) -> int:
    """K from ``num_classes``/``n_classes`` attributes, else from one forward on a blank image."""
    for attr in ("num_classes", "n_classes"):
        k = getattr(classifier, attr, None)
        if isinstance(k, int) and k > 0:
            return k
    with torch.no_grad():
        out = classifier(torch.zeros(1, 3, size, size, device=device, dtype=dtype))
    if out.ndim != 2:
        raise ValueError(f"classifier must return (B, K) logits, got shape {tuple(out.shape)}")
    return int(out.shape[1])


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class _GuidedSamplingMixin:
    """Shared machinery: argument checks, the step cache, regeneration of corrupted rows."""

    def _prepare_rows(self, prompt, class_ids, criterion, fg_scale, seeds, *, guidance_freq: int,
                      num_inference_steps: int, probe_size: int, device, hardness, custom_criteria
                      ) -> tuple[Rows, list]:
        """Validate the scalar knobs and the per-row arguments; returns (rows, unique criteria)."""
        _positive_int(guidance_freq, "guidance_freq")
        _positive_int(num_inference_steps, "num_inference_steps")
        n_classes = None
        if self.classifier is not None:
            params = list(self.classifier.parameters())
            n_classes = infer_num_classes(self.classifier, probe_size, device,
                                          params[0].dtype if params else torch.float32)
        rows = make_rows(prompt, class_ids, criterion, fg_scale, seeds, n_classes)
        fns, _ = resolve_criteria(rows.criteria, hardness=hardness, custom=custom_criteria)
        guided = bool((rows.fg_scales != 0).any())
        if self.classifier is None and guided:
            raise ValueError("fg_scale != 0 needs a classifier: pass classifier= to the pipeline")
        if guided and getattr(self.classifier, "supports_gradients", True) is False:
            raise ValueError(f"fg_scale must be 0 with {type(self.classifier).__name__}: it supports the forward "
                             "criterion only (gradients through a TensorFlow/Keras model into torch latents are "
                             "not available). Use a torch classifier for guidance.")
        return rows, fns

    def _sample_fn(self, fns: list, hardness, custom_criteria, device, run: Callable) -> Callable:
        """Wrap ``run(rows, crit_index)`` so a row subset (the retry) indexes the cached step's criteria."""

        def sample(r: Rows):
            sub_fns, sub_index = resolve_criteria(r.criteria, hardness=hardness, custom=custom_criteria)
            remap = torch.tensor([next(j for j, f in enumerate(fns) if f is g) for g in sub_fns], dtype=torch.long)
            return run(r, remap[sub_index].to(device))

        return sample

    def _guidance_step(self, denoiser: nn.Module, decoder: nn.Module, fns: list, *, mode: str,
                       mean: Sequence[float], std: Sequence[float], classifier_size: int | None,
                       compile: bool | str) -> FeedbackGuidanceStep:
        cache = self.__dict__.setdefault("_fg_step_cache", {})
        key = (id(denoiser), id(decoder), tuple(id(f) for f in fns), mode, tuple(mean), tuple(std),
               classifier_size, compile)
        if key not in cache:
            step = FeedbackGuidanceStep(denoiser, decoder, self.classifier, fns, mode=mode, mean=mean, std=std,
                                        classifier_size=classifier_size)
            if compile:
                step = compile_step(step, backend="inductor" if compile is True else str(compile))
            cache[key] = (step, denoiser, decoder, fns)  # keep referenced objects alive for the id() key
        return cache[key][0]

    def _run_with_retry(self, rows: Rows, sample_fn: Callable[[Rows], tuple[torch.Tensor, torch.Tensor | None]],
                        retry_corrupted: bool) -> FeedbackGuidedOutput:
        images, crit = sample_fn(rows)
        bad = is_corrupted(images, crit)
        seeds = np.array(rows.seeds, dtype=np.int64)
        regenerated = np.zeros(len(rows.seeds), dtype=bool)
        if retry_corrupted and bool(bad.any()):
            idx = torch.nonzero(bad).flatten().tolist()
            sub = rows.subset(idx)
            sub.seeds = [retry_seed(s) for s in sub.seeds]
            img2, crit2 = sample_fn(sub)
            images = images.clone()
            images[idx] = img2
            if crit is not None:
                crit = crit.clone()
                crit[idx] = crit2
            seeds[idx] = sub.seeds
            regenerated[idx] = True
            bad = is_corrupted(images, crit)
        crit_np = (np.full(len(seeds), np.nan) if crit is None else crit.double().cpu().numpy())
        return FeedbackGuidedOutput(images.float().cpu(), crit_np, bad.cpu().numpy(), seeds, regenerated)


def family_of_entries(entries: Mapping[str, Any]) -> type:
    """The pipeline class for a model_index.json mapping: FLUX, pixel-space or SD family."""
    if "transformer" in entries and "unet" not in entries:
        from .pipeline_flux import FeedbackGuidedFluxPipeline

        return FeedbackGuidedFluxPipeline
    if "unet" in entries and "vae" not in entries and "text_encoder" not in entries:
        from .pipeline_pixel import FeedbackGuidedPixelPipeline

        return FeedbackGuidedPixelPipeline
    return FeedbackGuidedPipeline


class FeedbackGuidedPipeline(DiffusionPipeline, _GuidedSamplingMixin):
    """Stable-Diffusion-family pipeline with classifier feedback guidance (spec §2).

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` (CLIPTextModel-like), ``tokenizer``,
    ``unet`` (UNet2DConditionModel, epsilon or v_prediction), ``scheduler`` (DDPM-type, see
    ``DDPM_TYPE_SCHEDULERS``), ``classifier`` (optional torch nn.Module on normalised [0,1]
    images returning (B, K) logits). All parameters are frozen (requires_grad=False).
    ``FeedbackGuidedPipeline(transformer=..., ...)`` (no ``unet``) constructs the FLUX family,
    :class:`~synthperf.guidance.pipeline_flux.FeedbackGuidedFluxPipeline`, a subclass.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["classifier"]

    def __new__(cls, *args: Any, **kwargs: Any):
        # FeedbackGuidedPipeline(transformer=..., ...) builds the FLUX family (a subclass, so
        # Python then runs the subclass's __init__ with the same arguments).
        if cls is FeedbackGuidedPipeline and "transformer" in kwargs and "unet" not in kwargs:
            from .pipeline_flux import FeedbackGuidedFluxPipeline

            cls = FeedbackGuidedFluxPipeline
        elif cls is FeedbackGuidedPipeline and "unet" in kwargs and "vae" not in kwargs and not args:
            from .pipeline_pixel import FeedbackGuidedPixelPipeline

            cls = FeedbackGuidedPixelPipeline
        return super().__new__(cls)

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, classifier: nn.Module | None = None) -> None:
        super().__init__()
        if classifier is not None and not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch nn.Module, got {type(classifier).__name__}")
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              scheduler=scheduler, classifier=classifier)
        for m in (vae, text_encoder, unet, classifier):
            if isinstance(m, nn.Module):
                m.requires_grad_(False).eval()
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        """Device of the first diffusers component (a plain classifier has no ``.device``)."""
        for name in ("unet", "transformer", "vae", "text_encoder"):
            m = getattr(self, name, None)
            if isinstance(m, nn.Module):
                for p in m.parameters():
                    return p.device
        return torch.device("cpu")

    def to(self, *args: Any, **kwargs: Any):
        """``DiffusionPipeline.to`` (device and/or dtype), also moving a plain classifier module.

        diffusers reads ``module.dtype`` on every component, which a plain ``nn.Module`` lacks,
        so the classifier is moved here with ``nn.Module.to`` and hidden from diffusers meanwhile.
        """
        clf = getattr(self, "classifier", None)
        if clf is None or hasattr(clf, "dtype"):
            return super().to(*args, **kwargs)
        clf.to(*args, **{k: v for k, v in kwargs.items() if k in ("device", "dtype", "non_blocking")})
        object.__setattr__(self, "classifier", None)
        try:
            super().to(*args, **kwargs)
        finally:
            object.__setattr__(self, "classifier", clf)
        return self

    @classmethod
    def from_local(cls, path: str | Path, *, classifier: nn.Module | None = None, **kwargs: Any) -> "FeedbackGuidedPipeline":
        """Load a local diffusers folder (model_index.json, vae/, unet/ or transformer/, ...).

        Only ``from_pretrained(local_dir, local_files_only=True)``: nothing is downloaded. A
        folder with a ``transformer`` entry loads as FeedbackGuidedFluxPipeline (when called on
        this base class). Raises ValueError for a missing folder or one without model_index.json.
        """
        import json

        p = Path(path)
        if not p.is_dir():
            raise ValueError(f"model directory {str(path)!r} does not exist (nothing is downloaded; "
                             "pass a local diffusers pipeline folder)")
        index = p / "model_index.json"
        if not index.is_file():
            raise ValueError(f"{str(path)!r} has no model_index.json: not a diffusers pipeline folder")
        try:
            entries = json.loads(index.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{str(index)!r} is not valid JSON: {exc}") from None
        target = family_of_entries(entries) if cls is FeedbackGuidedPipeline else cls
        return target.from_pretrained(str(p), classifier=classifier, local_files_only=True, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs: Any):
        """``DiffusionPipeline.from_pretrained``; on this base class a LOCAL folder picks its family.

        A folder with ``transformer`` (no ``unet``) loads as FeedbackGuidedFluxPipeline, one with
        ``unet`` but neither ``vae`` nor ``text_encoder`` (a class-conditional pixel UNet) as
        FeedbackGuidedPixelPipeline; anything else as the SD family.
        """
        import json

        index = Path(str(pretrained_model_name_or_path)) / "model_index.json"
        if cls is FeedbackGuidedPipeline and index.is_file():
            try:
                entries = json.loads(index.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{str(index)!r} is not valid JSON: {exc}") from None
            target = family_of_entries(entries)
            if target is not cls:
                return target.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ------------------------------------------------------------------ prompts
    def _encode(self, prompts: list[str], device) -> torch.Tensor:
        """Text embeddings (B, L, d) exactly as StableDiffusionPipeline.encode_prompt (clip_skip=None)."""
        tok = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
        use_mask = getattr(self.text_encoder.config, "use_attention_mask", False)
        mask = tok.attention_mask.to(device) if use_mask else None
        emb = self.text_encoder(tok.input_ids.to(device), attention_mask=mask)[0]
        return emb.to(dtype=self.text_encoder.dtype, device=device)

    def _encode_uncond(self, n: int, length: int, device) -> torch.Tensor:
        tok = self.tokenizer([""] * n, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        use_mask = getattr(self.text_encoder.config, "use_attention_mask", False)
        mask = tok.attention_mask.to(device) if use_mask else None
        return self.text_encoder(tok.input_ids.to(device), attention_mask=mask)[0].to(self.text_encoder.dtype)

    def _extra_step_kwargs(self, generators, eta: float) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters)
        extra = {}
        if "eta" in params:
            extra["eta"] = eta
        if "generator" in params:
            extra["generator"] = generators
        return extra

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str], class_ids: int | Sequence[int] = 0, *,
                 seeds: int | Sequence[int] = 0, criterion: Any = "entropy", fg_scale: float | Sequence[float] = 0.03,
                 guidance_freq: int = 5, guidance_scale: float = 5.0, num_inference_steps: int = 30,
                 height: int | None = None, width: int | None = None, eta: float = 0.0,
                 mode: str = "latent_shift_normalized", hardness: HardnessCriterion | None = None,
                 custom_criteria: Mapping[str, Callable] | None = None,
                 classifier_mean: Sequence[float] = IMAGENET_MEAN, classifier_std: Sequence[float] = IMAGENET_STD,
                 classifier_size: int | None = None, compile: bool | str = False,
                 retry_corrupted: bool = True) -> FeedbackGuidedOutput:
        """Generate one image per row.

        Per-row arguments (scalar = same for every row; lists must share one length B):
        ``prompt``, ``class_ids`` (targets y in [0, K)), ``criterion`` ("loss", "entropy",
        "hardness", a key of ``custom_criteria`` or a callable), ``fg_scale`` (w; 0 = no
        guidance), ``seeds`` (one torch.Generator per row). ``guidance_freq``: guide when
        i % guidance_freq == 0. ``guidance_scale``: CFG weight (CFG on when > 1).
        ``compile``: False, True (inductor) or a torch.compile backend name for the step.
        Returns :class:`FeedbackGuidedOutput` (images (B,3,H,W) in [0,1]).
        """
        check_sd_scheduler(self.scheduler)
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        for name, v in (("height", height), ("width", width)):
            if v % self.vae_scale_factor:
                raise ValueError(f"{name}={v} must be divisible by the VAE scale factor {self.vae_scale_factor}")
        device = self._execution_device
        rows, fns = self._prepare_rows(prompt, class_ids, criterion, fg_scale, seeds, guidance_freq=guidance_freq,
                                       num_inference_steps=num_inference_steps, probe_size=classifier_size or height,
                                       device=device, hardness=hardness, custom_criteria=custom_criteria)
        pred = self.scheduler.config.prediction_type
        denoiser = self.__dict__.setdefault("_fg_denoisers", {}).setdefault(pred, SDDenoiser(self.unet, pred))
        decoder = self.__dict__.setdefault("_fg_decoder", SDDecoder(self.vae))
        step = None
        if self.classifier is not None:
            step = self._guidance_step(denoiser, decoder, fns, mode=mode, mean=classifier_mean, std=classifier_std,
                                       classifier_size=classifier_size, compile=compile)

        def run(r: Rows, crit_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self._sample(r, crit_index, step, guidance_freq=guidance_freq, guidance_scale=guidance_scale,
                                num_inference_steps=num_inference_steps, height=height, width=width, eta=eta,
                                mode=mode, device=device)

        sample = self._sample_fn(fns, hardness, custom_criteria, device, run)
        return self._run_with_retry(rows, sample, retry_corrupted)

    def _sample(self, rows: Rows, crit_index: torch.Tensor, step: FeedbackGuidanceStep | None, *, guidance_freq: int,
                guidance_scale: float, num_inference_steps: int, height: int, width: int, eta: float, mode: str,
                device) -> tuple[torch.Tensor, torch.Tensor | None]:
        B = len(rows.prompts)
        do_cfg = guidance_scale > 1.0
        cond = self._encode(rows.prompts, device)
        embeds = torch.cat([self._encode_uncond(B, cond.shape[1], device), cond]) if do_cfg else cond
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in rows.seeds]
        shape = (B, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = randn_tensor(shape, generator=generators, device=device, dtype=cond.dtype)
        latents = latents * self.scheduler.init_noise_sigma
        extra = self._extra_step_kwargs(generators, eta)
        y = rows.class_ids.to(device)
        w = rows.fg_scales.to(device)
        guided_any = step is not None and bool((w != 0).any())
        acp = self.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
        for i, t in enumerate(track(self.scheduler.timesteps, "feedback-guided sampling")):
            model_in = torch.cat([latents] * 2) if do_cfg else latents                       # §2 step 1
            model_in = self.scheduler.scale_model_input(model_in, t)
            noise_pred = self.unet(model_in, t, encoder_hidden_states=embeds, timestep_cond=None,
                                   cross_attention_kwargs=None, added_cond_kwargs=None, return_dict=False)[0]
            if do_cfg:
                eps_u, eps_c = noise_pred.chunk(2)
                noise_pred = eps_u + guidance_scale * (eps_c - eps_u)
            if guided_any and i % guidance_freq == 0:                                          # §2 step 2
                ab = acp[t]
                sqrt_ab, sqrt_1mab = ab.sqrt(), (1 - ab).sqrt()
                delta, _ = step(latents, y, w, crit_index, sqrt_1mab, t, sqrt_ab, sqrt_1mab, cond)
                if mode == "latent_shift_normalized":
                    latents = latents + delta                                                  # §2 j
                else:
                    if self.scheduler.config.prediction_type == "v_prediction":
                        delta = delta / sqrt_ab.to(delta.dtype)                                # d v = d eps / sqrt(ab)
                    noise_pred = noise_pred + delta
            latents = self.scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]  # §2 step 3
        image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False, generator=generators)[0]
        images01 = (image * 0.5 + 0.5).clamp(0, 1)
        crit = None
        if step is not None:
            crit = step.criterion_on_images(images01, y, crit_index)
        return images01, crit
