"""Spectral probe: the Fourier diagonal of the denoiser and score Jacobians of ANY denoiser (DESIGN.md section 4).

At states ``x [B, C, H, W]`` and noise level ``sigma`` (denoiser frame) let ``J_D = dD/dx`` and the score
Jacobian ``J_s = (J_D - I) / sigma^2``. With the unitary DFT ``F`` the *Fourier diagonal* is the
``C x C`` block per wavevector ``k``::

    Jhat_{dc}(k) = (F J_D F^-1)_{(d,k),(c,k)} = (1/HW) sum_{x,y} e^{-i k.x} J_{(d,x),(c,y)} e^{+i k.y}

and the *stiffness* of mode ``k`` in channel ``c`` is ``kappa_c(k) = -Re (J_s)_{cc}(k) = (1 - Re Jhat_cc(k)) / sigma^2``
(DESIGN.md section 3: for a circulant ``J_D`` these are the eigenvalues; a mode softens as ``kappa`` falls).

Methods (none assumes the denoiser is analytic, circulant or cheap except where stated):

- ``'random'``: ``M`` Jacobian-vector products with white probes ``z`` (independent per pixel and channel,
  ``E[z z^T] = I``), then ``E[conj(zhat_c(k)) (J z)hat_d(k)] = HW Jhat_{dc}(k)`` exactly, so
  ``conj(zhat_c) (Jz)hat_d / (HW)`` is an unbiased estimate per probe. Probes: ``'rademacher'``, ``'gaussian'``,
  or ``'phase'`` (``|zhat(k)|^2 = HW`` exactly with uniform random phases, Hermitian so ``z`` is real: still
  white and unbiased, and the self-term has no variance, so a single-channel circulant ``J`` is recovered
  exactly from one probe; with ``C > 1`` channel mixing leaves cross terms). Standard errors from the spread over the ``B M`` (state, probe) estimates.
- ``'impulse'``: one JVP per channel with a delta at pixel ``site``; exact when ``J_D`` is circulant
  (periodic equivariant patch model at a homogeneous state, stationary Gaussian score), wrong otherwise.
- ``'dense'``: the full Jacobian, the test oracle: columns by JVPs (``backend`` ``'auto'``/``'forward'``;
  ``torch.func.jvp`` vmapped over ``chunk`` basis directions at a time, all ``C H W`` at once by default,
  as ``jacfwd``) or rows by VJPs (``backend='reverse'``, ``torch.func.vjp``, same chunking); memory
  ``(C H W)^2`` per state plus the model's intermediates times ``chunk``; ``'fd'`` is treated as ``'auto'``
  (the oracle is never a finite difference). Falls back to ``torch.autograd.functional.jacobian``
  (unchunked) where ``torch.func`` cannot trace the model.

JVP backends: ``'forward'`` (``torch.func.jvp``), ``'reverse'`` (double backward: ``J^T u`` with
``create_graph``, then its gradient in ``u``), ``'fd'`` (central finite differences, 2 calls, needs no
autograd at all) and ``'auto'`` (forward, falling back to reverse). The denoiser is wrapped in
:class:`~critdiff.denoisers.CountingDenoiser`: ``denoiser_calls`` / ``denoiser_evaluations`` count what it
actually ran (a forward-mode JVP is one call costing about 2-3 evaluations; reverse mode about 3-4).

Results are float64 numpy arrays in a frozen :class:`SpectralProbe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from ..denoisers import CountingDenoiser, Denoiser, Label, as_labels, as_sigma
from ..errors import check_choice, check_images, check_int
from ..io import to_jsonable
from ._lattice import k_grid, shell_mean, shells

Method = Literal["random", "impulse", "dense"]
Probe = Literal["rademacher", "gaussian", "phase"]
Backend = Literal["auto", "forward", "reverse", "fd"]
METHODS = ("random", "impulse", "dense")
PROBES = ("rademacher", "gaussian", "phase")
BACKENDS = ("auto", "forward", "reverse", "fd")


@dataclass(frozen=True)
class SpectralProbe:
    """Fourier diagonal of the Jacobians at ``B`` states (all float64 numpy; DFT order of ``fft2``).

    - ``sigma [B]``; ``jd [C, H, W]`` complex: ensemble mean of the denoiser-Jacobian diagonal ``Jhat_cc(k)``;
      ``jd_se [C, H, W]``: standard error of its real part; ``jd_blocks [H, W, C, C]`` complex, entry ``[d, c]``;
    - ``kappa [C, H, W]`` = mean over states of ``(1 - Re Jhat_cc) / sigma_b^2``, ``kappa_se``; ``kappa_mode_se
      [H, W]``: standard error of the channel mean :attr:`kappa_mode`;
      ``kappa_state [B, C, H, W]`` per state (mean over probes: what the bootstrap resamples);
    - ``kappa_eig [H, W, C]``: eigenvalues of ``-(J_s + J_s^H)/2`` per ``k`` block, ascending (softest first);
    - ``k_radial [n]``, ``kappa_radial [n]``, ``kappa_radial_se [n]``: channel-mean stiffness averaged over
      shells of ``|k|`` (standard errors from the spread of the per-(state, probe) shell averages);
    - ``denoiser_calls``, ``denoiser_evaluations`` (samples), ``n_jvp`` (Jacobian-vector products).
    """

    method: str
    probe: Optional[str]
    backend: str
    n_probes: int
    sigma: np.ndarray
    jd: np.ndarray
    jd_se: np.ndarray
    jd_blocks: np.ndarray
    kappa: np.ndarray
    kappa_se: np.ndarray
    kappa_mode_se: np.ndarray
    kappa_state: np.ndarray
    kappa_eig: np.ndarray
    k_radial: np.ndarray
    kappa_radial: np.ndarray
    kappa_radial_se: np.ndarray
    denoiser_calls: int
    denoiser_evaluations: int
    n_jvp: int

    @property
    def kappa_mode(self) -> np.ndarray:
        """Channel-mean stiffness ``[H, W]`` (the map the Ornstein-Zernike fit reads)."""
        return self.kappa.mean(0)

    @property
    def k_star(self) -> tuple[float, float]:
        """``(ky, kx)`` of the softest channel-mean mode (radians per pixel)."""
        H, W = self.kappa.shape[-2:]
        a, b = np.unravel_index(int(np.argmin(self.kappa_mode)), (H, W))
        ky, kx = k_grid(H, W)
        return float(ky[a, b]), float(kx[a, b])

    @property
    def kappa_min(self) -> float:
        return float(self.kappa_mode.min())

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__}
                        | {"k_star": list(self.k_star), "kappa_min": self.kappa_min})


# --- JVP backends -------------------------------------------------------------------------------
def _jvp_forward(f, x, v):
    return torch.func.jvp(f, (x,), (v,))[1]


def _jvp_reverse(f, x, v):
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        y = f(xx)
        u = torch.zeros_like(y, requires_grad=True)
        (g,) = torch.autograd.grad(y, xx, u, create_graph=True)
        (jv,) = torch.autograd.grad(g, u, v, allow_unused=True)
    return torch.zeros_like(y) if jv is None else jv.detach()


def _jvp_fd(f, x, v, rel: float = 1e-4):
    scale = x.detach().abs().mean().clamp_min(1.0) if x.dtype == torch.float64 else x.detach().abs().mean().clamp_min(1.0)
    h = float(scale) * (rel if x.dtype == torch.float64 else 3e-3) / max(float(v.abs().max()), 1e-30)
    with torch.no_grad():
        return (f(x + h * v) - f(x - h * v)) / (2 * h)


def jvp(f, x: torch.Tensor, v: torch.Tensor, backend: Backend = "auto") -> tuple[torch.Tensor, str]:
    """``(J_f(x) v, backend used)`` for ``f: [N, ...] -> [N, ...]``; ``'auto'`` = forward, else reverse."""
    check_choice("backend", backend, BACKENDS)
    if backend == "forward":
        return _jvp_forward(f, x, v).detach(), "forward"
    if backend == "reverse":
        return _jvp_reverse(f, x, v), "reverse"
    if backend == "fd":
        return _jvp_fd(f, x, v), "fd"
    try:
        return _jvp_forward(f, x, v).detach(), "forward"
    except (RuntimeError, NotImplementedError, TypeError):
        return _jvp_reverse(f, x, v), "reverse"


# --- probe vectors ------------------------------------------------------------------------------
def probe_vectors(n: int, shape, kind: Probe, generator: torch.Generator) -> torch.Tensor:
    """``n`` white probe fields ``[n, C, H, W]`` float64 (unit variance per pixel; see module docstring)."""
    check_choice("probe", kind, PROBES)
    if kind == "rademacher":
        return torch.randint(0, 2, (n, *shape), generator=generator).to(torch.float64) * 2 - 1
    g = torch.randn((n, *shape), generator=generator, dtype=torch.float64)
    if kind == "gaussian":
        return g
    H, W = shape[-2:]
    gh = torch.fft.fft2(g)
    return torch.fft.ifft2(gh / gh.abs() * math.sqrt(H * W)).real


# --- estimators ---------------------------------------------------------------------------------
def _apply(counting, x, sigma, label, v, backend, chunk):
    """``J_D v`` row by row for a batch of (state, direction) pairs, in chunks."""
    outs, used = [], None
    n = x.shape[0]
    step = n if chunk is None else chunk
    for a in range(0, n, step):
        sl = slice(a, a + step)
        lab = None if label is None else label[sl]
        s = sigma[sl]
        out, used = jvp(lambda xx: counting(xx, s, lab), x[sl], v[sl], backend)
        outs.append(out.to(torch.float64))
    return torch.cat(outs), used


def _finish(method, probe, backend, n_probes, sigma, est, counting, n_jvp, per_state_only=False):
    """Assemble a :class:`SpectralProbe` from per-(state, probe) block estimates ``est [B, M, C(d), C(c), H, W]``."""
    B, M, C, _, H, W = est.shape
    s2 = (sigma**2).reshape(B, 1, 1, 1)
    diag = np.diagonal(est, axis1=2, axis2=3)  # [B, M, H, W, C]
    diag = np.moveaxis(diag, -1, 2)  # [B, M, C, H, W]
    kap_bm = (1.0 - diag.real) / s2[:, None]  # [B, M, C, H, W]
    n = B * M
    flat_jd = diag.reshape(n, C, H, W)
    flat_k = kap_bm.reshape(n, C, H, W)
    se = (lambda a: a.std(0, ddof=1) / math.sqrt(n)) if n > 1 else (lambda a: np.zeros(a.shape[1:]))
    blocks_b = est.mean(1)  # [B, C, C, H, W]
    eye = np.eye(C).reshape(1, C, C, 1, 1)
    js = (blocks_b - eye) / (sigma**2).reshape(B, 1, 1, 1, 1)
    js = np.moveaxis(js.mean(0), (0, 1), (2, 3))  # [H, W, C, C]
    herm = -(js + np.conj(np.swapaxes(js, -1, -2))) / 2
    index, k_rad, _ = shells(H, W)
    rad = shell_mean(flat_k.mean(1), index)  # [n, nk]
    return SpectralProbe(
        method=method, probe=probe, backend=backend, n_probes=M, sigma=sigma,
        jd=flat_jd.mean(0), jd_se=se(flat_jd.real), jd_blocks=np.moveaxis(est.mean((0, 1)), (0, 1), (2, 3)),
        kappa=flat_k.mean(0), kappa_se=se(flat_k), kappa_mode_se=se(flat_k.mean(1)), kappa_state=kap_bm.mean(1),
        kappa_eig=np.linalg.eigvalsh(herm), k_radial=k_rad, kappa_radial=rad.mean(0), kappa_radial_se=se(rad),
        denoiser_calls=counting.calls, denoiser_evaluations=counting.evaluations, n_jvp=n_jvp,
    )


def window_lags(window: "int | np.ndarray", H: int, W: int) -> np.ndarray:
    """Boolean ``[H, W]`` mask of the displacements ``output - input`` (``fft2`` order) kept by ``window``: a radius
    ``R`` (``|dy|, |dx| <= R`` with periodic wrap) or a boolean mask of that shape."""
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool):
        R = check_int("window", int(window), 0)
        dy = np.minimum(np.arange(H), H - np.arange(H))
        dx = np.minimum(np.arange(W), W - np.arange(W))
        return (dy[:, None] <= R) & (dx[None, :] <= R)
    m = np.asarray(window)
    if m.dtype != bool or m.shape != (H, W):
        raise ValueError(f"window: expected a radius (int >= 0) or a boolean mask of shape ({H}, {W}), "
                         f"got {type(window).__name__} {getattr(m, 'shape', '')}")
    if not m[0, 0]:
        raise ValueError("window: the mask must keep displacement (0, 0) (the Jacobian's diagonal)")
    return m


def spectral_probe(denoiser: Denoiser, x: torch.Tensor, sigma, *, label: Label = None, method: Method = "random",
                   n_probes: int = 8, probe: Probe = "phase", backend: Backend = "auto", seed: int = 0,
                   site: tuple[int, int] = (0, 0), chunk: Optional[int] = None,
                   window: "int | np.ndarray | None" = None) -> SpectralProbe:
    """Fourier diagonal of ``J_D`` and stiffness ``kappa(k)`` at states ``x [B, C, H, W]`` (module docstring).

    ``window`` (``'random'`` only): the receptive field, as a radius ``R`` (``|output - input| <= R`` pixels on
    each axis, periodic) or a boolean ``[H, W]`` mask over displacements ``output - input`` (``fft2`` order).
    Each probe's estimate is the Fourier transform of the cross-correlation of ``z`` and ``J z`` over ALL
    displacements; those outside the receptive field have expectation 0 and only add noise. Keeping the
    window's lags (:func:`window_lags`) is unbiased whenever ``J_D`` vanishes outside it (a patch model with
    stencil radius ``R``), and cuts the variance by about ``HW / |window|``; for a network the window is a
    bias-variance choice (its Jacobian decays with distance but is not zero).

    ``sigma``: float or ``[B]``; ``n_probes``: ``M`` probes per state (``'random'`` only); ``seed`` seeds a
    private generator (the sampler's noise is never consumed); ``chunk``: most (state, direction) pairs
    per denoiser call (``'dense'``: basis directions per vmapped JVP / VJP call; ``1`` is a plain loop).
    Gradients of ``x`` are not needed; ``x`` is detached.
    """
    check_images("x", x)
    check_choice("method", method, METHODS)
    check_choice("backend", backend, BACKENDS)
    n_probes = check_int("n_probes", n_probes)
    if window is not None and method != "random":
        raise ValueError(f"window: only the 'random' method uses a window, got method {method!r}")
    if chunk is not None:
        chunk = check_int("chunk", chunk)
    x = x.detach()
    B, C, H, W = x.shape
    s = as_sigma(sigma, x).detach()
    sig = s.to("cpu", torch.float64).numpy()
    lab = as_labels(label, B, x.device)
    counting = CountingDenoiser(denoiser)
    if method == "dense":
        est, used = _dense_blocks(counting, x, s, lab, backend, chunk)  # [B, 1, C, C, H, W]
        return _finish("dense", None, used, 1, sig, est, counting, n_jvp=B * C * H * W)
    if method == "impulse":
        a, b = int(site[0]) % H, int(site[1]) % W
        v = torch.zeros(B * C, C, H, W, dtype=x.dtype, device=x.device)
        for c in range(C):
            v[c::C, c, a, b] = 1.0
        out, used = _apply(counting, x.repeat_interleave(C, 0), s.repeat_interleave(C, 0),
                           None if lab is None else lab.repeat_interleave(C, 0), v, backend, chunk)
        col = torch.fft.fft2(out.cpu().reshape(B, C, C, H, W))  # [B, c (input), d (output), H, W]
        ky, kx = (torch.as_tensor(t) for t in k_grid(H, W))
        col = col * torch.exp(1j * (ky * a + kx * b))  # undo the shift of the impulse site
        est = col.transpose(1, 2).unsqueeze(1).numpy()  # [B, 1, d, c, H, W]
        return _finish("impulse", None, used, 1, sig, est, counting, n_jvp=B * C)
    gen = torch.Generator().manual_seed(int(seed))
    z = probe_vectors(B * n_probes, (C, H, W), probe, gen)
    out, used = _apply(counting, x.repeat_interleave(n_probes, 0), s.repeat_interleave(n_probes, 0),
                       None if lab is None else lab.repeat_interleave(n_probes, 0),
                       z.to(device=x.device, dtype=x.dtype), backend, chunk)
    zh = torch.fft.fft2(z).reshape(B, n_probes, C, H, W)
    jh = torch.fft.fft2(out.cpu()).reshape(B, n_probes, C, H, W)
    est = torch.einsum("bmchw,bmdhw->bmdchw", zh.conj(), jh) / (H * W)
    if window is not None:
        mask = torch.as_tensor(window_lags(window, H, W))
        est = torch.fft.fft2(torch.fft.ifft2(est) * mask)
    return _finish("random", probe, used, n_probes, sig, est.numpy(), counting, n_jvp=B * n_probes)


def _jacobian(f, x0: torch.Tensor, backend: str, chunk: Optional[int]) -> tuple[torch.Tensor, str]:
    """Full Jacobian ``[*out, *in]`` of ``f`` at ``x0`` (float64, CPU) and the route used (module docstring)."""
    n = x0.numel()
    step = n if chunk is None else chunk
    rows = backend == "reverse"
    if rows:
        pull = torch.func.vjp(f, x0)[1]
        one = lambda u: pull(u)[0]  # noqa: E731
    else:
        one = lambda v: torch.func.jvp(f, (x0,), (v,))[1]  # noqa: E731
    many = torch.func.vmap(one)
    parts = []
    for a in range(0, n, step):
        m = min(step, n - a)
        e = torch.zeros(m, n, dtype=x0.dtype, device=x0.device)
        e[torch.arange(m), a + torch.arange(m)] = 1.0
        e = e.reshape(m, *x0.shape)
        out = one(e[0]).unsqueeze(0) if m == 1 else many(e)
        parts.append(out.detach().to("cpu", torch.float64).reshape(m, n))
    J = torch.cat(parts)  # [direction, out] for both routes: row i of J, or column j of J
    J = J if rows else J.T
    return J.reshape(*x0.shape, *x0.shape), ("jacrev" if rows else "jacfwd")


def _dense_blocks(counting, x, s, lab, backend: str = "auto", chunk: Optional[int] = None) -> tuple[np.ndarray, str]:
    """Oracle: full Jacobian per state, then ``Jhat(k, k) = (F J F^-1)`` diagonal blocks ``[B, 1, C, C, H, W]``."""
    B, C, H, W = x.shape
    res, used = [], "jacfwd"
    for b in range(B):
        lb = None if lab is None else lab[b:b + 1]
        f = lambda xx: counting(xx.unsqueeze(0), s[b:b + 1], lb)[0]  # noqa: E731
        try:
            J, used = _jacobian(f, x[b], backend, chunk)
        except (RuntimeError, NotImplementedError, TypeError):
            J, used = torch.autograd.functional.jacobian(f, x[b]), "autograd"
        J = J.detach().to("cpu", torch.float64)  # [d, H, W, c, H, W]
        G = torch.fft.ifft2(torch.fft.fft2(J, dim=(1, 2)), dim=(4, 5))  # (1/HW) sum e^{-ikx} J e^{+ik'y} * HW / HW
        G = G.reshape(C, H * W, C, H * W)
        idx = torch.arange(H * W)
        res.append(G[:, idx, :, idx].permute(1, 2, 0).reshape(C, C, H, W))  # [d, c, H, W]
    return torch.stack(res).unsqueeze(1).numpy(), used
