"""Issue 17 item 3: security checks of the package source and of every file reader.

1. The package source (python/synthperf) uses no unsafe deserialisation or code execution:
   pickle (except gafi.data's RestrictedUnpickler, itself tested below), ``torch.load``
   without ``weights_only=True``, ``torch.jit.load``, ``yaml.load``/``unsafe_load``/``full_load``,
   ``np.load(allow_pickle=True)``, builtin ``eval``/``exec``/``compile``, ``shell=True``,
   ``os.system``/``os.popen``. The check walks the AST (so ``module.eval()`` and comments are
   not flagged) and each failure names file:line; the checker itself is tested on a crafted
   source that contains every pattern, so it cannot pass vacuously.
2. ZIP readers refuse ``..``, absolute paths and symlink members (crafted archives).
3. Every checkpoint loader refuses a crafted malicious file with a clear ValueError
   (a pickle with a ``__reduce__`` payload, a safetensors with a lying header, a JSON sidecar
   with a wrong hash), and the payload never runs.
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import pickle
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

PKG = Path(__file__).resolve().parents[1] / "python" / "synthperf"

#: file (relative to the package) -> names whose import is allowed there, with the reason.
ALLOWED_IMPORTS = {
    # CIFAR "python" files are pickles: read only through RestrictedUnpickler (numpy arrays,
    # dicts, bytes); test_restricted_unpickler_refuses_reduce_payload checks it.
    "gafi/data.py": {"pickle"},
}
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}


def _kw(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_uses(source: str, rel: str) -> list[str]:
    """``["rel:line: what", ...]`` for every unsafe pattern in ``source`` (module docstring)."""
    tree = ast.parse(source)
    found: list[str] = []
    allowed = ALLOWED_IMPORTS.get(rel, set())
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in UNSAFE_MODULES and a.name.split(".")[0] not in allowed:
                    found.append(f"{where}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in UNSAFE_MODULES and top not in allowed:
                found.append(f"{where}: from {node.module} import ...")
            if node.module == "yaml" and any(a.name in ("load", "unsafe_load", "full_load", "Loader",
                                                        "UnsafeLoader", "FullLoader") for a in node.names):
                found.append(f"{where}: from yaml import an unsafe loader")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if name in ("eval", "exec", "compile", "__import__") and isinstance(node.func, ast.Name):
                found.append(f"{where}: builtin {name}()")
            if name.endswith("torch.load"):
                wo = _kw(node, "weights_only")
                if not _is_true(wo):
                    found.append(f"{where}: torch.load without weights_only=True")
            if name.endswith("jit.load"):
                found.append(f"{where}: torch.jit.load runs pickled code")
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
                found.append(f"{where}: {name} (use yaml.safe_load)")
            if name in ("np.load", "numpy.load"):
                ap = _kw(node, "allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    found.append(f"{where}: np.load(allow_pickle=...) not literally False")
            shell = _kw(node, "shell")
            if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
                found.append(f"{where}: {name}(shell=...)")
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
                found.append(f"{where}: {name}() runs a shell")
            if last in ("loads", "load", "Unpickler") and name.split(".")[0] in UNSAFE_MODULES \
                    and name.split(".")[0] not in allowed:
                found.append(f"{where}: {name}()")
    return found


def test_checker_finds_every_pattern():
    """The checker is not vacuous: a crafted source with each pattern gives one finding per line."""
    src = "\n".join([
        "import pickle",
        "from dill import loads",
        "import torch; torch.load('x.pt')",
        "torch.load('x.pt', weights_only=False)",
        "torch.jit.load('m.pt')",
        "import yaml; yaml.load(s)",
        "np.load('a.npy', allow_pickle=True)",
        "eval('1+1')",
        "exec('x=1')",
        "subprocess.run('ls', shell=True)",
        "os.system('ls')",
        "from yaml import load",
        "marshal.loads(b'')",
    ])
    hits = unsafe_uses(src, "crafted.py")
    lines = {int(h.split(":")[1]) for h in hits}
    assert lines == set(range(1, 14)), hits
    ok = ("torch.load('x.pt', weights_only=True)\nnp.load(f, allow_pickle=False)\nmodel.eval()\n"
          "yaml.safe_load(s)\nsubprocess.run(['ls'], shell=False)\n# eval(x) in a comment\n'exec(1)'\n")
    assert unsafe_uses(ok, "ok.py") == []


def test_package_source_has_no_unsafe_calls():
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 50, f"package source not found under {PKG}"
    found = []
    for f in files:
        found += unsafe_uses(f.read_text(encoding="utf-8"), f.relative_to(PKG).as_posix())
    assert not found, "unsafe code in the package:\n" + "\n".join(found)


def test_allowlisted_pickle_is_only_the_restricted_unpickler():
    """gafi/data.py may import pickle only to subclass Unpickler; no pickle.load(s) call there."""
    tree = ast.parse((PKG / "gafi" / "data.py").read_text(encoding="utf-8"))
    calls = [(n.lineno, _dotted(n.func)) for n in ast.walk(tree) if isinstance(n, ast.Call)
             and _dotted(n.func) in ("pickle.load", "pickle.loads", "pickle.Unpickler")]
    assert calls == [], f"gafi/data.py:{calls} calls pickle directly"


# -- crafted payloads ------------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates the folder ``marker`` (harmless evidence the payload ran)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.marker,))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": _Payload(marker)}, protocol=2)


def test_restricted_unpickler_refuses_reduce_payload(tmp_path):
    from synthperf.gafi.data import UnsafePickleError, safe_unpickle

    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global"):
        safe_unpickle(_evil_pickle(marker), "data_batch_1")
    assert not marker.exists()
    ok = {b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2]}
    back = safe_unpickle(pickle.dumps(ok, protocol=2), "data_batch_1")
    np.testing.assert_array_equal(back[b"data"], ok[b"data"])


def _lying_safetensors() -> bytes:
    """A safetensors file whose header claims a tensor far beyond the end of the file."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 1 << 42]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 16


def _huge_header_len() -> bytes:
    return struct.pack("<Q", 1 << 60) + b"{}"


def _write_pair(stem: Path, data: bytes, *, sha: str | None = None, meta: dict | None = None) -> None:
    from synthperf import _io

    stem.parent.mkdir(parents=True, exist_ok=True)
    st, js = _io.checkpoint_paths(stem)
    st.write_bytes(data)
    doc = dict(meta or {})
    doc[_io.CHECKPOINT_KEY] = {"version": _io._CHECKPOINT_VERSION, "bytes": len(data),
                               "sha256": sha or hashlib.sha256(data).hexdigest()}
    js.write_text(json.dumps(doc))


def _valid_pair(stem: Path, meta: dict) -> None:
    import torch
    from synthperf import _io

    _io.save_checkpoint(stem, {"w": torch.zeros(3)}, meta)


def _loaders():
    """(name, load(path), meta that makes the file look like that loader's own)."""
    from synthperf import _io
    from synthperf.flows.training import load_network
    from synthperf.gafi.classifier import load_classifier as gafi_classifier
    from synthperf.gafi.gan_train import load_generator
    from synthperf.guidance.classifiers import load_classifier as guidance_classifier
    from synthperf.guidance.criteria import HardnessCriterion

    def sfx(p):
        return Path(str(p) + ".safetensors")

    return [
        ("_io.load_checkpoint", lambda p: _io.load_checkpoint(p), {}),
        ("flows.load_network", lambda p: load_network(p), {"format": "synthperf.flows.checkpoint/2"}),
        ("gafi.load_generator", lambda p: load_generator(p), {"kind": "generator"}),
        ("gafi.load_classifier", lambda p: gafi_classifier(p), {"kind": "classifier"}),
        ("guidance.load_classifier", lambda p: guidance_classifier(sfx(p)), {"n_classes": 10}),
        ("guidance.HardnessCriterion.load", lambda p: HardnessCriterion.load(p), {"kind": "hardness"}),
    ]


LOADER_NAMES = ["_io.load_checkpoint", "flows.load_network", "gafi.load_generator", "gafi.load_classifier",
                "guidance.load_classifier", "guidance.HardnessCriterion.load"]
CRAFTED = ["pickle_as_safetensors", "lying_header", "huge_header_length", "wrong_hash", "pickle_sidecar"]


@pytest.mark.parametrize("crafted", CRAFTED)
@pytest.mark.parametrize("loader", LOADER_NAMES)
def test_malicious_checkpoint_refused(tmp_path, loader, crafted):
    """Each loader raises a ValueError (CheckpointError) naming the file; the payload never runs."""
    pytest.importorskip("safetensors")
    name, load, meta = next(x for x in _loaders() if x[0] == loader)
    marker = tmp_path / "pwned"
    stem = tmp_path / "ckpt" / "model"
    if crafted == "pickle_as_safetensors":  # a torch.save-style pickle renamed .safetensors, hash matching
        _write_pair(stem, _evil_pickle(marker), meta=meta)
    elif crafted == "lying_header":  # hash matches: the header itself must be caught
        _write_pair(stem, _lying_safetensors(), meta=meta)
    elif crafted == "huge_header_length":
        _write_pair(stem, _huge_header_len(), meta=meta)
    elif crafted == "wrong_hash":  # a valid file whose sidecar records another file's hash
        _valid_pair(stem, meta)
        js = stem.with_name("model.json")
        doc = json.loads(js.read_text())
        doc[next(k for k in doc if isinstance(doc[k], dict) and "sha256" in doc[k])]["sha256"] = "0" * 64
        js.write_text(json.dumps(doc))
    elif crafted == "pickle_sidecar":  # the JSON sidecar replaced by a pickle
        _valid_pair(stem, meta)
        stem.with_name("model.json").write_bytes(_evil_pickle(marker))
    with pytest.raises(ValueError) as info:
        load(stem)
    msg = str(info.value)
    assert "model" in msg and ("ckpt" in msg or "corrupt" in msg), f"{name}: unclear message {msg!r}"
    assert not marker.exists(), f"{name} ran a pickle payload"


@pytest.mark.parametrize("crafted", ["pickle", "lying_header", "huge_header_length"])
def test_bare_classifier_weights_refused(tmp_path, crafted):
    """guidance.load_classifier also takes bare weights (no sidecar): crafted ones are refused."""
    pytest.importorskip("safetensors")
    from synthperf.guidance.classifiers import load_classifier

    marker = tmp_path / "pwned"
    p = tmp_path / "clf.safetensors"
    p.write_bytes({"pickle": _evil_pickle(marker), "lying_header": _lying_safetensors(),
                   "huge_header_length": _huge_header_len()}[crafted])
    with pytest.raises(ValueError, match="clf.safetensors"):
        load_classifier(p)
    assert not marker.exists()


def test_pickle_suffixes_refused(tmp_path):
    """A .pt/.pth/.ckpt/.pkl file is never unpickled by the classifier or feature-net loaders."""
    from synthperf.flows.metrics import load_local_feature_extractor
    from synthperf.guidance.classifiers import load_classifier

    marker = tmp_path / "pwned"
    for suffix in (".pt", ".pth", ".ckpt", ".pkl"):
        p = tmp_path / f"evil{suffix}"
        p.write_bytes(_evil_pickle(marker))
        with pytest.raises(ValueError, match="evil"):
            load_classifier(p)
        with pytest.raises(ValueError, match="safetensors"):
            load_local_feature_extractor(p)
    assert not marker.exists()


def test_selective_index_file_refused(tmp_path):
    """KNNIndex.load: a pickle or garbage in place of a faiss index gives a ValueError naming it."""
    pytest.importorskip("faiss")
    from synthperf.selective.knn import KNNIndex

    marker = tmp_path / "pwned"
    for name, data in (("evil.index", _evil_pickle(marker)), ("garbage.index", b"\x00" * 64)):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ValueError, match=name):
            KNNIndex().load(p)
    assert not marker.exists()


def test_npz_readers_refuse_object_arrays(tmp_path):
    """np.load(allow_pickle=False) refuses a pickled object array in a flows simulation part."""
    from synthperf.flows.pfode import _load_part

    marker = tmp_path / "pwned"
    p = tmp_path / "part.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = _Payload(marker)
    np.savez(p, z=obj, denoiser=obj, score=obj, dz=obj, z_end=obj, key=np.array("k"), range=np.array([0, 1]))
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert _load_part(p, "k", 0, 1, (1, 2)) is None
    assert not marker.exists()


# -- ZIP readers -------------------------------------------------------------------------------


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip_with(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member", ["../escape.png", "a/../../escape.png", "/etc/abs.png", "C:/win.png",
                                    "dir\\..\\x.png", "symlink"])
def test_image_zip_refuses_unsafe_members(tmp_path, member):
    pytest.importorskip("PIL")
    from synthperf.flows.dataset_tool import ImageZipDataset

    good = ("00000.png", _png_bytes())
    if member == "symlink":
        bad = (_symlink_info("00001.png"), b"/etc/passwd")
    else:
        bad = (member, _png_bytes())
    path = _zip_with(tmp_path / "d.zip", [good, bad])
    with pytest.raises(ValueError, match="unsafe member|symlink") as info:
        ImageZipDataset(path)
    assert "d.zip" in str(info.value)
    ok = _zip_with(tmp_path / "ok.zip", [good, ("sub/00001.png", _png_bytes())])
    with ImageZipDataset(ok) as ds:
        assert len(ds) == 2
