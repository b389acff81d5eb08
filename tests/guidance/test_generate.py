"""Sharded, resumable generation (``synthperf guidance generate``) on a tiny local SD folder.

The resume test kills a generating subprocess with SIGKILL while it is writing (a half-written
temp file and a PNG without its sidecar on disk), reruns, and checks that no row is lost,
duplicated or half-written.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import synthperf
from synthperf._io import is_temp_file
from _tiny import sd_components
from synthperf.guidance import FeedbackGuidedPipeline, SmallResNet
from synthperf.guidance.classifiers import ClassifierInfo, load_classifier, save_classifier, train_digits_classifier
from synthperf.guidance.cli import app
from synthperf.guidance.generate import GenerateJob, is_finished, resolve_output, run_generation, run_job
from synthperf.guidance.plan import build_plan, classes_from_names, read_plan, write_plan

synthperf.disable_progress()
runner = CliRunner()
ROWS = 6


def _text(res) -> str:
    """CLI output with rich's error box and line wrapping removed."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", res.output).split())


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    FeedbackGuidedPipeline(**sd_components()).save_pretrained(root / "sd")
    torch.manual_seed(0)
    clf = SmallResNet(3, width=4)
    save_classifier(clf, ClassifierInfo(mean=(0.5,) * 3, std=(0.25,) * 3, size=8, class_names=["a", "b", "c"]),
                    root / "clf.safetensors")
    return root


def _plan(tmp_path, *, n_classes=3, target=2, criterion="entropy"):
    rows = build_plan(classes_from_names(["cat", "dog", "goldfish"][:n_classes]), target=target, output_dir="out",
                      criterion=criterion, scale=0.2, guidance_freq=1, cfg=3.0, steps=2, size=16)
    return write_plan(rows, tmp_path / "plan.csv")


def _check_complete(plan_path: Path) -> list[dict]:
    """Every row finished exactly once: PNG decodes, sidecar matches, no temp files, no extras."""
    rows = read_plan(plan_path)
    base = plan_path.parent
    metas = []
    for r in rows:
        png = resolve_output(r, base)
        assert is_finished(r, png), r
        with Image.open(png) as im:
            im.load()
            assert im.size == (r.size, r.size) and im.mode == "RGB"
        meta = json.loads(png.with_suffix(".json").read_text())
        assert meta["row_id"] == r.row_id and meta["seed"] == r.seed and meta["criterion"] == r.criterion
        assert meta["corrupted"] is False and isinstance(meta["criterion_value"], float)
        metas.append(meta)
    out = base / "out"
    assert not [p for p in out.rglob("*") if is_temp_file(p)]
    assert len(list(out.rglob("*.png"))) == len(rows) and len(list(out.rglob("*.json"))) == len(rows)
    return metas


def test_workers_split_and_rerun_skips(assets, tmp_path):
    plan = _plan(tmp_path)
    for i in range(2):
        res = runner.invoke(app, ["generate", "--plan", str(plan), "--model-dir", str(assets / "sd"), "--worker",
                                  str(i), "--workers", "2", "--classifier", str(assets / "clf.safetensors"),
                                  "--batch-size", "2"])
        assert res.exit_code == 0, res.output
        assert f"worker {i}/2: 3 rows, 3 generated, 0 already finished, 0 corrupted" in res.output
    metas = _check_complete(plan)
    # batching and sharding do not change an image: compare with one unsharded batch-1 run
    other = tmp_path / "single"
    other.mkdir()
    plan2 = write_plan(read_plan(plan), other / "plan.csv")
    summary = run_generation(GenerateJob(plan=str(plan2), worker=0, workers=1, model_dir=str(assets / "sd"),
                                         classifier=str(assets / "clf.safetensors")))
    assert summary[0]["done"] == ROWS
    for r, m in zip(read_plan(plan), metas):
        a, b = resolve_output(r, tmp_path), resolve_output(r, other)
        # float results agree to ~1e-6 across batch compositions; round(255 x) may flip one level
        diff = np.abs(np.asarray(Image.open(a), dtype=int) - np.asarray(Image.open(b), dtype=int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99
        assert abs(json.loads(b.with_suffix(".json").read_text())["criterion_value"] - m["criterion_value"]) <= 1e-5
    again = json.loads(run_job(GenerateJob(plan=str(plan), worker=0, workers=1, model_dir=str(assets / "sd"))))
    assert again["skipped"] == ROWS and again["done"] == 0


_DRIVER = textwrap.dedent("""
    import sys, time
    import synthperf.guidance.generate as g
    from synthperf import _io
    marker, argv = sys.argv[1], sys.argv[2:]
    orig, calls = g.atomic_write_bytes, [0]
    def half_then_hang(fh, data):
        fh.write(data[: len(data) // 2])
        fh.flush()
        open(marker, "w").close()
        time.sleep(600)
    def hooked(path, data):
        calls[0] += 1
        if calls[0] == 4:  # row 0 done (PNG + sidecar), row 1's PNG done: hang half-way through its sidecar
            _io.atomic_write(path, lambda fh: half_then_hang(fh, data))  # the real temp file, half written
        return orig(path, data)
    g.atomic_write_bytes = hooked
    from synthperf.guidance.cli import app
    app(argv)
""")


def test_killed_run_resumes_without_loss_or_duplicates(assets, tmp_path):
    plan = _plan(tmp_path)
    marker = tmp_path / "killed_here"
    args = ["generate", "--plan", str(plan), "--model-dir", str(assets / "sd"), "--classifier",
            str(assets / "clf.safetensors")]
    env = dict(os.environ, SYNTHPERF_PROGRESS="0", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(marker), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"driver ended or stalled before the kill point: {proc.communicate()[0]!r}")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_plan(plan)
    png0, png1 = resolve_output(rows[0], tmp_path), resolve_output(rows[1], tmp_path)
    assert is_finished(rows[0], png0) and png1.exists() and not png1.with_suffix(".json").exists()
    temps = [p for p in (tmp_path / "out").rglob("*") if is_temp_file(p)]
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # the killed sidecar write, half done
    done_before = png0.stat().st_mtime_ns
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"{ROWS - 1} generated, 1 already finished" in res.output
    _check_complete(plan)
    assert png0.stat().st_mtime_ns == done_before  # the finished row was not rewritten


def test_cli_without_diffusers(tmp_path):
    """The CLI imports without diffusers; plan works; generate names the missing extra (status 1)."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["diffusers"] = None  # makes `import diffusers` raise ImportError
        from typer.testing import CliRunner
        from synthperf.cli_groups import GROUPS
        assert GROUPS["guidance"][0] == "synthperf.guidance.cli:app"
        from synthperf.guidance.cli import app
        assert "torch" not in sys.modules
        r = CliRunner().invoke(app, ["plan", r"{tmp_path / 'p.csv'}", "--output-dir", "o", "--target", "2",
                                     "--class-names", "a,b"])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(app, ["generate", "--plan", r"{tmp_path / 'p.csv'}", "--model-dir", r"{tmp_path}"])
        assert r.exit_code == 1, r.output
        assert "needs the 'diffusion' extra" in r.output, r.output
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout + out.stderr


def test_generate_bad_inputs(assets, tmp_path):
    plan = _plan(tmp_path, criterion="bogus")
    res = runner.invoke(app, ["generate", "--plan", str(plan), "--model-dir", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in _text(res)
    res = runner.invoke(app, ["generate", "--plan", str(plan), "--model-dir", str(assets / "sd")])
    assert res.exit_code == 2 and "unknown criterion 'bogus'" in _text(res)
    assert not (tmp_path / "out").exists()  # validated before any image is written
    bad = tmp_path / "bad.csv"
    bad.write_text(plan.read_text().replace("output_path", "outpath"))
    res = runner.invoke(app, ["generate", "--plan", str(bad), "--model-dir", str(assets / "sd")])
    assert res.exit_code == 2 and "unknown columns ['outpath']" in _text(res)
    res = runner.invoke(app, ["generate", "--plan", str(_plan(tmp_path, criterion="loss")), "--model-dir",
                              str(assets / "sd"), "--worker", "2", "--workers", "2"])
    assert res.exit_code == 2 and "worker must be an integer in [0, 2)" in _text(res)
    res = runner.invoke(app, ["generate", "--plan", str(plan), "--model-dir", str(assets / "sd"), "--executor", "mpi"])
    assert res.exit_code == 2 and "executor must be one of" in _text(res)
    res = runner.invoke(app, ["plan", str(tmp_path / "p.csv"), "--output-dir", "o", "--target", "1"])
    assert res.exit_code == 2 and "--class-counts" in _text(res)
    with pytest.raises(ValueError, match="does not exist"):
        load_classifier(tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="expected an existing .safetensors"):
        load_classifier(tmp_path / "model.bin")


def test_class_id_outside_classifier_range_in_plan(assets, tmp_path):
    plan = _plan(tmp_path, n_classes=3)
    job = GenerateJob(plan=str(plan), worker=0, workers=1, model_dir=str(assets / "sd"),
                      classifier=str(assets / "clf.safetensors"))
    rows = read_plan(plan)
    write_plan([r.__class__(**{**r.__dict__, "class_id": 7}) if r.row_id == 0 else r for r in rows], plan)
    with pytest.raises(ValueError, match=r"class_ids\[0\]=7 is outside the classifier's range \[0, 3\)"):
        run_job(job)


def test_digits_default_classifier_round_trip(tmp_path):
    model, info = train_digits_classifier(epochs=3, size=16, width=8)
    assert info.val_accuracy > 0.8  # 10 classes: chance is 0.1; 3 epochs reach ~0.9
    path = save_classifier(model, info, tmp_path / "digits.safetensors")
    loaded, info2 = load_classifier(path)
    x = torch.rand(4, 3, 16, 16)
    torch.testing.assert_close(loaded(x), model(x))
    assert info2.size == 16 and info2.class_names[3] == "three" and info2.mean == info.mean


@pytest.mark.parametrize("executor", ["slurm", "ray"])
def test_distributed_executors(assets, tmp_path, executor):
    pytest.importorskip("submitit" if executor == "slurm" else "ray")
    plan = _plan(tmp_path, target=1)
    opts = {"slurm": {"cluster": "local", "timeout_min": 5}} if executor == "slurm" else {}
    out = run_generation(GenerateJob(plan=str(plan), worker=0, workers=1, model_dir=str(assets / "sd"),
                                     classifier=str(assets / "clf.safetensors")),
                         executor=executor, workers=2, log_dir=tmp_path / "logs", **opts)
    assert sorted(s["worker"] for s in out) == [0, 1] and sum(s["done"] for s in out) == 3


def test_image_size_resizes_saved_pngs(assets, tmp_path):
    """--image-size N saves N x N PNGs (upstream saved 256 x 256); a rerun skips them."""
    plan = _plan(tmp_path)
    res = runner.invoke(app, ["generate", "--plan", str(plan), "--model-dir", str(assets / "sd"),
                              "--image-size", "12", "--batch-size", "3", "--classifier", str(assets / "clf.safetensors")])
    assert res.exit_code == 0, res.output
    rows = read_plan(plan)
    for r in rows:
        with Image.open(resolve_output(r, tmp_path)) as im:
            assert im.size == (12, 12) and r.size != 12
    again = runner.invoke(app, ["generate", "--plan", str(plan), "--model-dir", str(assets / "sd"),
                                "--image-size", "12", "--classifier", str(assets / "clf.safetensors")])
    assert again.exit_code == 0 and f"0 generated, {len(rows)} already finished" in again.output
    bad = runner.invoke(app, ["generate", "--plan", str(plan), "--model-dir", str(assets / "sd"),
                              "--image-size", "0"])
    assert bad.exit_code == 2 and "--image-size must be a positive int" in _text(bad)


@pytest.mark.parametrize("bad", ["/abs/x.png", "../up/x.png", "a/../../x.png"])
def test_resolve_output_refuses_escapes(tmp_path, bad):
    """Second check behind read_plan: an output path outside the output folder raises."""
    from synthperf.guidance.plan import PlanRow
    import dataclasses

    fields = {f.name for f in dataclasses.fields(PlanRow)}
    row = object.__new__(PlanRow)
    for f in fields:
        object.__setattr__(row, f, None)
    object.__setattr__(row, "row_id", 3)
    object.__setattr__(row, "output_path", bad)
    with pytest.raises(ValueError, match="output_path"):
        resolve_output(row, tmp_path)


def test_generate_cli_slurm_and_device_use_the_shared_resource_options(tmp_path, monkeypatch):
    """`guidance generate --slurm KEY=VALUE` goes through _parallel.slurm_cli_options (cpus_per_task
    from the thread setting, gpus/mem spelled as everywhere) and --device cuda asks for a GPU."""
    import synthperf.guidance.generate as gen_mod
    import synthperf.guidance.plan as plan_mod
    from synthperf import _native, _parallel

    seen = {}

    def fake_run_generation(job, **kw):
        seen.update(kw, defaults=_parallel._DEFAULT_RESOURCES.get())
        return []

    monkeypatch.setattr(gen_mod, "run_generation", fake_run_generation)
    monkeypatch.setattr(plan_mod, "read_plan", lambda p: [])
    (tmp_path / "model").mkdir()
    args = ["generate", "--plan", str(tmp_path / "plan.csv"), "--model-dir", str(tmp_path / "model"),
            "--executor", "slurm", "--slurm", "gpus=2", "--slurm", "mem=16G", "--slurm", "cluster=local",
            "--device", "cuda"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen["slurm"] == {"gpus_per_node": 2, "mem_gb": 16.0, "cluster": "local",
                             "cpus_per_task": max(1, _native.max_threads())}
    assert seen["defaults"] == {"gpus": 1}
    res = runner.invoke(app, args[:-4] + ["--slurm", "bogus=1"])
    assert res.exit_code == 2 and "--slurm" in res.stderr and "Traceback" not in res.output


def test_is_finished_checks_the_png_hash(tmp_path):
    """A same-size bit flip, a zeroed image or a sidecar without the hash (version 1) is not a
    finished row: resume regenerates it instead of reusing a damaged image."""
    import hashlib
    import json as _json

    from synthperf.guidance.generate import png_bytes, sidecar_path
    from synthperf.guidance.plan import PlanRow

    row = object.__new__(PlanRow)
    object.__setattr__(row, "row_id", 7)
    object.__setattr__(row, "seed", 11)
    data = png_bytes(torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)))
    png = tmp_path / "x.png"
    png.write_bytes(data)
    meta = {"row_id": 7, "seed": 11, "png_bytes": len(data), "png_sha256": hashlib.sha256(data).hexdigest()}
    sidecar_path(png).write_text(_json.dumps(meta))
    assert is_finished(row, png)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    png.write_bytes(bytes(flipped))
    assert not is_finished(row, png)
    png.write_bytes(bytes(len(data)))
    assert not is_finished(row, png)
    png.write_bytes(data)
    sidecar_path(png).write_text(_json.dumps({k: v for k, v in meta.items() if k != "png_sha256"}))
    assert not is_finished(row, png)
