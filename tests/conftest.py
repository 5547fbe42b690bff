"""Shared test setup: one torch thread per xdist worker (the machine has 2 cores)."""

import os

import matplotlib
import pytest
import torch

from critdiff.threads import torch_threads

matplotlib.use("Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """Small problems on one torch thread (two threads on a loaded 2-core machine were measured 50x slower);
    the previous count is restored after the module. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with torch_threads(1):
        yield
