"""Gaussian late start: begin sampling at a lower noise level from the Gaussian that matches ``p_t`` there
(DESIGN.md section 5b; Raya & Ambrogioni 2023, arXiv:2305.19693; docs/samplers.md section "Late start").

Frames. In the denoiser frame the state is ``x = x0 + sigma n``; if the data ``x0`` have mean ``mu`` and
covariance ``Sigma`` the Gaussian with the same first two moments as ``p_sigma`` is

    q_sigma = N(mu, Sigma + sigma^2 I)                                            (LS.1)

and in a VP/VE schedule's own frame ``z = a x0 + s n`` (``sigma = s / a``) it is ``N(a mu, a^2 Sigma + s^2 I)``
(LS.2), i.e. ``z = a x``. For Gaussian data ``q_sigma = p_sigma`` exactly, so starting there and following
the exact probability-flow ODE returns the data distribution: the oracle test.

Covariance models (:class:`Moments`):

- ``full``: ``mu [C, H, W]`` and ``Sigma = U diag(lam) U^T`` over all ``D = C H W`` pixels. Needs at least
  ``D + 1`` samples to be of full rank (fewer samples give a rank-deficient ``Sigma``: the missing directions
  get variance ``sigma^2`` only, too little).
- ``stationary``: translation-invariant moments on the periodic lattice: ``mu`` one value per channel, and
  ``Sigma`` circulant, diagonal in Fourier space with ``C x C`` Hermitian blocks
  ``P(k) = E[yhat(k) yhat(k)^*] / (H W)`` (``yhat = fft2(y - mu)``). Every sample contributes ``H W``
  modes, so a handful of samples suffice; it is exact only for stationary data (translation-equivariant
  models on periodic data). Non-stationary data (digits, centred objects) need ``full``.

The draw (:func:`start_state`) uses the symmetric square root, ``x = mu + (Sigma + sigma^2 I)^{1/2} z`` with
``z ~ N(0, I)`` from the caller's generators (one per sample, as :func:`critdiff.samplers.initial_noise`):
for ``sigma^2 >> |Sigma|`` it tends to the full-range start ``sigma z``, so paired comparisons share ``z``.

The grid: :func:`critdiff.schedules.sigma_grid` with ``sigma_max=sigma_start`` rebuilds a grid of the same
number of steps between the start level and ``sigma_min`` (same NFE); :func:`cut_grid` keeps the given grid's
levels below the start level (fewer steps, NFE saved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch

from .errors import check_choice, check_finite, check_images, check_positive
from .samplers import GeneratorLike, check_sigmas, randn_like

Covariance = Literal["full", "stationary"]
COVARIANCES = ("full", "stationary")
FULL_MAX_DIM = 8192  # a full covariance is a D x D matrix; beyond this use 'stationary'
LateStart = Union[None, str, float]  # None (off), 'auto', or a start logsnr
LATE_START_OFF, LATE_START_AUTO = "off", "auto"


@dataclass(frozen=True)
class Moments:
    """Mean and covariance of the data ``x0`` (float64, on one device).

    ``mu [C, H, W]``; ``covariance`` ``'full'``: ``lam [D]``, ``U [D, D]`` with ``Sigma = U diag(lam) U^T``;
    ``'stationary'``: ``P [H, W, C, C]`` complex Hermitian blocks (module docstring); ``n``: samples used.
    """

    mu: torch.Tensor
    covariance: str
    n: int
    lam: Optional[torch.Tensor] = None
    U: Optional[torch.Tensor] = None
    P: Optional[torch.Tensor] = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.mu.shape)

    def dense_covariance(self) -> torch.Tensor:
        """``Sigma [D, D]`` (float64) in the flattened ``C H W`` order, for either covariance model."""
        if self.covariance == "full":
            return (self.U * self.lam) @ self.U.T
        C, H, W = self.shape
        D = C * H * W
        eye = torch.eye(D, dtype=torch.float64, device=self.mu.device).reshape(D, C, H, W)
        # Sigma e_j for every basis image e_j: the circulant convolution of the stationary model
        return _apply_blocks(self.P, eye).reshape(D, D).T

    def lambda_max(self) -> float:
        """Largest eigenvalue of ``Sigma`` (its top principal variance)."""
        if self.covariance == "full":
            return float(self.lam.max())
        return float(torch.linalg.eigvalsh(self.P).max())

    def tensors(self) -> dict[str, torch.Tensor]:
        """The moments as named CPU tensors (safetensors-able; :meth:`from_tensors` inverts it)."""
        d = {"mu": self.mu, "n": torch.tensor(self.n)}
        if self.covariance == "full":
            d.update(lam=self.lam, U=self.U)
        else:
            d.update(P_real=self.P.real.contiguous(), P_imag=self.P.imag.contiguous())
        return {k: v.detach().cpu().contiguous() for k, v in d.items()}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> "Moments":
        if "lam" in t:
            return cls(mu=t["mu"].double(), covariance="full", n=int(t["n"]), lam=t["lam"].double(), U=t["U"].double())
        return cls(mu=t["mu"].double(), covariance="stationary", n=int(t["n"]),
                   P=torch.complex(t["P_real"].double(), t["P_imag"].double()))


def fit_moments(images: torch.Tensor, covariance: Covariance = "full", shrink: float = 0.0) -> Moments:
    """The sample mean and covariance of ``images [N, C, H, W]`` (``1/(N-1)`` normalised, float64, on the images'
    device); ``shrink`` adds ``shrink * I``. ``'stationary'`` averages over positions too (module docstring)."""
    check_images("images", images)
    check_choice("covariance", covariance, COVARIANCES)
    check_positive("shrink", shrink, allow_zero=True)
    n, C, H, W = images.shape
    if n < 2:
        raise ValueError(f"images: a covariance needs at least 2 samples, got {n}")
    y = images.detach().to(torch.float64)
    if covariance == "full":
        if C * H * W > FULL_MAX_DIM:
            raise ValueError(f"covariance: 'full' needs a {C * H * W}^2 matrix; use 'stationary' for images this large")
        flat = y.reshape(n, -1)
        mu = flat.mean(0)
        cov = (flat - mu).T @ (flat - mu) / (n - 1)
        cov = cov + shrink * torch.eye(cov.shape[0], dtype=torch.float64, device=cov.device)
        lam, U = torch.linalg.eigh(cov)
        return Moments(mu=mu.reshape(C, H, W), covariance="full", n=n, lam=lam.clamp_min(0), U=U)
    mu_c = y.mean(dim=(0, 2, 3))  # [C]
    yh = torch.fft.fft2(y - mu_c.reshape(1, C, 1, 1))
    P = torch.einsum("nchw,ndhw->hwcd", yh, yh.conj()) / ((n - 1) * H * W)
    P = P + shrink * torch.eye(C, dtype=P.dtype, device=P.device)
    return Moments(mu=mu_c.reshape(C, 1, 1).expand(C, H, W).clone(), covariance="stationary", n=n, P=P)


def fit_class_moments(images: torch.Tensor, labels: torch.Tensor) -> dict[int, Moments]:
    """``{c: Moments}`` of a labelled data set for conditional sampling: the class mean ``mu_c`` with the pooled
    within-class ``full`` covariance (the covariance of ``x - mu_{y(x)}``, one :func:`fit_moments` call, ``1/(N-1)``
    normalised), i.e. the Gaussian ``N(mu_c, Sigma_w + sigma^2 I)`` of ``p_sigma(x | c)`` (eq. LS.1 per class,
    docs/samplers.md "Late start", conditional runs). One covariance for all classes: a per-class ``full`` fit
    needs more than ``D`` images of every class."""
    check_images("images", images)
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels: expected a 1-D tensor of {images.shape[0]} class indices")
    y = images.detach().to(torch.float64)
    classes = sorted(int(c) for c in labels.unique())
    means = {c: y[labels == c].mean(0) for c in classes}
    centred = y - torch.stack([means[int(c)] for c in labels])
    within = fit_moments(centred, "full")
    return {c: Moments(mu=means[c], covariance="full", n=int((labels == c).sum()), lam=within.lam, U=within.U)
            for c in classes}


def start_state_labelled(moments: "dict[int, Moments]", sigma: float, labels: torch.Tensor, generators,
                         dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Sample ``j`` drawn from ``q_sigma(. | labels[j])`` (:func:`start_state` with ``moments[labels[j]]``) with its
    own generator ``generators[j]``, so a draw does not depend on the other samples; ``x [B, C, H, W]``."""
    if len(generators) != labels.shape[0]:
        raise ValueError(f"generators: expected one per label ({labels.shape[0]}), got {len(generators)}")
    missing = sorted(set(int(c) for c in labels.unique()) - set(moments))
    if missing:
        raise ValueError(f"labels: no moments for classes {missing}")
    x = torch.empty((labels.shape[0], *next(iter(moments.values())).shape), dtype=dtype, device=device)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero()[:, 0]
        x[idx] = start_state(moments[int(c)], sigma, int(idx.numel()), [generators[int(i)] for i in idx],
                             dtype=dtype, device=device)
    return x


def _apply_blocks(P: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``ifft2(P(k) fft2(z))`` for ``z [B, C, H, W]`` real float64 and blocks ``P [H, W, C, C]``: the circulant
    operator with Fourier blocks ``P`` applied to ``z`` (real when ``P(-k) = conj(P(k))``)."""
    zh = torch.fft.fft2(z).permute(0, 2, 3, 1).unsqueeze(-1)  # [B, H, W, C, 1]
    out = (P.unsqueeze(0) @ zh.to(P.dtype)).squeeze(-1).permute(0, 3, 1, 2)
    return torch.fft.ifft2(out).real


def _sqrt_blocks(P: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(P(k) + sigma^2 I)^{1/2}`` per Fourier block (Hermitian square root via ``eigh``)."""
    w, V = torch.linalg.eigh(P)
    r = torch.sqrt(w.clamp_min(0) + sigma**2).to(V.dtype)
    return (V * r.unsqueeze(-2)) @ V.conj().transpose(-1, -2)


def start_state(moments: Moments, sigma: float, n: int, generator: GeneratorLike = None,
                dtype=torch.float32, device="cpu") -> torch.Tensor:
    """``n`` draws ``x [n, C, H, W]`` of ``q_sigma = N(mu, Sigma + sigma^2 I)`` (eq. LS.1, denoiser frame):
    ``x = mu + (Sigma + sigma^2 I)^{1/2} z``, ``z ~ N(0, I)`` from ``generator`` (one per sample allowed), drawn in
    ``dtype`` as :func:`critdiff.samplers.initial_noise` draws it, so a full-range run of the same generators starts
    from ``sigma_max z`` with the same ``z`` (paired comparisons)."""
    sigma = check_positive("sigma", sigma)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    C, H, W = moments.shape
    # z is drawn in the sample dtype, exactly as samplers.initial_noise draws it (a float64 draw from the same
    # generator is another z), then the Gaussian's square root is applied in float64
    z = randn_like(torch.empty((n, C, H, W), dtype=dtype, device=device), generator).to(torch.float64)
    mu = moments.mu.to(z.device)
    if moments.covariance == "full":
        U, lam = moments.U.to(z.device), moments.lam.to(z.device)
        coef = (z.reshape(n, -1) @ U) * torch.sqrt(lam + sigma**2)
        x = mu.reshape(1, -1) + coef @ U.T
        return x.reshape(n, C, H, W).to(dtype)
    x = mu + _apply_blocks(_sqrt_blocks(moments.P.to(z.device), sigma), z)
    return x.to(dtype)


def start_state_vp(moments: Moments, a: float, s: float, n: int, generator: GeneratorLike = None,
                   dtype=torch.float32, device="cpu") -> torch.Tensor:
    """The same draw in a schedule's own frame ``z = a x0 + s n``: ``z ~ N(a mu, a^2 Sigma + s^2 I)`` (eq. LS.2),
    i.e. ``a`` times :func:`start_state` at ``sigma = s / a``."""
    a, s = check_positive("a", a), check_positive("s", s)
    return a * start_state(moments, s / a, n, generator, dtype=dtype, device=device)


def cut_grid(sigmas, sigma_start: float) -> torch.Tensor:
    """The levels of ``sigmas`` below ``sigma_start`` with ``sigma_start`` prepended: the same grid started later
    (fewer steps; the NFE saved is the number of levels dropped). ``sigma_start`` must lie inside the grid."""
    s = check_sigmas(sigmas)
    sigma_start = check_positive("sigma_start", sigma_start)
    if not float(s[-2]) < sigma_start <= float(s[0]):
        raise ValueError(f"sigma_start: expected a level in ({float(s[-2]):g}, {float(s[0]):g}], got {sigma_start:g}")
    return torch.cat([s.new_tensor([sigma_start]), s[s < sigma_start]])


def parse_late_start(value: "LateStart") -> "Optional[str | float]":
    """``'off'``/None -> None; ``'auto'`` -> ``'auto'``; a number (or its string) -> the start logsnr (float)."""
    if value is None or value == LATE_START_OFF:
        return None
    if value == LATE_START_AUTO:
        return LATE_START_AUTO
    try:
        return check_finite("late_start", value)
    except (TypeError, ValueError):
        raise ValueError(f"late_start: expected 'off', 'auto' or a finite start logsnr, got {value!r}") from None
