"""Shared test setup: one torch thread per xdist worker (the machine has 2 cores)."""

import os

import matplotlib
import torch

matplotlib.use("Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
