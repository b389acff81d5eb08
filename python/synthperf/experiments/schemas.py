"""Config schemas of the experiment kinds (typed dataclasses validated by :mod:`.config`).

``experiment: sppi`` mirrors upstream's ``run_params`` (specs/sppi.md §5 table) with the data
paths turned into parameters: ``data_root`` is the root of the SPPI data layout (e.g.
``../shared/data/sppi``) and the ``data`` section says which files to read. List-valued keys
(never grid axes unless given a list of lists): ``alpha``, ``methods``, ``data.classes``,
``plot_classes``, ``gan_seeds``, ``class_ids``, ``seeds``, ``fg_scale``.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Optional

from .config import ConfigError

_SUBSET = [16, 207, 250, 626, 852, 862, 444, 17, 676, 217, 880, 337, 336, 208, 222,
           18, 13, 270, 20, 15, 321, 392, 157, 326, 993, 991, 994, 389, 395, 0]


@dataclass
class SPPIData:
    """Where the SPPI scores come from (specs/sppi.md §6).

    kind: ``meps`` (panel ``real_panel`` vs ``synth_panel`` of one age group, model dir
    ``alpha_{model_alpha}``), ``imagenet`` (CLIP softmax files; synthetic pool ``gen`` = the
    same ``classes`` from ``synth_source``, ``all_100`` = real images of the first 100 other
    classes), ``npz`` (``path`` to an .npz with real_probs/real_labels/synth_probs/synth_labels,
    e.g. written by the demo) or ``imagenet_like`` (generated fake softmax data, no files).
    """

    kind: Literal["meps", "imagenet", "npz", "imagenet_like"] = "meps"
    model_alpha: float = 0.1
    age_range: Literal["0-20", "20-40", "40-60", "60+", "all"] = "20-40"
    real_panel: int = 21
    synth_panel: int = 20
    model: str = "CLIP-ViT-B-32-laion2B-s34B-b79K"
    real_source: str = "imagenet_train"
    synth_source: str = "sdv5"
    synth_pool: Literal["gen", "all_100"] = "gen"
    classes: list[int] = field(default_factory=lambda: list(_SUBSET))
    missing: Literal["raise", "skip"] = "skip"
    path: Optional[str] = None
    n_classes: int = 10
    n_per_class: int = 200
    n_labels: int = 100
    signal: float = 4.0
    synth_shift: float = 0.0
    seed: int = 0


@lru_cache(maxsize=1)
def _sppi_config_class() -> type:
    """Define :class:`SPPIConfig` on first use. It subclasses the one definition of the SPPI
    trial hyperparameters, ``synthperf.conformal.trials.SPPITrialParams``; importing
    ``synthperf.conformal`` costs seconds (scikit-learn), so configs of the other kinds and
    ``synthperf run --help`` do not pay for it. ``SPPIConfig``, ``SPPI_METHODS`` and
    ``SCHEMAS["sppi"]`` resolve here; the class is a module attribute once made (pickles by name)."""
    from ..conformal.trials import MEPS_ALPHA_PATTERN, METHODS, SPPITrialParams

    @dataclass
    class SPPIConfig(SPPITrialParams):
        """One SPPI experiment (the keys of upstream's ``run_params``; spec §5). The trial
        hyperparameters are :class:`synthperf.conformal.trials.SPPITrialParams` (their one definition)."""

        experiment: Literal["sppi"] = "sppi"
        name: str = "sppi"
        data_root: Optional[str] = None
        data: SPPIData = field(default_factory=SPPIData)
        dataset: Optional[str] = None  # the results' dataset label; default derived from ``data``
        alpha: list[float] = field(default_factory=lambda: [0.1])
        methods: list[str] = field(default_factory=lambda: ["SC", "SC (synth)", "SPI"])
        plot_classes: Optional[list[int]] = None

        def validate(self) -> None:
            bad = [m for m in self.methods if m not in METHODS]
            if bad or not self.methods:
                raise ConfigError(f"methods must be a non-empty list from {METHODS}, got {self.methods}")
            if not self.alpha or any(not 0.0 < a < 1.0 for a in self.alpha):
                raise ConfigError(f"alpha must be a non-empty list of levels in (0, 1), got {self.alpha}")
            if not 0.0 < self.beta < 1.0:
                raise ConfigError(f"beta must lie in (0, 1), got {self.beta}")
            for name in ("n_seeds", "n_cal", "n_test", "n_cal_maj", "k", "chunk_trials"):
                if getattr(self, name) < 1:
                    raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
            if self.data.kind in ("meps", "imagenet") and not self.data_root:
                raise ConfigError(f"data_root is required for data.kind={self.data.kind!r}: pass data_root=PATH "
                                  "(the root of the SPPI data layout, e.g. ../shared/data/sppi)")
            if self.data.kind == "npz" and not self.data.path:
                raise ConfigError("data.path is required for data.kind='npz'")
            if self.dataset is None:
                self.dataset = self.default_dataset()
            m = MEPS_ALPHA_PATTERN.match(self.dataset)
            if self.data.kind == "meps" and m and [float(m.group(1))] != self.alpha:
                raise ConfigError(f"alpha={self.alpha} disagrees with dataset={self.dataset!r}: upstream takes alpha "
                                  "from a MEPS_alpha_{a} dataset name; set alpha to match or give dataset another name")

        def default_dataset(self) -> str:
            d = self.data
            if d.kind == "meps":
                return f"MEPS_alpha_{d.model_alpha:g}"
            if d.kind == "imagenet":
                return f"ImageNet_min_subset_maj_{d.synth_pool}"
            if d.kind == "npz":
                from pathlib import Path

                return Path(d.path or "scores").stem
            return "imagenet_like"

    SPPIConfig.__module__, SPPIConfig.__qualname__ = __name__, "SPPIConfig"
    globals()["SPPIConfig"] = SPPIConfig
    return SPPIConfig


def __getattr__(name: str) -> Any:
    if name == "SPPIConfig":
        return _sppi_config_class()
    if name == "SPPI_METHODS":
        from ..conformal.trials import METHODS

        return METHODS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class GafiConfig:
    """GaFi end-to-end run (``synthperf.gafi.experiment.run_experiment``): digits presets, or an
    upstream-style GaFi YAML (``upstream_config``, read by ``synthperf.gafi.config``) for CIFAR
    layouts under ``data_root``."""

    experiment: Literal["gafi"] = "gafi"
    name: str = "gafi"
    dataset: Literal["digits", "cifar10", "cifar100", "fashionmnist"] = "digits"
    data_root: Optional[str] = None
    preset: Literal["micro", "tiny", "small"] = "tiny"
    upstream_config: Optional[str] = None
    protocol: Literal["clean", "upstream_test_selected"] = "clean"
    gan_seeds: list[int] = field(default_factory=lambda: [42, 137])
    seed: int = 42
    device: str = "cpu"

    def validate(self) -> None:
        if self.dataset != "digits" and (not self.data_root or not self.upstream_config):
            raise ConfigError(f"dataset={self.dataset!r} needs data_root (local files; nothing is downloaded) and "
                              "upstream_config (a GaFi YAML with DATA/OPTIMIZATION/MODEL/PIPELINE sections)")
        if not self.gan_seeds:
            raise ConfigError("gan_seeds must list at least one seed")


@dataclass
class FlowsTrain:
    tmax: float = 7.01
    steps: int = 2000
    batch: int = 512
    lr: float = 2e-3
    width: int = 128


@dataclass
class FlowsSimulate:
    steps: int = 1501
    h: float = 1e-2
    eps: Optional[float] = None  # None: the melt-matched latent (flows.simulate); 1.0 is upstream's
    save_freq: int = 10
    total_samples: int = 2000
    solver: Literal["euler", "heun"] = "euler"
    mode: str = "stable"
    backend: Optional[str] = None


@dataclass
class FlowsConfig:
    """Inflationary flows on a toy: optional denoiser training, then melt/roundtrip/gen simulations."""

    experiment: Literal["flows"] = "flows"
    name: str = "flows"
    data_name: str = "circles"
    network: Literal["discrete", "trained"] = "discrete"
    dims_to_keep: Optional[int] = None
    rho: float = 1.0
    gamma0: float = 5e-4
    g_type: str = "orig"
    inflation_gap: float = 1.0
    end_vars: float = 1.0
    seed: int = 0
    train: FlowsTrain = field(default_factory=FlowsTrain)
    simulate: FlowsSimulate = field(default_factory=FlowsSimulate)


@dataclass
class GuidanceConfig:
    """Feedback-guided generation plan on a local Stable Diffusion folder (nothing downloaded).

    The plan is every (class id, seed) pair; chunks of ``chunk_size`` rows are generated and
    saved as PNGs with one results row each. ``classifier`` is a local safetensors checkpoint of
    :class:`synthperf.guidance.SmallResNet` (optional; without it fg_scale must be 0).
    """

    experiment: Literal["guidance"] = "guidance"
    name: str = "guidance"
    model_dir: Optional[str] = None
    classifier: Optional[str] = None
    num_classes: int = 1000
    prompt_template: str = "a photo of a {label}"
    labels: list[str] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=lambda: [0])
    seeds: list[int] = field(default_factory=lambda: [0])
    criterion: str = "entropy"
    fg_scale: float = 0.03
    guidance_freq: int = 5
    guidance_scale: float = 5.0
    num_inference_steps: int = 30
    height: Optional[int] = None
    width: Optional[int] = None
    chunk_size: int = 4
    device: str = "cpu"

    def validate(self) -> None:
        if not self.model_dir:
            raise ConfigError("model_dir is required: a local Stable Diffusion folder (model_index.json, unet/, ...)")
        if not self.class_ids or not self.seeds:
            raise ConfigError("class_ids and seeds must each list at least one value")
        if min(self.class_ids) < 0 or max(self.class_ids) >= self.num_classes:
            raise ConfigError(f"class_ids must lie in [0, num_classes={self.num_classes}), got {self.class_ids}")
        if self.labels and max(self.class_ids) >= len(self.labels):
            raise ConfigError(f"class id {max(self.class_ids)} has no entry in labels ({len(self.labels)} given)")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size}")


class _Schemas(Mapping):
    """``experiment:`` kind -> schema class; ``"sppi"`` is defined on first access
    (:func:`_sppi_config_class`)."""

    _eager = {"gafi": GafiConfig, "flows": FlowsConfig, "guidance": GuidanceConfig}
    _kinds = ("sppi", "gafi", "flows", "guidance")

    def __getitem__(self, kind: str) -> type:
        if kind == "sppi":
            return _sppi_config_class()
        return self._eager[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)


SCHEMAS: Mapping[str, type] = _Schemas()
