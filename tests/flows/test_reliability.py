"""Flows reliability (issue 17): killed training and simulations resume to the uninterrupted
result, corrupt or foreign checkpoints are detected and recomputed (never used), every CLI
option is checked before any work, outputs are written atomically, no TorchScript loading.

A "kill" is simulated by raising from inside the run (after a checkpoint, or inside the
write of one); the rerun must then give bit-identical weights / trajectories.
"""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from synthperf import _io
from synthperf import flows
from synthperf.flows import training
from synthperf.flows.cli import app
from synthperf.flows.networks import IFsPrecond, ToyMLP
from synthperf.flows.pfode import DenoiserFlow, DiscreteFlow, integrate_resumable, time_grid
from synthperf.flows.schedules import InflationSchedule
from synthperf.flows.toy_data import make_toy

pytestmark = pytest.mark.filterwarnings("ignore:.*the latent will not be Gaussian:RuntimeWarning")


class Killed(Exception):
    """Stands for SIGKILL: raised from inside a run, never caught by the code under test."""


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _setup():
    x = make_toy("moons", 4000, seed=0)
    sch, W = InflationSchedule.from_data(x, rho=2.0)
    sample = lambda b, rng: make_toy("moons", b, seed=int(rng.integers(1 << 31))) @ W  # noqa: E731
    return sch, W, sample


def _net(sch, W):
    torch.manual_seed(0)
    return IFsPrecond(ToyMLP(2, width=16, depth=1), sch, W)


def _same_weights(a, b):
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=na)


def _kill_at(step):
    def callback(state):
        if state.step == step:
            raise Killed
    return callback


CFG = dict(steps=7, batch=32, t_max=3.0, seed=4, lr_rampup_samples=64, ema_halflife_samples=64)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("kill_at", [3, 4, 6])  # mid-epoch, right after a checkpoint, in the last epoch
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path, kill_at):
    sch, W, sample = _setup()
    cfg = training.TrainConfig(**CFG)
    full = training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path / "full", steps_per_epoch=2)

    with pytest.raises(Killed):
        training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path / "run", steps_per_epoch=2,
                       callback=_kill_at(kill_at))
    resume_points = sorted(p.name for p in (tmp_path / "run" / "network.resume").iterdir())
    last = kill_at - kill_at % 2
    assert resume_points == [f"step{last:09d}.json", f"step{last:09d}.safetensors"]  # only the newest is kept
    steps_run = []
    resumed = training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path / "run", steps_per_epoch=2,
                             callback=lambda s: steps_run.append(s.step))
    assert steps_run == list(range(last + 1, 8))  # resumed from the last complete checkpoint
    _same_weights(resumed.net, full.net)
    _same_weights(resumed.ema, full.ema)
    assert not (tmp_path / "run" / "network.resume").exists()  # cleaned up after the final checkpoint
    _same_weights(training.load_network(tmp_path / "run" / "network"), full.ema)


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    sch, W, sample = _setup()
    cfg = training.TrainConfig(**CFG)
    full = training.train(_net(sch, W), sample, cfg, steps_per_epoch=2)
    real = _io.atomic_write_text
    calls = []

    def dies_in_third_json(path, text, **kw):
        calls.append(path)
        if len(calls) == 3:  # the JSON of the step-6 checkpoint: its tensors are already on disk
            raise Killed
        return real(path, text, **kw)

    monkeypatch.setattr(_io, "atomic_write_text", dies_in_third_json)
    with pytest.raises(Killed):
        training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path, steps_per_epoch=2)
    monkeypatch.setattr(_io, "atomic_write_text", real)
    rdir = tmp_path / "network.resume"
    assert (rdir / "step000000006.safetensors").is_file() and not (rdir / "step000000006.json").exists()
    assert _io.checkpoint_exists(rdir / "step000000004")
    resumed = training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path, steps_per_epoch=2)
    _same_weights(resumed.net, full.net)


@pytest.mark.parametrize("damage", ["flip", "truncate", "zero", "directory"])
def test_corrupt_checkpoint_is_detected_and_recomputed(tmp_path, damage):
    sch, W, sample = _setup()
    cfg = training.TrainConfig(**CFG)
    full = training.train(_net(sch, W), sample, cfg, steps_per_epoch=2)
    with pytest.raises(Killed):
        training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path, steps_per_epoch=2,
                       callback=_kill_at(5))
    target = tmp_path / "network.resume" / "step000000004.safetensors"
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "zero":
        target.write_bytes(bytes(len(data)))
    else:
        target.unlink()
        target.mkdir()
    with pytest.raises(_io.CheckpointError, match="step000000004.safetensors"):
        training.load_network(tmp_path / "network.resume" / "step000000004")
    with pytest.warns(RuntimeWarning, match="corrupt flows checkpoint"):
        steps_run = []
        resumed = training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path, steps_per_epoch=2,
                                 callback=lambda s: steps_run.append(s.step))
    assert steps_run[0] == 1  # nothing trustworthy left: trained from scratch, never used the damaged file
    _same_weights(resumed.net, full.net)


def test_checkpoint_of_another_run_is_not_resumed(tmp_path):
    sch, W, sample = _setup()
    other = training.TrainConfig(**{**CFG, "lr": 1e-3})
    training.train(_net(sch, W), sample, other, checkpoint_dir=tmp_path, steps_per_epoch=2)
    cfg = training.TrainConfig(**CFG)
    steps_run = []
    state = training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path, steps_per_epoch=2,
                           callback=lambda s: steps_run.append(s.step))
    assert steps_run == list(range(1, 8))
    _same_weights(state.net, training.train(_net(sch, W), sample, cfg).net)
    # a finished run with the same arguments does no work at all
    again = []
    training.train(_net(sch, W), sample, cfg, checkpoint_dir=tmp_path, steps_per_epoch=2,
                   callback=lambda s: again.append(s.step))
    assert again == []


def test_api_train_rerun_after_kill_matches(tmp_path, monkeypatch):
    kw = dict(data_name="circles", steps=6, batch=32, width=16, depth=1, tmax=3.0, rho=2.0, seed=2,
              checkpoint_every=2)
    ref = flows.train(tmp_path / "ref", **kw)
    real = training._save_resume_point
    count = []

    def killed_after_second(*a, **k):
        real(*a, **k)
        count.append(1)
        if len(count) == 2:
            raise Killed

    monkeypatch.setattr(training, "_save_resume_point", killed_after_second)
    with pytest.raises(Killed):
        flows.train(tmp_path / "run", **kw)
    monkeypatch.setattr(training, "_save_resume_point", real)
    res = flows.train(tmp_path / "run", **kw)
    _same_weights(res.net, ref.net)
    fresh = flows.train(tmp_path / "run", **kw, resume=False)
    _same_weights(fresh.net, ref.net)


# ----------------------------------------------------------------------------- simulations
def _discrete():
    x = make_toy("circles", 150, seed=1)
    sch, W = InflationSchedule.from_data(x, rho=2.0)
    return x, sch, W, DiscreteFlow(x @ W, backend="cpu")


@pytest.mark.parametrize("solver,save_every,every", [("euler", 3, 5), ("heun", 1, 4), ("euler", 7, 100)])
def test_segmented_integration_equals_one_piece(tmp_path, solver, save_every, every):
    x, sch, W, flow = _discrete()
    t = time_grid("ifs", "melt", 23, h=0.1)
    z0 = (x @ W) * sch.s(t[0])
    whole = flow.integrate(z0, sch, t, solver=solver, save_every=save_every)
    seg = integrate_resumable(flow, sch, z0, t, solver=solver, save_every=save_every, part_dir=tmp_path,
                              checkpoint_every=every)
    for k in ("z", "denoiser", "score", "dz"):
        np.testing.assert_array_equal(seg[k], whole[k], err_msg=k)
    net = IFsPrecond(ToyMLP(2, width=8, depth=1), sch, W)
    dflow = DenoiserFlow(net.denoise)
    whole = dflow.integrate(z0, sch, t, solver=solver, save_every=save_every)
    seg = integrate_resumable(dflow, sch, z0, t, solver=solver, save_every=save_every, part_dir=tmp_path / "n",
                              checkpoint_every=every)
    for k in ("z", "denoiser", "score", "dz"):
        np.testing.assert_array_equal(seg[k], whole[k], err_msg=k)


def _files(folder: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(folder.glob("*.npz")):
        with np.load(p) as f:
            out[p.name] = {k: f[k].copy() for k in f.files}
    return out


def test_killed_simulation_resumes_to_the_same_files(tmp_path, monkeypatch):
    kw = dict(data_name="moons", steps=41, h=0.08, rho=2.0, total_samples=120, save_freq=4, checkpoint_every=8,
              seed=3)
    flows.simulate(tmp_path / "ref", **kw)
    real = DiscreteFlow.integrate
    calls = []

    def dies(self, *a, **k):
        calls.append(1)
        if len(calls) == 9:  # inside the roundtrip: melt done (5 segments of 8 steps), 3 rdtrp segments done
            raise Killed
        return real(self, *a, **k)

    monkeypatch.setattr(DiscreteFlow, "integrate", dies)
    with pytest.raises(Killed):
        flows.simulate(tmp_path / "run", **kw)
    partial = tmp_path / "run" / ".moons_PRP.partial"
    assert len(list(partial.glob("melt.*.npz"))) == 5 and len(list(partial.glob("rdtrp.*.npz"))) == 3
    calls.clear()
    # corrupt one finished segment: detected, recomputed, warned once
    bad = partial / "melt.000000016.npz"
    bad.write_bytes(bad.read_bytes()[:-40])
    with pytest.warns(RuntimeWarning, match="ignoring integration checkpoint") as rec:
        res = flows.simulate(tmp_path / "run", **kw)
    assert sum("melt.000000016" in str(w.message) for w in rec if w.category is RuntimeWarning) == 1
    assert len(calls) == 1 + 2 + 5  # the damaged melt segment, the rest of rdtrp, all of gen: nothing else
    assert not partial.exists()
    ref, run = _files(tmp_path / "ref"), _files(tmp_path / "run")
    assert ref.keys() == run.keys() and len(ref) == 3
    for name in ref:
        for k in ref[name]:
            np.testing.assert_array_equal(run[name][k], ref[name][k], err_msg=f"{name}:{k}")
    assert np.isfinite(res.roundtrip_mse)


def test_segment_of_another_simulation_is_not_used(tmp_path):
    kw = dict(data_name="moons", steps=21, h=0.1, rho=2.0, total_samples=60, save_freq=5, checkpoint_every=5)
    # a foreign segment (right name and shapes, other inputs) where the run looks for its own
    x = flows.simulate(None, seed=0, **kw)
    partial = tmp_path / "b" / ".moons_PRP.partial"
    partial.mkdir(parents=True)
    np.savez(partial / "melt.000000005.npz", z=np.zeros((1, 60, 2)), denoiser=np.zeros((1, 60, 2)),
             score=np.zeros((1, 60, 2)), dz=np.zeros((1, 60, 2)), z_end=np.zeros((60, 2)), key=np.array("x"),
             range=np.array([0, 5]))
    with pytest.warns(RuntimeWarning, match="another simulation"):
        res = flows.simulate(tmp_path / "b", seed=0, **kw)
    np.testing.assert_array_equal(res.trajectories["melt"].xs, x.trajectories["melt"].xs)


# ----------------------------------------------------------------------------- CLI option checks
def _no_work(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(InflationSchedule, "from_data", boom)
    monkeypatch.setattr(flows.api, "run_simulations", boom)
    monkeypatch.setattr(flows.api, "load_images", boom)
    monkeypatch.setattr("synthperf.flows.toy_data.make_toy", boom)


@pytest.mark.parametrize("args,words", [
    (["--mode", "bogus"], "mode must be one of"),
    (["--solver", "rk4"], "solver must be one of"),
    (["--grid", "log"], "grid must be one of"),
    (["--steps", "1"], "steps must be >= 2"),
    (["--h", "-0.1"], "h must be > 0"),
    (["--save-freq", "0"], "--save-freq must be >= 1"),
    (["--total-samples", "0"], "--total-samples must be >= 1"),
    (["--eps", "0"], "eps must be > 0"),
    (["--rho", "0"], "rho must be > 0"),
    (["--g-type", "x"], "--g-type must be one of"),
    (["--dims-to-keep", "0"], "--dims-to-keep must be >= 1"),
    (["--end-time", "1", "--eps-s", "2", "--grid", "vp_ode"], "--eps-s"),
    (["--backend", "gpu9"], "backend"),
    (["--data-name", "spiral"], "--data-name must be one of"),
    (["--data", "MISSING.zip"], "data"),
    (["--network", "MISSING.json"], "network"),
    (["--checkpoint-every", "-1"], "--checkpoint-every"),
])
def test_simulate_rejects_bad_options_before_any_work(tmp_path, monkeypatch, args, words):
    _no_work(monkeypatch)
    args = [a.replace("MISSING", str(tmp_path / "missing")) for a in args]
    out = tmp_path / "sims"
    r = CliRunner().invoke(app, ["simulate", "--save-dir", str(out), *args])
    assert r.exit_code == 2, r.output
    err = r.stderr
    assert err.startswith("error: ") and words in err, err
    assert "Traceback" not in r.output + err
    assert not out.exists()  # nothing written


def test_train_rejects_bad_options_before_any_work(tmp_path, monkeypatch):
    _no_work(monkeypatch)
    for args, words in [(["--data-name", "circles", "--backbone", "cnn"], "backbone"),
                        (["--data-name", "circles", "--rho", "nan"], "rho"),
                        (["--data-name", "circles", "--steps", "0"], "steps"),
                        (["--data-name", "circles", "--checkpoint-every", "-2"], "--checkpoint-every"),
                        (["--data-name", "circles", "--fresh", "--resume", str(tmp_path / "n.json")], "--fresh"),
                        (["--data-name", "circles", "--resume", str(tmp_path / "nope.json")], "resume"),
                        ([], "exactly one of")]:
        r = CliRunner().invoke(app, ["train", "--outdir", str(tmp_path / "o"), *args])
        assert r.exit_code == 2 and r.stderr.startswith("error: ") and words in r.stderr, (args, r.output)
        assert "Traceback" not in r.output


def test_cli_corrupt_network_is_an_error_line(tmp_path):
    (tmp_path / "net.json").write_text("{half")
    (tmp_path / "net.safetensors").write_bytes(b"\0" * 10)
    r = CliRunner().invoke(app, ["simulate", "--save-dir", str(tmp_path / "s"), "--network",
                                 str(tmp_path / "net.json"), "--steps", "3"])
    assert r.exit_code == 1 and r.stderr.startswith("error: ") and "corrupt" in r.stderr, r.output  # a damaged file: status 1


# ----------------------------------------------------------------------------- FID without TorchScript
def test_no_torchscript_or_pickle_loading_in_flows():
    root = Path(flows.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {f"{n.value.id}.{n.attr}" for n in ast.walk(tree)
                 if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
        assert not names & {"jit.load", "torch.load", "pickle.load", "pickle.loads"}, path
        assert "torch.jit" not in path.read_text(encoding="utf-8"), path


def test_feature_extractor_from_safetensors(tmp_path):
    from safetensors.torch import save_file

    from synthperf.flows.metrics import (frechet_distance_from_features, frechet_distance_with_extractor,
                                         load_local_feature_extractor)

    g = torch.Generator().manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(tmp_path / "f.safetensors"))
    ext = load_local_feature_extractor(tmp_path / "f.safetensors")
    a = torch.randn(40, 1, 4, 4, generator=g)
    b = torch.randn(50, 1, 4, 4, generator=g) + 0.5
    with torch.no_grad():
        want = frechet_distance_from_features(mlp(a.reshape(40, -1)).double(), mlp(b.reshape(50, -1)).double())
    assert frechet_distance_with_extractor(ext, a.numpy(), b.numpy(), batch=7) == pytest.approx(want, rel=1e-6)
    into = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    assert load_local_feature_extractor(tmp_path / "f.safetensors", module=into) is into
    torch.testing.assert_close(into[2].weight, mlp[2].weight)
    with pytest.raises(ValueError, match="does not match module"):
        load_local_feature_extractor(tmp_path / "f.safetensors", module=torch.nn.Linear(3, 3))
    (tmp_path / "f.pt").write_bytes(b"PK\x03\x04 a TorchScript archive would carry code")
    with pytest.raises(ValueError, match="carry code"):
        load_local_feature_extractor(tmp_path / "f.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{garbage")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_local_feature_extractor(tmp_path / "bad.safetensors")
    save_file({"w": torch.ones(2, 2)}, str(tmp_path / "odd.safetensors"))
    with pytest.raises(ValueError, match="expected MLP tensors"):
        load_local_feature_extractor(tmp_path / "odd.safetensors")
    with pytest.raises(FileNotFoundError):
        load_local_feature_extractor(tmp_path / "none.safetensors")


def test_prr_upstream_eps_warns():
    """Issue 13: PRR generation with upstream's default eps = 1 explodes and must say so."""
    with pytest.warns(RuntimeWarning, match="blow up"):
        flows.simulate(None, data_name="swirl", dims_to_keep=2, rho=2.0, steps=31, h=0.1, total_samples=40,
                       eps=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", ".*the latent will not be Gaussian", RuntimeWarning)
        flows.simulate(None, data_name="swirl", dims_to_keep=2, rho=2.0, steps=31, h=0.1, total_samples=40)


def test_dataset_tool_and_coverage_options_checked_first(tmp_path, monkeypatch):
    from synthperf.flows.dataset_tool import make_dataset_zip

    for bad in (-1, 0):
        with pytest.raises(ValueError, match="max_images must be >= 1"):
            make_dataset_zip("digits", tmp_path / "d.zip", max_images=bad)
    with pytest.raises(ValueError, match="power of two"):
        make_dataset_zip("digits", tmp_path / "d.zip", resolution=12)
    assert not (tmp_path / "d.zip").exists()
    r = CliRunner().invoke(app, ["dataset-tool", "--source", "digits", "--dest", str(tmp_path / "d.zip"),
                                 "--max-images", "-1"])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "--max-images" in r.stderr
    _no_work(monkeypatch)
    for args, words in [(["--steps", "1"], "steps"), (["--data-name", "spiral"], "--data-name"),
                        (["--rho", "-1"], "rho"), (["--n-test", "0"], "--n-test"),
                        (["--network", str(tmp_path / "none.json")], "network")]:
        r = CliRunner().invoke(app, ["coverage", "--out", str(tmp_path / "c.json"), *args])
        assert r.exit_code == 2 and r.stderr.startswith("error: ") and words in r.stderr, (args, r.output)
    assert not (tmp_path / "c.json").exists()


def test_second_writer_on_a_flows_folder_is_refused(tmp_path):
    """flows train/simulate hold the run lock (synthperf._lock) on their output folder: a second
    writer is refused with an error naming the folder, and the first one's files are untouched."""
    from synthperf._lock import OutputLockedError, RunLock
    from synthperf.flows.api import simulate, train

    out = tmp_path / "o"
    with RunLock(out):
        with pytest.raises(OutputLockedError, match=str(out)):
            train(out, data_name="circles", steps=2, batch=8, width=8, depth=1)
        with pytest.raises(OutputLockedError, match=str(out)):
            simulate(out, data_name="circles", steps=3, total_samples=8, save_freq=1)
    assert sorted(p.name for p in out.iterdir()) == [".synthperf.lock"]
    train(out, data_name="circles", steps=2, batch=8, width=8, depth=1)  # free again once released
