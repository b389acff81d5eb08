"""seapig 0.3.0 (version B) style: fit(ref=, cal=) / score(query=) / select(query=) and model
``.extract(batch) -> dict``, checked against the same scores computed from tensors directly."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from synthperf.selective import EuclideanScore, MahalanobisScore, SoftmaxScore


class _DictData(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i]}


class _Extractor(torch.nn.Module):
    """B protocol: extract(batch) -> {"embedding", "logit", "prediction", "label"}."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 4)
        self.head = torch.nn.Linear(4, 3)
        self.drop = torch.nn.Dropout(0.5)  # eval mode must switch it off

    def extract(self, batch):
        e = self.drop(self.lin(batch["image"]))
        z = self.head(e)
        return {"embedding": e, "logit": z, "prediction": z.argmax(1), "label": batch["label"]}


def _embed_all(model, ds):
    with torch.no_grad():
        model.eval()
        return model.lin(ds.x)


@pytest.mark.parametrize("cls", [EuclideanScore, MahalanobisScore])
def test_extract_model_mode_equals_tensor_mode(cls):
    torch.manual_seed(0)
    model = _Extractor().train()
    train, cal, test = _DictData(200, 1), _DictData(50, 2), _DictData(30, 3)
    loaders = {"train": DataLoader(train, batch_size=64), "cal": DataLoader(cal, batch_size=16)}
    s_model = cls(k=3, stat="mean").fit(model=model, loaders=loaders)
    assert model.training  # mode restored
    ref_e, cal_e, q_e = (_embed_all(model, d) for d in (train, cal, test))
    model.train()
    s_tensor = cls(k=3, stat="mean").fit(ref={"embedding": ref_e}, cal={"embedding": cal_e})
    torch.testing.assert_close(s_model.scores, s_tensor.scores)
    assert s_model.is_calibrated()
    got = s_model.score(model=model, loader=DataLoader(test, batch_size=8))
    torch.testing.assert_close(got, s_tensor.score(query=q_e))
    s_model.set_threshold(0.8)
    s_tensor.set_threshold(0.8)
    sel = s_model.select(query={"embedding": q_e, "prediction": torch.zeros(30)})
    assert torch.equal(sel["selected"], s_tensor.select(query=q_e)["selected"])


def test_extract_logits_with_labels_fit_the_temperature_like_tensors():
    torch.manual_seed(1)
    model = _Extractor()
    ds = _DictData(120, 4)
    s_model = SoftmaxScore().fit(model=model, loader=DataLoader(ds, batch_size=32))
    with torch.no_grad():
        model.eval()
        z = model.head(model.lin(ds.x))
    s_tensor = SoftmaxScore().fit(X=z, Y=ds.y)
    assert s_model.temperature == pytest.approx(s_tensor.temperature, rel=1e-6)
    torch.testing.assert_close(s_model.scores, s_tensor.scores)


def test_embed_wins_when_a_model_has_both_and_extract_errors():
    class Both(_Extractor):
        def embed(self, x):
            return torch.zeros(x.shape[0], 2)

    ds = _DictData(20, 5)
    s = EuclideanScore(k=1).fit(model=Both(), loaders={"train": DataLoader(ds, batch_size=8)})
    assert s.ref_embeddings.shape == (20, 2) and float(s.ref_embeddings.abs().max()) == 0.0

    class NotDict(torch.nn.Module):
        def extract(self, batch):
            return batch["image"]

    class NoKey(torch.nn.Module):
        def extract(self, batch):
            return {"logit": batch["image"]}

    class BadSig(torch.nn.Module):
        def extract(self, inputs):
            return {"embedding": inputs["image"]}

    loader = DataLoader(ds, batch_size=8)
    with pytest.raises(TypeError, match=r"model.extract\(\) must return a dict"):
        EuclideanScore().fit(model=NotDict(), loaders={"train": loader})
    with pytest.raises(KeyError, match="missing key 'embedding'"):
        EuclideanScore().fit(model=NoKey(), loaders={"train": loader})
    with pytest.raises(AttributeError, match="accept `batch`"):
        EuclideanScore().fit(model=BadSig(), loaders={"train": loader})
    with pytest.raises(TypeError, match=r"`\.extract\(batch\)`"):
        EuclideanScore().fit(model=torch.nn.Linear(2, 2), loaders={"train": loader})


def test_classwise_mode_and_multilabel_per_class_calibration():
    from synthperf.selective import ClassWiseMode, EuclideanClassWiseScore

    g = torch.Generator().manual_seed(9)
    ref, cal = torch.randn(120, 3, generator=g), torch.randn(60, 3, generator=g)
    y_ref = (torch.rand(120, 2, generator=g) < 0.5).long()
    y_cal = (torch.rand(60, 2, generator=g) < 0.5).long()
    y_ref[0], y_cal[0] = torch.tensor([1, 1]), torch.tensor([1, 1])  # every class present
    s = EuclideanClassWiseScore(k=2, stat="mean")
    assert s.mode_ is None
    with pytest.raises(RuntimeError, match="fit"):
        _ = s.mode
    s.fit(ref={"embedding": ref, "label": y_ref}, cal={"embedding": cal, "label": y_cal})
    assert s.mode is ClassWiseMode.MULTI_LABEL and s.is_calibrated()
    thr = s.set_threshold(0.8)
    for c in (0, 1):
        direct = EuclideanScore(k=2, stat="mean").fit(X=ref[y_ref[:, c] == 1], Y=cal[y_cal[:, c] == 1])
        torch.testing.assert_close(s.scorers[str(c)].scores, direct.scores)
        torch.testing.assert_close(s.get_threshold(full_matrix=True)[c], direct.set_threshold(0.8))
    assert thr.ndim == 0
    single = EuclideanClassWiseScore(k=1).fit(ref={"embedding": ref, "label": y_ref[:, 0]})
    assert single.mode is ClassWiseMode.SINGLE_LABEL


def test_logit_score_and_select_in_model_mode():
    torch.manual_seed(2)
    model = _Extractor()
    train, test = _DictData(80, 6), _DictData(25, 7)
    s = SoftmaxScore(convention="B").fit(model=model, loader=DataLoader(train, batch_size=16))
    with torch.no_grad():
        model.eval()
        z_test = model.head(model.lin(test.x))
    got = s.score(model=model, loader=DataLoader(test, batch_size=10))
    torch.testing.assert_close(got, s.score(query={"logit": z_test}))
    s.set_threshold(0.7)
    out = s.select(model=model, loader=DataLoader(test, batch_size=10))
    assert torch.equal(out["selected"], s.select(z_test)["selected"])
    with pytest.raises(ValueError, match="both required"):
        s.score(model=model)
    with pytest.raises(ValueError, match="Cannot specify both"):
        s.score(z_test, model=model, loader=[])


def test_selective_inference_task_version_b_signature():
    pytest.importorskip("lightning")
    from lightning import Trainer
    from torchmetrics.classification import MulticlassAccuracy

    from synthperf.selective import RiskCoverageMetric, SelectiveInferenceTask

    torch.manual_seed(3)

    class Task(_Extractor):
        def __init__(self):
            super().__init__()
            self.test_metrics = MulticlassAccuracy(num_classes=3, average="micro")

    task = Task()
    train, test = _DictData(100, 8), _DictData(40, 9)
    score = EuclideanScore(k=2).fit(model=task, loaders={"train": DataLoader(train, batch_size=50),
                                                         "cal": DataLoader(train, batch_size=50)})
    score.set_threshold(0.6)
    rc = RiskCoverageMetric()
    st = SelectiveInferenceTask(task, score, False, rc)  # B positional order: rc_metric 4th
    assert st.api_ == "B" and st.rc_metric is rc
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.test(st, dataloaders=DataLoader(test, batch_size=40), verbose=False)[0]
    with torch.no_grad():
        task.eval()
        e = task.lin(test.x)
        pred = task.head(e).argmax(1)
    sel = score.select(e)["selected"]
    correct = (pred == test.y).float()
    assert metrics["full/MulticlassAccuracy"] == pytest.approx(correct.mean().item(), abs=1e-6)
    assert metrics["selected/MulticlassAccuracy"] == pytest.approx(correct[sel].mean().item(), abs=1e-6)
    assert "rc/auc_empirical" in metrics
    preds = trainer.predict(st, dataloaders=DataLoader(test, batch_size=40))
    assert set(preds[0]) == {"prediction", "score", "selected"}
    assert torch.equal(preds[0]["selected"], sel)

    class NoPrediction(torch.nn.Module):
        def extract(self, batch):
            return {"embedding": batch["image"][:, :4]}

    st2 = SelectiveInferenceTask(NoPrediction(), score)
    with pytest.raises(KeyError, match="prediction"):
        st2.predict_step({"image": torch.randn(3, 6), "label": torch.zeros(3)}, 0)
    with pytest.raises(TypeError, match="extract\\(\\)"):
        SelectiveInferenceTask(torch.nn.Linear(2, 2), score)
