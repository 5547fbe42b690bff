"""Loaders for data a user has on disk (DESIGN.md section 6): IDX, image folders, ``.npy``.

All return images ``[N, C, H, W]`` float32 in ``[-1, 1]`` and labels ``[N]`` int64 or None.
The path is the first positional item of the spec (``idx:/data/train-images-idx3-ubyte.gz``),
so it may not contain ``,``; common options are ``n=N`` (stratified random subset) and
``size=K`` (resize to ``K x K``, antialiased when shrinking).

- ``idx``: MNIST / Fashion-MNIST IDX files, gzipped or not (detected from the content).
  The header (two zero bytes, a dtype code, the rank, big-endian uint32 dims) is checked
  against the file length. Images are rank 3 ``(N, H, W)``; uint8 grey levels map
  ``v -> 2 v / 255 - 1``, other dtypes are min/max rescaled. Labels come from ``labels=PATH``
  or from the sibling file named with ``images-idx3`` replaced by ``labels-idx1`` (with or
  without ``.gz``); ``labels=false`` drops them.
- ``folder``: image files read with PIL. If the folder has subfolders with images, each
  subfolder is a class (labels in sorted name order); images at the top level give no labels
  (mixing both is an error). ``gray=true|false`` converts to 1 or 3 channels (default: gray
  when every image has one band; alpha is dropped). Images are read as 8 bits (PIL's own
  conversion for other modes) and map ``v -> 2 v / 255 - 1``. Without ``size``
  all images must have the same size.
- ``npy``: an array ``(N, H, W)`` or ``(N, C, H, W)``, min/max rescaled to ``[-1, 1]`` unless
  ``scale=none`` (values kept as they are). Labels from ``labels=PATH`` or the sibling
  ``x.npy.labels.npy`` or ``x.labels.npy``: integer, rank 1, one per image.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np
import torch

from ..limits import MAX_CLASS_ID, MAX_SIDE
from ..spec import Spec
from .options import fail, opt_bool, opt_choice, opt_int, options, path_arg
from .transforms import from_levels, rescale_minmax, resize, subset, subset_indices

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")


# --------------------------------------------------------------------------- labels
# MAX_CLASS_ID (critdiff.limits): largest class id a labels file may hold (per-class storage is sized by it)


def check_labels(labels: object, n: int, source: str) -> torch.Tensor:
    """Labels as int64 ``[n]``: rank 1, integer dtype, one per image, class ids in ``0..MAX_CLASS_ID``.

    Models allocate per class id (a pool range, a covariance, an embedding row), so the ids are bounded
    here, before anything is allocated: a stray id such as 10^9 is an error naming the file, not a
    billion empty classes. Gaps between ids are allowed (a model reports a class without images).
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise fail(f"labels in {source} must be a rank-1 integer array, got shape {arr.shape} dtype {arr.dtype}")
    if len(arr) != n:
        raise fail(f"labels in {source} has {len(arr)} entries but there are {n} images")
    if n and arr.min() < 0:
        raise fail(f"labels in {source} must be >= 0, got {arr.min()}")
    if n and arr.max() > MAX_CLASS_ID:
        raise fail(f"labels in {source} must be class ids 0..{MAX_CLASS_ID}, got {arr.max()} "
                   f"(renumber the classes 0..K-1)")
    return torch.as_tensor(arr.astype(np.int64))


def _labels_option(name: str, value: object) -> str | bool | None:
    """``labels=PATH`` (must exist), ``labels=false`` (none) or absent (auto sibling)."""
    if value is None or value is True:
        return None
    if value is False:
        return False
    path = os.path.expanduser(str(value))
    if not os.path.isfile(path):
        raise fail(f"labels file not found for {name!r}: {path}")
    return path


# --------------------------------------------------------------------------- idx
def read_idx(path: str) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into a numpy array of its declared dtype and dims."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise fail(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise fail(f"bad IDX magic number in {path}: expected 00 00 <dtype code> <rank>, "
                   f"got {raw[:4].hex(' ') or 'an empty file'}")
    dtype, rank = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    start = 4 + 4 * rank
    if len(raw) < start:
        raise fail(f"truncated IDX header in {path}: rank {rank} needs {start} bytes, file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    need = start + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != need:
        what = "truncated" if len(raw) < need else "trailing bytes in"
        raise fail(f"{what} IDX file {path}: dims {dims} of {dtype.name} need {need} bytes, file has {len(raw)}")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims)


def idx_labels_sibling(path: str) -> str | None:
    """The labels file next to an images file (``images-idx3`` -> ``labels-idx1``), if it exists."""
    folder, base = os.path.split(path)
    if "images-idx3" not in base:
        return None
    stem = base.replace("images-idx3", "labels-idx1")
    stem = stem[:-3] if stem.endswith(".gz") else stem
    for candidate in (stem, stem + ".gz"):
        full = os.path.join(folder, candidate)
        if os.path.isfile(full):
            return full
    return None


def load_idx(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``idx:PATH[,labels=PATH|false,n=N,size=K]`` -> ``[N, 1, H, W]``, labels or None."""
    path = path_arg(spec)
    opts = options(spec, {"labels": None, "n": None, "size": None}, n_args=1)
    n = None if opts["n"] is None else opt_int("idx", "n", opts["n"])
    size = None if opts["size"] is None else opt_int("idx", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    label_path = _labels_option("idx", opts["labels"])

    arr = read_idx(path)
    if arr.ndim != 3:
        raise fail(f"IDX images in {path} must have rank 3 (N, H, W), got dims {arr.shape}")
    t = torch.as_tensor(arr.astype(arr.dtype.newbyteorder("=")))[:, None]
    x = from_levels(t, 255.0) if arr.dtype == np.uint8 else rescale_minmax(t)
    if label_path is None:
        label_path = idx_labels_sibling(path)
    labels = None
    if label_path:
        lab = read_idx(label_path)
        labels = check_labels(lab.astype(lab.dtype.newbyteorder("=")), len(x), label_path)
    x, labels = subset(x, labels, n, generator)
    return (x if size is None else resize(x, size)).contiguous(), labels


# --------------------------------------------------------------------------- folder
def _image_files(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))


def folder_index(root: str) -> tuple[list[str], list[int] | None, list[str]]:
    """Image paths, their labels (None without class subfolders) and the sorted class names."""
    if not os.path.isdir(root):
        raise fail(f"'folder' expects a directory, got the file {root}")
    top = _image_files(root)
    classes = [d for d in sorted(os.listdir(root))
               if os.path.isdir(os.path.join(root, d)) and _image_files(os.path.join(root, d))]
    if top and classes:
        raise fail(f"folder {root} has images both at the top level and in subfolders "
                   f"({', '.join(classes)}); use one layout")
    if top:
        return [os.path.join(root, f) for f in top], None, []
    if not classes:
        raise fail(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {root} or its subfolders")
    paths, labels = [], []
    for c, name in enumerate(classes):
        files = _image_files(os.path.join(root, name))
        paths += [os.path.join(root, name, f) for f in files]
        labels += [c] * len(files)
    return paths, labels, classes


def _read_image(path: str, gray: bool | None) -> np.ndarray | bool:
    """The image as uint8 ``(H, W)`` / ``(H, W, 3)``; with ``gray=None`` only whether it has one band."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if gray is None:  # header only, no decoding
                return len(img.getbands()) == 1 or img.mode == "LA"
            return np.array(img.convert("L" if gray else "RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise fail(f"cannot read image {path}: {' '.join(str(err).split())}") from None


def load_folder(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``folder:PATH[,gray=true|false,size=K,n=N]`` -> ``[N, 1 or 3, H, W]``, labels or None."""
    root = path_arg(spec)
    opts = options(spec, {"gray": None, "size": None, "n": None}, n_args=1)
    gray = None if opts["gray"] is None else opt_bool("folder", "gray", opts["gray"])
    size = None if opts["size"] is None else opt_int("folder", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    paths, labels, _ = folder_index(root)
    lab = None if labels is None else torch.tensor(labels, dtype=torch.int64)
    if opts["n"] is not None:
        idx = subset_indices(len(paths), opt_int("folder", "n", opts["n"]), lab, generator)
        paths = [paths[i] for i in idx]
        lab = None if lab is None else lab[idx]
    if gray is None:  # auto: gray only when every image has one band
        gray = all(_read_image(p, None) for p in paths)
    images = []
    for p in paths:
        arr = _read_image(p, gray)
        t = from_levels(torch.as_tensor(arr), 255.0)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        if size is not None:
            t = resize(t[None], size)[0]
        elif images and t.shape != images[0].shape:
            raise fail(f"images in {root} differ in size ({paths[0]}: {tuple(images[0].shape[1:])}, "
                       f"{p}: {tuple(t.shape[1:])}); pass size=K to resize them")
        images.append(t)
    return torch.stack(images).contiguous(), lab


# --------------------------------------------------------------------------- npy
def npy_labels_sibling(path: str) -> str | None:
    """``x.npy.labels.npy`` or ``x.labels.npy`` next to ``x.npy``, if one exists."""
    candidates = [path + ".labels.npy"]
    if path.endswith(".npy"):
        candidates.append(path[:-4] + ".labels.npy")
    return next((c for c in candidates if os.path.isfile(c)), None)


def _read_npy(path: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise fail(f"cannot read .npy file {path}: {' '.join(str(err).split())}") from None
    if not isinstance(arr, np.ndarray):
        raise fail(f"{path} holds several arrays (.npz); save one array with numpy.save")
    return arr


def load_npy(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``npy:PATH[,labels=PATH|false,scale=minmax|none,n=N,size=K]`` -> ``[N, C, H, W]``."""
    path = path_arg(spec)
    opts = options(spec, {"labels": None, "scale": "minmax", "n": None, "size": None}, n_args=1)
    scale = opt_choice("npy", "scale", opts["scale"], ("minmax", "none"))
    n = None if opts["n"] is None else opt_int("npy", "n", opts["n"])
    size = None if opts["size"] is None else opt_int("npy", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    label_path = _labels_option("npy", opts["labels"])

    arr = _read_npy(path)
    if arr.ndim not in (3, 4):
        raise fail(f"array in {path} must have rank 3 (N, H, W) or 4 (N, C, H, W), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise fail(f"array in {path} must be real numeric, got dtype {arr.dtype}")
    t = torch.as_tensor(np.ascontiguousarray(arr, dtype=np.float64))
    t = t[:, None] if t.ndim == 3 else t
    if scale == "minmax":
        x = rescale_minmax(t)
    else:
        if not bool(torch.isfinite(t).all()):
            raise fail(f"array in {path} contains non-finite values (nan or inf)")
        x = t.to(torch.float32)
    if label_path is None:
        label_path = npy_labels_sibling(path)
    labels = check_labels(_read_npy(label_path), len(x), label_path) if label_path else None
    x, labels = subset(x, labels, n, generator)
    return (x if size is None else resize(x, size)).contiguous(), labels
