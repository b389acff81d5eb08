"""Feedback-guided synthesis (Askari-Hemmat et al., TMLR 2024) on diffusers: ``synthperf.guidance``.

- :class:`FeedbackGuidedPipeline` (SD family; FLUX is not implemented yet);
- criteria ``loss``, ``entropy``, ``hardness`` (:class:`HardnessCriterion`) and custom callables;
- :class:`FeedbackGuidanceStep`, the per-step guided update that runs eagerly or compiled.

The pipelines need the ``diffusion`` extra (diffusers, transformers); they import lazily so
``import synthperf.guidance`` works without it for the criteria and the step.
"""
from __future__ import annotations

from .adapters import FeatureClassifier, SmallResNet
from .criteria import CRITERION_NAMES, HardnessCriterion, entropy_criterion, loss_criterion
from .step import GUIDANCE_MODES, FeedbackGuidanceStep, compile_step

_LAZY = {
    "FeedbackGuidedPipeline": ".pipeline",
    "FeedbackGuidedOutput": ".pipeline",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CRITERION_NAMES", "GUIDANCE_MODES", "FeatureClassifier", "FeedbackGuidanceStep", "HardnessCriterion",
           "SmallResNet", "compile_step", "entropy_criterion", "loss_criterion", *_LAZY]
