"""Kill / corruption / concurrency matrix over the long-running commands; prints the closing-note table.

``python tests/faults/fault_matrix.py [--seed 17] [--kills 3] [--only NAME ...] [--out table.md]``

For each command (tiny sizes): one uninterrupted reference run through the fault harness
(``_harness.py``) logs every atomic write; a seeded schedule then picks ``--kills`` moments
(the n-th write, killed mid-write or right after it: between shards, between a checkpoint's
tensors and its JSON), each run is SIGKILLed there and re-run to completion, and its output
tree is compared with the reference: files lost or extra, data files (Parquet/CSV rows with
timing columns dropped, NPZ arrays, safetensors tensors, JSON without timing keys) equal.
Corruption: a finished output (a shard, checkpoint or result file) is truncated / bit-flipped
/ zeroed / replaced by a directory; the command is re-run: *detected* if it recomputes the file
(equal to the reference again) or stops with an ``error:`` line naming it; *silently used* if it
succeeds and leaves the damaged file in place. Concurrency: two copies started together on one
output; *refused* if exactly one fails with an "in use" error.

Every run is pinned to one thread (``conftest.env``: ``OMP_NUM_THREADS=1`` and
``SYNTHPERF_NUM_THREADS=1``): with automatic threads the ThreadGovernor changes torch's count with
the machine's load, so float round-off, hence "resumed equal", would depend on the load, not on
the resume. Bit-exact comparisons need a pinned count (``--threads N`` does the same).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
try:
    from ._corrupt import BYTE_DAMAGE, corrupt_file
    from .conftest import HARNESS, env, write_config
except ImportError:  # run as a script
    sys.path.insert(0, str(HERE))
    from _corrupt import BYTE_DAMAGE, corrupt_file  # noqa: E402
    from conftest import HARNESS, env, write_config  # noqa: E402

TIMING = ("seconds", "time", "date", "started", "elapsed", "duration")
#: JSON keys holding the run's own paths (they differ between the reference and the resumed folder)
PATHS = ("dir", "path", "out", "file")


def _cmd_run_sppi(root: Path):
    return lambda out: ["run", write_config(root), "-o", out, "--no-report"], "points/p0000/chunks/trials_000002_000004.parquet"


def _cmd_run_flows(root: Path):
    cfg = REPO / "configs" / "flows" / "toy_circles.yaml"
    return (lambda out: ["run", cfg, "simulate.steps=41", "simulate.total_samples=96", "simulate.save_freq=10", "-o",
                         out, "--no-report"], "points/p0000/chunks/trials_000000_000001.parquet")


def _cmd_run_gafi(root: Path):
    cfg = REPO / "configs" / "gafi" / "digits.yaml"
    return (lambda out: ["run", cfg, "preset=micro", "gan_seeds=7", "seed=3", "-o", out, "--no-report"],
            "points/p0000/chunks/trials_000000_000001.parquet")


def _sd_assets(root: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO / "tests" / "guidance"))
    import torch
    from _tiny import sd_components

    from synthperf.guidance import FeedbackGuidedPipeline, SmallResNet
    from synthperf.guidance.classifiers import ClassifierInfo, save_classifier

    if not (root / "sd").exists():
        FeedbackGuidedPipeline(**sd_components()).save_pretrained(root / "sd")
        torch.manual_seed(0)
        save_classifier(SmallResNet(3, width=4), ClassifierInfo(mean=(0.5,) * 3, std=(0.25,) * 3, size=8,
                                                                class_names=["cat", "dog", "goldfish"]),
                        root / "clf.safetensors")
    return root / "sd", root / "clf.safetensors"


def _cmd_run_guidance(root: Path):
    sd, clf = _sd_assets(root)
    cfg = REPO / "configs" / "guidance" / "sd_local.yaml"
    over = [f"model_dir={sd}", f"classifier={clf}", "num_classes=3", "labels=[cat, dog, goldfish]", "class_ids=[0, 2]",
            "seeds=[0, 1]", "chunk_size=2", "num_inference_steps=2", "guidance_freq=1", "fg_scale=0.2", "height=16",
            "width=16", "device=cpu"]
    return lambda out: ["run", cfg, *over, "-o", out, "--no-report"], "points/p0000/chunks/trials_000000_000002.parquet"


def _cmd_guidance_generate(root: Path):
    sd, clf = _sd_assets(root)
    from synthperf.guidance.plan import build_plan, classes_from_names, write_plan

    rows = build_plan(classes_from_names(["cat", "dog", "goldfish"]), target=2, output_dir="out", criterion="entropy",
                      scale=0.2, guidance_freq=1, cfg=3.0, steps=2, size=16)

    def argv(out: Path):
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "plan.csv").exists():
            write_plan(rows, out / "plan.csv")
        return ["guidance", "generate", "--plan", out / "plan.csv", "--model-dir", sd, "--classifier", clf]
    return argv, None  # the first PNG found


def _cmd_flows_train(root: Path):
    return (lambda out: ["flows", "train", "--outdir", out, "--data-name", "moons", "--steps", "20", "--batch", "64",
                         "--width", "16", "--checkpoint-every", "5"], None)


def _cmd_flows_simulate(root: Path):
    return (lambda out: ["flows", "simulate", "--save-dir", out, "--data-name", "moons", "--steps", "41", "--h", "0.08",
                         "--rho", "2.0", "--total-samples", "120", "--save-freq", "4", "--checkpoint-every", "8",
                         "--seed", "3"], None)


def _cmd_demo(root: Path):
    return (lambda out: ["demo", "--quick", "--generator", "gafi", "--no-longtail", "-o", out],
            None)


def _gafi_yaml(root: Path, name: str, doc: dict) -> Path:
    import yaml

    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _cmd_gafi_train_classifier(root: Path):
    cfg = _gafi_yaml(root, "cls", {"OPTIMIZATION": {"epochs": 3, "batch_size": 64, "lr_milestones": [2]},
                                   "MODEL": {"width": 4}, "AUG": {"random_flip": False, "crop_padding": 1},
                                   "RUN": {"seed": 1}})
    return lambda out: ["gafi", "train-classifier", "--config", cfg, "-o", out], None


def _cmd_gafi_train_gan(root: Path):
    cfg = _gafi_yaml(root, "gan", {
        "DATA": {"horizontal_flip": False}, "RUN": {"seed": 1},
        "OPTIMIZATION": {"epochs": 3, "batch_size": 64, "d_updates_per_step": 2, "g_lr": 1e-3, "d_lr": 1e-3},
        "MODEL": {"latent_dim": 8, "shared_dim": 8, "g_conv_dim": 4, "d_conv_dim": 4, "g_depth": 1, "d_depth": 1,
                  "g_ema_start": 5, "g_ema_decay": 0.9}})
    return lambda out: ["gafi", "train-gan", "--config", cfg, "-o", out], None


def _cmd_gafi_demo(root: Path):
    return lambda out: ["gafi", "demo", "--size", "micro", "-o", out], None


#: the CAS classifier of the pipeline / multigan / cas rows (2 epochs of a width-4 ResNet-20)
_GAFI_CLS = {"OPTIMIZATION": {"epochs": 2, "batch_size": 64, "lr_milestones": [2]}, "MODEL": {"width": 4},
             "AUG": {"random_flip": False, "crop_padding": 1}, "RUN": {"seed": 1}}


def _gafi_assets(root: Path) -> tuple[Path, Path]:
    """(filter classifier ``best`` stem, train-gan folder with EMA checkpoints of epochs 1, 2): the
    inputs of ``gafi pipeline``/``multigan``/``cas``, trained once per matrix work folder (the
    ``gafi train-classifier`` / ``train-gan`` rows' micro configs, 2 epochs each)."""
    assets = root.parent / "gafi_assets"
    cls, gan = assets / "cls", assets / "gan"
    for name, out, doc in (("train-classifier", cls, {**_GAFI_CLS, "OPTIMIZATION": {
                               "epochs": 3, "batch_size": 64, "lr_milestones": [2]}}),
                           ("train-gan", gan, {
                               "DATA": {"horizontal_flip": False}, "RUN": {"seed": 1},
                               "OPTIMIZATION": {"epochs": 2, "batch_size": 64, "d_updates_per_step": 2, "g_lr": 1e-3,
                                                "d_lr": 1e-3},
                               "MODEL": {"latent_dim": 8, "shared_dim": 8, "g_conv_dim": 4, "d_conv_dim": 4,
                                         "g_depth": 1, "d_depth": 1, "g_ema_start": 5, "g_ema_decay": 0.9}})):
        if not (out / ".done").exists():
            assets.mkdir(parents=True, exist_ok=True)
            r = _run(["gafi", name, "--config", _gafi_yaml(assets, name, doc), "-o", out])
            if r.returncode != 0:
                raise RuntimeError(f"gafi {name} (fault-matrix input) failed: {r.stderr[-800:]}")
            (out / ".done").touch()
    return cls / "classifier" / "best", gan


def _gafi_pipeline_config(root: Path, name: str) -> tuple[Path, dict]:
    cls, gan = _gafi_assets(root)
    doc = {**_GAFI_CLS, "CLS_PRE": {"path": str(cls)},
           "PIPELINE": {"gan_dir": str(gan), "ckpt_epochs": [1, 2], "stddev_search": [1.0, 1.5],
                        "threshold_search": [0.0], "class_samples": 8, "search_regen_every": 1,
                        "filtering_attempts": 3}}
    return _gafi_yaml(root, name, doc), doc


def _cmd_gafi_pipeline(root: Path):
    cfg, _ = _gafi_pipeline_config(root, "pipeline")  # 6 CAS runs: ckpt 1, 2; sigma 1.0, 1.5; tau 0.0; best
    return lambda out: ["gafi", "pipeline", "--config", cfg, "-o", out], "ckpt/results.parquet"


def _cmd_gafi_multigan(root: Path):
    cfg, doc = _gafi_pipeline_config(root, "pipeline")
    tuned = root.parent / "gafi_assets" / "pipeline"
    if not (tuned / "summary.json").exists():
        r = _run(["gafi", "pipeline", "--config", cfg, "-o", tuned])
        if r.returncode != 0:
            raise RuntimeError(f"gafi pipeline (fault-matrix input) failed: {r.stderr[-800:]}")
    multi = _gafi_yaml(root, "multigan", {**doc, "PIPELINE": {"pipeline_dirs": [str(tuned)] * 2, "class_samples": 8,
                                                              "filtering_attempts": 3}})
    return lambda out: ["gafi", "multigan", "--config", multi, "-o", out], "cas.parquet"


def _cmd_gafi_cas(root: Path):
    from synthperf.gafi.gan_train import ema_checkpoint_path

    _, doc = _gafi_pipeline_config(root, "pipeline")
    gan = Path(doc["PIPELINE"]["gan_dir"])
    cas = _gafi_yaml(root, "cas", {**doc, "PIPELINE": {"gan_checkpoint": str(ema_checkpoint_path(gan, 2)),
                                                       "filter": True, "tau": 0.3, "class_samples": 8,
                                                       "filtering_attempts": 3}})
    return lambda out: ["gafi", "cas", "--config", cas, "-o", out], "cas.parquet"


COMMANDS = {"run sppi": _cmd_run_sppi, "run flows": _cmd_run_flows, "run gafi": _cmd_run_gafi,
            "run guidance": _cmd_run_guidance, "guidance generate": _cmd_guidance_generate,
            "flows train": _cmd_flows_train, "flows simulate": _cmd_flows_simulate, "demo": _cmd_demo,
            "gafi train-classifier": _cmd_gafi_train_classifier, "gafi train-gan": _cmd_gafi_train_gan,
            "gafi demo": _cmd_gafi_demo, "gafi pipeline": _cmd_gafi_pipeline, "gafi multigan": _cmd_gafi_multigan,
            "gafi cas": _cmd_gafi_cas}


def _run(argv, timeout=900, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HARNESS), *map(str, argv)], env=env(**extra), capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO))


def _files(out: Path) -> dict[str, Path]:
    from synthperf._io import is_temp_file

    keep = {}
    for p in out.rglob("*"):
        rel = p.relative_to(out).as_posix()
        if p.is_dir() or is_temp_file(p) or p.name == ".synthperf.lock" or rel.startswith("slurm/"):
            continue
        if any(part.startswith(".") and part.endswith(".partial") for part in p.relative_to(out).parts):
            continue
        keep[rel] = p
    return keep


def _data(p: Path):
    """Comparable content of a data file (None: compare existence only)."""
    import pandas as pd

    s = p.suffix
    if s == ".parquet":
        df = pd.read_parquet(p)
        return df[[c for c in df.columns if not any(t in c.lower() for t in TIMING)]]
    if s == ".csv":
        return pd.read_csv(p)
    if s == ".npz":
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if s == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(p))
    if s == ".json":
        doc = json.loads(p.read_text())
        if p.name.endswith(".parquet.json"):  # a shard sidecar: its checksum covers the timing columns
            return {k: v for k, v in doc.items() if k not in ("sha256", "bytes", "config_sha256")} if isinstance(doc, dict) else doc
        return _strip(doc)
    return None


def _strip(doc):
    """``doc`` without timing and own-path keys, at any depth."""
    if isinstance(doc, dict):
        return {k: _strip(v) for k, v in doc.items() if not any(t in k.lower() for t in TIMING + PATHS)}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def _equal(a, b) -> bool:
    import pandas as pd

    if isinstance(a, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)
            return True
        except AssertionError:
            return False
    if isinstance(a, dict) and a and all(isinstance(v, np.ndarray) for v in a.values()):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    return a == b


def _rows(p: Path) -> int:
    d = _data(p)
    return len(d) if hasattr(d, "columns") else 1


def compare(ref: Path, out: Path) -> dict:
    rf, of = _files(ref), _files(out)
    lost = sorted(set(rf) - set(of))
    extra = sorted(set(of) - set(rf))
    lost_rows = dup_rows = 0
    differ = []
    for rel in sorted(set(rf) & set(of)):
        try:
            a, b = _data(rf[rel]), _data(of[rel])
        except Exception as exc:  # an unreadable (half-written) file in the resumed tree
            differ.append(f"{rel}: unreadable ({exc})")
            continue
        if a is None:
            continue
        if not _equal(a, b):
            differ.append(rel)
            if hasattr(a, "columns"):
                lost_rows += max(0, len(a) - len(b))
                dup_rows += max(0, len(b) - len(a))
    lost_rows += sum(_rows(rf[r]) for r in lost if rf[r].suffix == ".parquet")
    dup_rows += sum(_rows(of[r]) for r in extra if of[r].suffix == ".parquet")
    return {"lost": lost, "extra": extra, "differ": differ, "lost_rows": lost_rows, "dup_rows": dup_rows}


def _target(ref: Path, rel: str | None) -> str:
    if rel:
        return rel
    files = _files(ref)
    for suffix in (".safetensors", ".npz", ".parquet", ".png"):
        hits = sorted(r for r in files if r.endswith(suffix))
        if hits:
            return hits[0]
    raise RuntimeError(f"nothing to corrupt in {ref}")


def matrix(names, seed: int, kills: int, work: Path, log=print, on_row=None) -> list[dict]:
    rows = []
    for name in names:
        t0 = time.time()
        root = work / name.replace(" ", "_")
        root.mkdir(parents=True, exist_ok=True)
        argv, rel = COMMANDS[name](root)
        ref, wlog = root / "ref", root / "writes.log"
        r = _run(argv(ref), SYNTHPERF_FAULT_LOG=str(wlog))
        ref_s = time.time() - t0
        if r.returncode != 0:
            log(f"{name}: reference run failed ({r.returncode}): {r.stderr[-800:]}")
            rows.append({"command": name, "error": "reference run failed"})
            continue
        n_writes = len(wlog.read_text().splitlines())
        rng = random.Random(f"{seed}:{name}")
        picks = sorted(rng.sample(range(1, n_writes + 1), min(kills, n_writes)))
        row = {"command": name, "writes": n_writes, "kills": 0, "killed": 0, "equal": 0, "lost": 0, "dup": 0,
               "corrupt": 0, "detected": 0, "silent": 0, "conc": 0, "refused": 0, "notes": []}
        for i, n in enumerate(picks):
            phase = rng.choice(["mid", "after"])
            out = root / f"kill{i}"
            shutil.rmtree(out, ignore_errors=True)
            k = _run(argv(out), SYNTHPERF_FAULT_KILL=f"{n}:{phase}")
            row["kills"] += 1
            row["killed"] += k.returncode == -signal.SIGKILL
            r2 = _run(argv(out))
            if r2.returncode != 0:
                row["notes"].append(f"resume after kill at write {n} ({phase}) failed: {r2.stderr.strip()[-300:]}")
                continue
            c = compare(ref, out)
            same = not (c["lost"] or c["extra"] or c["differ"])
            row["equal"] += same
            row["lost"] += len(c["lost"]) + c["lost_rows"]
            row["dup"] += len(c["extra"]) + c["dup_rows"]
            if not same:
                row["notes"].append(f"kill at write {n} ({phase}): lost {c['lost'][:3]} extra {c['extra'][:3]} "
                                    f"differ {c['differ'][:3]}")
        target = _target(ref, rel)
        for how in BYTE_DAMAGE:
            out = root / f"corrupt_{how}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(ref, out, symlinks=True)
            p = out / target
            corrupt_file(p, how)
            damaged = p.read_bytes() if p.is_file() else None
            row["corrupt"] += 1
            r3 = _run(argv(out))
            named = Path(target).name in (r3.stderr + r3.stdout)
            if r3.returncode != 0:
                ok = named and "Traceback" not in r3.stderr
                row["detected"] += ok
                if not ok:
                    row["notes"].append(f"{how} {target}: failed without naming it: {r3.stderr.strip()[-300:]}")
                continue
            now = p.read_bytes() if p.is_file() else None
            restored = p.is_file() and now != damaged and _equal(_data(ref / target), _data(p)) \
                if _data(ref / target) is not None else (p.is_file() and now != damaged)
            if restored:
                row["detected"] += 1
            else:
                row["silent"] += 1
                row["notes"].append(f"{how} {target}: re-run exit 0 and the damaged file is still in place")
        out = root / "concurrent"
        shutil.rmtree(out, ignore_errors=True)
        flag = root / "go"
        for f in (flag, root / "go.waiting"):
            f.unlink(missing_ok=True)
        start = lambda **e: subprocess.Popen([sys.executable, str(HARNESS), *map(str, argv(out))], env=env(**e),
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
        first = start(SYNTHPERF_FAULT_PAUSE=f"{min(2, n_writes)}:{flag}")  # paused mid-run, after its first write
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None and not (root / "go.waiting").exists():
            time.sleep(0.02)
        overlapped = first.poll() is None
        second = start()
        second_rc, second_err = second.wait(timeout=900), second.stderr.read()
        flag.touch()
        first_rc = first.wait(timeout=900)
        res = [(first_rc, first.stderr.read()), (second_rc, second_err)]
        row["conc"] += overlapped
        refused = res[0][0] == 0 and res[1][0] != 0 and "in use by another" in res[1][1]
        row["refused"] += overlapped and refused
        c = compare(ref, out)
        if c["lost"] or c["extra"] or c["differ"]:
            row["notes"].append(f"concurrent writers: output differs from the reference: {c['differ'][:3]} "
                                f"lost {c['lost'][:3]} extra {c['extra'][:3]}")
        if overlapped and not refused:
            row["notes"].append(f"concurrent writers: the second was not refused (exit {res[1][0]}): no run lock")
        row["seconds"] = round(time.time() - t0, 1)
        log(f"{name}: {row}")
        rows.append(row)
        if on_row is not None:
            on_row(rows)
    return rows


def table(rows: list[dict], seed: int) -> str:
    lines = [f"Fault matrix (seed {seed}; `python tests/faults/fault_matrix.py --seed {seed}`)", "",
             "| command | kills tried | killed | resumed equal | lost | duplicated | corruptions tried | detected "
             "| silently used | concurrent pairs (overlapping) | second refused |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['command']} | {r['error']} |" + " |" * 10)
            continue
        lines.append(f"| {r['command']} | {r['kills']} | {r['killed']} | {r['equal']} | {r['lost']} | {r['dup']} | "
                     f"{r['corrupt']} | {r['detected']} | {r['silent']} | {r['conc']} | {r['refused']} |")
    notes = [f"- {r['command']}: {n}" for r in rows for n in r.get("notes", [])]
    return "\n".join(lines + ([""] + ["Notes:"] + notes if notes else [])) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=list(COMMANDS), choices=list(COMMANDS))
    ap.add_argument("--out", type=Path, default=None, help="Also write the table (Markdown) here.")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fault_matrix_") as work:
        def save(rows):
            if a.out:
                from synthperf._io import atomic_write_text

                atomic_write_text(a.out, table(rows, a.seed))

        rows = matrix(a.only, a.seed, a.kills, Path(work), log=lambda m: print(m, file=sys.stderr, flush=True),
                      on_row=save)
    print(table(rows, a.seed))


if __name__ == "__main__":
    main()
