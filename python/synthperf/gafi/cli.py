"""``synthperf gafi`` commands: train-classifier | train-gan | pipeline | multigan | cas | demo.

Each command takes ``--config FILE.yaml`` (also ``--cfg_file``, upstream's name; see
:mod:`synthperf.gafi.config`; no file means all defaults, digits dataset) and ``--out DIR``
(default ``RUN.save_path`` or ``./gafi_runs``, stable so that runs resume). Per-key overrides
as upstream's README (``--epochs 2``, ``--mixed_precision``, ``--random_erasing False``,
``--seed 3``, ``--device cuda``) and Hydra-style ones (``OPTIMIZATION.epochs=2``, ``+``/``~``)
go through the one override mechanism of ``synthperf run`` (:mod:`synthperf._overrides`). With
``-m/--multirun`` a comma list sweeps (``--seed 1,2,3``: upstream's "iterate changing the seed"),
job ``i`` writing to ``OUT/i`` and running on ``--executor local | ray | slurm`` (``RUN.device``
cuda asks Ray/Slurm for one GPU per job; ``--slurm KEY=VALUE`` as in ``synthperf run``).
``--cfg job`` / ``--dry-run`` print the resolved config of every job and run nothing.
A config error (unknown section or key, wrong type, unsupported value) exits with status 2
and a message naming the key. Runs resume unless ``--no-resume``: train-classifier and
train-gan from their checkpoints, pipeline by skipping runs already in its results tables,
multigan and cas by skipping when an intact ``cas.parquet`` (checked against its sidecar) exists
for the same config (``run.json``).
Results are written as Parquet (atomically) plus PNG/PDF plots; a summary is printed.
Each job (and ``demo``), once its config is validated, holds the lock on its output folder (:class:`synthperf._lock.RunLock`): a
second command on the same folder is refused with one ``error:`` line (exit 1), writing nothing.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .._cli_errors import user_errors

app = typer.Typer(help="GaFi: GAN synthetic data with DSF, DDR, the Expansion Trick, MultiGAN and CAS.",
                  no_args_is_help=True, add_completion=False)

_CONFIG = typer.Option(None, "--config", "-c", "--cfg_file", help="YAML config (upstream-style sections).")
_OUT = typer.Option(None, "--out", "-o", help="Output directory (default RUN.save_path or ./gafi_runs).")
_RESUME = typer.Option(True, "--resume/--no-resume", help="Continue from existing checkpoints.")
_MULTIRUN = typer.Option(False, "--multirun", "-m", help="Sweep comma lists (--seed 1,2,3): one job per combination, "
                                                          "job i in OUT/i.")
_CFG = typer.Option(None, "--cfg", help="'job': print the resolved config of every job (YAML) and exit.")
_DRY = typer.Option(False, "--dry-run", help="Print the resolved configs (YAML); run and write nothing.")
_EXECUTOR = typer.Option("local", "--executor", help="Where sweep jobs run: local | ray | slurm.")
_WORKERS = typer.Option(1, "--workers", help="Parallel jobs (local processes, Ray CPUs, Slurm array parallelism).")
_ADDRESS = typer.Option(None, "--address", help="Ray cluster address (default: a local ray).")
_SLURM = typer.Option(None, "--slurm", help="Slurm/submitit parameter KEY=VALUE (repeatable; as synthperf run).")
_CTX = {"allow_extra_args": True, "ignore_unknown_options": True,
        "help_option_names": ["-h", "--help"]}
_EPILOG = ("Per-key overrides: --KEY VALUE for any config key (--epochs 2, --mixed_precision, --random_erasing False, "
           "--seed 3, --device cuda), or SECTION.key=value, +SECTION.key=value, ~SECTION.key.")


@contextmanager
def _config_errors(flag: str = "--config"):
    """Config mistakes are usage errors (status 2, see :mod:`synthperf._cli_errors`) naming ``flag``
    (--config; ``overrides`` for the command-line keys)."""
    from .._io import CheckpointError

    try:
        yield
    except CheckpointError:
        raise
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _locked(out_dir: Path):
    """The output-folder lock of a command (:class:`synthperf._lock.RunLock`), taken once its config
    is validated (a config error writes nothing) and held around the library call and its writes: a
    second command on the same folder is refused (``OutputLockedError``: one ``error:`` line, exit 1)."""
    from .._lock import RunLock

    return RunLock(Path(out_dir))


def _setup(cfg: dict, out_dir: Path):
    from .data import load_dataset

    data = cfg.get("DATA", {})
    run = cfg.get("RUN", {})
    kw = dict(root=data.get("root"), split_seed=int(data.get("split_seed", 0)))
    splits = load_dataset(data.get("dataset", "digits"), **kw)
    return cfg, splits, out_dir, run.get("device", "cpu"), kw, data


@dataclass(frozen=True)
class Job:
    """One run of a command: its validated config sections, output folder and resume flag."""

    command: str
    cfg: dict
    out: str
    resume: bool
    sweep: dict


def _jobs(command: str, config: Optional[Path], out: Optional[Path], args: List[str], multirun: bool) -> list[Job]:
    """The jobs of a command line (config errors are usage errors naming --config)."""
    from .._overrides import parse_overrides, sweep
    from .config import cli_overrides, load_yaml

    with _config_errors("overrides"):
        combos = sweep(parse_overrides(cli_overrides(args)), multirun=multirun)
    with _config_errors("--config" if config is not None else "overrides"):
        cfgs = [(load_yaml(config, ops), values) for ops, values in combos]
    base = Path(out or cfgs[0][0].get("RUN", {}).get("save_path") or "gafi_runs")
    if not multirun:
        return [Job(command, cfgs[0][0], str(base), True, {})]
    return [Job(command, c, str(base / str(i)), True, v) for i, (c, v) in enumerate(cfgs)]


def run_job(job: Job) -> str:
    """Run one job (module level, so Ray and submitit can pickle it); returns its output folder."""
    _COMMANDS[job.command](job.cfg, Path(job.out), job.resume)
    return job.out


def _dispatch(command: str, ctx: typer.Context, config: Optional[Path], out: Optional[Path], resume: bool,
              multirun: bool, cfg_print: Optional[str], dry_run: bool, executor: str, workers: int,
              address: Optional[str], slurm: Optional[List[str]]) -> None:
    """Resolve the jobs of a command line, print them (``--cfg job``/``--dry-run``) or run them."""
    import yaml

    from .._parallel import device_resources, execute, resource_defaults, slurm_cli_options

    if cfg_print is not None and cfg_print != "job":
        raise ValueError(f"--cfg must be 'job' (print the resolved configs), got {cfg_print!r}")
    jobs = [Job(j.command, j.cfg, j.out, resume, j.sweep)
            for j in _jobs(command, config, out, list(ctx.args), multirun)]
    slurm_opts = slurm_cli_options(slurm)
    devices = {str(j.cfg.get("RUN", {}).get("device", "cpu")) for j in jobs}
    with _config_errors("RUN.device"):  # RUN.device cuda -> one GPU per Ray task / Slurm job
        resources = next((r for r in map(device_resources, sorted(devices)) if r), {})
    if cfg_print == "job" or dry_run:
        doc = [{"out": j.out, "sweep": j.sweep, "config": j.cfg} for j in jobs]
        typer.echo(yaml.safe_dump(doc if multirun else {"out": jobs[0].out, "config": jobs[0].cfg}, sort_keys=False,
                                  default_flow_style=None, width=120).rstrip())
        return
    if len(jobs) == 1 and executor == "local":
        run_job(jobs[0])
        return
    for i, j in enumerate(jobs):
        typer.echo(f"job {i}: {j.out} {json.dumps(j.sweep)}")
    with resource_defaults(resources or None):
        execute(jobs, run_job, executor=executor, workers=workers, address=address,
                log_dir=Path(jobs[0].out).parent / "slurm", slurm=slurm_opts, desc=f"gafi {command} jobs")


def _finished(out_dir: Path, command: str, cfg: dict, resume: bool) -> bool:
    """Whether ``command`` already wrote ``cas.parquet`` under ``out_dir`` for this config. The
    table is verified against its sidecar (:func:`synthperf.gafi._io.read_table`): a damaged one
    is reported once and the command runs again (issue 17: never trust a damaged result)."""
    from ._io import read_table

    run = out_dir / "run.json"
    if not (resume and run.is_file()):
        return False
    try:
        done = json.loads(run.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    if done != {"command": command, "config": json.loads(json.dumps(cfg, default=str))}:
        return False
    if read_table(out_dir / "cas.parquet", what=f"the {command} CAS") is None:
        return False
    typer.echo(f"{command}: already done in {out_dir} (use --no-resume to recompute)")
    return True


def _write_cas(rows: list[dict], out_dir: Path, command: str, cfg: dict) -> None:
    import pandas as pd

    from .._io import atomic_write_bytes
    from ._io import write_table
    from .experiment import plot_cas

    df = pd.DataFrame(rows)
    write_table(df, out_dir / "cas.parquet")
    plot_cas(df, out_dir / "cas")
    atomic_write_bytes(out_dir / "run.json", json.dumps({"command": command, "config": cfg}, default=str).encode())
    typer.echo(df.to_string(index=False))


def _train_classifier(cfg: dict, out_dir: Path, resume: bool) -> None:
    """Train the ResNet-20 on real data (val-selected); it becomes the DSF filter classifier."""
    import pandas as pd

    from .._io import write_parquet
    from .classifier import fit_classifier
    from .config import classifier_config

    cfg, splits, out_dir, device, _, _ = _setup(cfg, out_dir)
    with _config_errors():
        ccfg = classifier_config(cfg)
    with _locked(out_dir):
        fit = fit_classifier(splits.train, splits.num_classes, ccfg, eval_sets={"val": splits.val, "test": splits.test},
                             select_on="val", checkpoint_dir=out_dir / "classifier", resume=resume, device=device,
                             description="classifier")
        write_parquet(pd.DataFrame(fit.history), out_dir / "classifier" / "history.parquet")
    best = fit.best_row()
    typer.echo(f"best epoch {fit.best_epoch}: val {best['val_accuracy']:.4f} test {best['test_accuracy']:.4f} "
               f"-> {out_dir / 'classifier' / 'best.safetensors'}")


def _verify_ema_checkpoints(out_dir: Path, epochs: list[int]) -> None:
    """Check (SHA-256) the EMA-generator checkpoint of every epoch the command reports: a resumed
    run reads only its last state, so an earlier epoch's damaged checkpoint (which ``pipeline``
    would load) is an error naming the file here, not an exit 0 (fault matrix, issue 17)."""
    from .._io import CheckpointError, load_checkpoint
    from .gan_train import ema_checkpoint_path

    for epoch in epochs:
        try:
            load_checkpoint(ema_checkpoint_path(out_dir, epoch))
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; an earlier epoch's EMA checkpoint cannot be rebuilt on resume: "
                                  "re-run with --no-resume") from None


def _train_gan(cfg: dict, out_dir: Path, resume: bool) -> None:
    """Train the conditional BigGAN-deep on train+val; EMA-generator checkpoint every epoch."""
    import pandas as pd

    from .._io import write_parquet
    from .config import gan_configs
    from .data import load_dataset
    from .gan_train import train_gan

    cfg, splits, out_dir, device, kw, data = _setup(cfg, out_dir)
    gan_data = load_dataset(splits.name, merge_train_val=bool(data.get("merge_train_val", True)), **kw)
    c, h, _ = splits.image_shape
    with _config_errors():
        gcfg, tcfg = gan_configs(cfg, channels=c, num_classes=splits.num_classes, image_size=h)
    with _locked(out_dir):
        res = train_gan(gan_data.train, gcfg, tcfg, out_dir=out_dir, resume=resume, device=device)
        _verify_ema_checkpoints(out_dir, [int(r["epoch"]) for r in res.history])
        write_parquet(pd.DataFrame(res.history), out_dir / "history.parquet")
    typer.echo(f"{res.iterations} iterations; EMA checkpoints in {out_dir / 'checkpoints'}")


def _classifier(cfg: dict, device: str):
    from .classifier import load_classifier

    path = cfg.get("CLS_PRE", {}).get("path")
    if not path:
        raise ValueError("CLS_PRE.path (the filter classifier's best checkpoint) is required")
    return load_classifier(path, device)


def _pipeline(cfg: dict, out_dir: Path, resume: bool) -> None:
    """GaFi greedy search (ckpt -> sigma -> tau) and the final accurate run for one GAN."""
    from .config import classifier_config, pipeline_config
    from .gan_train import available_checkpoint_epochs, ema_checkpoint_path, load_generator
    from .pipeline import gafi_search

    cfg, splits, out_dir, device, _, _ = _setup(cfg, out_dir)
    gan_dir = cfg.get("PIPELINE", {}).get("gan_dir")
    if not gan_dir:
        raise ValueError("PIPELINE.gan_dir (a train-gan output directory) is required")
    with _config_errors():
        pcfg, ccfg = pipeline_config(cfg), classifier_config(cfg)
    wanted = set(pcfg.ckpt_epochs)
    ckpts = {e: load_generator(ema_checkpoint_path(gan_dir, e), device)
             for e in available_checkpoint_epochs(gan_dir) if e in wanted}
    classifier = _classifier(cfg, device)
    from .._io import atomic_write_bytes

    with _locked(out_dir):
        res = gafi_search(ckpts, classifier, splits, ccfg, pcfg, out_dir, device=device,
                          seed=int(cfg.get("RUN", {}).get("seed", 42)), resume=resume)
        summary = {"gan_dir": str(gan_dir), "ckpt": res.best_ckpt, "sigma": res.best_sigma, "tau": res.best_tau,
                   "final": {k: (v.item() if hasattr(v, "item") else v) for k, v in res.final.items()}}
        atomic_write_bytes(out_dir / "summary.json", json.dumps(summary, indent=2).encode())
    typer.echo(json.dumps(summary))


def _multigan(cfg: dict, out_dir: Path, resume: bool) -> None:
    """MultiGAN CAS from the tuned generators of PIPELINE.pipeline_dirs (pipeline outputs)."""
    from .config import classifier_config, pipeline_config
    from .gan_train import ema_checkpoint_path, load_generator
    from .pipeline import run_multigan
    from .sampling import SamplerSpec

    cfg, splits, out_dir, device, _, _ = _setup(cfg, out_dir)
    dirs = cfg.get("PIPELINE", {}).get("pipeline_dirs") or []
    if len(dirs) < 1:
        raise ValueError("PIPELINE.pipeline_dirs must list pipeline output directories")
    with _config_errors():
        pcfg, ccfg = pipeline_config(cfg), classifier_config(cfg)
    if _finished(out_dir, "multigan", cfg, resume):
        return
    samplers = []
    for d in dirs:
        p = Path(d) / "summary.json"
        if not p.is_file():
            raise ValueError(f"{p} is missing; run `synthperf gafi pipeline` for that GAN first")
        s = json.loads(p.read_text())
        samplers.append(SamplerSpec(load_generator(ema_checkpoint_path(s["gan_dir"], s["ckpt"]), device),
                                    sigma=s["sigma"], tau=s["tau"]))
    classifier = _classifier(cfg, device)
    with _locked(out_dir):
        res = run_multigan(samplers, classifier, splits, ccfg,
                           class_samples=pcfg.class_samples, regen_every=pcfg.final_regen_every,
                           filtering_attempts=pcfg.filtering_attempts, protocol=pcfg.protocol,
                           seed=int(cfg.get("RUN", {}).get("seed", 42)), device=device)
        _write_cas([{"method": "multigan", "cas": res.cas, "selection_score": res.selection_score,
                     "protocol": res.protocol}], out_dir, "multigan", cfg)


def _cas(cfg: dict, out_dir: Path, resume: bool) -> None:
    """CAS of one generator checkpoint (PIPELINE.gan_checkpoint, sigma, tau, filter, regen_every),
    or of real data when no gan_checkpoint is given."""
    from .classifier import StaticSource
    from .config import classifier_config, pipeline_config
    from .gan_train import load_generator
    from .pipeline import run_cas
    from .sampling import SamplerSpec, SyntheticSource

    cfg, splits, out_dir, device, _, _ = _setup(cfg, out_dir)
    p = cfg.get("PIPELINE", {})
    with _config_errors():
        pcfg, ccfg = pipeline_config(cfg), classifier_config(cfg)
    if _finished(out_dir, "cas", cfg, resume):
        return
    if p.get("gan_checkpoint"):
        do_filter = bool(p.get("filter", False))
        generator = load_generator(p["gan_checkpoint"], device)
        with _config_errors():
            spec = SamplerSpec(generator, sigma=p.get("sigma", 1.0), tau=p.get("tau", 0.0), filter=do_filter)
        source = SyntheticSource([spec], _classifier(cfg, device) if do_filter else None,
                                 pcfg.class_samples or splits.class_samples(), regen_every=p.get("regen_every"),
                                 max_attempts=pcfg.filtering_attempts, seed=int(cfg.get("RUN", {}).get("seed", 42)),
                                 device=device)
        method = "gan"
    else:
        source, method = StaticSource(splits.train), "real"
    with _locked(out_dir):
        res = run_cas(source, splits, ccfg, protocol=pcfg.protocol, device=device)
        _write_cas([{"method": method, "cas": res.cas, "selection_score": res.selection_score,
                     "protocol": res.protocol}], out_dir, "cas", cfg)


_COMMANDS: dict[str, Callable[[dict, Path, bool], Any]] = {
    "train-classifier": _train_classifier, "train-gan": _train_gan, "pipeline": _pipeline, "multigan": _multigan,
    "cas": _cas}


@app.command("train-classifier", context_settings=_CTX, epilog=_EPILOG)
@user_errors
def train_classifier_cmd(ctx: typer.Context, config: Optional[Path] = _CONFIG, out: Optional[Path] = _OUT,
                         resume: bool = _RESUME, multirun: bool = _MULTIRUN, cfg: Optional[str] = _CFG,
                         dry_run: bool = _DRY, executor: str = _EXECUTOR, workers: int = _WORKERS,
                         address: Optional[str] = _ADDRESS, slurm: Optional[List[str]] = _SLURM) -> None:
    """Train the ResNet-20 on real data (val-selected); it becomes the DSF filter classifier."""
    _dispatch("train-classifier", ctx, config, out, resume, multirun, cfg, dry_run, executor, workers, address, slurm)


@app.command("train-gan", context_settings=_CTX, epilog=_EPILOG)
@user_errors
def train_gan_cmd(ctx: typer.Context, config: Optional[Path] = _CONFIG, out: Optional[Path] = _OUT,
                  resume: bool = _RESUME, multirun: bool = _MULTIRUN, cfg: Optional[str] = _CFG,
                  dry_run: bool = _DRY, executor: str = _EXECUTOR, workers: int = _WORKERS,
                  address: Optional[str] = _ADDRESS, slurm: Optional[List[str]] = _SLURM) -> None:
    """Train the conditional BigGAN-deep on train+val; EMA-generator checkpoint every epoch."""
    _dispatch("train-gan", ctx, config, out, resume, multirun, cfg, dry_run, executor, workers, address, slurm)


@app.command("pipeline", context_settings=_CTX, epilog=_EPILOG)
@user_errors
def pipeline_cmd(ctx: typer.Context, config: Optional[Path] = _CONFIG, out: Optional[Path] = _OUT,
                 resume: bool = _RESUME, multirun: bool = _MULTIRUN, cfg: Optional[str] = _CFG,
                 dry_run: bool = _DRY, executor: str = _EXECUTOR, workers: int = _WORKERS,
                 address: Optional[str] = _ADDRESS, slurm: Optional[List[str]] = _SLURM) -> None:
    """GaFi greedy search (ckpt -> sigma -> tau) and the final accurate run for one GAN."""
    _dispatch("pipeline", ctx, config, out, resume, multirun, cfg, dry_run, executor, workers, address, slurm)


@app.command("multigan", context_settings=_CTX, epilog=_EPILOG)
@user_errors
def multigan_cmd(ctx: typer.Context, config: Optional[Path] = _CONFIG, out: Optional[Path] = _OUT,
                 resume: bool = _RESUME, multirun: bool = _MULTIRUN, cfg: Optional[str] = _CFG,
                 dry_run: bool = _DRY, executor: str = _EXECUTOR, workers: int = _WORKERS,
                 address: Optional[str] = _ADDRESS, slurm: Optional[List[str]] = _SLURM) -> None:
    """MultiGAN CAS from the tuned generators of PIPELINE.pipeline_dirs (pipeline outputs)."""
    _dispatch("multigan", ctx, config, out, resume, multirun, cfg, dry_run, executor, workers, address, slurm)


@app.command("cas", context_settings=_CTX, epilog=_EPILOG)
@user_errors
def cas_cmd(ctx: typer.Context, config: Optional[Path] = _CONFIG, out: Optional[Path] = _OUT,
            resume: bool = _RESUME, multirun: bool = _MULTIRUN, cfg: Optional[str] = _CFG,
            dry_run: bool = _DRY, executor: str = _EXECUTOR, workers: int = _WORKERS,
            address: Optional[str] = _ADDRESS, slurm: Optional[List[str]] = _SLURM) -> None:
    """CAS of one generator checkpoint (PIPELINE.gan_checkpoint, sigma, tau, filter, regen_every),
    or of real data when no gan_checkpoint is given."""
    _dispatch("cas", ctx, config, out, resume, multirun, cfg, dry_run, executor, workers, address, slurm)


@app.command("demo")
@user_errors
def demo_cmd(out: Path = typer.Option(Path("gafi_demo"), "--out", "-o"),
             size: str = typer.Option("tiny", help="micro | tiny | small"),
             protocol: str = typer.Option("clean", help="clean | upstream_test_selected"),
             resume: bool = _RESUME) -> None:
    """The whole pipeline on digits: real, synthetic baseline, GaFi, MultiGAN (2 GANs)."""
    import time
    from dataclasses import replace

    from .._lock import RunLock
    from .experiment import digits_preset, run_experiment

    cfg = digits_preset(size)
    cfg.pipeline = replace(cfg.pipeline, protocol=protocol)
    t = time.perf_counter()
    with RunLock(out):  # one writer per demo folder (a second demo is refused, naming the holder)
        df = run_experiment(out, cfg, resume=resume)
    typer.echo(df.to_string(index=False))
    typer.echo(f"total {time.perf_counter() - t:.1f} s")
