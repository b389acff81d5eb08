"""synthperf._io, the one write layer (issue 14 item 1, issue 17 non-atomic writes).

Atomic writes leave the old file or the whole new one (a raising writer, a SIGKILL mid-write),
stale temp files are recognised and ignored, and every damaged checkpoint (bit flip, truncation,
a directory in place of a file, files from different saves, a foreign sidecar) raises
CheckpointError naming the damaged file. A source scan checks that no other module of the
package renames temp files into place itself.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from synthperf import _io
from synthperf._io import CheckpointError

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "python" / "synthperf"


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- atomic writes
def test_writer_raising_mid_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "table.csv"
    target.write_bytes(b"old contents\n")

    def writer(fh):
        fh.write(b"new contents, first half")
        raise RuntimeError("writer died half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        _io.atomic_write(target, writer)
    assert target.read_bytes() == b"old contents\n"
    assert _only(tmp_path) == ["table.csv"]
    fresh = tmp_path / "sub" / "new.bin"  # no old file: nothing at all appears
    with pytest.raises(RuntimeError):
        _io.atomic_write(fresh, writer)
    assert not fresh.exists() and _only(fresh.parent) == []


def test_atomic_write_bytes_text_and_permissions(tmp_path):
    p = _io.atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    assert p == tmp_path / "a" / "b.bin" and p.read_bytes() == b"\x00\x01"
    old = os.umask(0o027)
    try:
        q = _io.atomic_write_text(tmp_path / "t.txt", "héllo")
    finally:
        os.umask(old)
    assert q.read_text(encoding="utf-8") == "héllo"
    assert stat.S_IMODE(q.stat().st_mode) == 0o640  # the umask's mode, not mkstemp's 0600
    _io.atomic_write_bytes(p, b"replaced")
    assert p.read_bytes() == b"replaced" and _only(p.parent) == ["b.bin"]
    with pytest.raises(TypeError, match="data must be bytes"):
        _io.atomic_write_bytes(tmp_path / "x", "text")
    with pytest.raises(TypeError, match="text must be a str"):
        _io.atomic_write_text(tmp_path / "x", b"bytes")
    with pytest.raises(TypeError, match="writer must be callable"):
        _io.atomic_write(tmp_path / "x", b"bytes")


def test_directory_in_place_of_the_target_raises_and_cleans_up(tmp_path):
    (tmp_path / "out.json").mkdir()
    (tmp_path / "out.json" / "inner").write_text("keep")
    with pytest.raises(OSError):
        _io.atomic_write_bytes(tmp_path / "out.json", b"{}")
    assert _only(tmp_path) == ["out.json"] and (tmp_path / "out.json" / "inner").read_text() == "keep"


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from synthperf._io import atomic_write
    target, marker = sys.argv[1], sys.argv[2]
    def writer(fh):
        fh.write(b"partial")
        fh.flush()
        open(marker, "w").close()
        time.sleep(600)
    atomic_write(target, writer)
""")


def test_sigkill_mid_write_leaves_old_file_and_a_stale_temp_that_is_ignored(tmp_path):
    target, marker = tmp_path / "chunk.parquet", tmp_path / "marker"
    target.write_bytes(b"finished chunk")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "writer ended or stalled"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == b"finished chunk"
    stale = _io.stale_temp_files(target)
    assert len(stale) == 1 and stale[0].read_bytes() == b"partial" and _io.is_temp_file(stale[0])
    assert not _io.is_temp_file(target)
    assert _io.remove_stale_temps(target) == 1 and _only(tmp_path) == ["chunk.parquet", "marker"]


def test_stale_temps_of_one_target_never_include_another_targets(tmp_path):
    png, side = tmp_path / "a.png", tmp_path / "a.png.json"
    for name in (".a.png.x1y2.tmp", ".a.png.json.k3.tmp", ".a.pngz.q.tmp", "a.png.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in _io.stale_temp_files(png)] == [".a.png.x1y2.tmp"]
    assert [p.name for p in _io.stale_temp_files(side)] == [".a.png.json.k3.tmp"]
    assert _io.stale_temp_files(tmp_path / "missing" / "a.png") == []


def test_experiment_store_ignores_stale_temps(tmp_path):
    pd = pytest.importorskip("pandas")
    from synthperf.experiments.store import chunk_files, chunk_path, load_results, write_chunk

    path = chunk_path(tmp_path, 0, 0, 2)
    write_chunk(pd.DataFrame({"trial": [0, 1]}), path)
    (path.parent / f".{path.name}.abc123.tmp").write_bytes(b"PAR1 half")
    assert chunk_files(tmp_path) == [path]
    assert list(load_results(tmp_path)["trial"]) == [0, 1]


def test_atomic_directory(tmp_path):
    target = tmp_path / "model"
    with _io.atomic_directory(target) as tmp:
        assert _io.is_temp_file(tmp) and tmp.parent == tmp_path
        (tmp / "weights.bin").write_bytes(b"w")
        assert not target.exists()  # readers never see a half-built folder
    assert (target / "weights.bin").read_bytes() == b"w" and _only(tmp_path) == ["model"]
    with pytest.raises(KeyError):
        with _io.atomic_directory(tmp_path / "failed") as tmp:
            (tmp / "half").write_bytes(b"h")
            raise KeyError("boom")
    assert _only(tmp_path) == ["model"]
    with _io.atomic_directory(target) as tmp:  # another writer finished first: its folder is kept
        (tmp / "weights.bin").write_bytes(b"second")
    assert (target / "weights.bin").read_bytes() == b"w" and _only(tmp_path) == ["model"]


# ----------------------------------------------------------------------------- checkpoints
def _save(tmp_path, name="ck"):
    tensors = {"w": torch.arange(12, dtype=torch.float32).view(3, 4), "b": torch.tensor([1, 2], dtype=torch.int64)}
    stem = _io.save_checkpoint(tmp_path / name, tensors, {"kind": "test", "epoch": 3, "lr": 0.1})
    return stem, tensors


def test_checkpoint_round_trip_records_a_checksum(tmp_path):
    stem, tensors = _save(tmp_path)
    assert stem == tmp_path / "ck"
    got, meta = _io.load_checkpoint(tmp_path / "ck.safetensors")
    assert meta == {"kind": "test", "epoch": 3, "lr": 0.1}
    assert set(got) == set(tensors) and all(torch.equal(got[k], tensors[k]) for k in tensors)
    side = json.loads((tmp_path / "ck.json").read_text())
    data = (tmp_path / "ck.safetensors").read_bytes()
    import hashlib

    assert side[_io.CHECKPOINT_KEY]["sha256"] == hashlib.sha256(data).hexdigest()
    assert side[_io.CHECKPOINT_KEY]["bytes"] == len(data)
    assert _io.checkpoint_exists(tmp_path / "ck") and not _io.checkpoint_exists(tmp_path / "other")
    assert _io.checkpoint_paths(tmp_path / "stats.v1") == (tmp_path / "stats.v1.safetensors",
                                                           tmp_path / "stats.v1.json")
    assert _only(tmp_path) == ["ck.json", "ck.safetensors"]


def test_checksum_mismatch_names_the_file(tmp_path):
    _save(tmp_path)
    st = tmp_path / "ck.safetensors"
    data = bytearray(st.read_bytes())
    data[-3] ^= 0x01  # one bit of a tensor value: safetensors itself would load it silently
    st.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 differs") as err:
        _io.load_checkpoint(tmp_path / "ck")
    assert str(st) in str(err.value) and isinstance(err.value, ValueError)


def test_truncated_checkpoint_names_the_file(tmp_path):
    _save(tmp_path)
    st = tmp_path / "ck.safetensors"
    st.write_bytes(st.read_bytes()[:-5])
    with pytest.raises(CheckpointError, match="truncated") as err:
        _io.load_checkpoint(tmp_path / "ck")
    assert str(st) in str(err.value)


@pytest.mark.parametrize("which", ["safetensors", "json"])
def test_directory_in_place_of_a_checkpoint_file(tmp_path, which):
    _save(tmp_path)
    p = tmp_path / f"ck.{which}"
    p.unlink()
    p.mkdir()
    with pytest.raises(CheckpointError, match="not a regular file") as err:
        _io.load_checkpoint(tmp_path / "ck")
    assert str(p) in str(err.value)
    assert not _io.checkpoint_exists(tmp_path / "ck")


def test_missing_foreign_mixed_and_corrupt_sidecars(tmp_path):
    with pytest.raises(CheckpointError, match="missing") as err:
        _io.load_checkpoint(tmp_path / "nope")
    assert str(tmp_path / "nope.json") in str(err.value)
    _save(tmp_path, "a")
    _io.save_checkpoint(tmp_path / "b", {"w": torch.zeros(3, 4), "b": torch.tensor([5, 6])}, {"kind": "test"})
    (tmp_path / "b.json").replace(tmp_path / "a.json")  # files of two different saves
    with pytest.raises(CheckpointError, match="different saves"):
        _io.load_checkpoint(tmp_path / "a")
    (tmp_path / "a.json").write_text(json.dumps({"kind": "test"}))  # a sidecar not written by save_checkpoint
    with pytest.raises(CheckpointError, match="no checksum"):
        _io.load_checkpoint(tmp_path / "a")
    (tmp_path / "a.json").write_text("{half")
    with pytest.raises(CheckpointError, match="corrupt JSON") as err:
        _io.load_checkpoint(tmp_path / "a")
    assert str(tmp_path / "a.json") in str(err.value)
    (tmp_path / "a.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="JSON object"):
        _io.load_checkpoint(tmp_path / "a")


def test_save_checkpoint_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match=r"tensors\['w'\] must be a torch.Tensor"):
        _io.save_checkpoint(tmp_path / "x", {"w": [1.0]}, {})
    with pytest.raises(ValueError, match="reserved key"):
        _io.save_checkpoint(tmp_path / "x", {}, {_io.CHECKPOINT_KEY: 1})
    with pytest.raises(TypeError, match="meta must be JSON-serialisable"):
        _io.save_checkpoint(tmp_path / "x", {}, {"obj": object()})
    assert _only(tmp_path) == []


def test_load_state_into_mismatch(tmp_path):
    lin = torch.nn.Linear(2, 3)
    with pytest.raises(CheckpointError, match="layer weights does not match"):
        _io.load_state_into(lin, {"weight": torch.zeros(3, 2)}, "layer weights")


# ----------------------------------------------------------------------------- tables, figures
def test_write_parquet_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    p = _io.write_parquet(df, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(p), df)
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        _io.write_parquet([1, 2], tmp_path / "u.parquet")


def test_save_figure_object_api_keeps_the_backend(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    before = matplotlib.get_backend()
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    paths = _io.save_figure(fig, tmp_path / "coverage_alpha0.1")
    assert [p.name for p in paths] == ["coverage_alpha0.1.png", "coverage_alpha0.1.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"
    assert matplotlib.get_backend() == before and _only(tmp_path) == sorted(p.name for p in paths)
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure"):
        _io.save_figure(object(), tmp_path / "x")
    with pytest.raises(ValueError, match="dpi must be a positive integer"):
        _io.save_figure(fig, tmp_path / "x", dpi=0)


# ----------------------------------------------------------------------------- one write layer
_RENAMES = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move"), ("tempfile", "mkstemp"),
            ("tempfile", "mkdtemp"), ("tempfile", "NamedTemporaryFile"), ("os", "fsync")}


def _rename_calls(source: str) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            if (node.func.value.id, node.func.attr) in _RENAMES:
                out.append((node.lineno, f"{node.func.value.id}.{node.func.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil", "tempfile"):
            out += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names
                    if (node.module, a.name) in _RENAMES]
    return out


def test_the_scan_finds_a_hand_written_atomic_write():
    src = "import os\ndef w(p, tmp):\n    os.fsync(3)\n    os.replace(tmp, p)\nfrom shutil import move\n"
    assert sorted(_rename_calls(src)) == [(3, "os.fsync"), (4, "os.replace"), (5, "from shutil import move")]


def test_no_module_but_io_writes_atomically_by_itself():
    """Every temp-file + fsync + rename in the package lives in synthperf/_io.py."""
    bad = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path == PACKAGE_DIR / "_io.py":
            continue
        bad += [f"{path.relative_to(PACKAGE_DIR)}:{line}: {call}" for line, call in _rename_calls(path.read_text())]
    assert not bad, "atomic-write code outside synthperf/_io.py (use synthperf._io):\n" + "\n".join(bad)
