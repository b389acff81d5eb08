"""Dynamic Sample Filtering, Expansion Trick, DDR and MultiGAN sampling (spec sections 4, 6)."""
from __future__ import annotations

import pytest
import torch

from synthperf.gafi.sampling import SamplerSpec, SyntheticSource, generate_filtered, sample_latent

from ._stubs import StubClassifier, StubGenerator, stub_logits

K = 4


def _rule(x: torch.Tensor, tau: float) -> torch.Tensor:
    y = x[:, 0, 0, 0].round().long()
    p = torch.softmax(stub_logits(x, K), 1)
    return (p.argmax(1) == y) & (p[torch.arange(len(y)), y] > tau)


@pytest.mark.parametrize("tau", [0.0, 0.5, 0.9])
def test_every_kept_sample_passes_the_rule_and_counts_are_exact(tau):
    x, y, st = generate_filtered(StubGenerator(K), StubClassifier(K), 37, tau=tau, seed=3)
    assert x.shape == (37 * K, 1, 2, 2)
    assert torch.equal(torch.bincount(y, minlength=K), torch.full((K,), 37))
    assert torch.equal(x[:, 0, 0, 0].round().long(), y)          # label matches the class slot
    assert bool(_rule(x, tau).all())                               # top-1 = target and p > tau
    assert not bool(st.capped.any())
    assert torch.equal(st.accepted, torch.full((K,), 37))


def test_attempt_sizes_follow_upstream_rule():
    _, _, st = generate_filtered(StubGenerator(K), StubClassifier(K), 50, tau=0.7, seed=1)
    have = torch.zeros(K, dtype=torch.long)
    assert torch.equal(st.attempt_sizes[0], torch.full((K,), 50))  # first attempt: exactly class_samples
    for sizes, took in zip(st.attempt_sizes, st.attempt_accepted):
        missing = 50 - have
        expect = torch.where(missing > 0, missing * torch.where(have > 0, 2, 1), 0)
        assert torch.equal(sizes, expect)
        have += took
    assert torch.equal(st.generated, torch.stack(st.attempt_sizes).sum(0))
    assert len(st.attempt_sizes) > 1


def test_strict_threshold_and_retry_cap():
    class Tie(torch.nn.Module):  # p = (0.5, 0.5) always: class 0 wins the tie, class 1 never
        num_classes = 2

        def forward(self, x):
            return torch.zeros(len(x), 2)

    g = StubGenerator(2)
    x, y, st = generate_filtered(g, Tie(), 9, tau=0.4, max_attempts=3, seed=0)
    assert torch.equal(st.attempts, torch.tensor([1, 3]))          # class 1 stops at the cap
    assert st.capped.tolist() == [False, True]
    assert torch.equal(torch.bincount(y), torch.tensor([9, 9]))     # balance exact after the cap
    # p = 0.5 is NOT > 0.5: nothing accepted, both classes capped after 2 attempts
    _, y2, st2 = generate_filtered(g, Tie(), 5, tau=0.5, max_attempts=2, seed=0)
    assert int(st2.accepted.sum()) == 0 and st2.capped.all() and torch.equal(st2.attempts, torch.tensor([2, 2]))
    assert torch.equal(torch.bincount(y2), torch.tensor([5, 5]))


def test_expansion_trick_std_and_range():
    z = sample_latent(20000, 8, 1.5, torch.Generator().manual_seed(0))
    # std of 160000 normals: relative s.e. ~ 1/sqrt(2n) = 0.0018; allow 4 s.e.
    assert abs(float(z.std()) / 1.5 - 1) < 4 * (2 * z.numel()) ** -0.5
    zr = sample_latent(10, 4, (1.0, 2.0), torch.Generator().manual_seed(0))
    assert zr.shape == (10, 4)


@pytest.mark.parametrize("tau", [-0.1, 1.0, float("nan")])
def test_bad_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        generate_filtered(StubGenerator(K), StubClassifier(K), 3, tau=tau)


@pytest.mark.parametrize("sigma", [0.0, -1.0, (2.0, 1.0)])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        generate_filtered(StubGenerator(K), StubClassifier(K), 3, sigma=sigma)


def test_class_count_mismatch():
    with pytest.raises(ValueError, match="class-count mismatch"):
        generate_filtered(StubGenerator(K), StubClassifier(K + 1), 3)
    with pytest.raises(ValueError, match="class-count mismatch"):
        SyntheticSource([SamplerSpec(StubGenerator(K))], StubClassifier(3), 4)


def test_multigan_proportions_exact():
    gens = [SamplerSpec(StubGenerator(K, gen_id=i), tau=0.3) for i in range(3)]
    src = SyntheticSource(gens, StubClassifier(K), 10, regen_every=1, seed=0)
    d = src.dataset(1)
    gid = d.x[:, 0, 1, 0].long()
    counts = torch.zeros(K, 3, dtype=torch.long)
    counts.index_put_((d.y, gid), torch.ones_like(gid), accumulate=True)
    assert torch.equal(counts, torch.full((K, 3), 10 // 3))        # each GAN: class_samples // N per class


def test_ddr_schedule_and_partial_replacement():
    src = SyntheticSource([SamplerSpec(StubGenerator(K))], StubClassifier(K), 8, regen_every=2, seed=0)
    seen = [src.dataset(e).x.clone() for e in range(1, 6)]
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[2], seen[3])
    assert not torch.equal(seen[1], seen[2]) and not torch.equal(seen[3], seen[4])  # regen before 3 and 5
    half = SyntheticSource([SamplerSpec(StubGenerator(K))], StubClassifier(K), 8, regen_every=1,
                           replace_fraction=0.5, seed=0)
    old = half.dataset(1)
    new = half.dataset(2)
    assert torch.equal(torch.bincount(new.y), torch.full((K,), 8))
    old_vals = set(old.x[:, 0, 0, 1].tolist())
    kept = sum(v in old_vals for v in new.x[:, 0, 0, 1].tolist())
    assert kept == 4 * K                                            # (1 - r) * class_samples per class kept
    state = half.state_dict()
    clone = SyntheticSource([SamplerSpec(StubGenerator(K))], StubClassifier(K), 8, regen_every=1,
                            replace_fraction=0.5, seed=0)
    clone.load_state_dict(state)
    assert torch.equal(clone.dataset(3).x, half.dataset(3).x)       # resumed DDR continues identically


class _Never(torch.nn.Module):
    """Always predicts class 0 with certainty: classes 1..K-1 are never accepted."""

    num_classes = 2

    def forward(self, x):
        return torch.tensor([[50.0, -50.0]]).expand(len(x), 2)


class _NaN(torch.nn.Module):
    num_classes = 2

    def forward(self, x):
        return torch.full((len(x), 2), float("nan"))


def test_unlimited_attempts_terminate_when_the_classifier_never_agrees():
    # issue 17: max_attempts=-1 used to loop forever (memory growing) here
    from synthperf.gafi import DSFStallError

    with pytest.raises(DSFStallError, match=r"classes \[1\].*7 consecutive"):
        generate_filtered(StubGenerator(2), _Never(), 5, max_attempts=-1, stall_attempts=7, seed=0)
    # the bounded fallback stays available: max_attempts > 0 fills class 1 unfiltered
    _, y, st = generate_filtered(StubGenerator(2), _Never(), 5, max_attempts=3, seed=0)
    assert st.capped.tolist() == [False, True] and torch.equal(torch.bincount(y), torch.tensor([5, 5]))


def test_nan_logits_raise_at_once():
    with pytest.raises(ValueError, match="non-finite logits"):
        generate_filtered(StubGenerator(2), _NaN(), 5, max_attempts=-1, seed=0)
    with pytest.raises(ValueError, match="stall_attempts"):
        generate_filtered(StubGenerator(2), _Never(), 5, stall_attempts=0, seed=0)
