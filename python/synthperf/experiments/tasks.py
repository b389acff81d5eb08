"""Independent tasks: one (grid point, trial chunk) each, run by any executor.

A :class:`Task` is plain picklable data (the resolved config as a dict plus the trial range);
:func:`run_task` rebuilds the typed config, computes the rows of trials ``[lo, hi)`` and writes
them atomically to ``task.path`` (see :mod:`.store`). A task's rows depend only on its config
and trial range, never on the executor, the worker or the chunks run before it, so every
executor and worker count gives identical results. Data is loaded once per worker process.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Task", "run_task", "plan_chunks", "load_sppi_data"]


@dataclass(frozen=True)
class Task:
    """Trials ``[lo, hi)`` of grid point ``point``; ``config`` is the resolved config (plain dict)."""

    kind: str
    point: int
    config_json: str
    lo: int
    hi: int
    path: str
    grid: str = "{}"  # JSON of this point's grid values (added as columns)

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)


def plan_chunks(cfg: Any) -> list[tuple[int, int]]:
    """Trial ranges of one grid point: SPPI trials in chunks of ``chunk_trials``; guidance rows in
    chunks of ``chunk_size``; GaFi and flows runs are one task each."""
    kind = cfg.experiment
    if kind == "sppi":
        n, step = cfg.n_seeds, cfg.chunk_trials
    elif kind == "guidance":
        n, step = len(cfg.class_ids) * len(cfg.seeds), cfg.chunk_size
    else:
        n, step = 1, 1
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def run_task(task: Task) -> str:
    """Compute one chunk and write it (atomically) to ``task.path``; returns the path."""
    from .config import build
    from .schemas import SCHEMAS
    from .store import write_chunk

    cfg = build(SCHEMAS[task.kind], task.config)
    runner = {"sppi": _sppi_rows, "gafi": _gafi_rows, "flows": _flows_rows, "guidance": _guidance_rows}[task.kind]
    df = runner(cfg, task.lo, task.hi, Path(task.path).parent.parent)
    df.insert(0, "point", task.point)
    for key, value in json.loads(task.grid).items():
        col = key if key not in df.columns else f"grid.{key}"
        df[col] = json.dumps(value) if isinstance(value, (list, dict)) else value
    write_chunk(df, task.path)
    return task.path


# ----------------------------------------------------------------------------------------
# SPPI
# ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _sppi_data_cached(data_json: str, data_root: str | None):
    from .schemas import SPPIData

    return load_sppi_data(SPPIData(**json.loads(data_json)), data_root)


def load_sppi_data(d: Any, data_root: str | None):
    """(real, synth) ``RegressionData``/``ClassificationData`` for an :class:`~.schemas.SPPIData`."""
    from ..conformal import data as cd

    if d.kind == "meps":
        return cd.load_meps_pair(data_root, d.model_alpha, d.age_range, d.real_panel, d.synth_panel)
    if d.kind == "imagenet":
        real = cd.load_imagenet_probs(data_root, d.classes, source=d.real_source, model=d.model, missing=d.missing)
        if d.synth_pool == "gen":
            synth = cd.load_imagenet_probs(data_root, d.classes, source=d.synth_source, model=d.model,
                                           missing=d.missing)
        else:  # all_100: real images of the first 100 other classes (spec §5, pitfall P7)
            synth = cd.load_imagenet_probs(data_root, cd.other_classes(100, d.classes), source=d.real_source,
                                           model=d.model, missing=d.missing)
        return real, synth
    if d.kind == "npz":
        path = Path(d.path)
        if not path.is_file():
            raise FileNotFoundError(f"data.path {str(path)!r} does not exist")
        with np.load(path, allow_pickle=False) as z:
            missing = {"real_probs", "real_labels", "synth_probs", "synth_labels"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)}")
            return (cd.ClassificationData(z["real_probs"].astype(np.float32), z["real_labels"].astype(np.int64)),
                    cd.ClassificationData(z["synth_probs"].astype(np.float32), z["synth_labels"].astype(np.int64)))
    real = cd.generate_imagenet_like(d.n_classes, d.n_per_class, d.n_labels, seed=d.seed, signal=d.signal)
    synth = cd.generate_imagenet_like(d.n_classes, d.n_per_class, d.n_labels, seed=d.seed + 1, signal=d.signal,
                                      shift=d.synth_shift)
    return real, synth


def _sppi_rows(cfg: Any, lo: int, hi: int, point_dir: Path):
    """Trials ``lo..hi-1`` through the public trial-range API ``conformal.run_sppi_trials(...,
    trial_range=(lo, hi))``: the same seeds and rows as that slice of one uninterrupted run."""
    from ..conformal import trials

    real, synth = _sppi_data_cached(json.dumps(dataclasses.asdict(cfg.data), sort_keys=True), cfg.data_root)
    tc = trials.SPPITrialConfig(
        real=real, synth=synth, alpha=tuple(cfg.alpha), methods=tuple(cfg.methods), beta=cfg.beta, seed=cfg.seed,
        n_seeds=cfg.n_seeds, n_cal=cfg.n_cal, n_test=cfg.n_test, n_cal_maj=cfg.n_cal_maj,
        class_conditional=cfg.class_conditional, only_maj_exact=cfg.only_maj_exact,
        class_conditional_maj=cfg.class_conditional_maj, k=cfg.k, dist_criterion=cfg.dist_criterion,
        dataset=cfg.dataset, age_range=cfg.data.age_range if cfg.data.kind == "meps" else None,
        backend=cfg.backend, chunk_trials=max(1, hi - lo))
    return trials.run_sppi_trials(tc, trial_range=(lo, hi))


# ----------------------------------------------------------------------------------------
# GaFi / flows / guidance (thin wrappers over the systems' public functions)
# ----------------------------------------------------------------------------------------
def _gafi_rows(cfg: Any, lo: int, hi: int, point_dir: Path):
    from ..gafi.data import load_dataset
    from ..gafi.experiment import digits_preset, run_experiment

    if cfg.upstream_config:
        from ..gafi.classifier import ClassifierConfig  # noqa: F401 - import check
        from ..gafi.config import classifier_config, gan_configs, load_yaml, pipeline_config
        from ..gafi.experiment import ExperimentConfig

        splits = load_dataset(cfg.dataset, cfg.data_root)
        gan_splits = load_dataset(cfg.dataset, cfg.data_root, merge_train_val=True)
        sections = load_yaml(cfg.upstream_config)
        c, s, _ = splits.image_shape
        gan, gtrain = gan_configs(sections, channels=c, num_classes=splits.num_classes, image_size=s)
        cls = classifier_config(sections)
        exp = ExperimentConfig(cls, cls, gan, gtrain, pipeline_config(sections))
    else:
        splits, gan_splits, exp = None, None, digits_preset(cfg.preset)
    exp = dataclasses.replace(exp, gan_seeds=list(cfg.gan_seeds), seed=cfg.seed,
                              pipeline=dataclasses.replace(exp.pipeline, protocol=cfg.protocol))
    df = run_experiment(point_dir / "gafi", exp, splits, gan_splits, resume=True, device=cfg.device)
    df = df.reset_index(drop=True)
    df.insert(0, "trial", 0)
    df.insert(1, "seed", cfg.seed)
    return df


def _flows_rows(cfg: Any, lo: int, hi: int, point_dir: Path):
    """Train (optional) then melt/roundtrip/gen through :func:`synthperf.flows.train` /
    :func:`synthperf.flows.simulate`; ``roundtrip_mse`` is in data units (u(0) vs x, not z = s u)."""
    import pandas as pd

    from .. import flows

    sched = dict(dims_to_keep=cfg.dims_to_keep, rho=cfg.rho, gamma0=cfg.gamma0, g_type=cfg.g_type,
                 inflation_gap=cfg.inflation_gap, end_vars=cfg.end_vars)
    network = None
    if cfg.network == "trained":
        t = cfg.train
        network = flows.train(point_dir / "network", data_name=cfg.data_name, tmax=t.tmax, steps=t.steps,
                              batch=t.batch, lr=t.lr, width=t.width, seed=cfg.seed, **sched).checkpoint
    s = cfg.simulate
    res = flows.simulate(point_dir / "simulations", data_name=cfg.data_name, network=network, steps=s.steps, h=s.h,
                         eps=s.eps, save_freq=s.save_freq, total_samples=s.total_samples, solver=s.solver,
                         mode=s.mode, backend=s.backend, seed=cfg.seed, **sched)
    tag = f"{cfg.data_name}_{res.schedule.name}" + ("_net" if network is not None else "")
    rows = []
    for key in ("melt", "rdtrp", "gen"):
        xs = res.trajectories[key].xs
        rows.append({"simulation": key, "file": f"{tag}_{key}_results.npz", "n": int(xs.shape[1]),
                     "final_mean_abs": float(np.abs(xs[-1]).mean()), "final_std": float(xs[-1].std()),
                     "roundtrip_mse": res.roundtrip_mse if key == "rdtrp" else float("nan")})
    df = pd.DataFrame(rows)
    df.insert(0, "trial", 0)
    df.insert(1, "seed", cfg.seed)
    return df


def _guidance_rows(cfg: Any, lo: int, hi: int, point_dir: Path):
    import pandas as pd

    from ..guidance import FeedbackGuidedPipeline

    classifier, kw = None, {}
    if cfg.classifier:  # same loader as `synthperf guidance generate` (width/classes from the file)
        from ..guidance.classifiers import load_classifier

        classifier, info = load_classifier(cfg.classifier)
        if info.n_classes is not None and int(info.n_classes) != int(cfg.num_classes):
            raise ValueError(f"classifier {cfg.classifier!r} has {info.n_classes} classes but the config's "
                             f"num_classes is {cfg.num_classes}")
        # the classifier's own input normalisation and size, as `guidance generate` passes them
        kw = dict(classifier_mean=tuple(info.mean), classifier_std=tuple(info.std), classifier_size=info.size)
    pipe = FeedbackGuidedPipeline.from_local(cfg.model_dir, classifier=classifier).to(cfg.device)
    plan = [(c, s) for c in cfg.class_ids for s in cfg.seeds][lo:hi]
    labels = [cfg.labels[c] if cfg.labels else str(c) for c, _ in plan]
    prompts = [cfg.prompt_template.format(label=lab) for lab in labels]
    out = pipe(prompts, [c for c, _ in plan], seeds=[s for _, s in plan], criterion=cfg.criterion,
               fg_scale=cfg.fg_scale if classifier is not None else 0.0, guidance_freq=cfg.guidance_freq,
               guidance_scale=cfg.guidance_scale, num_inference_steps=cfg.num_inference_steps,
               height=cfg.height, width=cfg.width, **kw)
    img_dir = point_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    import matplotlib.pyplot as plt

    images = out.images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    for i, ((c, s), image) in enumerate(zip(plan, images)):
        path = img_dir / f"class{c:04d}_seed{s}.png"
        plt.imsave(path, image)
        rows.append({"trial": lo + i, "seed": s, "class_id": c, "prompt": prompts[i], "image": path.name,
                     "criterion": float(out.criterion[i]), "corrupted": bool(out.corrupted[i]),
                     "kept_seed": int(out.seeds[i]), "regenerated": bool(out.regenerated[i])})
    return pd.DataFrame(rows)
