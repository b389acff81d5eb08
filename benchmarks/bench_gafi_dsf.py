"""Dynamic Sample Filtering throughput (issue 6 acceptance "Throughput benchmark").

Run:  pytest benchmarks/bench_gafi_dsf.py --benchmark-only -q -s   (torch threads pinned to
SYNTHPERF_BENCH_THREADS, default 2; see benchmarks/conftest.py)

Digits scale: the "small" preset's BigGAN-deep generator (8x8, 1 channel, 10 classes) and a
width-16 ResNet-20 filter classifier, both freshly initialised (their weights do not change
the cost). An untrained pair accepts ~10 % of samples, so acceptance is set through a side
channel: the generator appends two constant planes (the label y and z[:, 0]) to its image and
the classifier, after running the ResNet on the image plane, returns logits that favour y
when z[:, 0] > 0 and the next class otherwise, i.e. **50 % acceptance** at tau = 0 with the
real networks' full compute.

- ``test_dsf_batched``: ``generate_filtered`` for ``n`` accepted samples per class, and the
  acceptance criterion: its median time <= 1.25x the median of a pure generator + classifier
  forward over the same number of samples DSF had to generate (~2n per class at 50 %), in the
  same batch size. The ratio is printed and stored in ``extra_info``.
- ``test_dsf_forward_only``: that pure forward pass (the reference).
- ``test_dsf_naive_per_sample``: the per-sample Python loop DSF replaces (one G and one C call
  per candidate), on fewer samples; ``extra_info`` holds seconds per accepted sample.
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch

from synthperf.gafi.classifier import ResNet20
from synthperf.gafi.experiment import digits_preset
from synthperf.gafi.gan import Generator
from synthperf.gafi.sampling import generate_filtered, sample_latent

K = 10
BATCH = 512
N_PER_CLASS = [107, 1000]  # digits' class_samples (1077 // 10), and a 10x larger set
N_NAIVE = 10


class SideChannelGenerator(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.g = Generator(digits_preset("small").gan).eval()
        self.num_classes, self.latent_dim = K, self.g.cfg.latent_dim

    def forward(self, z, y):
        img = self.g(z, y)
        n, _, h, w = img.shape
        return torch.cat([img, y.float().view(n, 1, 1, 1).expand(n, 1, h, w),
                          z[:, :1].view(n, 1, 1, 1).expand(n, 1, h, w)], 1)


class SideChannelClassifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = ResNet20(K, width=16, in_channels=1).eval()
        self.num_classes = K

    def forward(self, x):
        logits = self.net(x[:, :1])
        y = x[:, 1, 0, 0].round().long()
        target = torch.where(x[:, 2, 0, 0] > 0, y, (y + 1) % K)
        return logits * 0 + 10.0 * torch.nn.functional.one_hot(target, K).float()


@pytest.fixture(scope="module")
def models(bench_threads):
    torch.set_num_threads(bench_threads)
    return SideChannelGenerator(), SideChannelClassifier()


def _dsf(models, n):
    g, c = models
    return generate_filtered(g, c, n, tau=0.0, seed=0, batch_size=BATCH)


@torch.no_grad()
def _forward_only(models, total: int):
    g, c = models
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(K).repeat_interleave(total // K + 1)[:total]
    z = sample_latent(total, g.latent_dim, 1.0, gen)
    for i in range(0, total, BATCH):
        c(g(z[i:i + BATCH], y[i:i + BATCH]))


def _median_seconds(fn, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@pytest.mark.parametrize("n", N_PER_CLASS)
def test_dsf_batched(benchmark, models, n):
    x, y, st = _dsf(models, n)
    assert torch.equal(torch.bincount(y, minlength=K), torch.full((K,), n))
    generated = int(st.generated.sum())
    assert 0.4 < st.acceptance_rate < 0.6
    fwd = _median_seconds(lambda: _forward_only(models, generated))
    benchmark.pedantic(_dsf, args=(models, n), rounds=7, iterations=1, warmup_rounds=1)
    dsf = benchmark.stats.stats.median if benchmark.stats is not None else _median_seconds(lambda: _dsf(models, n))
    ratio = dsf / fwd
    benchmark.extra_info.update({"accepted": n * K, "generated": generated, "acceptance": st.acceptance_rate,
                                 "forward_only_median_s": fwd, "dsf_median_s": dsf, "ratio_vs_forward": ratio})
    print(f"\nDSF n={n}/class: {dsf * 1e3:.1f} ms for {n * K} accepted ({generated} generated, "
          f"acceptance {st.acceptance_rate:.2f}); pure forward of {generated}: {fwd * 1e3:.1f} ms; ratio {ratio:.2f}")
    assert ratio <= 1.25


@pytest.mark.parametrize("n", N_PER_CLASS)
def test_dsf_forward_only(benchmark, models, n):
    generated = int(_dsf(models, n)[2].generated.sum())
    benchmark.pedantic(_forward_only, args=(models, generated), rounds=7, iterations=1, warmup_rounds=1)
    benchmark.extra_info["samples"] = generated


@torch.no_grad()
def _naive(models, n):
    """One candidate at a time, as a straightforward loop would do it."""
    g, c = models
    gen = torch.Generator().manual_seed(0)
    kept = []
    for cls in range(K):
        got = 0
        while got < n:
            z = sample_latent(1, g.latent_dim, 1.0, gen)
            x = g(z, torch.tensor([cls]))
            p = torch.softmax(c(x), 1)[0]
            if int(p.argmax()) == cls:
                kept.append(x)
                got += 1
    return torch.cat(kept)


def test_dsf_naive_per_sample(benchmark, models):
    out = benchmark.pedantic(_naive, args=(models, N_NAIVE), rounds=3, iterations=1)
    assert out.shape[0] == N_NAIVE * K
    per = (benchmark.stats.stats.median if benchmark.stats is not None else float("nan")) / (N_NAIVE * K)
    batched = _median_seconds(lambda: _dsf(models, 107), rounds=3) / (107 * K)
    benchmark.extra_info.update({"seconds_per_accepted": per, "batched_seconds_per_accepted": batched,
                                 "speedup_batched": per / batched})
    print(f"\nnaive loop: {per * 1e3:.2f} ms per accepted sample; batched DSF {batched * 1e3:.3f} ms "
          f"(speedup {per / batched:.0f}x)")
