"""Feedback-guidance step, eager vs ``torch.compile`` on CPU (issue 7 acceptance "Compiled step").

Run:  pytest benchmarks/bench_guidance_step.py --benchmark-only -q -s   (torch threads pinned to
SYNTHPERF_BENCH_THREADS, default 2; see benchmarks/conftest.py)

The step is spec §9's graph G2 on the tiny SD components of ``tests/guidance/_tiny.py``
(UNet 8/16 channels, 2-block VAE, conv classifier; batch 2, 16x16 images, 8x8x4 latents):
UNet forward+backward -> x0_hat -> blend -> VAE decode forward+backward -> [0,1] rescale ->
classifier forward+backward -> per-sample entropy/loss -> norm-matched latent shift.

- ``test_step_eager``: the module called directly.
- ``test_step_compiled``: :func:`synthperf.guidance.compile_step` (inductor,
  ``dynamic=False``). Compilation happens once in a fixture, outside the timing (about 1.5 min
  cold on 2 cores, seconds with inductor's on-disk cache warm); the compiled output is checked
  against eager (<= 1e-4) before it is timed, and called with a second timestep first to show
  that a new timestep (a tensor argument) does not recompile. ``extra_info`` holds the
  compile seconds and the eager/compiled median ratio is printed.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers", reason="needs the 'diffusion' extra")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "guidance"))

from _tiny import TinyClassifier, sd_components  # noqa: E402

from synthperf.guidance import FeedbackGuidanceStep, compile_step  # noqa: E402
from synthperf.guidance.adapters import SDDecoder, SDDenoiser  # noqa: E402
from synthperf.guidance.criteria import resolve_criteria  # noqa: E402

# the same pin as benchmarks/conftest.py (repeated so the file also runs with --noconftest)
torch.set_num_threads(int(os.environ.get("SYNTHPERF_BENCH_THREADS", "2")))
GROUP = "guidance step (tiny SD, B=2, CPU)"
_MEDIANS: dict[str, float] = {}


def _args(ab: float, t: int, z, emb, idx):
    a = torch.tensor(ab)
    s = (1 - a).sqrt()
    # the pipeline passes sqrt(1 - alpha_bar) as both noise_coef and the denoiser's coefficient
    return (z, torch.tensor([0, 1]), torch.tensor([0.03, 0.1]), idx, s, torch.tensor(t), a.sqrt(), s, emb)


@pytest.fixture(scope="module")
def setup():
    c = sd_components()
    clf = TinyClassifier().requires_grad_(False)
    fns, idx = resolve_criteria(["entropy", "loss"])
    step = FeedbackGuidanceStep(SDDenoiser(c["unet"].requires_grad_(False), "epsilon"),
                                SDDecoder(c["vae"].requires_grad_(False)), clf, fns)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 8, 8, generator=g)
    emb = torch.randn(2, 8, 16, generator=g)
    return step, _args(0.5, 500, z, emb, idx), _args(0.3, 700, z, emb, idx)


@pytest.fixture(scope="module")
def compiled(setup):
    step, args, args2 = setup
    t0 = time.perf_counter()
    cs = compile_step(step, backend="inductor")
    cs(*args)
    compile_s = time.perf_counter() - t0
    for a in (args2, args):                     # a new timestep must not recompile (checked by timing)
        t1 = time.perf_counter()
        delta, C = cs(*a)
        assert time.perf_counter() - t1 < 0.25 * compile_s, "the step recompiled for a new timestep"
        delta_e, C_e = step(*a)
        err = float((delta - delta_e).abs().max())
        if err > 1e-4 or float((C - C_e).abs().max()) > 1e-4:
            raise AssertionError(f"compiled step differs from eager by {err:.3g} (delta max {float(delta_e.abs().max()):.3g})")
    return cs, compile_s


def test_step_eager(benchmark, setup):
    step, args, _ = setup
    benchmark.group = GROUP
    step(*args)
    benchmark.pedantic(step, args=args, rounds=30, iterations=1, warmup_rounds=3)
    _MEDIANS["eager"] = benchmark.stats.stats.median


def test_step_compiled(benchmark, setup, compiled):
    _, args, _ = setup
    cs, compile_s = compiled
    benchmark.group = GROUP
    benchmark.extra_info["compile_s"] = round(compile_s, 2)
    benchmark.pedantic(cs, args=args, rounds=30, iterations=1, warmup_rounds=3)
    _MEDIANS["compiled"] = benchmark.stats.stats.median
    if "eager" in _MEDIANS:
        ratio = _MEDIANS["eager"] / _MEDIANS["compiled"]
        benchmark.extra_info["speedup_vs_eager"] = round(ratio, 3)
        print(f"\n[guidance step] eager median {_MEDIANS['eager'] * 1e3:.2f} ms, compiled median "
              f"{_MEDIANS['compiled'] * 1e3:.2f} ms ({ratio:.2f}x), compile {compile_s:.1f} s")
