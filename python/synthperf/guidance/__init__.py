"""Feedback-guided synthesis (Askari-Hemmat et al., TMLR 2024) on diffusers: ``synthperf.guidance``.

- :class:`FeedbackGuidedPipeline`: the SD family (UNet, DDPM-type schedulers); built with a
  ``transformer`` (or loaded from a FLUX folder) it is a :class:`FeedbackGuidedFluxPipeline`
  (flow matching, x0_hat = z - sigma v);
- criteria ``loss``, ``entropy``, ``hardness`` (:class:`HardnessCriterion`) and custom callables;
- :class:`FeedbackGuidedPixelPipeline`: class-conditional pixel-space UNet2DModel (no VAE, no
  text encoder), e.g. the digits model of :func:`train_digits_diffusion` /
  :func:`make_digits_synthetic` (the shared demo contract);
- :func:`run_longtail_experiment`: long-tailed digits topped up with real-only / unguided /
  feedback-guided samples (``synthperf guidance longtail``);
- :class:`FeedbackGuidanceStep`, the per-step guided update that runs eagerly or compiled;
- classifiers: any torch ``nn.Module``, :class:`SmallResNet` (the embedded digits default,
  :func:`train_digits_classifier`), :class:`KerasTorchClassifier` (``tf`` extra, forward only);
- generation plans (:mod:`.plan`) and resumable sharded generation (:mod:`.generate`), also as
  ``synthperf guidance plan|generate|train-digits`` (:mod:`.cli`).

Every name is imported on first use: ``import synthperf.guidance`` loads neither torch nor
diffusers; the pipelines need the ``diffusion`` extra (diffusers, transformers).
"""
from __future__ import annotations

_LAZY = {
    "FeedbackGuidedPipeline": ".pipeline",
    "FeedbackGuidedOutput": ".pipeline",
    "FeedbackGuidedPipelineOutput": "._diffusers_api",
    "FeedbackGuidedFluxPipeline": ".pipeline_flux",
    "FeedbackGuidedPixelPipeline": ".pipeline_pixel",
    "make_digits_synthetic": ".digits",
    "train_digits_diffusion": ".digits",
    "run_longtail_experiment": ".longtail",
    "summarize_longtail": ".longtail",
    "plot_longtail": ".longtail",
    "FeatureClassifier": ".adapters",
    "SmallResNet": ".adapters",
    "KerasTorchClassifier": ".adapters",
    "CRITERION_NAMES": ".criteria",
    "HardnessCriterion": ".criteria",
    "entropy_criterion": ".criteria",
    "loss_criterion": ".criteria",
    "GUIDANCE_MODES": ".step",
    "FeedbackGuidanceStep": ".step",
    "compile_step": ".step",
    "ClassifierInfo": ".classifiers",
    "load_classifier": ".classifiers",
    "save_classifier": ".classifiers",
    "train_digits_classifier": ".classifiers",
    "digits_hardness": ".classifiers",
    "PLAN_COLUMNS": ".plan",
    "build_plan": ".plan",
    "read_plan": ".plan",
    "write_plan": ".plan",
    "GenerateJob": ".generate",
    "run_generation": ".generate",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = list(sorted(_LAZY))
