"""diffusers' call conventions for the feedback-guided pipelines (spec §1 "Output"; issue 16).

Shared by the SD, FLUX and pixel families:

- :class:`FeedbackGuidedPipelineOutput`, a ``diffusers.utils.BaseOutput`` (``out.images``,
  ``out["images"]``, ``out[0]``, ``out.to_tuple()``);
- :class:`NoiseSource`: where each image's initial noise comes from (per-row ``seeds``, the
  caller's ``generator=`` or ``latents=``), and what a regeneration of a corrupted row draws;
- :func:`expand_rows` for ``num_images_per_prompt``; :func:`postprocess` for ``output_type``
  ("pt" | "np" | "pil" | "latent") and ``image_size`` (the resize on save upstream did, 256x256,
  :func:`resize_images`);
- :func:`check_callback` / :func:`run_callback` for ``callback_on_step_end``;
- :class:`LibraryProgress`, the progress object a pipeline's ``progress_bar`` gives until
  ``set_progress_bar_config`` is called.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence, Union

import numpy as np
import PIL.Image
import torch

from ._batch import Rows

try:
    from diffusers.image_processor import VaeImageProcessor
    from diffusers.utils import BaseOutput
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("synthperf.guidance needs the 'diffusion' extra: pip install 'synthperf[diffusion]'") from exc

#: Values of ``output_type`` every family accepts ("latent" only where the family has latents).
OUTPUT_TYPES: tuple[str, ...] = ("pt", "np", "pil", "latent")

#: Random generators of a call: one for the batch, or one per image (diffusers' ``generator=``).
Generators = Union[torch.Generator, list[torch.Generator]]

#: The images of a pipeline call by ``output_type``: "pt"/"latent" a tensor, "np" an array, "pil" a list.
PipelineImages = Union[torch.Tensor, np.ndarray, list[PIL.Image.Image]]

_GOLDEN = 0x9E3779B97F4A7C15


@dataclass
class FeedbackGuidedPipelineOutput(BaseOutput):
    """Output of the feedback-guided pipelines (a ``diffusers.utils.BaseOutput``).

    images: by ``output_type``: "pt" (B,3,H,W) float32 tensor in [0,1]; "np" (B,H,W,3) float32
    array in [0,1]; "pil" a list of B RGB ``PIL.Image``; "latent" the final latents (SD/pixel
    (B,C,h,w), FLUX packed (B,N,4C) as diffusers). criterion: (B,) float64 final criterion
    value (NaN without a classifier or with "latent"). corrupted: (B,) bool, NaN/black after
    one regeneration. seeds: (B,) int64, the seed of the kept image (the retry seed for
    regenerated rows; with ``generator=``, each generator's ``initial_seed()``).
    regenerated: (B,) bool. ``return_dict=False`` gives this tuple in this order.
    """

    images: PipelineImages
    criterion: np.ndarray
    corrupted: np.ndarray
    seeds: np.ndarray
    regenerated: np.ndarray


def image_seed(seed: int, k: int) -> int:
    """Seed of image ``k`` of a row with seed ``seed`` under num_images_per_prompt (k=0 keeps it)."""
    return int(seed) if k == 0 else (int(seed) + k * _GOLDEN) % (2 ** 63)


def positive_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def expand_rows(rows: Rows, n: int) -> tuple[Rows, list[int]]:
    """Each row repeated ``n`` times in place (row-major, as diffusers' num_images_per_prompt);
    image k of a row gets :func:`image_seed` (seed, k). Returns (rows, source row per image)."""
    src = [r for r in range(len(rows.seeds)) for _ in range(n)]
    if n == 1:
        return rows, src
    out = rows.subset(src)
    out.seeds = [image_seed(rows.seeds[r], k) for r in range(len(rows.seeds)) for k in range(n)]
    return out, src


def per_row_strings(value: str | Sequence[str] | None, name: str, n_rows: int, default: str | None
                    ) -> list[str] | None:
    """None -> [default]*n (or None when default is None); str -> broadcast; list -> length n_rows."""
    if value is None:
        return None if default is None else [default] * n_rows
    if isinstance(value, str):
        return [value] * n_rows
    if isinstance(value, (list, tuple)):
        if len(value) != n_rows:
            raise ValueError(f"{name} has {len(value)} entries but the batch has {n_rows} prompts")
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise TypeError(f"{name}[{i}] must be a string, got {type(v).__name__}")
        return list(value)
    raise TypeError(f"{name} must be None, a string or a list of strings, got {type(value).__name__}")


class NoiseSource:
    """The initial noise of each image: per-row ``seeds`` (the default), the caller's
    ``generator`` (one torch.Generator for the batch or a list with one per image, drawn as
    diffusers does) or the caller's ``latents`` (shape ``latent_shape``; the scheduler and VAE
    then use the seeds' or the caller's generators). A corrupted row is regenerated from the
    retry seed (seeds), from the generators' continued streams (generator), and not at all
    with ``latents`` (the noise is the caller's; the row is reported corrupted)."""

    def __init__(self, generator: Generators | None, latents: torch.Tensor | None, n_images: int,
                 latent_shape: tuple[int, ...]) -> None:
        if generator is not None:
            gens = generator if isinstance(generator, list) else [generator]
            for i, g in enumerate(gens):
                if not isinstance(g, torch.Generator):
                    raise TypeError(f"generator must be a torch.Generator or a list of them, item {i} is "
                                    f"{type(g).__name__}")
            if isinstance(generator, list) and len(generator) != n_images:
                raise ValueError(f"generator is a list of {len(generator)} generators but the batch has {n_images} "
                                 "images (prompts x num_images_per_prompt)")
        if latents is not None:
            if not isinstance(latents, torch.Tensor):
                raise TypeError(f"latents must be a torch.Tensor, got {type(latents).__name__}")
            if tuple(latents.shape) != tuple(latent_shape):
                raise ValueError(f"latents has shape {tuple(latents.shape)}, expected {tuple(latent_shape)} "
                                 "(images = prompts x num_images_per_prompt)")
        self.generator = generator
        self.latents = latents

    @property
    def can_retry(self) -> bool:
        return self.latents is None

    def draw(self, rows: Rows, idx: Sequence[int]) -> tuple[Generators, torch.Tensor | None]:
        """(generator(s) for randn_tensor / scheduler / VAE, initial latents or None) for images ``idx``."""
        if self.generator is None:
            gen: Generators = [torch.Generator(device="cpu").manual_seed(s) for s in rows.seeds]
        elif isinstance(self.generator, list):
            gen = [self.generator[i] for i in idx]
        else:
            gen = self.generator
        init = None if self.latents is None else self.latents[list(idx)]
        return gen, init

    def seeds(self, rows: Rows, idx: Sequence[int]) -> list[int]:
        if self.generator is None:
            return list(rows.seeds)
        if isinstance(self.generator, list):
            return [int(self.generator[i].initial_seed()) for i in idx]
        return [int(self.generator.initial_seed())] * len(idx)


def check_output_args(output_type: str, image_size: int | Sequence[int] | None, allowed: Sequence[str]
                      ) -> tuple[int, int] | None:
    """Validate ``output_type`` and ``image_size`` (None, int or (height, width)); returns the size."""
    if output_type not in allowed:
        raise ValueError(f"output_type must be one of {tuple(allowed)}, got {output_type!r}")
    if image_size is None:
        return None
    if output_type == "latent":
        raise ValueError("image_size resizes decoded images; it cannot be used with output_type='latent'")
    size = (image_size, image_size) if not isinstance(image_size, (tuple, list)) else tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in size):
        raise ValueError(f"image_size must be a positive integer or (height, width), got {image_size!r}")
    return int(size[0]), int(size[1])


def resize_images(images01: torch.Tensor, size: tuple[int, int]) -> list[PIL.Image.Image]:
    """(B,3,H,W) float in [0,1] -> B RGB ``PIL.Image`` of ``size`` = (height, width), as upstream
    saved (spec §1 "Output"): uint8 = round(255 x) (diffusers' numpy_to_pil), then
    ``Image.resize`` with the bicubic filter (PIL's default for RGB since Pillow 7)."""
    from PIL import Image

    pil = VaeImageProcessor.numpy_to_pil(VaeImageProcessor.pt_to_numpy(images01.float()))
    return [im.resize((size[1], size[0]), Image.Resampling.BICUBIC) for im in pil]


def postprocess(images: torch.Tensor, output_type: str, size: tuple[int, int] | None) -> PipelineImages:
    """Decoded (B,3,H,W) float images in [0,1] (or latents for "latent") -> the ``output_type`` form.

    Without ``size``: "pt" the float32 tensor on the CPU, "np" (B,H,W,3) float32, "pil"
    diffusers' ``numpy_to_pil``. With ``size`` every type is the resized uint8 image of
    :func:`resize_images` (what upstream wrote to disk); "np"/"pt" hold it as float32 / 255.
    """
    if output_type == "latent":
        return images
    if size is not None:
        pil = resize_images(images, size)
        if output_type == "pil":
            return pil
        arr = np.stack([np.asarray(im, dtype=np.float32) / np.float32(255) for im in pil])
        return arr if output_type == "np" else torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    if output_type == "pil":
        return VaeImageProcessor.numpy_to_pil(VaeImageProcessor.pt_to_numpy(images.float()))
    out = images.float().cpu()
    return VaeImageProcessor.pt_to_numpy(out) if output_type == "np" else out


# ----------------------------------------------------------------------------- callbacks
def check_callback(callback: object, tensor_inputs: str | Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    """The tensor names to pass to ``callback_on_step_end`` (a PipelineCallback's own when given)."""
    if callback is None:
        return []
    try:
        from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

        if isinstance(callback, (PipelineCallback, MultiPipelineCallbacks)):
            tensor_inputs = callback.tensor_inputs
    except ImportError:  # pragma: no cover - older diffusers without callbacks.py
        pass
    if not callable(callback):
        raise TypeError(f"callback_on_step_end must be callable, got {type(callback).__name__}")
    names = [tensor_inputs] if isinstance(tensor_inputs, str) else list(tensor_inputs or [])
    bad = [k for k in names if k not in allowed]
    if bad:
        raise ValueError(f"callback_on_step_end_tensor_inputs has {bad}: this pipeline offers {list(allowed)}")
    return names


def run_callback(pipe: object, callback: Callable[..., object], names: Sequence[str], i: int, t: torch.Tensor,
                 tensors: Mapping[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """diffusers' step-end hook: ``callback(pipe, i, t, {name: tensor})``; returns its dict (the
    tensors it replaces). TypeError when it returns something other than a dict."""
    out = callback(pipe, i, t, {k: tensors[k] for k in names})
    if not isinstance(out, dict):
        raise TypeError(f"callback_on_step_end must return a dict (the callback_kwargs it was given, possibly "
                        f"changed), got {type(out).__name__}")
    return out


# ----------------------------------------------------------------------------- progress
class StepProgress(Protocol):
    """What a pipeline's ``progress_bar(total=n)`` gives: a context manager with ``update(n)``
    (:class:`LibraryProgress`, or diffusers' ``tqdm`` bar once ``set_progress_bar_config`` is called)."""

    def __enter__(self) -> StepProgress: ...

    def __exit__(self, *exc: object) -> object: ...

    def update(self, n: int = 1) -> object: ...


class TextTokenizer(Protocol):
    """A Hugging Face tokenizer as the SD family calls it (``transformers.PreTrainedTokenizerBase``,
    e.g. ``CLIPTokenizer``): ``tokenizer(prompts, padding=..., max_length=..., truncation=...,
    return_tensors="pt")`` gives a ``BatchEncoding`` with ``input_ids`` / ``attention_mask`` (B, L)."""

    model_max_length: int

    def __call__(self, text: list[str], *, padding: str, max_length: int, truncation: bool,
                 return_tensors: str) -> Mapping[str, torch.Tensor]: ...


class LibraryProgress:
    """A tqdm-like context manager (``update(n)``) over :func:`synthperf.progress.progress_task`:
    a bar on stderr on a terminal, INFO lines on ``synthperf.progress`` elsewhere, nothing when
    progress is disabled (issue 14 item 7)."""

    def __init__(self, description: str, total: int, enabled: bool = True) -> None:
        self.description, self.total, self.enabled = description, int(total), enabled
        self._cm = None
        self._advance: Callable[..., None] = lambda n=1: None

    def __enter__(self) -> "LibraryProgress":
        if self.enabled:
            from ..progress import progress_task

            self._cm = progress_task(self.description, self.total)
            self._advance = self._cm.__enter__()
        return self

    def update(self, n: int = 1) -> None:
        self._advance(n)

    def __exit__(self, *exc: object) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)
            self._cm = None
