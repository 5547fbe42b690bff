"""Progress of long phases: one tqdm bar with an ETA, or nothing (``enabled=False``, e.g. ``--json``).

Bars go to stderr and vanish when done (``leave=False``), so stdout stays clean for ``--json``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool = True) -> Iterator:
    """A tqdm bar of ``total`` units (elapsed, rate and ETA shown) that is closed however the block ends."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
    try:
        yield bar
    finally:
        bar.close()
