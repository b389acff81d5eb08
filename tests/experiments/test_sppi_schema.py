"""The SPPI trial hyperparameters have one definition (issue 14 acceptance: no copied SPPI
schema): ``conformal.trials.SPPITrialParams``, subclassed by ``SPPITrialConfig`` and by the
experiments layer's ``SPPIConfig`` (experiments imports conformal, never the reverse)."""
from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import pytest

from synthperf.conformal.trials import METHODS, SPPITrialConfig, SPPITrialParams
from synthperf.experiments import schemas
from synthperf.experiments.config import ConfigError, build

SHARED = [f.name for f in dataclasses.fields(SPPITrialParams)]


def test_both_configs_inherit_the_one_definition_and_redeclare_nothing():
    cfg = schemas.SPPIConfig
    assert issubclass(cfg, SPPITrialParams) and issubclass(SPPITrialConfig, SPPITrialParams)
    assert {"beta", "n_cal", "n_cal_maj", "k", "dist_criterion", "chunk_trials", "backend"} <= set(SHARED)
    for sub in (cfg, SPPITrialConfig):
        own = set(vars(sub).get("__annotations__", {}))
        assert not own & set(SHARED), f"{sub.__name__} re-declares {sorted(own & set(SHARED))}"
        defaults = {f.name: f.default for f in dataclasses.fields(sub) if f.name in SHARED}
        assert defaults == {f.name: f.default for f in dataclasses.fields(SPPITrialParams)}
    assert schemas.SPPI_METHODS == METHODS and schemas.SCHEMAS["sppi"] is cfg
    assert sorted(schemas.SCHEMAS) == ["flows", "gafi", "guidance", "sppi"] and "sppi" in schemas.SCHEMAS


def test_experiment_config_still_coerces_and_validates_the_shared_keys():
    cfg = build(schemas.SPPIConfig, {"experiment": "sppi", "data": {"kind": "imagenet_like"}, "beta": 0.3,
                                     "n_cal": 12, "dist_criterion": "wasserstein"})
    assert (cfg.beta, cfg.n_cal, cfg.dist_criterion, cfg.dataset) == (0.3, 12, "wasserstein", "imagenet_like")
    with pytest.raises((ConfigError, TypeError, ValueError), match="dist_criterion"):
        build(schemas.SPPIConfig, {"experiment": "sppi", "data": {"kind": "imagenet_like"}, "dist_criterion": "l2"})
    with pytest.raises(ConfigError, match="beta"):
        build(schemas.SPPIConfig, {"experiment": "sppi", "data": {"kind": "imagenet_like"}, "beta": 1.5})
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # executors ship configs to workers by pickle


def test_trial_config_hyperparameters_are_keyword_only():
    from synthperf.conformal.data import generate_imagenet_like

    real = generate_imagenet_like(3, 20, 10, seed=0)
    tc = SPPITrialConfig(real, real, (0.2,), beta=0.3)
    assert (tc.alpha, tc.beta, tc.n_cal) == ((0.2,), 0.3, 15)
    with pytest.raises(TypeError):
        SPPITrialConfig(real, real, (0.2,), ("SC",), "", None, None, False, {}, 0.3)  # beta is keyword-only


def test_loading_the_schemas_does_not_import_conformal():
    """Config kinds other than sppi do not pay for importing synthperf.conformal (scikit-learn)."""
    code = ("import sys, synthperf.experiments.schemas as s; assert 'synthperf.conformal' not in sys.modules; "
            "s.SCHEMAS['flows']; assert 'synthperf.conformal' not in sys.modules; "
            "s.SCHEMAS['sppi']; assert 'synthperf.conformal' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
