"""``tests/fixtures.py`` for the seapig 0.3.0 sdist suite (the sdist ships the tests without it).

Written for synthperf from what the sdist's tests import and assert (spec ``seapig.md`` §0, §7):
test doubles following 0.3.0's ``extract(batch) -> dict`` protocol. ``run_suites.py`` copies this file
to ``tests/fixtures.py`` of the temporary suite tree; it is not collected by synthperf's own tests.
"""
from __future__ import annotations

from typing import Any

import torch
from lightning import LightningDataModule, LightningModule
from torch.utils.data import DataLoader, Dataset
from torchmetrics import Accuracy, MetricCollection

from seapig.scores.base import UncertaintyScore
from seapig.scores.embed import EmbeddingScore
from seapig.scores.utils import TensorPCA


def _image(batch: Any) -> torch.Tensor:
    """The input tensor of a batch: ``batch["image"]`` for dict batches, else the batch itself."""
    return batch["image"] if isinstance(batch, dict) else batch


class EmptyModel(torch.nn.Module):
    """A module without ``extract``."""


class BadModel(torch.nn.Module):
    """``extract`` returns a dict without the requested output key."""

    def extract(self, batch: Any) -> dict[str, torch.Tensor]:
        return {"wrong": torch.tensor([1])}


class BadModelWrongSig(torch.nn.Module):
    """``extract`` whose parameter is not named ``batch``."""

    def extract(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        return torch.zeros(1, 2)


class BadForwardTask(torch.nn.Module):
    """``extract`` returns a list instead of a dict."""

    def extract(self, batch: torch.Tensor) -> list[torch.Tensor]:
        return [batch]


class BadPredictStepTask(LightningModule):
    """A LightningModule whose ``predict_step`` returns a list."""

    def extract(self, batch: torch.Tensor) -> None:  # pragma: no cover - never called
        return None

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[Any]:  # pragma: no cover
        return [batch]


class DummyModel(torch.nn.Module):
    """Identity model: embedding = flattened input, logit = prediction = input."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.test_metrics = MetricCollection(Accuracy(task="binary"))

    def extract(self, batch: dict[str, torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor]:
        x = _image(batch)
        return {"embedding": x.reshape(x.shape[0], -1), "logit": x, "prediction": x}


class MinimalEmbedding(EmbeddingScore):
    """EmbeddingScore (B hooks) scoring a query by its row sum; needs neither training nor calibration."""

    def __init__(self, pca: TensorPCA | None = None) -> None:
        super().__init__(pca=pca)
        self.train_required = False
        self.cal_required = False

    def _score(self, query: torch.Tensor | None) -> torch.Tensor:
        if query is None:
            raise ValueError("query must be given")
        return query.sum(dim=1)

    def _fit(self, q: bool | float = False) -> None:
        return None


class DummyTask(LightningModule):
    """``extract`` predicts the second input column (0/1) and passes image/label through."""

    def __init__(self) -> None:
        super().__init__()
        self.test_metrics = Accuracy(task="binary")

    def extract(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"prediction": batch["image"][:, 1].long(), "image": batch["image"], "label": batch["label"]}


class DummyTaskDict(LightningModule):
    """``forward`` doubles the (first) input; ``extract`` thresholds it at 0.5."""

    test_metrics: MetricCollection = MetricCollection(Accuracy(task="binary"))

    def forward(self, x: Any) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            x = x[0]
        if isinstance(x, dict):
            x = next(iter(x.values()))
        return 2 * x

    def extract(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.forward(batch)
        hard = (out > 0.5).long()
        return {"prediction": hard, "embedding": out, "label": hard, "extra": out}


class NoMetricTask(DummyTaskDict):
    """DummyTaskDict without test metrics."""

    test_metrics: None = None  # type: ignore[assignment]


class DictDataset(Dataset):
    """Items ``{"image": data[i] (optionally transformed), "label": labels[i] or tensor(1)}``."""

    def __init__(self, data: torch.Tensor, labels: torch.Tensor | None = None, transform: Any = None) -> None:
        self.data = data
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        x = self.data[idx]
        if self.transform is not None:
            x = self.transform(x)
        label = torch.tensor(1) if self.labels is None else self.labels[idx]
        return {"image": x, "label": label}


class SimpleDataModule(LightningDataModule):
    """Train/val/test/predict loaders over three DictDatasets."""

    def __init__(self, train_ds: Dataset, val_ds: Dataset, test_ds: Dataset, batch_size: int = 4) -> None:
        super().__init__()
        self._datasets = {"train": train_ds, "val": val_ds, "test": test_ds}
        self.batch_size = batch_size

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(self._datasets[split], batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


class SimpleL2Score(EmbeddingScore):
    """Nearest-reference Euclidean distance by ``torch.cdist`` (B hooks), calibrated on ``cal``."""

    ident = "simple-l2"
    train_required = False
    cal_required = False

    def __init__(self) -> None:
        super().__init__(pca=None)

    def _fit(self, q: float | bool = False) -> None:
        self.set_trained()
        self.scores = torch.cdist(self.cal_embeddings, self.ref_embeddings).amin(dim=1)
        self.set_calibrated()

    def _score(self, query: torch.Tensor | None) -> torch.Tensor:
        return torch.cdist(query, self.ref_embeddings).amin(dim=1)


class DummyScore(UncertaintyScore):
    """``select`` scores row i as i and accepts every row of ``query["prediction"]``."""

    def select(self, query: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = query["prediction"]
        n = x.shape[0]
        return {"score": torch.arange(n, dtype=x.dtype, device=x.device),
                "selected": torch.ones(n, dtype=torch.bool, device=x.device)}

    def score(self, query: torch.Tensor) -> torch.Tensor:  # pragma: no cover - unused
        return query

    def fit(self, ref: Any = None, cal: Any = None, *args: Any, **kwargs: Any) -> None:  # pragma: no cover
        return None
