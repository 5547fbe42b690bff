"""Neural networks behind the denoiser contract (DESIGN.md section 1).

Each module here wraps one family of networks into ``D(x, sigma, label) -> x0_hat``. Nothing is
imported at package import time: heavy or optional dependencies (``diffusers``) are loaded only by
the function that needs them, e.g. :func:`critdiff.nets.diffusers_adapter.load_diffusers`.
"""
