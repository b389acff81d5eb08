"""Classifier checkpoints after a kill (issue 17): ``best`` is published only when training has
finished (the GaFi filter of ``synthperf demo`` takes its presence for "done", so a kill after an
early ``best`` resumed to a different classifier); an unreadable ``last`` (a kill between its two
files) is reported and training starts over; the GradScaler state is part of ``last``."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from synthperf import _io
from synthperf.gafi import classifier as C
from synthperf.gafi.data import ImageData

from ._stubs import interrupting_progress


def _toy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, torch.arange(n) % 4)


CFG = C.ClassifierConfig(width=2, epochs=3, batch_size=32, crop_padding=1, lr_milestones=(2,))
EV = {"val": _toy(32, 1)}


@contextmanager
def _stop_after(monkeypatch, n_epochs):
    """``fit_classifier`` raises KeyboardInterrupt once ``n_epochs`` epochs (and their ``last``) are saved."""
    fake = interrupting_progress(n_epochs)
    with monkeypatch.context() as m:
        m.setattr(C, "progress_task", fake)
        with pytest.raises(KeyboardInterrupt):
            yield


def _same_checkpoint(a, b):
    (ta, ma), (tb, mb) = _io.load_checkpoint(a), _io.load_checkpoint(b)
    assert ma == mb
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_best_appears_only_when_training_has_finished(tmp_path, monkeypatch):
    full = C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path / "ref")
    with _stop_after(monkeypatch, 2):
        C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path / "cut")
    assert _io.checkpoint_exists(tmp_path / "cut" / "last")
    assert not any(p.exists() for p in _io.checkpoint_paths(tmp_path / "cut" / "best"))  # the old code wrote it at epoch 1
    resumed = C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path / "cut",
                               resume=True)
    assert resumed.history == full.history and resumed.best_epoch == full.best_epoch
    for name in ("best", "last"):
        _same_checkpoint(tmp_path / "ref" / name, tmp_path / "cut" / name)


def test_kill_after_the_final_last_writes_best_on_resume(tmp_path, monkeypatch):
    C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path / "ref")
    with _stop_after(monkeypatch, CFG.epochs):  # killed after the last epoch's ``last``, before ``best``
        C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path / "cut")
    assert not _io.checkpoint_exists(tmp_path / "cut" / "best")
    with monkeypatch.context() as m:
        m.setattr(C, "_train_epoch", lambda *a, **k: pytest.fail("a finished epoch was trained again"))
        C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path / "cut", resume=True)
    _same_checkpoint(tmp_path / "ref" / "best", tmp_path / "cut" / "best")


def test_last_from_two_saves_is_reported_and_training_starts_over(tmp_path, monkeypatch):
    """A kill between ``last.safetensors`` (epoch 2) and ``last.json`` (still epoch 1): the pair's
    checksums differ; resume warns once, retrains and ends equal to the uninterrupted run."""
    C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path / "ref")
    cut = tmp_path / "cut"
    with _stop_after(monkeypatch, 1):
        C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=cut)
    old_json = _io.checkpoint_paths(cut / "last")[1].read_bytes()
    with _stop_after(monkeypatch, 2):
        C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=cut, resume=True)
    _io.checkpoint_paths(cut / "last")[1].write_bytes(old_json)
    with pytest.warns(RuntimeWarning, match="training starts over") as rec:
        C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=cut, resume=True)
    assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 1
    for name in ("best", "last"):
        _same_checkpoint(tmp_path / "ref" / name, cut / name)


def test_last_of_another_config_is_refused(tmp_path, monkeypatch):
    with _stop_after(monkeypatch, 1):
        C.fit_classifier(_toy(), 4, CFG, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path)
    other = C.ClassifierConfig(width=2, epochs=4, batch_size=32, crop_padding=1, lr_milestones=(2,))
    with pytest.raises(_io.CheckpointError, match="different config"):
        C.fit_classifier(_toy(), 4, other, eval_sets=EV, select_on="val", checkpoint_dir=tmp_path, resume=True)


def test_grad_scaler_state_is_saved_and_restored(tmp_path):
    """The loss scale and growth tracker (mixed precision on CUDA) resume as they were: before the
    fix ``last`` held no scaler state, so a resumed run restarted at the initial scale."""
    model = C.build_classifier(4, 1, CFG)
    opt = C.SGDW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0 ** 10, growth_interval=7)
    scaler.load_state_dict({**scaler.state_dict(), "scale": 96.0, "_growth_tracker": 5})
    gen = torch.Generator().manual_seed(1)
    res = C.FitResult(model=model, select_on=None)
    C._save_last(tmp_path, model, opt, scaler, gen, C.StaticSource(_toy()), res, CFG, 1, -1.0, 4, 1)
    fresh = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0 ** 10, growth_interval=7)
    saved = C._read_last(tmp_path, CFG)
    assert saved is not None
    C._restore(saved, C.build_classifier(4, 1, CFG), C.SGDW(model.parameters()), fresh, torch.Generator(),
               C.StaticSource(_toy()), C.FitResult(model=model))
    assert fresh.state_dict() == scaler.state_dict() and fresh.get_scale() == 96.0


def test_digits_filter_resumes_to_the_uninterrupted_classifier(tmp_path, monkeypatch):
    """The demo scenario: the GaFi filter classifier killed after its first epoch (the old code had
    already published ``best``, so the rerun skipped epoch 2 and used epoch 1's weights)."""
    from synthperf.gafi import digits
    from synthperf.metrics import digits_split

    x, y, _, _ = digits_split(0)
    ref_x, ref_y, _ = digits.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "ref", budget="tiny")
    with _stop_after(monkeypatch, 1):
        digits.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "cut", budget="tiny")
    got_x, got_y, _ = digits.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "cut", budget="tiny")
    for name in ("best", "last"):
        _same_checkpoint(tmp_path / "ref" / "filter_tiny_seed0" / name, tmp_path / "cut" / "filter_tiny_seed0" / name)
    assert np.array_equal(ref_x, got_x) and np.array_equal(ref_y, got_y)
