"""The patch score model: a local (LS) or translation-equivariant (ELS) analytic denoiser.

DESIGN.md section 2. Training images ``y [N, C, H, W]``; a stencil ``S`` of ``|S|`` offsets. A
patch is the vector of all ``C`` channels at every offset, ``x_{i+S}`` of length ``D = |S| C``
(ordered offset-major, channel-minor). The denoiser at pixel ``i`` is

    D_i(x) = sum_p w_i(p) p[0],    w_i(p) = softmax_p( -|x_{i+S} - p_S|^2 / (2 sigma^2) ),

where ``p[0]`` is the training patch's centre pixel (all ``C`` channels; carried even if ``(0, 0)``
is not in the stencil) and the pool holds

- ``equivariant=True`` ("ELS"): the patches of every position of every training image;
- ``equivariant=False`` ("LS"): the patches at position ``i`` only (one per training image).

Boundaries: ``'periodic'`` wraps query and training images; ``'zero'`` pads both with zeros.
``pool='valid'`` (ELS only) keeps only training patches lying wholly inside the training images,
the query still padded as chosen (the convention of Kamb & Ganguli's ELS-machine code). With
``labels`` the pool for ``label=k`` holds only class-``k`` patches; ``label=None`` uses all.

Evaluation streams the pool in chunks through the online-softmax GEMM kernel of
:mod:`critdiff.scores._softmax`. ``chunk_size`` is the number of pool patches (counted over all
positions) unfolded at once: memory ~ ``chunk_size * (D + 2)`` numbers plus one ~4 MB logit tile.
The unfolded pool is cached (per dtype and device) when it fits in ``cache_bytes``.

Precision rule: the logits use the expansion ``q.p - |p|^2/2`` after shifting query and pool by the
per-channel training mean (exact: distances are shift-invariant). A float32 call is computed in
float64 for the samples whose estimated logit error ``eps32 (max|q|^2 + max|p|^2) / (2 sigma^2)``
exceeds ``_softmax.PRECISION_TOL`` (1e-4; a worst-case bound, the measured error is ~100x
smaller): for data in [-1, 1] and ``square:7``, sigma below ~0.35.
float64 calls stay float64 (logit error ~1e-16 (|q|^2+|p|^2)/sigma^2: ~1e-6 at sigma = 1e-4,
where the weights are one-hot anyway for patches that are not near-ties).
"""

from __future__ import annotations

from typing import Literal, Optional

import torch

from ..devices import resolve as resolve_device
from ..errors import check_choice, check_images, check_int
from ..stencil import Stencil, gather_patches, parse_stencil
from . import _softmax as K
from ._patchrows import PatchRows
from ._pruned import PrunedPool
from ._window import window_average
from ._common import ClassIndex, check_chunk_size, check_dtype, check_labels, groups, prepare_call

Boundary = Literal["periodic", "zero"]
Pool = Literal["all", "valid"]
Kernel = Literal["stream", "sdpa", "window"]
DEFAULT_CHUNK = 1 << 16  # pool patches per chunk
DEFAULT_CACHE_BYTES = 256 << 20
DEFAULT_TOL = 1e-5  # certified |D - D_exact| / value range of the pruned path (docs/theory.md section 12)
EXACT_BELOW = 1 << 18  # tol=None: pools of fewer patches take the exact path


class PatchScore:
    """Patch denoiser ``D(x [B,C,H,W], sigma, label=None) -> [B,C,H,W]`` (DESIGN.md section 2).

    Attributes: ``stencil`` (:class:`~critdiff.stencil.Stencil`), ``equivariant``, ``boundary``,
    ``pool``, ``n_images``, ``n_pool`` (patches in the pool: per position for LS, in total for ELS),
    ``patch_dim`` (``|S| C``), ``n_classes``, ``image_shape`` ``(C, H, W)``, ``tol``, and
    ``last_bound``: the certified bound on ``max |D - D_exact|`` (output units, all pixels and
    channels) of the last call, 0.0 on the exact path.

    ``tol`` (ELS only; the LS pool is one patch per image and stays exact): 0 is the exact
    streaming path; ``tol > 0`` de-duplicates and clusters the pool once per class and device and
    skips clusters whose weight is certified small, with ``|D - D_exact| <= tol * R`` per channel
    (``R`` the range of the pool's centre values; docs/theory.md section 12). ``tol=None`` means
    ``DEFAULT_TOL`` for ELS pools of at least ``EXACT_BELOW`` patches and 0 below.
    ``n_clusters`` (default ``sqrt`` of the unique patches, at most 4096) sets the clustering.
    ``kernel='sdpa'`` evaluates the exact path through ``F.scaled_dot_product_attention`` (the
    augmented-key logits are an attention product; fused kernels on CUDA) with the pool materialised.
    ``kernel='window'`` (LS only, the LS default: ``kernel=None``) computes each training image's logits at
    every pixel as a window sum of one squared-difference image (:mod:`critdiff.scores._window`): no patch
    is unfolded and the cost hardly grows with the stencil. ``kernel=None`` means ``'window'`` for LS and
    ``'stream'`` for ELS.
    ``device``: where the training images (and so the cached pool) live; calls compute on the
    device of ``x`` either way.
    """

    def __init__(
        self,
        images: torch.Tensor,
        stencil="square:5",
        equivariant: bool = True,
        boundary: Boundary = "periodic",
        labels: Optional[torch.Tensor] = None,
        pool: Pool = "all",
        chunk_size: Optional[int] = None,
        dtype: Optional[torch.dtype] = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        tol: Optional[float] = None,
        n_clusters: Optional[int] = None,
        device=None,
        kernel: Optional[Kernel] = None,
    ):
        images = check_images("images", images)
        N, C, H, W = images.shape
        if N == 0:
            raise ValueError("images: expected at least one training image")
        self.stencil: Stencil = parse_stencil(stencil)
        self.equivariant = bool(equivariant)
        self.boundary = check_choice("boundary", boundary, ("periodic", "zero"))
        self.pool = check_choice("pool", pool, ("all", "valid"))
        if kernel is None:
            kernel = "stream" if self.equivariant else "window"
        self.kernel = check_choice("kernel", kernel, ("stream", "sdpa", "window"))
        if self.kernel == "window" and self.equivariant:
            raise ValueError("kernel: 'window' is the LS kernel (equivariant=False); ELS takes 'stream' or 'sdpa'")
        self.chunk_size = check_chunk_size(chunk_size)
        self.dtype = check_dtype(dtype) or images.dtype
        self.cache_bytes = int(cache_bytes)
        if self.boundary == "periodic":
            self.stencil.check_fits(H, W)
        offs = self.stencil.offsets
        if self.pool == "valid":
            if not self.equivariant:
                raise ValueError("pool: 'valid' requires equivariant=True (a local pool at a border position would be empty)")
            ys = range(-min(o[0] for o in offs), H - max(o[0] for o in offs))
            xs = range(-min(o[1] for o in offs), W - max(o[1] for o in offs))
            if len(ys) == 0 or len(xs) == 0:
                raise ValueError(f"pool: 'valid' keeps no patch: stencil {self.stencil.spec!r} does not fit inside {H}x{W} images")
            self._valid = (ys.start, ys.stop, xs.start, xs.stop)
        else:
            self._valid = (0, H, 0, W)
        self.image_shape = (C, H, W)
        self.n_images = N
        self._classes = ClassIndex(check_labels(labels, N), N)
        self._images = images.detach()[self._classes.order].to(self.dtype).contiguous()
        if device is not None:
            self._images = self._images.to(resolve_device(device))
        self.labels = None if labels is None else self._classes.labels
        y0, y1, x0, x1 = self._valid
        self._positions = (y1 - y0) * (x1 - x0)  # pool patches per training image
        self.patch_dim = self.stencil.size * C
        self.n_pool = N if not self.equivariant else N * self._positions
        # shift by the per-channel mean (exact; shrinks |q|^2, |p|^2 and so the GEMM cancellation)
        self._shift = self._images.to(torch.float64).mean(dim=(0, 2, 3))  # [C]
        dev2 = (self._images.to(torch.float64) - self._shift.reshape(1, C, 1, 1)).pow(2).sum(1).max()
        if self.boundary == "zero":
            dev2 = torch.maximum(dev2, self._shift.pow(2).sum())
        self._p_norm2_max = float(dev2) * self.stencil.size  # bound on max |p - shift|^2
        self._cache: dict = {}
        self.tol = self._check_tol(tol)
        self.n_clusters = None if n_clusters is None else check_int("n_clusters", n_clusters, minimum=1)
        self._pruned: dict = {}
        self.last_bound = 0.0

    def _check_tol(self, tol) -> float:
        """``tol`` (None: DEFAULT_TOL for ELS pools of at least EXACT_BELOW patches, else 0 = exact)."""
        if tol is None:
            return DEFAULT_TOL if self.equivariant and self.n_pool >= EXACT_BELOW else 0.0
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0.0 <= float(tol) < 1.0:
            raise ValueError(f"tol: expected a number in [0, 1) (0 = exact path), got {tol!r}")
        return float(tol)

    # ---- configuration -------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return self._classes.n_classes

    def config(self) -> dict:
        """JSON-serialisable description of the model."""
        C, H, W = self.image_shape
        return {
            "model": "patch",
            "stencil": self.stencil.spec,
            "stencil_size": self.stencil.size,
            "equivariant": self.equivariant,
            "boundary": self.boundary,
            "pool": self.pool,
            "n_images": self.n_images,
            "n_pool": self.n_pool,
            "image_shape": [C, H, W],
            "n_classes": self.n_classes,
            "chunk_size": self.chunk_size,
            "tol": self.tol,
            "kernel": self.kernel,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    def __repr__(self) -> str:
        kind = "ELS" if self.equivariant else "LS"
        return f"PatchScore({kind}, stencil={self.stencil.spec!r}, boundary={self.boundary!r}, pool={self.pool!r}, n_images={self.n_images})"

    # ---- pool ----------------------------------------------------------------------------
    def _patches(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images ``[n, C, H, W]`` -> keys ``[G, m, D]`` and centre values ``[G, m, C]`` (shifted)."""
        n, C, H, W = y.shape
        y0, y1, x0, x1 = self._valid
        shift = self._shift.to(y.device, y.dtype)
        pt = gather_patches(y, self.stencil, self.boundary)[:, y0:y1, x0:x1]  # [n, h, w, S, C]
        ctr = y.permute(0, 2, 3, 1)[:, y0:y1, x0:x1]  # [n, h, w, C]
        pt = pt - shift
        if self.equivariant:
            return pt.reshape(1, -1, self.patch_dim), ctr.reshape(1, -1, C)
        return pt.reshape(n, H * W, self.patch_dim).transpose(0, 1), ctr.reshape(n, H * W, C).transpose(0, 1)

    def _images_per_chunk(self) -> int:
        per_image = self._positions if self.equivariant else self.image_shape[1] * self.image_shape[2]
        return max(1, (self.chunk_size or DEFAULT_CHUNK) // per_image)

    def _chunks(self, lo: int, hi: int, dtype: torch.dtype, device: torch.device):
        """Yield augmented ``(keys, values)`` chunks of the pool of training images ``lo:hi``."""
        step = self._images_per_chunk()
        cached = self._cached_pool(dtype, device)
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            if cached is not None:
                r = self._positions if self.equivariant else 1
                yield cached[0][:, a * r : b * r], cached[1][:, :, a * r : b * r]
            else:
                p, v = self._patches(self._images[a:b].to(device=device, dtype=dtype))
                yield K.augment_keys(p), K.augment_values(v)

    def _cached_pool(self, dtype, device):
        key = (dtype, str(device))
        if key in self._cache:
            return self._cache[key]
        itemsize = torch.finfo(dtype).bits // 8
        nbytes = self.n_pool * (1 if self.equivariant else self.image_shape[1] * self.image_shape[2]) * (
            self.patch_dim + self.image_shape[0] + 2) * itemsize
        if nbytes > self.cache_bytes:
            return None
        p, v = self._patches(self._images.to(device=device, dtype=dtype))
        self._cache[key] = (K.augment_keys(p), K.augment_values(v))
        return self._cache[key]

    def _pruned_pool(self, lab, device) -> PrunedPool:
        """The de-duplicated, clustered pool of class ``lab`` (None: all), built once per device."""
        key = (lab, str(device))
        if key not in self._pruned:
            lo, hi = self._classes.pool_range(lab, self.n_images)
            # built on the CPU from rows read by index (the pool is never unfolded whole), then moved
            rows = PatchRows(self._images[lo:hi].cpu(), self.stencil, self.boundary, self._valid, self._shift.cpu())
            self._pruned[key] = PrunedPool(rows, self.n_clusters).to(device)
        return self._pruned[key]

    # ---- evaluation ----------------------------------------------------------------------
    def _compute_dtypes(self, q_all: torch.Tensor, s_list: list) -> list:
        """Per sample: the input dtype, or float64 where the float32 GEMM expansion would be inexact."""
        if q_all.dtype != torch.float32:
            return [q_all.dtype] * len(s_list)
        shift = self._shift.to(q_all.device, torch.float64)
        q_norm2 = (q_all.detach().to(torch.float64) - shift).pow(2).sum((-1, -2)).amax((1, 2)).cpu().tolist()
        return [torch.float64 if K.needs_float64(q, self._p_norm2_max, s) else torch.float32 for q, s in zip(q_norm2, s_list)]

    def compute_dtypes(self, x: torch.Tensor, sigma) -> list:
        """The dtype each sample of ``x`` is computed in at noise level ``sigma`` (precision rule above)."""
        C, H, W = self.image_shape
        x, s_list, _ = prepare_call(x, sigma, None, channels=C, size=(H, W), classes=self._classes)
        return self._compute_dtypes(gather_patches(x, self.stencil, self.boundary), s_list)

    def __call__(self, x: torch.Tensor, sigma, label=None) -> torch.Tensor:
        """Posterior-mean estimate ``x0_hat [B, C, H, W]`` (DESIGN.md section 2, patch model)."""
        C, H, W = self.image_shape
        x, s_list, lab_list = prepare_call(x, sigma, label, channels=C, size=(H, W), classes=self._classes)
        B = x.shape[0]
        differentiable = torch.is_grad_enabled() and x.requires_grad
        q_all = gather_patches(x, self.stencil, self.boundary)  # [B, H, W, S, C]
        dts = self._compute_dtypes(q_all, s_list)
        keys = [(lab_list[b], dts[b]) for b in range(B)]
        shift = self._shift.to(x.device, torch.float64)
        outs = [None] * B
        self.last_bound = 0.0
        for (lab, cdt), idx in groups(keys).items():
            Bg = len(idx)
            inv_s2 = torch.tensor([1.0 / s_list[b] ** 2 for b in idx], dtype=torch.float64, device=x.device)
            if self.kernel != "window":  # the window kernel reads the images, not the query's patches
                q = q_all[idx].to(cdt) - shift.to(cdt)  # [Bg, H, W, S, C]
            if self.equivariant:
                q = q.reshape(1, Bg * H * W, self.patch_dim)
                inv_s2 = inv_s2.repeat_interleave(H * W)
            elif self.kernel != "window":
                q = q.reshape(Bg, H * W, self.patch_dim).transpose(0, 1)  # [HW, Bg, D]
            if self.equivariant and self.tol > 0:
                out, bound = self._pruned_pool(lab, x.device).evaluate(q[0], inv_s2, self.tol, differentiable=differentiable)
                self.last_bound = max(self.last_bound, float(bound.max()))
                out = out.unsqueeze(0)
            elif self.kernel == "window":
                lo, hi = self._classes.pool_range(lab, self.n_images)
                out = window_average(x[idx].to(cdt), self._images[lo:hi], inv_s2.to(cdt), self.stencil, self.boundary)
                out = out.permute(0, 2, 3, 1).reshape(Bg, H * W, C).transpose(0, 1)  # [HW, Bg, C] as the GEMM path
            else:
                q_aug = K.augment_queries(q, inv_s2, with_logw=False)
                lo, hi = self._classes.pool_range(lab, self.n_images)
                chunks = self._chunks(lo, hi, cdt, x.device)
                if self.kernel == "sdpa":
                    out = K.sdpa_average(q_aug, chunks)
                else:
                    out = K.softmax_average(q_aug, chunks, differentiable=differentiable)
            if self.equivariant:
                out = out.reshape(Bg, H, W, C)
            else:
                out = out.transpose(0, 1).reshape(Bg, H, W, C)
            out = out.permute(0, 3, 1, 2).to(x.dtype)
            for j, b in enumerate(idx):
                outs[b] = out[j]
        return torch.stack(outs, 0)

    forward = __call__
