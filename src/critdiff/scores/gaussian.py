"""The Gaussian score model: the exact denoiser of ``N(mu, Sigma)`` fitted to data (DESIGN.md section 2).

For ``x = x0 + sigma n`` with ``x0 ~ N(mu, Sigma)`` the posterior mean is
``D(x, sigma) = mu + Sigma (Sigma + sigma^2 I)^{-1} (x - mu)``, evaluated in the eigenbasis
``Sigma = U diag(lambda) U^T`` as ``mu + U diag(lambda / (lambda + sigma^2)) U^T (x - mu)``.

``covariance='full'``: ``mu`` and ``Sigma`` over all ``D = C H W`` pixels (``Sigma`` is ``[D, D]``).
``covariance='stationary'``: a translation-invariant fit on the periodic lattice: ``mu`` is one value
per channel and ``Sigma`` is circulant, i.e. diagonal in Fourier space with ``C x C`` blocks
``P(k) = E[xhat(k) xhat(k)^*] / (H W)``; then ``Dhat(k) = muhat + P (P + sigma^2 I)^{-1} (xhat - muhat)``.
With ``labels`` each class gets its own fit; ``label=None`` (and a ``NULL_LABEL`` entry, per sample) uses the
fit to all the data.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..denoisers import NULL_LABEL, Label, as_labels, as_sigma, check_classes, null_mask
from ..devices import resolve as resolve_device
from ..errors import check_choice, check_images
from ..late_start import fit_moments

Covariance = Literal["full", "stationary"]


class _FullFit:
    def __init__(self, y: torch.Tensor, shrink: float):
        m = fit_moments(y, "full", shrink)  # the one definition of the fitted moments (critdiff.late_start)
        self.mu, self.lam, self.U = m.mu.reshape(-1), m.lam, m.U

    def __call__(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        U, lam, mu = (t.to(x.device, x.dtype) for t in (self.U, self.lam, self.mu))
        r = (x.reshape(B, -1) - mu) @ U  # [B, D] coordinates in the eigenbasis
        gain = lam / (lam + s.reshape(B, 1) ** 2)
        return (mu + (gain * r) @ U.T).reshape(x.shape)


class _StationaryFit:
    def __init__(self, y: torch.Tensor, shrink: float):
        # P(k)_{cd} = E[yhat_c yhat_d^*] / (H W): Hermitian C x C block per k (critdiff.late_start.fit_moments)
        m = fit_moments(y, "stationary", shrink)
        self.mu, self.P = m.mu[:, 0, 0], m.P

    def __call__(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        mu = self.mu.to(x.device, torch.float64).reshape(1, C, 1, 1)
        xh = torch.fft.fft2(x.to(torch.float64) - mu).permute(0, 2, 3, 1).unsqueeze(-1)  # [B, H, W, C, 1]
        P = self.P.to(x.device)
        eye = torch.eye(C, dtype=P.dtype, device=x.device)
        A = P.unsqueeze(0) + (s.to(torch.float64) ** 2).reshape(B, 1, 1, 1, 1) * eye  # [B, H, W, C, C]
        out = P.unsqueeze(0) @ torch.linalg.solve(A, xh.to(P.dtype))
        d = torch.fft.ifft2(out.squeeze(-1).permute(0, 3, 1, 2)).real + mu
        return d.to(x.dtype)


class GaussianScore:
    """Exact denoiser of the Gaussian fitted to ``images [N, C, H, W]`` (optionally per class).

    ``shrink`` adds ``shrink * I`` to each covariance (0 by default: the exact fit). ``device``: where the fit is
    computed and its tensors live (default: the images' device); calls compute on the device of ``x`` either way.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                 covariance: Covariance = "full", shrink: float = 0.0, device=None):
        check_images("images", images)
        check_choice("covariance", covariance, ("full", "stationary"))
        if device is not None:
            images = images.to(resolve_device(device))
        self.covariance = covariance
        self.shape = tuple(images.shape[1:])
        fit = _FullFit if covariance == "full" else _StationaryFit
        self.fits: dict = {None: fit(images, shrink)}
        self.n_classes = 0
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long).to(images.device)
            if labels.shape != (images.shape[0],):
                raise ValueError(f"labels: expected shape [{images.shape[0]}], got {tuple(labels.shape)}")
            self.n_classes = int(labels.max()) + 1
            for k in range(self.n_classes):
                sel = images[labels == k]
                if sel.shape[0] < 2:
                    raise ValueError(f"labels: class {k} has {sel.shape[0]} image(s); a Gaussian fit needs >= 2")
                self.fits[k] = fit(sel, shrink)

    def config(self) -> dict:
        return {"model": "gaussian", "covariance": self.covariance, "shape": list(self.shape), "n_classes": self.n_classes}

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        check_images("x", x)
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"x: expected images of shape [B, {', '.join(map(str, self.shape))}], got {tuple(x.shape)}")
        s = as_sigma(sigma, x)
        lab = as_labels(label, x.shape[0], x.device)
        if lab is None or bool(null_mask(lab).all()):
            return self.fits[None](x, s)
        if self.n_classes == 0:
            raise ValueError("label: this model was built without labels")
        check_classes(lab, self.n_classes, "values")
        out = torch.empty_like(x)
        for k in lab.unique().tolist():
            m = lab == k
            out[m] = self.fits[None if k == NULL_LABEL else k](x[m], s[m])
        return out
