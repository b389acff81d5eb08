"""The GaFi CLI output lock (issue 17): ``synthperf gafi train-classifier | train-gan | pipeline |
multigan | cas | demo`` hold :class:`synthperf._lock.RunLock` on their output folder, so a second
command on the folder of a running one is refused with one ``error:`` line (exit 1, no traceback)
before it writes anything; library callers (``run_experiment``, as ``synthperf run`` calls it on a
point sub-folder of its own locked run) take no lock."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthperf._lock import LOCK_NAME, OutputLockedError, RunLock
from synthperf.gafi import cli

from .conftest import env, synthperf

pytestmark = pytest.mark.faults

HOLD = """
import sys, time
from pathlib import Path
from synthperf._lock import RunLock
with RunLock(Path(sys.argv[1])):
    Path(sys.argv[2]).touch()
    time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
    """``out`` locked by another live process (the first command), and that process."""
    out, ready = tmp_path / "out", tmp_path / "ready"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(ready)], env=env())
    deadline = time.time() + 60
    while not ready.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the holder did not take the lock"
    yield out, p
    p.kill()
    p.wait(timeout=30)


@pytest.mark.parametrize("args", [
    ["train-classifier", "--epochs", "1"],
    ["train-gan", "--epochs", "1"],
    ["pipeline", "PIPELINE.gan_dir=nowhere"],
    ["cas"],
    ["demo", "--size", "micro"],
], ids=lambda a: a[0])
def test_second_gafi_command_on_the_same_out_is_refused_with_an_error_line(held, args):
    out, holder = held
    before = sorted(p.name for p in out.iterdir())
    r = synthperf(["gafi", args[0], "-o", out, *args[1:]], timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert f"{out} is in use by another synthperf run (pid {holder.pid} on host" in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written (no classifier/, checkpoints/)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # the holder's record is untouched


def test_run_job_holds_the_lock_while_it_runs_and_releases_it(tmp_path, monkeypatch):
    out, seen = tmp_path / "out", {}

    def probe(cfg, out_dir, resume):
        seen["holder"] = json.loads((out_dir / LOCK_NAME).read_text())
        with pytest.raises(OutputLockedError):
            RunLock(out_dir).acquire()  # a second writer, mid-run
        raise KeyboardInterrupt  # stop the job here

    monkeypatch.setitem(cli._COMMANDS, "train-gan", probe)
    with pytest.raises(KeyboardInterrupt):
        cli.run_job(cli.Job("train-gan", {}, str(out), True, {}))
    assert seen["holder"]["pid"] > 0
    assert (out / LOCK_NAME).read_text() == ""  # released even though the job was interrupted
    with RunLock(out):
        pass


def test_refused_job_never_starts_its_command(held, monkeypatch):
    out, _ = held
    monkeypatch.setitem(cli._COMMANDS, "train-classifier",
                        lambda cfg, out_dir, resume: pytest.fail("the refused job started working"))
    with pytest.raises(OutputLockedError, match="in use by another synthperf run"):
        cli.run_job(cli.Job("train-classifier", {}, str(out), True, {}))


def test_sweep_jobs_lock_their_own_folders(tmp_path, monkeypatch):
    """``-m`` job i locks OUT/i, not OUT: two jobs of one sweep never refuse each other."""
    out, locked = tmp_path / "out", []

    def probe(cfg, out_dir, resume):
        locked.append(Path(out_dir).relative_to(out).as_posix())
        assert json.loads((Path(out_dir) / LOCK_NAME).read_text())["pid"] > 0
        assert not (out / LOCK_NAME).exists()

    monkeypatch.setitem(cli._COMMANDS, "cas", probe)
    from typer.testing import CliRunner

    r = CliRunner().invoke(cli.app, ["cas", "-o", str(out), "-m", "--seed", "1,2"])
    assert r.exit_code == 0, r.output
    assert sorted(locked) == ["0", "1"]
