"""The GaFi CLI output lock (issue 17): ``synthperf gafi train-classifier | train-gan | pipeline |
multigan | cas | demo`` hold :class:`synthperf._lock.RunLock` on their output folder, so a second
command on the folder of a running one is refused with one ``error:`` line (exit 1, no traceback)
before it writes anything; library callers (``run_experiment``, as ``synthperf run`` calls it on a
point sub-folder of its own locked run) take no lock."""
from __future__ import annotations

import json

import pytest

from synthperf._lock import LOCK_NAME, OutputLockedError, RunLock
from synthperf.gafi import cli

from .conftest import synthperf

pytestmark = pytest.mark.faults

@pytest.mark.parametrize("args", [
    ["train-classifier", "--epochs", "1"],
    ["train-gan", "--epochs", "1"],
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


def test_train_gan_holds_the_lock_around_the_library_call_and_releases_it(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from synthperf.gafi import gan_train

    out, seen = tmp_path / "out", {}

    def probe(*args, **kwargs):
        seen["holder"] = json.loads((out / LOCK_NAME).read_text())
        with pytest.raises(OutputLockedError):
            RunLock(out).acquire()  # a second writer, mid-run
        raise KeyboardInterrupt  # stop the command here

    monkeypatch.setattr(gan_train, "train_gan", probe)
    CliRunner().invoke(cli.app, ["train-gan", "-o", str(out), "--epochs", "1"])
    assert seen["holder"]["pid"] > 0
    assert (out / LOCK_NAME).read_text() == ""  # released even though the command was interrupted
    with RunLock(out):
        pass


def test_refused_pipeline_never_starts_the_search(held, monkeypatch):
    from typer.testing import CliRunner

    from synthperf.gafi import gan_train, pipeline

    out, holder = held
    monkeypatch.setattr(gan_train, "available_checkpoint_epochs", lambda gan_dir: [])
    monkeypatch.setattr(cli, "_classifier", lambda cfg, device: None)
    monkeypatch.setattr(pipeline, "gafi_search", lambda *a, **k: pytest.fail("the refused pipeline started working"))
    r = CliRunner().invoke(cli.app, ["pipeline", "-o", str(out), "PIPELINE.gan_dir=gans"])
    assert r.exit_code == 1, r.output
    assert f"{out} is in use by another synthperf run (pid {holder.pid} on host" in r.output, r.output
    assert "Traceback" not in r.output
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_config_errors_are_reported_before_the_lock_is_taken(tmp_path):
    r = synthperf(["gafi", "train-classifier", "-o", tmp_path / "o", "OPTIMIZATION.epochs=ten"], timeout=120)
    assert r.returncode == 2 and "OPTIMIZATION.epochs" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()
