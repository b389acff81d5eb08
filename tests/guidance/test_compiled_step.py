"""The guidance step compiled vs eager (issue 7 'Compiled step'): values within 1e-4.

Inductor on CPU compiles the tiny SD step in about 1.5 min cold on a 2-core machine, so the
test uses the ``aot_eager`` backend: Dynamo capture plus AOTAutograd tracing of forward and
backward, the same graphs inductor would lower. The inductor step itself is checked against
eager (<= 1e-4, and for a second timestep without recompiling) in
benchmarks/bench_guidance_step.py before it is timed.
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


def test_inductor_options_reach_torch_compile(monkeypatch):
    """compile_step turns off inductor's reorder_for_peak_memory (it zeroed the VAE-decoder
    gradient, see step.INDUCTOR_OPTIONS) and folds ``mode`` into the same options dict."""
    from synthperf.guidance import step as step_mod

    seen: dict = {}

    def fake_compile(model, **kw):
        seen.clear()
        seen.update(kw)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    step_mod.compile_step(torch.nn.Identity())
    assert seen["options"] == {"reorder_for_peak_memory": False} and "mode" not in seen
    step_mod.compile_step(torch.nn.Identity(), mode="max-autotune-no-cudagraphs")
    assert seen["options"]["reorder_for_peak_memory"] is False and seen["options"]["max_autotune"] is True
    step_mod.compile_step(torch.nn.Identity(), backend="aot_eager")
    assert seen["backend"] == "aot_eager" and seen["mode"] is None and "options" not in seen
