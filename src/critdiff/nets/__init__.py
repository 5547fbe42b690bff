"""Neural networks behind the denoiser contract (DESIGN.md section 1).

Each module here wraps one family of networks into ``D(x, sigma, label) -> x0_hat``. Nothing is
imported at package import time: heavy or optional dependencies (``diffusers``) are loaded only by
the function that needs them, e.g. :func:`critdiff.integrations.diffusers.load_diffusers`.
"""

# critdiff's own networks (trained-nets issue), exported lazily so package import stays light
_LAZY = {
    "UNet": "unet", "UNetConfig": "unet",
    "NetDenoiser": "net_denoiser", "load_net": "net_denoiser",
    "TrainConfig": "training", "train_unet": "training",
    "Classifier": "classifier", "ClassifierConfig": "classifier", "load_classifier": "classifier",
    "train_classifier": "classifier",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
