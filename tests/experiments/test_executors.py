"""Same results from local (1 and 2 workers), ray (local ray.init) and slurm (submitit local)."""
from __future__ import annotations

import pytest

from synthperf.experiments import load_results, run_experiment

from .conftest import frame_equal

SMALL = {"experiment": "sppi", "name": "small", "data": {"kind": "imagenet_like", "n_classes": 4, "n_per_class": 80,
                                                          "n_labels": 12},
         "alpha": [0.1, 0.2], "methods": ["SC", "SC (synth)", "SPI"], "n_seeds": 6, "n_cal": 20, "n_test": 40,
         "n_cal_maj": 100, "chunk_trials": 2, "class_conditional": [False, True]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("w1")
    s = run_experiment(SMALL, out, executor="local", workers=1, report=False)
    assert s.points == 2 and s.chunks == 6 and s.computed == 6
    return load_results(out)


def test_local_two_workers(reference, tmp_path):
    run_experiment(SMALL, tmp_path, executor="local", workers=2, report=False)
    frame_equal(load_results(tmp_path), reference)


def test_ray_local(reference, tmp_path):
    pytest.importorskip("ray", reason="ray is the 'dist' extra")
    run_experiment(SMALL, tmp_path, executor="ray", workers=2, report=False)
    frame_equal(load_results(tmp_path), reference)


def test_slurm_submitit_local(reference, tmp_path):
    pytest.importorskip("submitit", reason="submitit is the 'dist' extra")
    run_experiment(SMALL, tmp_path, executor="slurm", workers=2, slurm={"cluster": "local", "timeout_min": 5},
                   report=False)
    frame_equal(load_results(tmp_path), reference)


def test_executor_errors(tmp_path):
    with pytest.raises(ValueError, match="executor must be one of"):
        run_experiment(SMALL, tmp_path, executor="dask")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        run_experiment(SMALL, tmp_path, workers=0)
