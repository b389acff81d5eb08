"""The seapig README's three examples run against synthperf (import lines changed only), and model mode.

The README text is in ../shared/seeds (the seapig seed); the snippets are copied here verbatim
except for the import lines. The first two examples reproduce the README's printed numbers.
"""
from __future__ import annotations

import pytest
import torch

from synthperf.selective import EuclideanScore, PCAScore, TensorPCA

EXAMPLE_1 = '''
import torch
from synthperf.selective import EuclideanScore
from synthperf import disable_progress as disable
disable()  # disables  seapig progress bars for quickstart example
torch.manual_seed(0)
## latent representations a torch.Tensor of shapes (N, D), (M, D), (Q, D)
ref_emb, val_emb, query_emb = torch.randn(1000, 16), torch.randn(200, 16), torch.randn(10, 16)

score = EuclideanScore(k=5, stat="mean")
score.fit(X=ref_emb, Y=val_emb)
score.set_threshold(q=0.90)   # keep ~90% coverage on validation set
sel = score.select(query_emb)
print(sel)
'''

EXAMPLE_2 = '''
from torch.utils.data import TensorDataset, DataLoader
ds_train = TensorDataset(torch.randn(1000, 32), torch.randint(0, 2, (1000,)))
ds_val = TensorDataset(torch.randn(200, 32), torch.randint(0, 2, (200,)))
ds_test = TensorDataset(torch.randn(10, 32), torch.randint(0, 2, (10,)))
train_loader = DataLoader(ds_train, batch_size=64)
val_loader = DataLoader(ds_val, batch_size=64)
test_loader = DataLoader(ds_test, batch_size=64)

## model exposes .embed(x) -> (B, D)
class Model(torch.nn.Module):
    def embed(self, x):
        image = x[0]
        label = x[1]
        return torch.randn(image.shape[0], 16)

model = Model()

score = EuclideanScore(k=3)
score.fit(model=model, loaders={"train": train_loader, "val": val_loader})
score.set_threshold(q=0.80) # keep ~80% coverage on validation set

sel = score.select(model=model, loader=test_loader)
print(sel)
'''

EXAMPLE_3 = '''
from synthperf.selective import SelectiveInferenceTask
from lightning import Trainer, LightningModule
from torchmetrics import Accuracy

## minimal LightningModule
class Model(LightningModule):
    def __init__(self):
        super().__init__()
        self.test_metrics = Accuracy("binary")
    def forward(self, x):
        pred = torch.randint(0, 2, (x.shape[0],))
        return pred
    def embed(self, x):
        return torch.randn(x.shape[0], 32)
    def test_step(self, batch, batch_idx):
        image = batch[0]
        label = batch[1]
        pred = self.forward(image)
        print(pred.shape, label.shape)
        self.test_metrics.update(pred, label)
        self.log_dict(self.test_metrics.compute(), sync_dist=True)

trainer = Trainer(accelerator="cpu")
model = Model()
## trainer.fit(...) and score.fit(...) are expected to have been called already
sel_task = SelectiveInferenceTask(task=model, score=score)
## evaluate on test set, will return metrics for the full, selected, and rejected samples
metrics = trainer.test(sel_task, dataloaders=test_loader)
## or for prediction, will return a dict with keys "predictions", "selected", and "score" for each sample
preds = trainer.predict(sel_task, dataloaders=test_loader)
print(preds)
'''


def test_readme_example_1_mean_is_arithmetic_mean():
    """stat="mean" is the arithmetic mean of the 5 distances, as both seapig versions (3.9044 for the
    first query); the README's printed 3.9220 is their root mean square (stat="rms")."""
    ns: dict = {}
    exec(EXAMPLE_1, ns)
    s = ns["score"]
    d = torch.cdist(ns["query_emb"].double(), ns["ref_emb"].double()).topk(5, largest=False).values
    torch.testing.assert_close(ns["sel"]["score"].double(), d.mean(1), rtol=1e-5, atol=0)
    assert ns["sel"]["score"][0].item() == pytest.approx(3.9044, abs=1e-4)
    assert s.stat == "mean"


def test_readme_example_1_reproduces_printed_scores_with_rms():
    ns: dict = {}
    exec(EXAMPLE_1.replace('stat="mean"', 'stat="rms"'), ns)
    expected = torch.tensor([3.9220, 3.2014, 2.5895, 3.0784, 2.9557, 4.0133, 3.1768, 3.0777, 2.5113, 4.0847])
    torch.testing.assert_close(ns["sel"]["score"], expected, atol=1e-4, rtol=0)
    assert ns["sel"]["selected"].tolist() == [False, True, True, True, True, False, True, True, True, False]


def test_readme_example_2_reproduces_printed_scores():
    ns: dict = {}
    exec(EXAMPLE_1 + EXAMPLE_2, ns)
    sel = ns["sel"]
    # the README's Model.embed takes x[0] of the input batch, so 32 rows come back for 10 samples
    assert sel["score"].shape == (32,)
    torch.testing.assert_close(sel["score"][:5], torch.tensor([3.2465, 3.9292, 3.0559, 3.2346, 3.8165]),
                               atol=1e-4, rtol=0)
    assert sel["selected"][:10].tolist() == [True, False, True, True, False, True, True, True, True, False]


def test_readme_example_3_lightning(tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    monkeypatch.chdir(tmp_path)  # Trainer writes lightning_logs/
    ns: dict = {}
    # As printed, the README fits the score on 16-D embeddings and then embeds 32-D in example 3:
    # synthperf reports the dimension mismatch clearly instead of producing scores.
    with pytest.raises(ValueError, match="dimension 32 but the score was fitted on dimension 16"):
        exec(EXAMPLE_1 + EXAMPLE_2 + EXAMPLE_3, ns)
    # With the embedding size matching the fitted score the example runs end to end.
    ns = {}
    exec(EXAMPLE_1 + EXAMPLE_2 + EXAMPLE_3.replace("torch.randn(x.shape[0], 32)", "torch.randn(x.shape[0], 16)"), ns)
    metrics = ns["metrics"][0]
    assert set(metrics) == {"full/BinaryAccuracy", "selected/BinaryAccuracy", "rejected/BinaryAccuracy"}
    preds = ns["preds"]
    assert len(preds) == 1 and set(preds[0]) == {"predictions", "score", "selected"}
    assert preds[0]["predictions"].shape == (10,) and preds[0]["score"].shape == (10,)


class _Embedder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(3)
        self.calls = 0

    def embed(self, x):
        self.calls += 1
        assert not self.training and torch.is_inference_mode_enabled()
        return self.bn(x)


def _mark_loaded():
    _Unpicklable.loaded = True


class _Unpicklable:
    """Pickles as a call of ``_mark_loaded``: unpickling it would run code."""

    loaded = False

    def __reduce__(self):
        return (_mark_loaded, ())


def _loaders():
    g = torch.Generator().manual_seed(0)
    ds = lambda n: torch.utils.data.TensorDataset(torch.randn(n, 3, generator=g), torch.zeros(n))  # noqa: E731
    return {k: torch.utils.data.DataLoader(ds(n), batch_size=16) for k, n in (("train", 64), ("val", 32))}


@pytest.mark.parametrize("initial_training", [True, False])
def test_model_mode_equals_tensor_mode_and_restores_mode(initial_training):
    model = _Embedder().train(initial_training)
    loaders = _loaders()
    s = EuclideanScore(k=2).fit(model=model, loaders=loaders)
    assert model.training == initial_training
    ref = torch.cat([b[0] for b in loaders["train"]])
    cal = torch.cat([b[0] for b in loaders["val"]])
    model.eval()
    t = EuclideanScore(k=2).fit(X=model.bn(ref).detach(), Y=model.bn(cal).detach())
    torch.testing.assert_close(s.scores, t.scores)
    s.set_threshold(0.9)
    out = s.select(model=model, loader=loaders["val"])
    assert out["score"].shape == (32,)
    # version-B loaders key "cal"
    b = EuclideanScore(k=2).fit(model=model, loaders={"train": loaders["train"], "cal": loaders["val"]})
    torch.testing.assert_close(b.scores, s.scores)


def test_embedding_cache(tmp_path):
    model, loaders = _Embedder(), _loaders()
    a = EuclideanScore(k=2).fit(model=model, loaders=loaders, outdir=tmp_path, prefix="run")
    assert (tmp_path / "run-embeddings-train.pt").is_file()  # seapig's names, torch.save of the tensor
    torch.testing.assert_close(torch.load(tmp_path / "run-embeddings-val.pt", weights_only=True), a.cal_embeddings)
    calls = model.calls
    with pytest.warns(UserWarning, match="pre-existing"):
        b = EuclideanScore(k=2).fit(model=model, loaders=loaders, outdir=tmp_path, prefix="run")
    assert model.calls == calls  # nothing re-embedded
    torch.testing.assert_close(a.scores, b.scores)
    a.score(model=model, loader=loaders["val"], outdir=tmp_path, prefix="query")
    assert (tmp_path / "query.pt").is_file()
    (tmp_path / "bad-embeddings-train.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"), pytest.warns(UserWarning):
        EuclideanScore().fit(model=model, loaders=loaders, outdir=tmp_path, prefix="bad")
    # a pickle of anything but tensors is refused (torch.load(weights_only=True)), never executed
    torch.save({"embeddings": _Unpicklable()}, tmp_path / "evil-embeddings-train.pt")
    with pytest.raises(ValueError, match="not a torch.save file of tensors"), pytest.warns(UserWarning):
        EuclideanScore().fit(model=model, loaders=loaders, outdir=tmp_path, prefix="evil")
    assert not _Unpicklable.loaded
    with pytest.warns(UserWarning, match="without prefix"):
        EuclideanScore().fit(model=model, loaders=loaders, outdir=tmp_path)


def test_model_mode_errors():
    loaders = _loaders()
    with pytest.raises(TypeError, match="embed"):
        EuclideanScore().fit(model=torch.nn.Linear(3, 3), loaders=loaders)
    with pytest.raises(ValueError, match="loaders is required"):
        EuclideanScore().fit(model=_Embedder())
    with pytest.raises(ValueError, match="model is required"):
        EuclideanScore().fit(loaders=loaders)
    with pytest.raises(ValueError, match="unknown loaders keys"):
        EuclideanScore().fit(model=_Embedder(), loaders={"train": loaders["train"], "test": loaders["val"]})
    s = EuclideanScore().fit(model=_Embedder(), loaders=loaders)
    with pytest.raises(ValueError, match="loader is required"):
        s.select(model=_Embedder())
    with pytest.raises(ValueError, match="Cannot specify both"):
        s.select(torch.randn(2, 3), model=_Embedder(), loader=loaders["val"])
    with pytest.raises(ValueError, match="no batches"):
        EuclideanScore().fit(model=_Embedder(), loaders={"train": []})


def test_pca_score_model_mode():
    s = PCAScore(TensorPCA(n_components=2)).fit(model=_Embedder(), loaders=_loaders())
    assert s.is_calibrated() and s.scores.shape == (32,)
