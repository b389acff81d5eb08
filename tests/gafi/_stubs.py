"""Stub generator/classifier with known outputs for exact DSF tests.

StubGenerator writes the label into pixel (0, 0) and z[:, 0] into pixel (0, 1) of a 1x2x2
image (plus its id into pixel (1, 0)); StubClassifier reads them back and returns logits whose
softmax is known: target logit ``3 * z0`` against zeros elsewhere, except that z0 <= 0 makes
class (y + 1) % K the top class.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


class StubGenerator(torch.nn.Module):
    def __init__(self, num_classes: int = 4, latent_dim: int = 3, gen_id: float = 0.0) -> None:
        super().__init__()
        self.num_classes, self.latent_dim, self.gen_id = num_classes, latent_dim, gen_id

    def forward(self, z, y):
        x = torch.zeros(len(y), 1, 2, 2)
        x[:, 0, 0, 0] = y.float()
        x[:, 0, 0, 1] = z[:, 0]
        x[:, 0, 1, 0] = self.gen_id
        return x


def stub_logits(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    y = x[:, 0, 0, 0].round().long()
    v = x[:, 0, 0, 1].double()
    logits = torch.zeros(len(y), num_classes, dtype=torch.float64)
    logits[torch.arange(len(y)), y] = 3.0 * v
    wrong = v <= 0
    logits[torch.arange(len(y))[wrong], (y[wrong] + 1) % num_classes] = 5.0
    return logits


class StubClassifier(torch.nn.Module):
    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        return stub_logits(x, self.num_classes)


class ReplayGenerator(torch.nn.Module):
    """A "generator" that replays real images, with a known fraction of wrong labels.

    For a requested label y it returns a real image of class y, or, when
    ``Phi(z[:, 1]) < swap_prob``, of class (y + 1) % K; ``Phi(z[:, 0])`` picks the image
    within the class pool. Deterministic in z, so DSF resampling sees fresh draws.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, swap_prob: float) -> None:
        super().__init__()
        order = torch.argsort(y, stable=True)
        self.pool = x[order]
        self.counts = torch.bincount(y, minlength=num_classes)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.num_classes, self.latent_dim, self.swap_prob = num_classes, 2, swap_prob

    def forward(self, z, y):
        u = torch.special.ndtr(z.double())
        src = torch.where(u[:, 1] < self.swap_prob, (y + 1) % self.num_classes, y)
        within = (u[:, 0] * self.counts[src]).long().clamp(max=self.counts[src] - 1)
        return self.pool[self.starts[src] + within]


def interrupting_progress(n_epochs: int):
    """A ``progress_task`` stand-in that raises KeyboardInterrupt once ``n_epochs`` epochs have
    advanced: a kill right after that many epochs (and their checkpoints) were saved."""
    done = {"n": 0}

    @contextmanager
    def fake(description, total):
        def advance(k=1):
            done["n"] += k
            if done["n"] >= n_epochs:
                raise KeyboardInterrupt

        yield advance

    return fake
