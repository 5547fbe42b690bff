"""critdiff: find, measure and use the critical regime of diffusion models.

Conventions (see DESIGN.md section 1 and docs/theory.md):

- images are tensors ``[B, C, H, W]``; a *field* is one channel;
- forward process ``x_t = a(t) x0 + sigma_t(t) eps``; ``snr = a^2 / sigma_t^2``,
  ``logsnr = log snr``;
- a *denoiser* is any callable ``D(x, sigma, label=None) -> x0_hat`` in the
  variance-exploding frame ``x = x0 + sigma n`` with ``sigma = sigma_t / a``.
"""

__version__ = "0.1.0"
