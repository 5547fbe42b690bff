"""Torch's CPU thread count, set for a block and restored after it (the one thread helper of critdiff)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch


@contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count afterwards.

    ``n=None`` leaves the count alone (torch's choice). ``n`` must be an integer >= 1.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"threads: expected an integer >= 1 or None, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {n}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
