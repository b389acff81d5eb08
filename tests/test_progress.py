"""Progress manners (issue 14 item 7): bars only on stderr and only on a terminal; off a
terminal plain log lines on the ``synthperf.progress`` logger; never anything on stdout."""
from __future__ import annotations

import logging
import os
import pty
import select
import subprocess
import sys

import pytest

from synthperf import progress

_CHILD = """
import logging, sys
from synthperf import enable_progress
from synthperf.progress import progress_task, track
if {configure}:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
enable_progress()
assert sum(track(range(50), "tracked work")) == 1225
with progress_task("task work", total=20) as advance:
    for _ in range(20):
        advance()
"""


def _env():
    env = dict(os.environ)
    env["SYNTHPERF_PROGRESS"] = "1"
    env.pop("TERM", None)
    return env


@pytest.mark.parametrize("configure", [False, True])
def test_nothing_on_stdout_when_not_a_tty(configure):
    out = subprocess.run([sys.executable, "-c", _CHILD.format(configure=configure)], capture_output=True,
                         text=True, env=_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    if configure:  # plain lines, no bar control codes
        lines = out.stderr.splitlines()
        assert "synthperf.progress tracked work: started (50 items)" in lines
        assert any(line.startswith("synthperf.progress task work: done, 20 items") for line in lines)
        assert "\x1b[" not in out.stderr and "\r" not in out.stderr
    else:  # logging not configured by the application: silent (INFO is below the last-resort level)
        assert out.stderr == ""


def test_bar_goes_to_stderr_on_a_tty():
    """stderr is a pseudo-terminal, stdout a pipe: the bar is drawn on the terminal, stdout
    stays empty."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD.format(configure=False)], stdout=subprocess.PIPE,
                                stderr=slave, env={**_env(), "TERM": "xterm", "COLUMNS": "100"})
        os.close(slave)
        slave = -1
        captured = b""
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            captured += chunk
        stdout = proc.stdout.read()
        assert proc.wait(timeout=60) == 0
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert stdout == b""
    text = captured.decode(errors="replace")
    assert "tracked work" in text and "task work" in text


def test_log_lines_at_each_tenth(monkeypatch, caplog):
    monkeypatch.setattr(progress, "_interactive", lambda: False)
    progress.enable_progress()
    try:
        with caplog.at_level(logging.INFO, logger="synthperf.progress"):
            with progress.progress_task("work", total=40) as advance:
                for _ in range(20):
                    advance(2)
    finally:
        progress.disable_progress()
    messages = [r.getMessage() for r in caplog.records if r.name == "synthperf.progress"]
    assert messages[0] == "work: started (40 items)"
    assert messages[1:10] == [f"work: {4 * k}/40 ({10 * k}%)" for k in range(1, 10)]
    assert messages[10].startswith("work: done, 40 items in ") and len(messages) == 11


def test_disabled_progress_reports_nothing(monkeypatch, caplog, capsys):
    monkeypatch.setattr(progress, "_interactive", lambda: False)
    progress.disable_progress()
    with caplog.at_level(logging.INFO, logger="synthperf.progress"):
        assert list(progress.track(range(5), "quiet")) == [0, 1, 2, 3, 4]
        with progress.progress_task("quiet", 3) as advance:
            advance(3)
    assert caplog.records == []
    assert capsys.readouterr() == ("", "")
