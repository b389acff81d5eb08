"""ModelExtractor (seapig 0.3.0 §1.10) against a direct loop over the data."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from synthperf.selective.scores.extractor import ModelExtractor


class _DS(Dataset):
    def __init__(self, n=37):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 5, generator=g), torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i]}


class _M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(5, 3)
        self.drop = torch.nn.Dropout(0.9)

    def extract(self, batch):
        e = self.drop(self.lin(batch["image"]))
        return {"embedding": e, "logit": e.sum(1, keepdim=True)}


def test_extract_collects_outputs_and_inputs_and_caches(tmp_path):
    torch.manual_seed(0)
    m, ds = _M().train(), _DS()
    ex = ModelExtractor(output_keys=("embedding", "logit"), input_keys=("image", "label"))
    out = ex.extract(m, DataLoader(ds, batch_size=8))
    assert m.training
    with torch.no_grad():
        e = m.lin(ds.x)
    torch.testing.assert_close(out["embedding"], e)
    torch.testing.assert_close(out["logit"], e.sum(1, keepdim=True))
    assert torch.equal(out["label"], ds.y) and set(out) == {"embedding", "logit", "label"}
    ex.extract(m, DataLoader(ds, batch_size=8), outdir=tmp_path, prefix="train")
    cache = tmp_path / "train-embedding.pt"  # seapig 0.3.0's name and layout
    assert cache.is_file()
    assert set(torch.load(cache, weights_only=True)) == {"embedding", "logit", "label"}
    with pytest.warns(UserWarning, match="Loading pre-existing data"):
        again = ex.extract(m, DataLoader(ds, batch_size=8), outdir=tmp_path, prefix="train")
    torch.testing.assert_close(again["embedding"], e)
    with pytest.warns(UserWarning, match="both outdir and prefix"):
        ex.extract(m, DataLoader(ds, batch_size=8), outdir=tmp_path)


def test_extractor_errors():
    with pytest.raises(ValueError, match="input_keys must not be empty"):
        ModelExtractor(output_keys=("embedding",))
    with pytest.raises(ValueError, match="output_keys must not be empty"):
        ModelExtractor(output_keys=(), input_keys=("image",))
    with pytest.raises(ValueError, match="collide"):
        ModelExtractor(output_keys=("label",), input_keys=("image", "label"))
    ex = ModelExtractor(output_keys=("embedding",), input_keys=("image",))
    loader = DataLoader(_DS(), batch_size=8)
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        ex.extract(object(), loader)
    with pytest.raises(TypeError, match="required to have a `extract\\(\\)` method"):
        ex.extract(torch.nn.Linear(2, 2), loader)
    with pytest.raises(ValueError, match="No batches found"):
        ex.extract(_M(), [])
    with pytest.raises(KeyError, match="missing key 'prediction'"):
        ModelExtractor(output_keys=("prediction",), input_keys=("image",)).extract(_M(), loader)
    with pytest.raises(TypeError, match="Expected data loader to return a dictionary"):
        ModelExtractor(output_keys=("embedding",), input_keys=("image", "label")).extract(
            _M(), [torch.randn(4, 5)])
