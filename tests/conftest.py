"""Shared test setup: one torch thread per xdist worker (the machine has 2 cores).

``CRITDIFF_TEST_THREADS=N`` runs the whole suite at ``N`` torch threads (the ``one_thread`` fixture then uses
``N`` too), so that the suite can be checked at 1 and at 2 threads: no test may depend on the count."""

import os

import matplotlib
import pytest
import torch

from critdiff.threads import torch_threads

matplotlib.use("Agg")

TEST_THREADS = int(os.environ["CRITDIFF_TEST_THREADS"]) if os.environ.get("CRITDIFF_TEST_THREADS") else None

if TEST_THREADS is not None:
    torch.set_num_threads(TEST_THREADS)
elif os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """Small problems on one torch thread (two threads on a loaded 2-core machine were measured 50x slower);
    the previous count is restored after the module. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with torch_threads(TEST_THREADS or 1):
        yield


@pytest.fixture(scope="session")
def demo_net(tmp_path_factory):
    """The demo's quick conditional digits UNet (:func:`critdiff.experiments.demo.model.train_demo_model`), trained
    once per session (per xdist worker) and shared, read only, by the tests that need a trained network folder."""
    from critdiff.experiments.demo.model import train_demo_model

    return train_demo_model(tmp_path_factory.mktemp("demo-net") / "model", quick=True)
