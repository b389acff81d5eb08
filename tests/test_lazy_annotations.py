"""Annotations naming lazily imported libraries (issue 16): ``_typing.LazyModule`` lets
``typing.get_type_hints`` resolve ``pd.DataFrame`` / ``torch.nn.Module`` to the real classes
while importing the annotated modules still imports neither pandas nor torch."""
from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from synthperf._typing import LazyModule


def test_lazy_module_imports_on_attribute_access_only():
    lazy = LazyModule("json")
    assert lazy.dumps is __import__("json").dumps
    with pytest.raises(AttributeError):
        lazy.__wrapped__  # dunder probes (copy, pickle, inspect) never import
    with pytest.raises(AttributeError):
        LazyModule("json").no_such_attribute


def test_hints_resolve_to_pandas_and_torch_classes():
    import pandas as pd
    import torch

    from synthperf.experiments import load_results
    from synthperf.experiments.reports import plot_results
    from synthperf.guidance.digits import make_digits_synthetic
    from synthperf.guidance.longtail import summarize_longtail

    assert typing.get_type_hints(plot_results)["df"] is pd.DataFrame
    assert typing.get_type_hints(summarize_longtail)["return"] is pd.DataFrame
    assert pd.DataFrame in typing.get_args(typing.get_type_hints(load_results)["return"])
    clf = typing.get_type_hints(make_digits_synthetic)["classifier"]  # no localns: torch via LazyModule
    assert torch.nn.Module in typing.get_args(typing.get_args(clf)[0])


def test_importing_the_annotated_modules_imports_neither_pandas_nor_torch():
    code = ("import sys; import synthperf.experiments, synthperf.experiments.reports, synthperf.guidance.longtail, "
            "synthperf.guidance.digits; print(sorted(m for m in ('pandas', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]"]
