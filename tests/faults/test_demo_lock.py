"""The demo-level output lock (issue 17): a second ``synthperf demo`` on the output folder of a
running one is refused with one ``error:`` line (exit 1, no traceback) before it writes anything;
the lock is released when the demo ends, and a dead holder's lock is taken over."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from synthperf._lock import LOCK_NAME, OutputLockedError, RunLock
from synthperf.experiments import demo

from .conftest import HOLD, env, synthperf

pytestmark = pytest.mark.faults

def test_second_demo_on_the_same_out_is_refused_with_an_error_line(held):
    out, holder = held
    before = sorted(p.name for p in out.iterdir())
    r = synthperf(["demo", "--quick", "--generator", "gafi", "--no-longtail", "-o", out], timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert f"{out} is in use by another synthperf run (pid {holder.pid} on host" in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written (no data/, no generators/)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # the holder's record is untouched


def test_run_demo_raises_before_any_work_and_force_never_takes_a_live_lock(held, monkeypatch):
    out, _ = held
    monkeypatch.setattr(demo, "digits_split", lambda seed: pytest.fail("the refused demo started working"))
    for force in (False, True):
        with pytest.raises(OutputLockedError, match="in use by another synthperf run"):
            demo.run_demo(out, quick=True, generators=("gafi",), longtail=False, force=force)


def test_bad_arguments_are_refused_before_the_lock_is_taken(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="generators"):
        demo.run_demo(out, generators=("nope",))
    with pytest.raises(ValueError, match="threads"):
        demo.run_demo(out, threads=0)
    assert not out.exists()


def test_demo_holds_the_lock_while_it_runs_and_releases_it(tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen = {}

    def probe(seed):
        seen["holder"] = json.loads((out / LOCK_NAME).read_text())
        with pytest.raises(OutputLockedError):
            RunLock(out).acquire()  # a second writer, mid-run
        raise KeyboardInterrupt  # stop the demo here

    monkeypatch.setattr(demo, "digits_split", probe)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(out, quick=True, generators=("gafi",), longtail=False)
    assert seen["holder"]["pid"] == os.getpid() and seen["holder"]["host"] == socket.gethostname()
    assert (out / LOCK_NAME).read_text() == ""  # released even though the demo was interrupted
    with RunLock(out):
        pass


def test_lock_of_a_killed_demo_is_taken_over(tmp_path, monkeypatch):
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(tmp_path / "ready")], env=env())
    deadline = time.time() + 60
    while not (tmp_path / "ready").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)  # the kernel drops its flock; its record stays
    p.wait(timeout=30)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == p.pid
    monkeypatch.setattr(demo, "digits_split", lambda seed: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # it got past the lock and started working
        demo.run_demo(out, quick=True, generators=("gafi",), longtail=False)


def test_demo_cli_force_still_refuses_a_live_holder(held):
    """``synthperf demo --force`` reaches run_demo(force=True): a live holder on this host is kept."""
    out, holder = held
    r = synthperf(["demo", "--quick", "--generator", "gafi", "--no-longtail", "--force", "-o", out], timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "in use by another synthperf run" in r.stderr and "Traceback" not in r.stderr
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
