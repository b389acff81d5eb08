"""Fault injection on the experiments store (``synthperf run``): corrupt shards, strays, another
chunking, the run lock, concurrent writers, full and read-only disks, orphaned workers, and
SIGKILL at seeded moments. Every damaged shard is detected, recomputed and reported once;
nothing is lost, duplicated or silently used.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthperf._io import is_temp_file
from synthperf.experiments import run_experiment
from synthperf._lock import LOCK_NAME, OutputLockedError, RunLock
from synthperf.experiments.store import chunk_files, chunk_path, load_results, sidecar_path  # the verifying reader

from ._corrupt import BYTE_DAMAGE, corrupt_file
from .conftest import HARNESS, env, sorted_frame, synthperf, write_config

pytestmark = pytest.mark.faults
SHARD = (0, 2, 4)  # the middle shard of the 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    cfg = write_config(root)
    run_experiment(cfg, root / "out", report=False)
    return cfg, root / "out", sorted_frame(load_results(root / "out"))


def _damage(path: Path, how: str, ref_out: Path) -> None:
    if how in BYTE_DAMAGE:
        corrupt_file(path, how, flip_at=1 / 3, mask=0x10, keep_in_directory="part-0.parquet")
    elif how == "foreign":  # another shard's valid Parquet file (same size class) in its place
        shutil.copy(chunk_path(ref_out, 0, 0, 2), path)
    elif how == "copied_pair":  # another shard copied in with its own (valid) sidecar
        shutil.copy(chunk_path(ref_out, 0, 0, 2), path)
        shutil.copy(sidecar_path(chunk_path(ref_out, 0, 0, 2)), sidecar_path(path))
    elif how == "no_sidecar":  # killed between the Parquet file and its sidecar
        sidecar_path(path).unlink()
    elif how == "sidecar_garbled":
        sidecar_path(path).write_text("{not json")
    else:
        raise ValueError(how)


DAMAGES = ["truncate", "bitflip", "zero", "directory", "foreign", "copied_pair", "no_sidecar", "sidecar_garbled"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_shard_is_detected_recomputed_and_reported_once(reference, tmp_path, caplog, how):
    cfg, ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    target = chunk_path(out, *SHARD)
    _damage(target, how, ref_out)
    with pytest.raises(ValueError, match="corrupt result chunk .*trials_000002_000004"):
        load_results(out)  # never silently used by readers either
    with caplog.at_level(logging.WARNING, logger="synthperf.experiments"):
        s = run_experiment(cfg, out, report=False)
    lines = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(lines) == 1 and "trials_000002_000004.parquet" in lines[0], lines
    assert s.computed == 1 and [p for p, _ in s.recomputed] == [str(target)]
    pd.testing.assert_frame_equal(sorted_frame(load_results(out)), ref, check_exact=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="synthperf.experiments"):
        again = run_experiment(cfg, out, report=False)
    assert again.computed == 0 and again.recomputed == () and not caplog.records


def test_stale_temp_files_are_removed_and_never_read(reference, tmp_path):
    cfg, ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    chunks = out / "points" / "p0000" / "chunks"
    stale = [chunks / ".trials_000002_000004.parquet.abc123.tmp", chunks / ".trials_000002_000004.parquet.json.q.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    pd.testing.assert_frame_equal(sorted_frame(load_results(out)), ref, check_exact=True)
    s = run_experiment(cfg, out, report=False)
    assert s.computed == 0 and not any(p.exists() for p in stale)


def test_stray_and_copied_shards_are_never_counted(reference, tmp_path, caplog):
    cfg, ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    chunks = out / "points" / "p0000" / "chunks"
    for name in ("trials_000000_000006.parquet", "trials_000000_000002 copy.parquet"):  # other chunking, a copy
        shutil.copy(chunks / "trials_000000_000002.parquet", chunks / name)
        shutil.copy(sidecar_path(chunks / "trials_000000_000002.parquet"), sidecar_path(chunks / name))
    with caplog.at_level(logging.WARNING, logger="synthperf.experiments"):
        df = load_results(out)
    pd.testing.assert_frame_equal(sorted_frame(df), ref, check_exact=True)
    assert sum("not in this run's chunk plan" in r.getMessage() for r in caplog.records) == 1
    assert run_experiment(cfg, out, report=False).computed == 0
    pd.testing.assert_frame_equal(sorted_frame(load_results(out)), ref, check_exact=True)


def test_other_chunking_on_the_same_directory_is_refused(reference, tmp_path):
    cfg, ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    with pytest.raises(ValueError, match=r"another config .*chunk_trials"):
        run_experiment(cfg, out, ["chunk_trials=3"], report=False)
    assert len(load_results(out)) == len(ref)


# ----------------------------------------------------------------------------- the run lock
def test_lock_refuses_a_second_writer_naming_dir_and_holder(tmp_path):
    out = tmp_path / "out"
    with RunLock(out):
        holder = json.loads((out / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
        for force in (False, True):  # a live holder on this host is never taken over
            with pytest.raises(OutputLockedError, match=rf"{out} is in use by another synthperf run \(pid "
                                                         rf"{os.getpid()} on host"):
                RunLock(out, force=force).acquire()
        with pytest.raises(OutputLockedError):
            run_experiment(write_config(tmp_path), out, report=False)
    assert (out / LOCK_NAME).read_text() == ""  # released: the record is cleared
    with RunLock(out):  # and can be taken again
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "x"}))
    with caplog.at_level(logging.WARNING, logger="synthperf.experiments"), RunLock(out):
        pass
    assert sum("stale lock" in r.getMessage() and str(pid) in r.getMessage() for r in caplog.records) == 1


def test_lock_of_another_host_needs_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid", "started": "x"}))
    with pytest.raises(OutputLockedError, match="another host.*--force"):
        RunLock(out).acquire()
    with RunLock(out, force=True):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_concurrent_runs_with_other_chunkings_never_duplicate_rows(tmp_path, reference):
    """Issue 17: two runs with different chunk_trials started together gave 2x the rows."""
    cfg = write_config(tmp_path, n_seeds=40)
    out = tmp_path / "out"
    code = "from synthperf.experiments.cli import app; app()"
    procs = [subprocess.Popen([sys.executable, "-c", code, "run", str(cfg), f"chunk_trials={k}", "-o", str(out),
                               "--no-report"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in (1, 3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    err = next(e for rc, e in results if rc != 0)
    assert "in use by another synthperf run" in err or "another config" in err, err
    assert "Traceback" not in err
    df = load_results(out)
    per_trial = len(reference[2]) // 6
    assert len(df) == 40 * per_trial and not df.duplicated(["trial", "Method", "alpha"]).any()


# ----------------------------------------------------------------------------- full / read-only disks
def test_disk_full_is_a_clear_error_naming_the_path(tmp_path, monkeypatch):
    import synthperf.cli as root
    from synthperf.experiments import store

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(path).parent / f".{Path(path).name}.x.tmp"))

    monkeypatch.setattr(store, "atomic_write_bytes", full)
    root._register_groups()
    out = tmp_path / "out"
    r = CliRunner().invoke(root.app, ["run", str(write_config(tmp_path)), "-o", str(out), "--no-report"])
    assert r.exit_code == 1, r.output
    assert "error: cannot write" in r.output and "disk is full" in r.output and str(out) in r.output
    assert "Traceback" not in r.output


def _mount_tmpfs(target: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    target.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                          capture_output=True).returncode == 0


def test_real_full_and_read_only_file_systems(tmp_path):
    """A real 64 KiB tmpfs (needs root) fills up; then it is remounted read-only."""
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "64k"):
        pytest.skip("needs root and mount(8) for a small tmpfs")
    try:
        (mnt / "filler").write_bytes(b"\0" * (60 << 10))
        cfg = write_config(tmp_path)
        r = synthperf(["run", cfg, "-o", mnt / "out", "--no-report"], timeout=120)
        assert r.returncode == 1 and "error: cannot write" in r.stderr and "disk is full" in r.stderr, r.stderr
        assert str(mnt / "out") in r.stderr and "Traceback" not in r.stderr
        (mnt / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        r = synthperf(["run", cfg, "-o", mnt / "out2", "--no-report"], timeout=120)
        assert r.returncode == 1 and "read-only" in r.stderr and str(mnt / "out2") in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_read_only_directory_without_root(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions (the tmpfs test covers read-only as root)")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(OSError, match=rf"cannot write .*{out}.*(read-only|permission)"):
            run_experiment(write_config(tmp_path), out, report=False)
    finally:
        out.chmod(0o755)


# ----------------------------------------------------------------------------- orphans and kills
def _children(pid: int) -> set[int]:
    kids = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        kids |= {int(x) for x in task.read_text().split()}
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_main_process_kills_its_workers(tmp_path):
    cfg = write_config(tmp_path, n_seeds=2000, chunk_trials=1, n_test=200,
                       data={"kind": "imagenet_like", "n_classes": 4, "n_per_class": 120, "n_labels": 4})
    code = "from synthperf.experiments.cli import app; app()"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(cfg), "-o", str(tmp_path / "out"), "--workers",
                             "2", "--no-report"], env=env())
    deadline, kids = time.time() + 120, set()
    while time.time() < deadline and proc.poll() is None:
        kids = {k for k in _children(proc.pid) if _alive(k)}
        if len(kids) >= 2 and len(chunk_files(tmp_path / "out")) >= 2:  # workers are computing
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(kids) >= 2, "the workers did not start"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.05)
    left = [k for k in kids if _alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    assert not left, f"worker(s) {left} outlived the killed main process"


def test_sigkill_at_seeded_moments_then_resume_equals_uninterrupted(reference, tmp_path):
    """Kills during a write, between a shard and its sidecar, and between shards (seeded schedule)."""
    cfg, _, ref = reference
    log = tmp_path / "writes.log"
    r = synthperf(["run", cfg, "-o", tmp_path / "count", "--no-report"], SYNTHPERF_FAULT_LOG=str(log))
    assert r.returncode == 0, r.stderr
    writes = log.read_text().split("\n")[:-1]
    shard_writes = [int(w.split()[0]) for w in writes if "/chunks/" in w]
    assert len(shard_writes) == 6  # 3 shards + 3 sidecars
    rng = random.Random(17)
    schedule = [(n, "mid") for n in rng.sample(shard_writes, 1)] + [(n, "after") for n in rng.sample(shard_writes, 2)]
    for i, (n, phase) in enumerate(schedule):
        out = tmp_path / f"k{i}"
        r = synthperf(["run", cfg, "-o", out, "--no-report"], SYNTHPERF_FAULT_KILL=f"{n}:{phase}")
        assert r.returncode == -signal.SIGKILL, (n, phase, r.stderr)
        s = run_experiment(cfg, out, report=False)
        assert 1 <= s.computed <= 3
        pd.testing.assert_frame_equal(sorted_frame(load_results(out)), ref, check_exact=True)
        assert not [p for p in out.rglob("*") if is_temp_file(p)]
        assert run_experiment(cfg, out, report=False).computed == 0
