"""The shape a data spec will load, known *before* loading it: :func:`shape_of` (for the preflight, R7).

``shape_of(spec) -> DataShape(n, c, h, w, raw_bytes)``: the number of images and their shape after every option
(``n=``, ``size=``, ``classes=``, ``per_class=``, ``channels=``), and the bytes of the source data read on the way
(a file's array, a bundled set's raw levels). Options are checked with the loaders' own helpers
(:mod:`.options`), so a bad option is the same one-line ``data:`` error here as when loading. File sets read
only their headers (``.npy`` header, IDX dims, the file list and the first image of a folder). Nothing of the
size of the data is allocated.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from ..limits import MAX_CHANNELS, MAX_SIDE
from ..spec import parse_spec
from .options import fail, opt_choice, opt_int, options, path_arg

# the bundled sets as shipped: images, side (pixels), classes, bytes per raw value (float64 levels)
BUNDLED = {"digits": (1797, 8, 10), "mnist": (5000, 28, 10)}
TEXTURE_SIDE = 512


@dataclass(frozen=True)
class DataShape:
    """``n`` images of ``c x h x w`` (after the spec's options) and ``raw_bytes`` of source data read to make them."""

    n: int
    c: int
    h: int
    w: int
    raw_bytes: int = 0

    @property
    def image(self) -> tuple:
        return (self.c, self.h, self.w)


def _n(name: str, value, available: int) -> int:
    n = available if value is None else opt_int(name, "n", value)
    if n > available:
        raise fail(f"option 'n' asks for {n} items but the data set has only {available}")
    return n


def _bundled(spec) -> DataShape:
    total, side, k = BUNDLED[spec.name]
    opts = options(spec, {"size": side, "n": None, "classes": None, "interp": "bilinear"})
    size = opt_int(spec.name, "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    opt_choice(spec.name, "interp", opts["interp"], ("bilinear", "bicubic"))
    available = total
    if opts["classes"] is not None:
        from .builtin import _classes

        available = -(-total * len(_classes(spec.name, opts["classes"], k)) // k) + k  # classes are near-balanced
    return DataShape(_n(spec.name, opts["n"], available), 1, size, size, total * side * side * 8)


def _textures(spec) -> DataShape:
    opts = options(spec, {"size": 32, "n": None, "per_class": None, "scale": 1})
    size = opt_int("textures", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    if opts["n"] is not None:
        n = opt_int("textures", "n", opts["n"])
    else:
        n = 3 * opt_int("textures", "per_class", 300 if opts["per_class"] is None else opts["per_class"])
    return DataShape(n, 1, size, size, 3 * TEXTURE_SIDE * TEXTURE_SIDE * 8 * 2)


def _synthetic(spec) -> DataShape:
    defaults = {"twopoint": 8, "stripes": 32, "grf": 32}
    opts = dict(spec.kwargs)  # the loader checks the other options (and the unknown ones) itself
    size = opt_int(spec.name, "size", opts.get("size", defaults[spec.name]), minimum=2, maximum=MAX_SIDE)
    channels = opt_int(spec.name, "channels", opts.get("channels", 1), maximum=MAX_CHANNELS)
    n = opt_int(spec.name, "n", opts.get("n", 1000))
    # grf: complex float64 FFTs of the white field; the others build float64 before casting
    per = 8 * (4 if spec.name == "grf" else 1)
    return DataShape(n, channels, size, size, n * channels * size * size * per)


def _npy(spec) -> DataShape:
    path = path_arg(spec)
    opts = options(spec, {"labels": None, "scale": "minmax", "n": None, "size": None}, n_args=1)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise fail(f"cannot read {path} as a .npy array ({str(err).splitlines()[0]})") from None
    if arr.ndim not in (3, 4):
        raise fail(f"array in {path} must have rank 3 (N, H, W) or 4 (N, C, H, W), got shape {arr.shape}")
    N, C, H, W = (arr.shape[0], 1, *arr.shape[1:]) if arr.ndim == 3 else arr.shape
    size = None if opts["size"] is None else opt_int("npy", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    h, w = (size, size) if size else (H, W)
    return DataShape(_n("npy", opts["n"], N), C, h, w, int(arr.size) * (arr.dtype.itemsize + 8))


def _idx(spec) -> DataShape:
    path = path_arg(spec)
    opts = options(spec, {"labels": None, "n": None, "size": None}, n_args=1)
    try:
        with (gzip.open(path, "rb") if open(path, "rb").read(2) == b"\x1f\x8b" else open(path, "rb")) as fh:
            head = fh.read(16)
    except (OSError, EOFError) as err:
        raise fail(f"cannot read IDX file {path}: {err}") from None
    if len(head) < 16 or head[:2] != b"\x00\x00" or head[3] != 3:
        raise fail(f"IDX images in {path} must have rank 3 (N, H, W) with a valid header")
    N, H, W = (int(v) for v in np.frombuffer(head, dtype=">u4", count=3, offset=4))
    size = None if opts["size"] is None else opt_int("idx", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    h, w = (size, size) if size else (H, W)
    return DataShape(_n("idx", opts["n"], N), 1, h, w, N * H * W * 5)


def _folder(spec) -> DataShape:
    from .files import _read_image, folder_index

    root = path_arg(spec)
    opts = options(spec, {"gray": None, "size": None, "n": None}, n_args=1)
    paths, _, _ = folder_index(root)
    size = None if opts["size"] is None else opt_int("folder", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    if size is None:
        first = _read_image(paths[0], False)
        h, w = first.shape[:2]
    else:
        h = w = size
    n = _n("folder", opts["n"], len(paths))
    return DataShape(n, 3, h, w, n * 3 * h * w)


_SHAPES = {"digits": _bundled, "mnist": _bundled, "textures": _textures, "twopoint": _synthetic,
           "stripes": _synthetic, "grf": _synthetic, "npy": _npy, "idx": _idx, "folder": _folder}


def shape_of(spec: str) -> DataShape:
    """The :class:`DataShape` that ``critdiff.data.load(spec)`` will return (module docstring)."""
    parsed = parse_spec(spec, "data")
    if parsed.name not in _SHAPES:
        from . import DATASETS

        raise fail(f"unknown data set {parsed.name!r}; valid: {', '.join(DATASETS)}")
    kwargs = {k: v for k, v in parsed.kwargs.items() if k != "seed"}
    return _SHAPES[parsed.name](type(parsed)(parsed.name, parsed.args, kwargs))


__all__ = ["DataShape", "shape_of"]
