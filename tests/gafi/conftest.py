"""GaFi tests run torch on one thread: exact-resume and determinism checks need a fixed thread
count, and on a shared 2-core machine one thread is also the fastest for these tiny models."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
