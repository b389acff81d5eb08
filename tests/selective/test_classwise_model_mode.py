"""ClassWiseScore model mode (seapig 0.3.0, issue 15): fit(model=, loaders=) and score/select(model=,
loader=) give what the same embeddings, labels and predictions give as tensors; input errors."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from synthperf.selective import EuclideanClassWiseScore


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def extract(self, batch):
        x = batch["image"]
        return {"embedding": torch.tanh(self.lin(x)), "prediction": (x[:, 0] > 0).long(), "label": batch["label"]}


def _loader(x, y):
    return DataLoader([{"image": x[i], "label": y[i]} for i in range(len(x))], batch_size=16)


def test_model_mode_matches_tensor_mode():
    g = torch.Generator().manual_seed(3)
    net = _Net()
    xr, xc, xq = (torch.randn(n, 3, generator=g) for n in (80, 40, 30))
    yr, yc = (xr[:, 0] > 0).long(), (xc[:, 0] > 0).long()
    via_model = EuclideanClassWiseScore(k=3, stat="mean")
    via_model.fit(model=net, loaders={"train": _loader(xr, yr), "cal": _loader(xc, yc)})
    with torch.no_grad():
        er, ec, eq = (torch.tanh(net.lin(x)) for x in (xr, xc, xq))
    via_tensors = EuclideanClassWiseScore(k=3, stat="mean")
    via_tensors.fit(ref={"embedding": er, "label": yr}, cal={"embedding": ec, "label": yc})
    torch.testing.assert_close(via_model.scores, via_tensors.scores)
    via_model.set_threshold(0.8), via_tensors.set_threshold(0.8)
    q_loader = _loader(xq, torch.zeros(30, dtype=torch.long))
    pred = (xq[:, 0] > 0).long()
    got = via_model.select(model=net, loader=q_loader)
    want = via_tensors.select(query={"embedding": eq, "prediction": pred})
    torch.testing.assert_close(got["score"], want["score"])
    assert torch.equal(got["selected"], want["selected"])
    full = via_model.score(model=net, loader=q_loader, full_matrix=True)
    torch.testing.assert_close(full, via_tensors.score(query=eq, full_matrix=True))


def test_model_mode_input_errors():
    net = _Net()
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    s = EuclideanClassWiseScore(k=2)
    with pytest.raises(ValueError, match="not both"):
        s.fit(ref={"embedding": x, "label": y}, model=net, loaders={"train": _loader(x, y)})
    with pytest.raises(ValueError, match="'train'"):
        s.fit(model=net, loaders={"cal": _loader(x, y)})
    with pytest.raises(TypeError, match="`ref` must be a dictionary"):
        s.fit(ref=x)
    with pytest.raises(RuntimeError, match=r"fit\(\) must be called before scoring"):
        s.score(model=net, loader=_loader(x, y))
    s.fit(ref={"embedding": x, "label": y})
    with pytest.raises(ValueError, match="must be given together"):
        s.score(model=net)
