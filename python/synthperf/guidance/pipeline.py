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
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar, Union

import numpy as np
import torch
from torch import nn

from .._threads import ThreadGovernor
from ._batch import Rows, check_sd_scheduler, is_corrupted, make_rows, retry_seed
from ._diffusers_api import (FeedbackGuidedPipelineOutput, Generators, LibraryProgress, NoiseSource, StepProgress,
                             TextTokenizer,
                             check_callback, check_output_args, expand_rows, per_row_strings, positive_count,
                             postprocess, run_callback)
from .adapters import SDDecoder, SDDenoiser
from .criteria import CriterionSpec, HardnessCriterion, resolve_criteria
from .step import IMAGENET_MEAN, IMAGENET_STD, FeedbackGuidanceStep, compile_step

try:
    from diffusers import AutoencoderKL, DiffusionPipeline, SchedulerMixin, UNet2DConditionModel
    from diffusers.utils.torch_utils import randn_tensor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("synthperf.guidance needs the 'diffusion' extra: pip install 'synthperf[diffusion]'") from exc


#: Backwards-compatible name of :class:`FeedbackGuidedPipelineOutput` (a ``BaseOutput``).
FeedbackGuidedOutput = FeedbackGuidedPipelineOutput

#: What ``pipe.to(...)`` takes, as ``DiffusionPipeline.to`` / ``nn.Module.to``: a device
#: ("cuda", 0, torch.device) and/or a torch.dtype; keywords device=, dtype=, silence_dtype_warnings=,
#: non_blocking= (the classifier's nn.Module.to only).
DeviceOrDtype = Union[str, int, torch.device, torch.dtype, None]

_T = TypeVar("_T")


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


_positive_int = positive_count


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
        """Wrap ``run(rows, crit_index, idx, gen, init)`` so a row subset (the retry) indexes the
        cached step's criteria; ``idx`` are the images' positions in the full batch."""

        def sample(r: Rows, idx: list[int], gen: Generators, init: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
            sub_fns, sub_index = resolve_criteria(r.criteria, hardness=hardness, custom=custom_criteria)
            remap = torch.tensor([next(j for j, f in enumerate(fns) if f is g) for g in sub_fns], dtype=torch.long)
            return run(r, remap[sub_index].to(device), idx, gen, init)

        return sample

    def _begin_call(self, *, guidance_scale: float, output_type: str, image_size: int | Sequence[int] | None,
                    callback: Callable | None, callback_inputs: str | Sequence[str] | None,
                    num_images_per_prompt: int, seeds: int | Sequence[int] | None, generator: Generators | None,
                    allowed_outputs: Sequence[str] = ("pt", "np", "pil", "latent")) -> dict:
        """Checks shared by every family's ``__call__``; sets the diffusers-style call state."""
        size = check_output_args(output_type, image_size, allowed_outputs)
        names = check_callback(callback, callback_inputs, self._callback_tensor_inputs)
        positive_count(num_images_per_prompt, "num_images_per_prompt")
        if seeds is not None and generator is not None:
            raise ValueError("pass seeds= or generator=, not both (generator= draws the noise as diffusers does)")
        self._guidance_scale = guidance_scale
        self._interrupt = False
        return {"size": size, "callback_names": names, "seeds": 0 if seeds is None else seeds,
                "guidance_scale": guidance_scale}

    def _step_end(self, call: dict, callback: Callable | None, i: int, t: torch.Tensor,
                  tensors: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """Run ``callback_on_step_end`` (when given) on ``tensors``; returns the replacements."""
        if callback is None:
            return {}
        return run_callback(self, callback, call["callback_names"], i, t, tensors)

    def _guidance_step(self, denoiser: nn.Module, decoder: nn.Module, fns: list, *, mode: str,
                       mean: Sequence[float], std: Sequence[float], classifier_size: int | None,
                       compile: bool | str) -> FeedbackGuidanceStep:
        cache = self.__dict__.setdefault("_fg_step_cache", {})
        key = (id(denoiser), id(decoder), tuple(id(f) for f in fns), mode, tuple(mean), tuple(std),
               classifier_size, compile)
        if key not in cache:
            step = FeedbackGuidanceStep(denoiser, decoder, self.classifier, fns, mode=mode, mean=mean, std=std,
                                        classifier_size=classifier_size, nonfinite_z="propagate")
            # a row whose latents go NaN mid-loop stays NaN alone; the post-loop rule (spec §2)
            # regenerates it once, instead of one bad row failing the whole batch
            if compile:
                step = compile_step(step, backend="inductor" if compile is True else str(compile))
            cache[key] = (step, denoiser, decoder, fns)  # keep referenced objects alive for the id() key
        return cache[key][0]

    def _run_with_retry(self, rows: Rows, sample_fn: Callable, retry_corrupted: bool, noise: NoiseSource,
                        call: dict, output_type: str, return_dict: bool):
        """Sample every image, regenerate corrupted ones once (spec §2 post-loop), format the output."""
        all_idx = list(range(len(rows.seeds)))
        gen, init = noise.draw(rows, all_idx)
        images, crit = sample_fn(rows, all_idx, gen, init)
        latent = output_type == "latent"

        def corrupted(x, c):
            if latent:
                return ~torch.isfinite(x.flatten(1)).all(dim=1)
            return is_corrupted(x, c)

        bad = corrupted(images, crit)
        seeds = np.array(noise.seeds(rows, all_idx), dtype=np.int64)
        regenerated = np.zeros(len(rows.seeds), dtype=bool)
        if retry_corrupted and noise.can_retry and bool(bad.any()):
            idx = torch.nonzero(bad).flatten().tolist()
            sub = rows.subset(idx)
            if noise.generator is None:
                sub.seeds = [retry_seed(s) for s in sub.seeds]
            gen, init = noise.draw(sub, idx)
            # a callback may have changed the call state (SDCFGCutoffCallback sets _guidance_scale)
            self._guidance_scale, self._interrupt = call["guidance_scale"], False
            img2, crit2 = sample_fn(sub, idx, gen, init)
            images = images.clone()
            images[idx] = img2
            if crit is not None:
                crit = crit.clone()
                crit[idx] = crit2
            seeds[idx] = noise.seeds(sub, idx)
            regenerated[idx] = True
            bad = corrupted(images, crit)
        crit_np = (np.full(len(seeds), np.nan) if crit is None else crit.double().cpu().numpy())
        out = FeedbackGuidedPipelineOutput(postprocess(images, output_type, call["size"]), crit_np,
                                           bad.cpu().numpy(), seeds, regenerated)
        self.maybe_free_model_hooks()
        return out if return_dict else out.to_tuple()


def family_of_entries(entries: Mapping[str, object]) -> type:
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
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    # diffusers-style call state (read by PipelineCallback objects such as SDCFGCutoffCallback)
    @property
    def guidance_scale(self) -> float:
        return self.__dict__.get("_guidance_scale", 1.0)

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self.guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self.__dict__.get("_num_timesteps", 0)

    @property
    def interrupt(self) -> bool:
        return self.__dict__.get("_interrupt", False)

    def progress_bar(self, iterable: Iterable[_T] | None = None, total: int | None = None
                     ) -> Iterable[_T] | StepProgress:
        """The denoising progress. Until ``set_progress_bar_config(...)`` is called: synthperf's
        (a bar on stderr on a terminal, INFO lines on ``synthperf.progress`` elsewhere, nothing
        after ``synthperf.disable_progress()`` or off torch.distributed rank 0). Once configured:
        diffusers' own tqdm bar with that configuration, so ``disable=True`` silences it."""
        if getattr(self, "_progress_bar_config", None):
            return super().progress_bar(iterable=iterable, total=total)  # type: ignore[misc]
        from ..progress import progress_enabled, track

        try:
            from diffusers.utils.distributed_utils import is_torch_dist_rank_zero

            rank_zero = is_torch_dist_rank_zero()
        except ImportError:  # pragma: no cover - older diffusers
            rank_zero = True
        desc = f"feedback-guided sampling ({type(self).__name__})"
        if iterable is not None:
            return track(iterable, desc) if progress_enabled() and rank_zero else iter(iterable)
        if total is None:
            raise ValueError("Either `total` or `iterable` has to be defined.")
        return LibraryProgress(desc, total, enabled=rank_zero)

    def __new__(cls, *args: object, **kwargs: object) -> FeedbackGuidedPipeline:
        # FeedbackGuidedPipeline(transformer=..., ...) builds the FLUX family (a subclass, so
        # Python then runs the subclass's __init__ with the same arguments).
        if cls is FeedbackGuidedPipeline and "transformer" in kwargs and "unet" not in kwargs:
            from .pipeline_flux import FeedbackGuidedFluxPipeline

            cls = FeedbackGuidedFluxPipeline
        elif cls is FeedbackGuidedPipeline and "unet" in kwargs and "vae" not in kwargs and not args:
            from .pipeline_pixel import FeedbackGuidedPixelPipeline

            cls = FeedbackGuidedPixelPipeline
        return super().__new__(cls)

    def __init__(self, vae: AutoencoderKL, text_encoder: nn.Module, tokenizer: TextTokenizer,
                 unet: UNet2DConditionModel, scheduler: SchedulerMixin, classifier: nn.Module | None = None) -> None:
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

    def to(self, *args: DeviceOrDtype, **kwargs: DeviceOrDtype | bool) -> FeedbackGuidedPipeline:
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
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> FeedbackGuidedPipeline:
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

    def _encode_uncond(self, prompts: list[str], length: int, device) -> torch.Tensor:
        """Negative-prompt embeddings (B, length, d), as encode_prompt's uncond branch ("" = diffusers' default)."""
        tok = self.tokenizer(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
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
                 seeds: int | Sequence[int] | None = None,
                 criterion: CriterionSpec | Sequence[CriterionSpec] = "entropy",
                 fg_scale: float | Sequence[float] = 0.03, guidance_freq: int = 5, guidance_scale: float = 5.0,
                 num_inference_steps: int = 30, height: int | None = None, width: int | None = None,
                 eta: float = 0.0, negative_prompt: str | Sequence[str] | None = None,
                 num_images_per_prompt: int = 1, generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, output_type: str = "pt", image_size: int | tuple | None = None,
                 return_dict: bool = True, callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
                 mode: str = "latent_shift_normalized", hardness: HardnessCriterion | None = None,
                 custom_criteria: Mapping[str, Callable] | None = None,
                 classifier_mean: Sequence[float] = IMAGENET_MEAN, classifier_std: Sequence[float] = IMAGENET_STD,
                 classifier_size: int | None = None, compile: bool | str = False,
                 retry_corrupted: bool = True) -> FeedbackGuidedPipelineOutput | tuple:
        """Generate ``num_images_per_prompt`` images per row (spec §2), with diffusers' call conventions.

        Per-row arguments (scalar = same for every row; lists must share one length B):
        ``prompt``, ``class_ids`` (targets y in [0, K)), ``criterion`` ("loss", "entropy",
        "hardness", a key of ``custom_criteria`` or a callable), ``fg_scale`` (w; 0 = no
        guidance), ``seeds`` (one torch.Generator per row; default 0), ``negative_prompt``
        (CFG's unconditional branch; None = "" as diffusers; ignored when guidance_scale <= 1).
        ``guidance_freq``: guide when i % guidance_freq == 0. ``guidance_scale``: CFG weight
        (CFG on when > 1). ``compile``: False, True (inductor) or a torch.compile backend name.

        diffusers conventions: ``num_images_per_prompt`` = n repeats each row n times in place
        (image k of a row seeded :func:`~._diffusers_api.image_seed`); ``generator`` (instead of
        ``seeds``: one torch.Generator or a list of B*n) draws the noise exactly as
        StableDiffusionPipeline; ``latents`` (B*n, C, H/f, W/f) replaces the initial noise;
        ``output_type`` "pt" (default, (B*n,3,H,W) float32 in [0,1]; diffusers defaults to "pil",
        this package's callers read tensors), "np" (B*n,H,W,3) float32, "pil" list of images or
        "latent"; ``image_size`` (int or (height, width)) resizes the returned images after the
        criterion is taken (upstream saved 256x256); ``return_dict=False`` returns the output's
        tuple; ``callback_on_step_end(pipe, i, t, callback_kwargs)`` runs after every scheduler
        step with the tensors named in ``callback_on_step_end_tensor_inputs`` ("latents",
        "prompt_embeds" = the UNet's batch, [negative; prompt] under CFG, "negative_prompt_embeds")
        and returns a dict whose "latents"/"prompt_embeds" replace the loop's. A regeneration of
        corrupted rows calls it again on that sub-batch. Progress: :meth:`progress_bar`.
        Returns :class:`~._diffusers_api.FeedbackGuidedPipelineOutput` (images, criterion,
        corrupted, seeds, regenerated).
        """
        check_sd_scheduler(self.scheduler)
        call = self._begin_call(guidance_scale=guidance_scale, output_type=output_type, image_size=image_size,
                                callback=callback_on_step_end, callback_inputs=callback_on_step_end_tensor_inputs,
                                num_images_per_prompt=num_images_per_prompt, seeds=seeds, generator=generator)
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        for name, v in (("height", height), ("width", width)):
            if v % self.vae_scale_factor:
                raise ValueError(f"{name}={v} must be divisible by the VAE scale factor {self.vae_scale_factor}")
        device = self._execution_device
        rows, fns = self._prepare_rows(prompt, class_ids, criterion, fg_scale, call["seeds"],
                                       guidance_freq=guidance_freq, num_inference_steps=num_inference_steps,
                                       probe_size=classifier_size or height, device=device, hardness=hardness,
                                       custom_criteria=custom_criteria)
        negatives = per_row_strings(negative_prompt, "negative_prompt", len(rows.seeds), "")
        rows, src = expand_rows(rows, num_images_per_prompt)
        negatives = [negatives[r] for r in src]
        shape = (len(rows.seeds), self.unet.config.in_channels, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        noise = NoiseSource(generator, latents, len(rows.seeds), shape)
        pred = self.scheduler.config.prediction_type
        denoiser = self.__dict__.setdefault("_fg_denoisers", {}).setdefault(pred, SDDenoiser(self.unet, pred))
        decoder = self.__dict__.setdefault("_fg_decoder", SDDecoder(self.vae))
        step = None
        if self.classifier is not None:
            step = self._guidance_step(denoiser, decoder, fns, mode=mode, mean=classifier_mean, std=classifier_std,
                                       classifier_size=classifier_size, compile=compile)

        def run(r: Rows, crit_index: torch.Tensor, idx: list[int], gen: Generators, init: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self._sample(r, crit_index, step, [negatives[i] for i in idx], gen, init, call,
                                callback_on_step_end, guidance_freq=guidance_freq,
                                num_inference_steps=num_inference_steps, height=height, width=width, eta=eta,
                                mode=mode, device=device, decode=output_type != "latent")

        sample = self._sample_fn(fns, hardness, custom_criteria, device, run)
        return self._run_with_retry(rows, sample, retry_corrupted, noise, call, output_type, return_dict)

    def _sample(self, rows: Rows, crit_index: torch.Tensor, step: FeedbackGuidanceStep | None,
                negatives: list[str], generators: Generators, init: torch.Tensor | None, call: dict,
                callback: Callable | None, *,
                guidance_freq: int, num_inference_steps: int, height: int, width: int, eta: float, mode: str,
                device, decode: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One denoising run for ``rows``: (images (B,3,H,W) in [0,1] or final latents, criterion or None)."""
        B = len(rows.prompts)
        cond = self._encode(rows.prompts, device)
        negative_prompt_embeds = (self._encode_uncond(negatives, cond.shape[1], device)
                                  if self.do_classifier_free_guidance else None)
        prompt_embeds = torch.cat([negative_prompt_embeds, cond]) if negative_prompt_embeds is not None else cond
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        shape = (B, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if init is None:
            latents = randn_tensor(shape, generator=generators, device=device, dtype=cond.dtype)
        else:
            latents = init.to(device)
        latents = latents * self.scheduler.init_noise_sigma
        extra = self._extra_step_kwargs(generators, eta)
        y = rows.class_ids.to(device)
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
                model_in = torch.cat([latents] * 2) if do_cfg else latents                   # §2 step 1
                model_in = self.scheduler.scale_model_input(model_in, t)
                noise_pred = self.unet(model_in, t, encoder_hidden_states=prompt_embeds, timestep_cond=None,
                                       cross_attention_kwargs=None, added_cond_kwargs=None, return_dict=False)[0]
                if do_cfg:
                    eps_u, eps_c = noise_pred.chunk(2)
                    noise_pred = eps_u + self.guidance_scale * (eps_c - eps_u)
                if guided_any and i % guidance_freq == 0:                                      # §2 step 2
                    ab = acp[t]
                    sqrt_ab, sqrt_1mab = ab.sqrt(), (1 - ab).sqrt()
                    text = prompt_embeds[-B:]                                                  # quirk 2: text branch
                    delta, _ = step(latents, y, w, crit_index, sqrt_1mab, t, sqrt_ab, sqrt_1mab, text)
                    if mode == "latent_shift_normalized":
                        latents = latents + delta                                              # §2 j
                    else:
                        if self.scheduler.config.prediction_type == "v_prediction":
                            delta = delta / sqrt_ab.to(delta.dtype)                            # d v = d eps / sqrt(ab)
                        noise_pred = noise_pred + delta
                latents = self.scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]  # §2 step 3
                new = self._step_end(call, callback, i, t, {"latents": latents, "prompt_embeds": prompt_embeds,
                                                            "negative_prompt_embeds": negative_prompt_embeds})
                latents = new.pop("latents", latents)
                prompt_embeds = new.pop("prompt_embeds", prompt_embeds)
                bar.update()
        if not decode:
            return latents, None
        image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False, generator=generators)[0]
        images01 = (image * 0.5 + 0.5).clamp(0, 1)
        crit = None
        if step is not None:
            crit = step.criterion_on_images(images01, y, crit_index)
        return images01, crit
