"""Progress of long phases and the log lines written while one runs: the one progress bar of critdiff.

:func:`progress_bar` is a tqdm bar with an ETA, or a no-op bar (``enabled=False``, e.g. ``--json``); it goes to
stderr and vanishes when done (``leave=False``), so stdout stays clean for ``--json``. Use it as a context
manager, or call ``close()``. :func:`log_line` prints a line above any open bar (``tqdm.write``), so a log
never tears a bar apart.
"""

from __future__ import annotations

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str, enabled: bool = True, initial: int = 0):
    """A bar of ``total`` units starting at ``initial`` (elapsed, rate, ETA and a postfix shown); a context
    manager that closes it however the block ends."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True, bar_format=BAR_FORMAT)


def log_line(message: str) -> None:
    """Print ``message`` on stdout above any open progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(message)
