"""Test set-up shared by every test: seeds, the Triton interpreter on CPU, GPU skipping."""

from __future__ import annotations

import os
import random

# Triton decides between compiling and interpreting when a kernel is defined, so the switch
# must be set before any kernel module is imported. On a machine with no GPU the interpreter
# runs the kernels on CPU tensors (small shapes only: it is slow).
if os.environ.get("LOGO_FAST_TEST_GPU", "0") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np
import pytest
import torch

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none visible to torch)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same seeds, so a failure reproduces."""
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - code under test may use the legacy global generator
    torch.manual_seed(0)
    yield


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True
