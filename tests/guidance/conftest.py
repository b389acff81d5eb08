"""Fixtures for synthperf.guidance tests: tiny in-process models, nothing downloaded."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers", reason="needs the 'diffusion' extra")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

torch.set_num_threads(1)
