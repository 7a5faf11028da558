"""Kernel tests run compiled on a CUDA GPU and in Triton's interpreter on a CPU.

Triton fixes interpreted-vs-compiled when `@triton.jit` runs, so the kernel module is imported here
with TRITON_INTERPRET=1 (CPU only). The variable is set again around each test of this folder (Triton
also reads it at launch) and restored in between, so other areas' tests in the same process keep
seeing `triton_available() == False` on a CPU.
"""
import importlib
import os
import sys

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()


def _load_kernel_module():
    name = "claimsfm.kernels.attention"
    if HAS_CUDA:
        return importlib.import_module(name)
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        if name in sys.modules and not sys.modules[name]._INTERPRET:
            return importlib.reload(sys.modules[name])
        return importlib.import_module(name)
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved


attention = _load_kernel_module()


@pytest.fixture(autouse=True)
def _interpret_on_cpu(monkeypatch):
    if not HAS_CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def kernel():
    return attention


@pytest.fixture
def device():
    return "cuda" if HAS_CUDA else "cpu"


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and str(item.path).startswith(os.path.dirname(__file__)):
            item.add_marker(skip)
