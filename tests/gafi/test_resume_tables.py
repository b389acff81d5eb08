"""What a resumed GaFi run reads back (issue 17).

- History key order: checkpoints store history rows as JSON with sorted keys, so a resumed
  ``fit_classifier`` / ``train_gan`` used to return rows whose keys (hence the columns of any
  DataFrame built from them, e.g. the CLI's ``history.parquet``) were in another order than an
  uninterrupted run's; only ``synthperf gafi``'s CLI re-sorted them. The restore itself now
  puts them back in the training loop's order, so library users get equal histories too.
- Checked tables (:mod:`synthperf.gafi._io`): the GaFi search's results/histories and the
  ``cas.parquet`` of multigan/cas are verified against a checksummed sidecar before a resume
  trusts them; a damaged table is reported once and its runs are recomputed, in grid order.
"""
from __future__ import annotations

import warnings

import pandas as pd
import pytest
import torch

from synthperf.gafi import _io as gio
from synthperf.gafi import classifier as C
from synthperf.gafi import gan_train as GT
from synthperf.gafi import pipeline as P
from synthperf.gafi.data import DatasetSplits, ImageData
from synthperf.gafi.gan import GANConfig

from faults._corrupt import BYTE_DAMAGE, corrupt_file

from ._stubs import StubClassifier, StubGenerator, interrupting_progress


def _toy(n=96, seed=0, side=8):
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.rand(n, 1, side, side, generator=g) * 2 - 1, torch.arange(n) % 4)


def _interrupted(monkeypatch, module, n_epochs, fn):
    """Run ``fn`` with ``module.progress_task`` raising KeyboardInterrupt after ``n_epochs`` epochs."""
    with monkeypatch.context() as m:
        m.setattr(module, "progress_task", interrupting_progress(n_epochs))
        with pytest.raises(KeyboardInterrupt):
            fn()


# ------------------------------------------------------------------ history key order
def test_resumed_classifier_history_keeps_the_uninterrupted_key_order(tmp_path, monkeypatch):
    cfg = C.ClassifierConfig(width=2, epochs=3, batch_size=32, crop_padding=1, lr_milestones=(2,))
    ev = {"val": _toy(32, 1), "test": _toy(32, 2)}  # sorted keys would put test_accuracy before train_*
    full = C.fit_classifier(_toy(), 4, cfg, eval_sets=ev, select_on="val")
    _interrupted(monkeypatch, C, 2, lambda: C.fit_classifier(_toy(), 4, cfg, eval_sets=ev, select_on="val",
                                                              checkpoint_dir=tmp_path))
    resumed = C.fit_classifier(_toy(), 4, cfg, eval_sets=ev, select_on="val", checkpoint_dir=tmp_path, resume=True)
    want = ["epoch", "lr", "train_loss", "train_accuracy", "val_accuracy", "test_accuracy"]
    assert [list(r) for r in full.history] == [want] * 3
    assert [list(r) for r in resumed.history] == [want] * 3       # rows 1-2 restored, row 3 trained
    assert resumed.history == full.history
    pd.testing.assert_frame_equal(pd.DataFrame(resumed.history), pd.DataFrame(full.history), check_exact=True)


def test_resumed_gan_history_keeps_the_uninterrupted_key_order(tmp_path, monkeypatch):
    data = _toy(64)
    gcfg = GANConfig(image_size=8, channels=1, num_classes=4, latent_dim=8, shared_dim=4, g_conv_dim=4,
                     d_conv_dim=4, g_depth=1, d_depth=1)
    tcfg = GT.GANTrainConfig(epochs=2, batch_size=16, d_updates_per_step=2, g_ema_start=2, g_ema_decay=0.5,
                             horizontal_flip=False)
    full = GT.train_gan(data, gcfg, tcfg, out_dir=tmp_path / "a")
    _interrupted(monkeypatch, GT, 1, lambda: GT.train_gan(data, gcfg, tcfg, out_dir=tmp_path / "b"))
    res = GT.train_gan(data, gcfg, tcfg, out_dir=tmp_path / "b", resume=True)
    assert [list(r) for r in full.history] == [list(GT.GAN_HISTORY_KEYS)] * 2
    assert [list(r) for r in res.history] == [list(GT.GAN_HISTORY_KEYS)] * 2
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(res.history) == drop(full.history)


def test_ordered_rows_puts_known_keys_first_and_keeps_the_rest():
    rows = [{"b": 2, "epoch": 1, "z": 0, "a": 1}]
    assert [list(r) for r in C.ordered_rows(rows, ("epoch", "a", "missing"))] == [["epoch", "a", "b", "z"]]
    assert C.ordered_rows(rows, ()) == rows and list(C.ordered_rows(rows, ())[0]) == ["b", "epoch", "z", "a"]


# ------------------------------------------------------------------ checked tables
def _damage(path, how):
    if how in BYTE_DAMAGE:
        corrupt_file(path, how)
    elif how == "no sidecar":
        gio.table_sidecar(path).unlink()
    elif how == "foreign sidecar":
        gio.table_sidecar(path).write_text('{"format": "other"}')


@pytest.mark.parametrize("how", ["truncate", "bitflip", "zero", "directory", "no sidecar", "foreign sidecar"])
def test_a_damaged_table_is_reported_once_and_ignored(tmp_path, how):
    df = pd.DataFrame({"name": ["a", "b", "c"], "cas": [0.1, 0.2, 0.3]})
    path = gio.write_table(df, tmp_path / "t.parquet")
    assert gio.check_table(path) == ("ok", "")
    pd.testing.assert_frame_equal(gio.read_table(path), df)
    _damage(path, how)
    assert gio.check_table(path)[0] == "damaged"
    with pytest.warns(RuntimeWarning, match=r"t\.parquet.*the run is recomputed") as rec:
        assert gio.read_table(path, what="the run") is None
    assert len(rec) == 1
    gio.write_table(df, path)  # rewriting replaces a directory in its place
    pd.testing.assert_frame_equal(gio.read_table(path), df)


def test_a_missing_table_is_none_without_a_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gio.check_table(tmp_path / "none.parquet") == ("missing", "")
        assert gio.read_table(tmp_path / "none.parquet") is None
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        gio.write_table({"a": [1]}, tmp_path / "x.parquet")


# ------------------------------------------------------------------ the GaFi search on damaged tables
def _splits():
    return DatasetSplits("toy", 4, _toy(32, 0, 2), _toy(16, 1, 2), _toy(16, 2, 2))


PCFG = P.PipelineConfig(ckpt_epochs=[1, 2], stddev_search=[1.0, 1.5], threshold_search=[0.0], class_samples=4,
                        search_regen_every=1, filtering_attempts=2, batch_size=16)
CCFG = C.ClassifierConfig(width=2, epochs=1, batch_size=16, crop_padding=0, random_crop=False, random_flip=False,
                          random_erasing=False)


def _search(out, **kw):
    ckpts = {1: StubGenerator(4, 3, 0.0), 2: StubGenerator(4, 3, 1.0)}
    return P.gafi_search(ckpts, StubClassifier(4), _splits(), CCFG, PCFG, out, seed=3, **kw)


@pytest.mark.parametrize("table", ["results", "histories"])
def test_search_recomputes_the_runs_of_a_damaged_table_in_grid_order(tmp_path, monkeypatch, table):
    ref = _search(tmp_path / "ref")
    out = tmp_path / "cut"
    _search(out)
    _damage(out / "stddev" / f"{table}.parquet", "bitflip")
    calls = []
    real = P.run_cas

    def counting(*a, **k):
        calls.append(k["description"])
        return real(*a, **k)

    monkeypatch.setattr(P, "run_cas", counting)
    with pytest.warns(RuntimeWarning, match=rf"stddev/{table}\.parquet.*'stddev' step is recomputed"):
        again = _search(out)
    assert [c.split()[0] for c in calls] == ["stddev", "stddev"]  # only the damaged step's two runs
    for step in ("ckpt", "stddev", "threshold", "best"):
        for name in ("results", "histories"):
            pd.testing.assert_frame_equal(gio.read_table(out / step / f"{name}.parquet"),
                                          gio.read_table(tmp_path / "ref" / step / f"{name}.parquet"),
                                          check_exact=True)
    assert (again.best_ckpt, again.best_sigma, again.best_tau) == (ref.best_ckpt, ref.best_sigma, ref.best_tau)
