"""seapig's module paths (issue 15 item 2): synthperf.selective.scores(.utils), .utils(.progress,
.logging), .risk - same objects as the top level, seapig's utils behaviour."""
from __future__ import annotations

import io
import logging

import pytest
import torch

import synthperf
import synthperf.selective as sel


@pytest.fixture
def restore_state():
    logger = logging.getLogger("synthperf.selective")
    handlers, level = list(logger.handlers), logger.level
    enabled = synthperf.progress_enabled()
    from synthperf.selective.utils import get_backend

    import synthperf.selective.utils.progress as prog

    backend, override = get_backend(), prog._enabled
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    (synthperf.enable_progress if enabled else synthperf.disable_progress)()
    sel.utils.set_backend(backend)
    prog._enabled = override
    sel.utils.set_package_logger("synthperf.selective")


def test_scores_module_mirrors_seapig_exports():
    from synthperf.selective import scores
    from synthperf.selective.scores.utils import TensorPCA, _tensor

    a = {"CosineScore", "EmbeddingScore", "EnergyScore", "EntropyScore", "EuclideanScore", "KNNScore", "LogitScore",
         "MahalanobisScore", "MarginScore", "PCAScore", "RandomScore", "SoftmaxScore", "UncertaintyScore"}
    b = {"ClassWiseScore", "EuclideanClassWiseScore", "CosineClassWiseScore", "MahalanobisClassWiseScore",
         "MutualInformationScore", "PredictiveVarianceScore"}
    assert a | b <= set(scores.__all__)
    for name in a | b:
        assert getattr(scores, name) is getattr(sel, name)
    assert TensorPCA is sel.TensorPCA
    t = torch.ones(2)
    assert _tensor(None, "embedding") is None and _tensor(t, "embedding") is t
    assert _tensor({"embedding": t}, "embedding") is t
    with pytest.raises(KeyError, match="`embedding`"):
        _tensor({"logit": t}, "embedding")
    with pytest.raises(TypeError):
        _tensor([1], "embedding")
    from synthperf.selective.risk import RiskCoverage, _rc_curve, risk_coverage

    assert risk_coverage is sel.risk_coverage and RiskCoverage is sel.RiskCoverage and callable(_rc_curve)


def test_readme_quick_start_with_seapig_module_paths(restore_state):
    code = '''
import torch
from synthperf.selective.scores import EuclideanScore
from synthperf.selective.utils.progress import disable
disable()
torch.manual_seed(0)
ref_emb, val_emb, query_emb = torch.randn(1000, 16), torch.randn(200, 16), torch.randn(10, 16)
score = EuclideanScore(k=5, stat="mean")
score.fit(X=ref_emb, Y=val_emb)
score.set_threshold(q=0.90)
sel = score.select(query_emb)
'''
    ns: dict = {}
    exec(code, ns)
    assert not synthperf.progress_enabled()
    assert ns["sel"]["score"][0].item() == pytest.approx(3.9044, abs=1e-4)


def test_get_logger_and_configure_logging(restore_state, monkeypatch):
    from synthperf.selective.utils import configure_logging, get_logger

    assert get_logger() is logging.getLogger("synthperf.selective")
    assert get_logger("synthperf.selective.knn").name == "synthperf.selective.knn"
    assert get_logger("somebody.else") is logging.getLogger("synthperf.selective")
    stream = io.StringIO()
    h = logging.StreamHandler(stream)
    h.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    monkeypatch.delenv("SYNTHPERF_LOG_LEVEL", raising=False)
    logger = configure_logging("info", handler=h)
    assert logger.handlers == [h] and logger.level == logging.INFO
    get_logger("synthperf.selective.x").info("hello")
    get_logger().debug("hidden")
    assert stream.getvalue() == "INFO:synthperf.selective.x:hello\n"
    monkeypatch.setenv("SYNTHPERF_LOG_LEVEL", "ERROR")
    assert configure_logging("DEBUG", handler=h).level == logging.ERROR  # environment wins
    monkeypatch.delenv("SYNTHPERF_LOG_LEVEL")
    with pytest.raises(ValueError, match="level must be one of"):
        configure_logging("LOUD")
    with pytest.raises(TypeError, match="handler"):
        configure_logging("INFO", handler="stderr")
    default = configure_logging()
    assert len(default.handlers) == 1 and default.handlers[0].formatter._fmt == "%(levelname)s:%(name)s:%(message)s"


def test_progress_switch_backend_and_track(restore_state, monkeypatch, caplog):
    """seapig's order (spec §6): programmatic > SEAPIG_PROGRESS > synthperf's switch > auto-detection;
    is_enabled() means "a bar is drawn"; off a terminal, automatic mode logs plain INFO lines."""
    from unittest.mock import MagicMock, patch

    from synthperf.selective.utils import (disable, enable, get_backend, is_enabled, reset, set_backend, track)

    monkeypatch.delenv("SEAPIG_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stdout", MagicMock(isatty=lambda: False))
    disable()
    assert not is_enabled() and not synthperf.progress_enabled()
    with caplog.at_level(logging.INFO, logger="synthperf.progress"):
        assert list(track(range(5), desc="Silent")) == [0, 1, 2, 3, 4]
    assert "Silent" not in caplog.text
    enable()
    assert is_enabled() and synthperf.progress_enabled()
    monkeypatch.setenv("SYNTHPERF_PROGRESS", "0")
    reset()
    assert not is_enabled() and not synthperf.progress_enabled()
    monkeypatch.setenv("SEAPIG_PROGRESS", " Yes ")  # seapig's variable forces bars on
    assert is_enabled()
    monkeypatch.setenv("SEAPIG_PROGRESS", "off")
    monkeypatch.setenv("SYNTHPERF_PROGRESS", "1")
    reset()
    assert not is_enabled() and synthperf.progress_enabled()
    monkeypatch.delenv("SEAPIG_PROGRESS")
    assert not is_enabled()  # automatic: stdout is not a terminal
    monkeypatch.setattr("sys.stdout", MagicMock(isatty=lambda: True))
    assert is_enabled()
    monkeypatch.setattr("sys.stdout", MagicMock(isatty=lambda: False))
    assert get_backend() == "rich"
    set_backend("TQDM")
    assert get_backend() == "tqdm"
    with pytest.raises(ValueError, match="Unknown backend"):
        set_backend("ascii")
    with caplog.at_level(logging.INFO, logger="synthperf.progress"):  # automatic, not a terminal: log lines
        assert list(track(range(20), total=20, desc="Counting")) == list(range(20))
    assert "Counting" in caplog.text
    enable()  # forced: a tqdm bar even off a terminal, with seapig's keywords
    seen: dict = {}

    def fake_tqdm(iterable, **kw):
        seen.update(kw)
        return iter(iterable)

    with patch("tqdm.tqdm", side_effect=fake_tqdm):
        assert list(track([1, 2], desc="bar", unit="imgs")) == [1, 2]
    assert seen["desc"] == "bar" and seen["unit"] == "imgs" and seen["total"] is None


def test_set_package_logger_renames_the_selective_logger(restore_state, monkeypatch, caplog):
    from synthperf.selective.utils import configure_logging, get_logger, package_logger_name, set_package_logger

    monkeypatch.delenv("SYNTHPERF_LOG_LEVEL", raising=False)
    logger = set_package_logger("seapig")
    assert package_logger_name() == "seapig" and logger is logging.getLogger("seapig")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert get_logger() is logger and get_logger("other.module") is logger
    assert get_logger("seapig.scores.knn").name == "seapig.scores.knn"
    assert get_logger("synthperf.selective.knn").name == "synthperf.selective.knn"
    monkeypatch.setenv("SEAPIG_LOG_LEVEL", "DEBUG")  # seapig's variable, read when synthperf's is unset
    assert configure_logging("WARNING").level == logging.DEBUG and logger.level == logging.DEBUG
    with caplog.at_level(logging.WARNING, logger="seapig"):  # the library's own records follow the rename
        from synthperf.selective._common import logger as library_logger  # imported before the rename

        library_logger.warning("renamed")
    assert [r.name for r in caplog.records if r.message == "renamed"] == ["seapig"]
    for bad, err in (("", ValueError), ("a..b", ValueError), (3, TypeError)):
        with pytest.raises(err, match="name"):
            set_package_logger(bad)
    assert set_package_logger().name == "synthperf.selective" and get_logger().name == "synthperf.selective"
