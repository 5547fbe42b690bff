"""The finite-value guard of the experiments (docs/reliability.md, R9): a run whose states, denoiser outputs or
samples hold nan or inf stops, naming the step and the quantity, instead of writing a meaningless result.

Samplers stay pure functions (no checks, no side effects, differentiable): the guard is a step callback
(:class:`FiniteGuard`) that the experiments pass to the samplers they drive (``sample``, ``guide``, ``probe``, the
sample grid of ``train``), plus :meth:`FiniteGuard.final` on what the sampler returns. One ``isfinite`` per step
on the state and the denoiser output: small beside a denoiser evaluation.
"""

from __future__ import annotations

import torch


class NonFiniteError(ValueError):
    """A sample, denoiser output or metric that is nan or inf (a ``ValueError``: one line, exit status 2)."""


def check_finite_tensor(what: str, quantity: str, t: torch.Tensor, where: str = "") -> torch.Tensor:
    """Raise :class:`NonFiniteError` ``WHAT: QUANTITY is not finite WHERE (...)`` unless every value of ``t`` is."""
    if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteError(f"{what}: the {quantity} is not finite{where} ({bad} of {t.numel()} values are nan or "
                             "inf); the model or its weights produce meaningless output, nothing more was written")
    return t


class FiniteGuard:
    """Sampler callback: at every step, the state ``x`` and the denoiser output ``x0_hat`` must be finite.

    ``what`` names the run in the message (``sample``, ``guide``, ...). Use ``final(x)`` on the sampler's result.
    """

    def __init__(self, what: str):
        self.what = what

    def __call__(self, step) -> None:
        where = f" at step {step.i} (sigma {float(step.sigma):.4g})"
        check_finite_tensor(self.what, "sampler state x", step.x, where)
        check_finite_tensor(self.what, "denoiser output x0_hat", step.x0_hat, where)

    def final(self, x: torch.Tensor) -> torch.Tensor:
        return check_finite_tensor(self.what, "final sample", x, " after the last step")
