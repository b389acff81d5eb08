"""YAML configs mirroring upstream's ``ResNet20.yaml``, ``BigGAN_deep.yaml``, ``Pipeline.yaml`` and
``MultiGAN.yaml`` (spec section 9), read with ``yaml.safe_load``.

Sections: DATA, OPTIMIZATION, MODEL, AUG, LOSS, CLS_PRE, PIPELINE, RUN. Every key is either
*active* (mapped onto a dataclass field), *fixed* (an upstream key whose only supported value
is upstream's default, e.g. ``optimizer: sgdw``; another value is an error), or *inert*
(upstream plumbing without meaning here, e.g. ``extra_name``; accepted and ignored). Any other
key or section raises ValueError naming it. Missing keys keep the dataclass defaults.

Command-line overrides (issue 16, one mechanism with ``synthperf run``: :mod:`synthperf._overrides`)
are applied to the raw sections before validation, so they obey the same rules as the file:
``SECTION.key=value``, ``+``/``++``/``~`` and ``-m`` sweeps, and upstream's per-key flags
(``--epochs 2``, ``--mixed_precision``, ``--random_erasing False``, ``--seed 3``; upstream's
``utils/parser.py``), which :func:`cli_overrides` maps to ``SECTION.key`` by
:func:`flag_key` (the one section where the key is active; an ambiguous key must be dotted).

Standing statistics (spec section 3): ``MODEL.standing_stats: N`` (int >= 0, beside the EMA
keys; default 0 = off) is ``GANTrainConfig.standing_stats`` for ``train-gan``: every epoch's
checkpointed sampler gets statistics re-estimated over N forward passes of the training batch
size (:func:`synthperf.gafi.gan_train.apply_standing_stats`). It is this port's key, not
upstream's: upstream's ``PIPELINE.apply_standing_stats`` / ``standing_stats_bs`` acted at
sampling time with random batch sizes in [1, 192] and stay fixed at their upstream values
(``false``), so an upstream file keeps its meaning.

Values are type-checked against the dataclass field types (plus :data:`_EXTRA_TYPES` for keys
that only the CLI reads) by the one shared coercion, :func:`synthperf._config.coerce` (the
rules of ``synthperf run`` configs, without turning a scalar into a one-element list): a wrong
type raises TypeError naming ``SECTION.key``, the expected type and the value. ``bool`` is
never accepted as a number; for float keys a numeric string is converted, because PyYAML
(YAML 1.1) reads ``1e-4`` (no dot) as a string; floats must be finite.
"""
from __future__ import annotations

import copy
import difflib
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

import yaml

from .._config import coerce, safe_load_bounded
from .._overrides import Override, apply_to, flags_to_overrides, parse_overrides
from .classifier import ClassifierConfig
from .gan import GANConfig
from .gan_train import GANTrainConfig
from .pipeline import PipelineConfig, expand_grid

__all__ = ["load_yaml", "validate_sections", "flag_key", "cli_overrides", "COMMANDS", "classifier_config",
           "gan_configs", "pipeline_config"]

COMMANDS = ("train-classifier", "train-gan", "pipeline", "multigan", "cas")

_CLS_OPT = {"lr", "momentum", "nesterov", "weight_decay", "batch_size", "val_batch_size", "epochs",
            "lr_milestones", "lr_gamma"}
_GAN_OPT = {"g_lr", "g_beta1", "g_beta2", "d_lr", "d_beta1", "d_beta2", "adam_eps", "g_updates_per_step",
            "d_updates_per_step", "split_batch_d_steps", "random_labels", "batch_size", "epochs"}
_GAN_MODEL = {"latent_dim", "shared_dim", "g_conv_dim", "g_depth", "apply_g_attn", "g_attn_res", "d_conv_dim",
              "d_depth", "apply_d_attn"}
_GAN_EMA = {"apply_g_ema", "g_ema_decay", "g_ema_start", "diff_augment", "standing_stats"}
_PIPE = {"ckpt_epochs", "stddev_search", "threshold_search", "steps", "filtering_attempts", "class_samples",
         "search_regen_every", "final_regen_every", "replace_fraction", "protocol", "batch_size"}

# key -> the only supported value (upstream default)
_FIXED: dict[str, dict[str, Any]] = {
    "DATA": {"normalize": True, "dequantize": False, "categorical": None, "val_categorical": None,
             "drop_remainder": None},
    "OPTIMIZATION": {"acml_steps": 1, "total_steps": None, "save_optimizer": None, "save_optimizer_ckpt": None},
    "MODEL": {"studiogan": True, "hier": True, "blur_resample": False, "residual_concat": False, "d_wide": None},
    "AUG": {"random_rotation": False, "random_zoom": False},
    "LOSS": {"type": "hinge", "grad_penalty_type": None, "grad_penalty_cost": None},
    "PIPELINE": {"apply_standing_stats": False, "standing_stats_bs": None, "one_gan_for_epoch": False,
                 "best_class_samples": None, "best_extra_name": None, "gan_name": None, "gan_names": None},
    "RUN": {"compute_metrics": False, "compute_classifier_stats": False, "keep_images": None, "reload": None,
            "show_plots": None, "plot_with_title": None, "plot_title": None, "start_eval_epoch": None,
            "fixed_seed": None, "save": None, "extra_name": None},
    "CLS_PRE": {"name": "resnet20", "optimizer": "sgdw", "random_erasing": None, "extra_name": None,
                "save_path": None},
}
_ACTIVE: dict[str, set[str]] = {
    "DATA": {"dataset", "root", "merge_train_val", "split_seed", "image_size", "horizontal_flip", "padding", "resize"},
    "OPTIMIZATION": _CLS_OPT | _GAN_OPT | {"optimizer"},
    "MODEL": _GAN_MODEL | _GAN_EMA | {"name", "width"},
    "AUG": {"random_flip", "random_crop", "random_erasing", "crop_padding"},
    "LOSS": set(),
    "CLS_PRE": {"path"},
    "PIPELINE": _PIPE | {"gan_dir", "pipeline_dirs", "gan_checkpoint", "sigma", "tau", "filter", "regen_every"},
    "RUN": {"seed", "save_path", "mixed_precision", "device"},
}


_GRIDS = {"ckpt_epochs", "stddev_search", "threshold_search"}  # validated by expand_grid
_EXTRA_TYPES: dict[str, dict[str, Any]] = {
    "DATA": {"dataset": str, "root": str | None, "merge_train_val": bool, "split_seed": int, "image_size": int,
             "horizontal_flip": bool, "padding": bool | None, "resize": bool | None},
    "OPTIMIZATION": {"optimizer": str},
    "MODEL": {"name": str, "width": int},
    "CLS_PRE": {"path": str},
    "PIPELINE": {"gan_dir": str, "pipeline_dirs": list[str], "gan_checkpoint": str,
                 "sigma": float | tuple[float, float], "tau": float, "filter": bool, "regen_every": int | None},
    "RUN": {"seed": int, "save_path": str, "mixed_precision": bool, "device": str},
}


def _hints(cls, names: set[str]) -> dict[str, Any]:
    h = typing.get_type_hints(cls)
    return {k: v for k, v in h.items() if k in names}


def _key_types() -> dict[str, dict[str, Any]]:
    out = {s: dict(t) for s, t in _EXTRA_TYPES.items()}
    out["OPTIMIZATION"].update(_hints(ClassifierConfig, _CLS_OPT))
    out["OPTIMIZATION"].update(_hints(GANTrainConfig, _GAN_OPT))
    out["MODEL"].update(_hints(GANConfig, _GAN_MODEL))
    out["MODEL"].update(_hints(GANTrainConfig, _GAN_EMA))
    out["AUG"] = _hints(ClassifierConfig, _ACTIVE["AUG"])
    out["PIPELINE"].update(_hints(PipelineConfig, _PIPE - _GRIDS))
    return out


def load_yaml(path: str | Path | None, overrides: Sequence[str | Override] = ()) -> dict[str, dict[str, Any]]:
    """Parse and validate a config file (``None``: no file, all defaults) with command-line
    ``overrides`` applied first (single-valued; :func:`cli_overrides` output or
    :class:`~synthperf._overrides.Override` objects of one sweep job); returns
    ``{section: {key: value}}`` (values coerced).

    Raises FileNotFoundError (no file), ValueError (bad YAML, an alias bomb, unknown section/key,
    an unsupported value of a fixed upstream key, a bad override) or TypeError (a value of the
    wrong type).
    """
    where = "the command line"
    raw: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        where = repr(str(path))
        try:
            raw = safe_load_bounded(path.read_text(encoding="utf-8"), str(path)) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"config file {str(path)!r} must hold a mapping of sections")
    if overrides:
        raw = apply_to(copy.deepcopy(raw), parse_overrides(list(overrides)))
        where += " with its overrides" if path is not None else ""
    return validate_sections(raw, where)


def validate_sections(raw: dict, where: str = "config") -> dict[str, dict[str, Any]]:
    """Check raw ``{section: {key: value}}`` data (module rules); ``where`` names it in errors."""
    out: dict[str, dict[str, Any]] = {}
    for section, body in raw.items():
        if section not in _ACTIVE:
            raise ValueError(f"unknown config section {section!r} in {where}; known: {sorted(_ACTIVE)}")
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise ValueError(f"config section {section} must be a mapping, got {type(body).__name__}")
        types_ = _key_types().get(section, {})
        body = dict(body)
        for key, value in body.items():
            fixed = _FIXED.get(section, {})
            if key in _ACTIVE[section]:
                if key in types_:
                    try:
                        body[key] = coerce(value, types_[key], f"{section}.{key}")
                    except (TypeError, ValueError) as exc:
                        where_, sep, rule = str(exc).partition(" must be ")  # "SECTION.key[i] must be ..."
                        msg = f"config key {where_} in {where} must be {rule}" if sep else f"{exc} (in {where})"
                        raise type(exc)(msg) from None
                continue
            if key in fixed:
                want = fixed[key]
                if want is not None and value != want:
                    raise ValueError(f"{section}.{key}={value!r} is not supported by this port (only {want!r})")
                continue
            known = sorted(_ACTIVE[section] | set(fixed))
            raise ValueError(f"unknown config key {section}.{key} in {where}; known keys: {known}")
        if section == "MODEL" and body.get("standing_stats", 0) < 0:
            raise ValueError(f"config key MODEL.standing_stats in {where} must be >= 0 (0 = off), "
                             f"got {body['standing_stats']}")
        out[section] = body
    return out


def flag_key(name: str) -> str:
    """An upstream per-key flag's key -> ``SECTION.key``: the one section where ``name`` is
    active, else the one where it is a fixed upstream key. A dotted ``SECTION.key`` is returned
    as it is. Raises ValueError naming ``--name`` when it is unknown (with close matches) or
    active in several sections (listing the dotted spellings)."""
    if "." in name:
        return name
    active = [s for s, keys in _ACTIVE.items() if name in keys]
    if len(active) > 1:
        raise ValueError(f"--{name} is a key of several sections ({', '.join(f'{s}.{name}' for s in active)}); "
                         f"write one of them as SECTION.key=value")
    if active:
        return f"{active[0]}.{name}"
    fixed = [s for s, keys in _FIXED.items() if name in keys]
    if len(fixed) == 1:
        return f"{fixed[0]}.{name}"
    known = sorted({k for keys in _ACTIVE.values() for k in keys})
    close = difflib.get_close_matches(name, known, n=3)
    raise ValueError(f"--{name} is not a config key" + (f"; did you mean {', '.join('--' + c for c in close)}?"
                                                         if close else f"; known keys: {', '.join(known)}"))


def cli_overrides(args: Sequence[str]) -> list[str]:
    """The extra command-line tokens of a ``synthperf gafi`` command as overrides with dotted
    keys: upstream flags (``--epochs 2`` -> ``OPTIMIZATION.epochs=2``, bare ``--mixed_precision``
    -> ``RUN.mixed_precision=true``) and Hydra-style tokens (``seed=3``, ``+RUN.device=cuda``,
    ``~AUG.random_erasing``, ``OPTIMIZATION.epochs=2,4`` with ``-m``); a key without a section
    is resolved by :func:`flag_key`."""
    out = []
    for text in flags_to_overrides(args, flag_key):
        o = parse_overrides([text])[0]
        key = o.key if o.key.split(".")[0] in _ACTIVE else flag_key(o.key)
        prefix = {"set": "", "add": "+", "force": "++", "delete": "~"}[o.op]
        rest = text[len(prefix):].partition("=")
        out.append(f"{prefix}{key}{rest[1]}{rest[2]}")
    return out


def _pick(section: dict, names: set[str], cls) -> dict:
    valid = {f.name for f in fields(cls)}
    return {k: v for k, v in section.items() if k in names and k in valid}


def classifier_config(cfg: dict[str, dict[str, Any]]) -> ClassifierConfig:
    """ClassifierConfig from OPTIMIZATION/MODEL/AUG/RUN (``ResNet20.yaml``/``Pipeline.yaml``)."""
    opt, model, aug, run = (cfg.get(s, {}) for s in ("OPTIMIZATION", "MODEL", "AUG", "RUN"))
    if opt.get("optimizer", "sgdw") != "sgdw":
        raise ValueError(f"OPTIMIZATION.optimizer must be 'sgdw' for classifiers, got {opt['optimizer']!r}")
    if model.get("name", "resnet20") != "resnet20":
        raise ValueError(f"MODEL.name must be 'resnet20' for classifiers, got {model['name']!r}")
    kw = _pick(opt, _CLS_OPT, ClassifierConfig)
    if "lr_milestones" in kw:
        kw["lr_milestones"] = tuple(int(m) for m in kw["lr_milestones"])
    if "width" in model:
        kw["width"] = int(model["width"])
    kw.update(_pick(aug, set(_ACTIVE["AUG"]), ClassifierConfig))
    for k in ("seed", "mixed_precision"):
        if k in run:
            kw[k] = run[k]
    return ClassifierConfig(**kw)


def gan_configs(cfg: dict[str, dict[str, Any]], *, channels: int, num_classes: int, image_size: int
                ) -> tuple[GANConfig, GANTrainConfig]:
    """(GANConfig, GANTrainConfig) from ``BigGAN_deep.yaml`` sections; data shape from the dataset."""
    opt, model, run, data = (cfg.get(s, {}) for s in ("OPTIMIZATION", "MODEL", "RUN", "DATA"))
    if opt.get("optimizer", "adam") != "adam":
        raise ValueError(f"OPTIMIZATION.optimizer must be 'adam' for the GAN, got {opt['optimizer']!r}")
    if model.get("name", "biggan_deep") != "biggan_deep":
        raise ValueError(f"MODEL.name must be 'biggan_deep' for the GAN, got {model['name']!r}")
    if "image_size" in data and int(data["image_size"]) != image_size:
        raise ValueError(f"DATA.image_size={data['image_size']} but the dataset images are {image_size}x{image_size}")
    g = GANConfig(image_size=image_size, channels=channels, num_classes=num_classes,
                  **_pick(model, _GAN_MODEL, GANConfig))
    kw = _pick(opt, _GAN_OPT, GANTrainConfig)
    kw.update(_pick(model, _GAN_EMA, GANTrainConfig))
    for k in ("seed", "mixed_precision"):
        if k in run:
            kw[k] = run[k]
    if "horizontal_flip" in data:
        kw["horizontal_flip"] = bool(data["horizontal_flip"])
    return g, GANTrainConfig(**kw)


def pipeline_config(cfg: dict[str, dict[str, Any]]) -> PipelineConfig:
    """PipelineConfig from PIPELINE (triplets expanded inclusively, as upstream)."""
    p = dict(cfg.get("PIPELINE", {}))
    kw = _pick(p, _PIPE, PipelineConfig)
    for key in ("ckpt_epochs", "stddev_search", "threshold_search"):
        if key in kw:
            kw[key] = expand_grid(kw[key], f"PIPELINE.{key}")
    if "ckpt_epochs" in kw:
        kw["ckpt_epochs"] = [int(e) for e in kw["ckpt_epochs"]]
    if "steps" in kw:
        kw["steps"] = tuple(kw["steps"])
    return PipelineConfig(**kw)
