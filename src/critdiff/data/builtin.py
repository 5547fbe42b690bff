"""Data sets that ship with the install (DESIGN.md section 6): ``digits`` and ``textures``.

Both return images ``[N, 1, H, W]`` float32 in ``[-1, 1]`` and labels ``[N]`` int64.

- ``digits``: scikit-learn's ``load_digits`` (1797 images, 8x8, grey levels 0..16, classes
  0..9). Level ``v`` maps to ``v / 8 - 1``. ``size=K`` upsamples with ``interp=bilinear``
  (default) or ``bicubic`` (clamped to [-1, 1]); ``n=N`` keeps a stratified random subset;
  ``classes=3+5+8`` keeps those digits, relabelled 0, 1, 2 in the listed order.
- ``textures``: scikit-image's bundled grey 512x512 textures brick, grass, gravel (labels 0,
  1, 2 in that order). ``scale=s`` first area-averages each texture by an integer factor s
  (so a crop sees s times more of it), then each texture is mapped to ``[-1, 1]`` by its
  own min/max (no clipping; the per-texture means differ, see ``TEXTURE_NOTE``), then ``n``
  random ``size x size`` crops per class are cut at uniform random positions (no wrap).
  Samples are interleaved brick, grass, gravel, brick, ... so any prefix is balanced.
"""

from __future__ import annotations

import torch

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


def load_digits(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``digits[:size=K,n=N,classes=a+b+...,interp=bilinear|bicubic]`` -> ``[N, 1, K, K]``, labels."""
    from sklearn.datasets import load_digits as sk_load_digits

    opts = options(spec, {"size": 8, "n": None, "classes": None, "interp": "bilinear"})
    size = opt_int("digits", "size", opts["size"], minimum=2)
    interp = opt_choice("digits", "interp", opts["interp"], ("bilinear", "bicubic"))
    classes = _classes("digits", opts["classes"], 10)
    n = None if opts["n"] is None else opt_int("digits", "n", opts["n"])

    bunch = sk_load_digits()
    x = from_levels(torch.as_tensor(bunch.images), 16.0)[:, None]  # [1797, 1, 8, 8]
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    if classes is not None:
        x, labels = select_classes(x, labels, classes)
    x, labels = subset(x, labels, n, generator)
    return resize(x, size, interp).contiguous(), labels


def texture_images(scale: int = 1) -> torch.Tensor:
    """The three textures ``[3, 1, 512//scale, 512//scale]`` float64, each min/max-mapped to [-1, 1]."""
    import skimage.data

    raw = torch.stack([torch.as_tensor(getattr(skimage.data, t)(), dtype=torch.float64) for t in TEXTURES])
    tex = area_downscale(raw[:, None], scale)
    lo = tex.amin(dim=(1, 2, 3), keepdim=True)
    hi = tex.amax(dim=(1, 2, 3), keepdim=True)
    return (tex - lo) * (2.0 / (hi - lo)) - 1.0


def load_textures(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``textures[:size=32,n=300,scale=1]`` -> ``[3 n, 1, size, size]`` crops, labels 0/1/2."""
    opts = options(spec, {"size": 32, "n": 300, "scale": 1})
    size = opt_int("textures", "size", opts["size"], minimum=2)
    n = opt_int("textures", "n", opts["n"])
    scale = opt_int("textures", "scale", opts["scale"])
    if 512 // scale < size:
        raise fail(f"option 'size' of 'textures' is {size} but the texture at scale={scale} "
                   f"is only {512 // scale} pixels wide")
    tex = texture_images(scale)  # [3, 1, S, S]
    side = tex.shape[-1]
    k = len(TEXTURES)
    # crop corners, drawn in the interleaved sample order (sample i has class i % 3)
    corner = torch.randint(0, side - size + 1, (n * k, 2), generator=generator)
    labels = torch.arange(n * k, dtype=torch.int64) % k
    ar = torch.arange(size)
    rows = (corner[:, 0:1] + ar)[:, :, None]  # [N, size, 1]
    cols = (corner[:, 1:2] + ar)[:, None, :]  # [N, 1, size]
    crops = tex[:, 0][labels[:, None, None], rows, cols]  # [N, size, size]
    return crops[:, None].to(torch.float32).contiguous(), labels
