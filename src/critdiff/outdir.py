"""Output folders: validate ``--out`` and hold an exclusive lock on it while a run writes there.

One run per folder (docs/reliability.md, R4): :func:`locked_output` takes ``fcntl.flock`` on
``OUT/.critdiff.lock`` without blocking and writes its PID there; a second run on the same folder gets a
one-line ``ValueError`` naming the folder and that PID at once. The kernel drops the lock when the
process ends, however it ends (SIGKILL included), so a stale lock file never blocks a later run. A run that
fails or is stopped leaves no trace it did not mean to: the lock file and the folders that
:func:`locked_output` created are removed again when nothing else was written there. One folder holds one kind
of run (R4.4): the first run records its command in ``OUT/.critdiff.kind`` and a run of another kind is refused (a usage error found
after the lock was taken, e.g. a ``--device`` this machine lacks, leaves ``--out`` as it was).
"""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".critdiff.lock"
KIND_NAME = ".critdiff.kind"  # the kind of run (the command) the folder belongs to (R4.4)
# commands that work on another kind's folder without making it theirs: report re-renders a demo's results
# critdiff report re-renders the folder of a demo (results.json) or of any command that writes result.json
READS = {"report": ("demo", "sample", "probe", "train", "train-classifier", "theory", "guide", "sweep")}


def folder_kind(folder: "str | os.PathLike") -> "str | None":
    """The kind of run recorded in ``folder`` (``OUT/.critdiff.kind``), or None."""
    try:
        text = (Path(folder) / KIND_NAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def _claim(p: Path, kind: str, name: str) -> bool:
    """Check that the folder ``p`` may hold a ``kind`` run and record the kind when it has none; True when this run
    wrote the record. Called with the lock held."""
    have = folder_kind(p)
    allowed = (kind,) + READS.get(kind, ())
    if have is not None and have not in allowed:
        raise ValueError(f"{name}: the folder {str(p)!r} holds a {have!r} run (recorded in {KIND_NAME}); a {kind!r} "
                         f"run would mix its files with it; choose another --out")
    if have is None and kind not in READS:
        from .io import atomic_write_text

        atomic_write_text(p / KIND_NAME, kind + "\n")
        return True
    return False


def check_out(path: "str | os.PathLike", name: str = "out") -> Path:
    """Check that ``path`` can be (or already is) a writable folder; a one-line ``ValueError`` naming ``name``.

    Refused: an empty path, an existing regular file, a path under a regular file, a folder that cannot
    be created or written. Nothing is created here.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a folder path, got {type(path).__name__}")
    text = os.fspath(path)
    if not str(text).strip():
        raise ValueError(f"{name}: expected a folder path, got an empty string")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name}: {str(p)!r} is a file, expected a folder")
    ancestor = p.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{name}: {str(p)!r} lies under the file {str(ancestor)!r}, expected a folder path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: {str(ancestor)!r} is not writable")
    return p


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        pid = ""
    return pid if pid.isdigit() else "unknown"


def _remove_stale_temps(folder: Path) -> None:
    """Remove the temporary files of atomic writes (``.NAME.XXXX.tmp``, see :func:`critdiff.io.atomic_path`)
    left by a killed run; called with the lock held, so no other run is writing them."""
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.endswith((".tmp", ".tmp.png")) and p.is_file():
            try:
                p.unlink()
            except OSError:
                pass


def _missing_folders(p: Path) -> list[Path]:
    """``p`` and its ancestors that do not exist yet, deepest first (what ``mkdir(parents=True)`` creates)."""
    out = []
    while not p.exists():
        out.append(p)
        p = p.parent
    return out


def _undo(lock_path: Path, lock_created: bool, created: list[Path]) -> None:
    """Remove the lock file (when this run created it) and the folders this run created that are empty
    without it (deepest first); called with the lock still held."""
    if lock_created:
        try:
            lock_path.unlink()
        except OSError:
            pass
    for folder in created:
        try:
            folder.rmdir()  # only an empty folder: anything the run wrote stays
        except OSError:
            break


@contextmanager
def locked_output(path: "str | os.PathLike", name: str = "out", kind: "str | None" = None) -> Iterator[Path]:
    """Validate ``path`` (:func:`check_out`), create it, and hold ``OUT/.critdiff.lock`` for the ``with`` block.

    Raises ``ValueError`` naming ``name`` when the folder cannot be created or another process holds it, or when
    ``kind`` (the command) differs from the kind recorded in the folder (``OUT/.critdiff.kind``, written by the
    first run of a kind there; :data:`READS` lists the commands that read another kind's folder).
    When the block raises (an error or an interrupt), the lock file, the kind record and the folders created
    here are removed again where the run wrote nothing else (module docstring).
    """
    p = check_out(path, name)
    created = _missing_folders(p.absolute())
    lock_path = p / LOCK_NAME
    lock_created = not lock_path.exists()
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ValueError(f"{name}: cannot create or write the folder {str(p)!r} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ValueError(f"{name}: cannot lock the folder {str(p)!r} ({exc.strerror})") from None
            raise ValueError(f"{name}: the folder {str(p)!r} is in use by another critdiff run (PID "
                             f"{_holder(lock_path)}); wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _remove_stale_temps(p)
        claimed = False
        try:
            claimed = kind is not None and _claim(p, kind, name)
            yield p
        except BaseException:
            if claimed:
                (p / KIND_NAME).unlink(missing_ok=True)
            _undo(lock_path, lock_created, created)
            raise
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
