"""seapig public behaviour that synthperf matches (issue 15 acceptance): ``plot(show=)``, seapig's cache
files (names, torch.save layouts, read with ``torch.load(weights_only=True)``), errors that are both
synthperf's ValueError/TypeError and seapig's AssertionError/IndexError, ``task`` re-checked at use,
and the class-wise ``mode`` / ``fit(y=)``."""
from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from synthperf.selective import (EuclideanClassWiseScore, EuclideanScore, SelectiveInferenceTask, SoftmaxScore)


class _Embed(torch.nn.Module):  # seapig git main protocol
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.calls = 0

    def embed(self, x):
        self.calls += 1
        return self.lin(x)

    def logits(self, x):
        self.calls += 1
        return self.lin(x)


class _Extract(_Embed):  # seapig 0.3.0 protocol only
    embed = None
    logits = None

    def extract(self, batch):
        self.calls += 1
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return {"embedding": self.lin(x)}


def _loader(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(n, 2, generator=g), torch.randint(0, 2, (n,), generator=g)),
                      batch_size=4)


def test_plot_show_default_calls_pyplot_show_once_and_returns_the_figure():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    s = EuclideanScore(k=1).fit(X=torch.randn(30, 2), Y=torch.randn(10, 2))
    s.set_threshold(0.9)
    with mock.patch("matplotlib.pyplot.show") as shown:
        fig = s.plot(torch.randn(5), bins=5)
        assert shown.call_count == 1
        quiet = s.plot(show=False)
        assert shown.call_count == 1  # show=False never shows
    assert isinstance(fig, Figure) and plt.fignum_exists(fig.number)
    assert isinstance(quiet, Figure) and not any(plt.figure(n) is quiet for n in plt.get_fignums())
    plt.close(fig)
    with pytest.raises(TypeError, match="show"):
        s.plot(show="yes")


def test_seapig_git_main_caches_are_read_and_written(tmp_path):
    model, loader = _Embed(), _loader()
    s = EuclideanScore(k=2).fit(X=torch.randn(20, 2), Y=torch.randn(8, 2))
    # a cache as seapig git main writes it: torch.save of the (N, D) tensor at <outdir>/<prefix>.pt
    cached = torch.randn(6, 2)
    torch.save(cached, tmp_path / "q.pt")
    with pytest.warns(UserWarning, match="Loading pre-existing embeddings"):
        out = s.score(model=model, loader=loader, outdir=tmp_path, prefix="q")
    assert model.calls == 0
    torch.testing.assert_close(out, s.score(cached))
    # and the other way: synthperf writes that layout, loadable by torch.load(weights_only=True)
    fresh = s.score(model=model, loader=loader, outdir=tmp_path, prefix="new")
    written = torch.load(tmp_path / "new.pt", weights_only=True)
    assert isinstance(written, torch.Tensor) and written.shape == (6, 2)
    torch.testing.assert_close(s.score(written), fresh)


def test_seapig_pypi_extract_cache_layout(tmp_path):
    model, loader = _Extract(), _loader()
    s = EuclideanScore(k=2).fit(X=torch.randn(20, 2))
    cached = torch.randn(6, 2)
    torch.save({"embedding": cached}, tmp_path / "q-embedding.pt")  # seapig 0.3.0's extractor cache
    with pytest.warns(UserWarning, match="Loading pre-existing embeddings"):
        out = s.score(model=model, loader=loader, outdir=tmp_path, prefix="q")
    assert model.calls == 0
    torch.testing.assert_close(out, s.score(cached))
    s.score(model=model, loader=loader, outdir=tmp_path, prefix="new")
    assert set(torch.load(tmp_path / "new-embedding.pt", weights_only=True)) == {"embedding"}


def test_seapig_logits_cache_is_read(tmp_path):
    logits, labels = torch.randn(12, 3), torch.randint(0, 3, (12,))
    torch.save({"logits": logits, "labels": labels}, tmp_path / "run_train.pt")
    model = _Embed()
    with pytest.warns(UserWarning, match="pre-existing logits"):
        s = SoftmaxScore().fit(model=model, loader=_loader(), outdir=tmp_path, prefix="run")
    assert model.calls == 0
    direct = SoftmaxScore().fit(X=logits, Y=labels)
    assert s.temperature == pytest.approx(direct.temperature)
    torch.testing.assert_close(s.scores, direct.scores)
    torch.save({"labels": labels}, tmp_path / "bad_train.pt")
    with pytest.raises(ValueError, match="does not contain 'logits'"), pytest.warns(UserWarning):
        SoftmaxScore().fit(model=model, loader=_loader(), outdir=tmp_path, prefix="bad")


def test_errors_are_synthperfs_and_seapigs_classes(tmp_path):
    with pytest.raises(ValueError, match="save_index path must end with '.bin'") as err:
        EuclideanScore(save_index=tmp_path / "idx.faiss")
    assert isinstance(err.value, AssertionError)  # seapig asserts the suffix

    class BadTask(torch.nn.Module):
        def forward(self, x):
            return [x]

        def embed(self, x):
            return x

    task = SelectiveInferenceTask(task=BadTask(), score=EuclideanScore().fit(X=torch.randn(10, 3)))
    with pytest.raises(TypeError, match="tensor or a dict") as err:
        task(torch.randn(2, 3))
    assert isinstance(err.value, AssertionError)

    class ListEmbed(torch.nn.Module):
        def embed(self, x):
            return [x]

    with pytest.raises(TypeError, match=r"Extracted embeddings is not a torch.Tensor: model.embed\(\)") as err:
        EuclideanScore().fit(model=ListEmbed(), loaders={"train": _loader()})
    assert isinstance(err.value, AssertionError)


def test_task_is_rechecked_at_use():
    s = SoftmaxScore()
    s.task = "regression"
    with pytest.raises(ValueError, match="Unknown task: regression"):
        s.score(torch.randn(2, 3))
    with pytest.raises(ValueError, match="Unknown task: nope"):
        SoftmaxScore(task="nope")


@pytest.mark.parametrize("labels", [[0, 1, float("nan"), 0], [0, 1, 3, 0], [0, -1, 1, 0], [0, 0.5, 1, 0]])
def test_bad_class_labels_raise_valueerror_that_is_an_indexerror(labels):
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\]") as err:
        SoftmaxScore().fit(torch.randn(4, 3), torch.tensor(labels))
    assert isinstance(err.value, IndexError)  # what seapig's cross-entropy raises for such labels


def test_classwise_mode_before_fit_and_y_alias():
    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(20, 2, generator=g), torch.arange(20) % 2
    cw = EuclideanClassWiseScore(k=2)
    with pytest.raises(RuntimeError, match=r"fit\(\) must be called before mode"):
        _ = cw.mode
    cw.fit(X=X, y=y)
    ref = EuclideanClassWiseScore(k=2).fit(ref={"embedding": X, "label": y})
    assert cw.mode is ref.mode
    torch.testing.assert_close(cw.scores, ref.scores)
    with pytest.raises(ValueError, match="aliases"):
        EuclideanClassWiseScore().fit(X=X, y=y, labels=y)
    with pytest.raises(ValueError, match="Cannot specify both"):
        EuclideanClassWiseScore().fit(X=X, y=y, model=_Embed(), loaders={"train": _loader()})
