"""The guidance step compiled vs eager (issue 7 'Compiled step'): values within 1e-4.

Inductor on CPU compiles the tiny SD step in minutes on a 2-core machine (measured in
benchmarks/bench_guidance.py), so the test uses the ``aot_eager`` backend: Dynamo capture
plus AOTAutograd tracing of forward and backward, the same graphs inductor would lower.
"""
from __future__ import annotations

import torch

import synthperf
from _tiny import TinyClassifier, sd_components
from synthperf.guidance import FeedbackGuidedPipeline

synthperf.disable_progress()


def test_compiled_pipeline_matches_eager():
    comps = sd_components()
    fp = FeedbackGuidedPipeline(**comps, classifier=TinyClassifier())
    kw = dict(criterion=["entropy", "loss"], fg_scale=[0.2, 0.1], guidance_freq=1, num_inference_steps=2,
              height=16, width=16, guidance_scale=3.0)
    eager = fp(["cat", "dog"], [1, 2], seeds=[0, 1], **kw)
    compiled = fp(["cat", "dog"], [1, 2], seeds=[0, 1], compile="aot_eager", **kw)
    assert (eager.images - compiled.images).abs().max() <= 1e-4
    assert abs(eager.criterion - compiled.criterion).max() <= 1e-4
    # the guided step saw two different timesteps: tensor arguments, so no per-step recompilation
    step = fp._fg_step_cache[next(k for k in fp._fg_step_cache if k[-1] == "aot_eager")][0]
    assert isinstance(step, torch._dynamo.eval_frame.OptimizedModule)
