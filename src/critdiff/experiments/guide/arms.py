"""The arms of the guidance experiment and how one arm samples one batch (DESIGN.md section 5).

Common random numbers: sample ``j`` has intended class ``j mod K``, initial noise from
``seed_generators(seed, .)[j]`` and sampler noise from ``seed_generators(derive(seed, 'sampler-noise'), .)[j]``
(:mod:`critdiff.seeding`), fresh for every arm, so arms differ only by their guidance schedule. The random arm's
centres use ``derive(seed, 'random-centres')``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np
import torch

from ... import guidance_schedules as GS
from ... import samplers as SM
from ... import schedules as S
from ...denoisers import n_classes_of, sample_shape_of
from ...guidance import Guided
from ...guidance_ramp import interval_at, wang_linear
from ...seeding import derive
from ...times import TimeEstimate
from ..finite import FiniteGuard
from ..models import decode_samples, load_model
from .config import GuideConfig
from .metrics import check_classifier
from ..start import initial_state, run_grid

@dataclass
class Arm:
    """One arm: ``make(index [B]) -> (guidance schedule, callbacks)``; ``centre`` for fixed pulses (logsnr)."""

    name: str
    describe: str
    make: Callable[[torch.Tensor], tuple]
    centre: Optional[float] = None
    meta: dict = field(default_factory=dict)


def grid_range(sigmas: torch.Tensor) -> tuple[float, float]:
    lam = GS.grid_logsnr(sigmas)
    return float(lam.min()), float(lam.max())


def sweep_centres(cfg: GuideConfig, sigmas) -> list[float]:
    lo, hi = grid_range(sigmas)
    a, b = lo + 0.5 * cfg.width, hi - 0.5 * cfg.width
    if b <= a:
        raise ValueError(f"width: a pulse of width {cfg.width} does not fit in the grid's logsnr range [{lo:.3g}, {hi:.3g}]")
    return np.linspace(a, b, cfg.sweep).tolist() if cfg.sweep > 1 else [0.5 * (a + b)]


def adaptive_lead(cfg: GuideConfig, sigmas, tc: TimeEstimate) -> tuple[float, float]:
    """``(target firing logsnr, lead)``: the median sample fires one grid step before the fixed pulse
    at ``tc`` would start, and its pulse is then centred on ``tc``."""
    lam = GS.grid_logsnr(sigmas).numpy()
    tc = tc.logsnr
    start = tc - 0.5 * cfg.width
    inside = np.flatnonzero(lam >= start - GS.EDGE_TOL)
    j = int(inside[0]) if inside.size else len(lam) - 1
    target = float(lam[j - 1]) if j > 0 else float(lam[0])
    return target, tc - target


def window_of(cfg: GuideConfig, tc: TimeEstimate) -> Optional[tuple[float, float]]:
    """The window arm's ``(lo, hi)`` in logsnr: ``cfg.window`` if given, else the critical time's estimated window
    (``tc.extras['window']``, e.g. the sensitivity profile's half-maximum range), else None."""
    if cfg.window is not None:
        return (float(cfg.window[0]), float(cfg.window[1]))
    w = tc.extras.get("window")
    return None if w is None else (float(w[0]), float(w[1]))


def build_arms(cfg: GuideConfig, sigmas, tc: TimeEstimate, threshold: Optional[float],
               window: Optional[tuple[float, float]] = None) -> list[Arm]:
    """The arms named in ``cfg.arms``, in that order (``sweep`` expands to one arm per centre); ``tc``: the
    critical time the ``tc``, ``interval-ours`` and ``adaptive`` arms are placed at; ``window`` the ``(lo, hi)``
    of the window arm (:func:`window_of`)."""
    h, W, b = float(cfg.height), float(cfg.width), float(cfg.baseline)
    lo, hi = grid_range(sigmas)
    pulse = lambda c: GS.Pulse(c, W, h, b, cfg.profile)  # noqa: E731
    arms: list[Arm] = []
    for name in cfg.arms:
        if name == "none":
            arms.append(Arm("none", f"w = {b:g}", lambda idx: (GS.Constant(b), [])))
        elif name == "cond":
            arms.append(Arm("cond", "w = 1", lambda idx: (GS.Constant(1.0), [])))
        elif name == "constant":
            arms.append(Arm("constant", f"w = {h:g}", lambda idx: (GS.Constant(h), [])))
        elif name == "interval":
            iv = GS.Interval(*cfg.interval, h, b) if cfg.interval is not None else GS.edm_interval(h, b)
            arms.append(Arm("interval", f"w = {h:g} on logsnr [{iv.lo:.2f}, {iv.hi:.2f}]",
                            lambda idx, iv=iv: (iv, []), meta=iv.to_dict()))
        elif name == "interval-ours":
            iv = interval_at(tc, h, b)
            arms.append(Arm(name, f"w = {h:g} on logsnr [{iv.lo:.2f}, {iv.hi:.2f}] (Kynkaanniemi width at t_c)",
                            lambda idx, iv=iv: (iv, []), meta=iv.to_dict()))
        elif name == "linear":
            ramp = wang_linear(h, b, (lo, hi), clock="t", schedule=cfg.schedule)
            arms.append(Arm(name, f"w linear in 1 - t from {b:g} to {ramp.peak:g} (mean {h:g})",
                            lambda idx, r=ramp: (r, []), meta=ramp.to_dict()))
        elif name == "tc":
            at_tc = GS.Pulse.at(tc, width=W, height=h, baseline=b, profile=cfg.profile)
            arms.append(Arm("tc", f"{cfg.profile} pulse at t_c (logsnr {tc.logsnr:.2f})", lambda idx, p=at_tc: (p, []),
                            centre=tc.logsnr))
        elif name == "random":
            centres = GS.random_centres(cfg.n, lo + 0.5 * W, hi - 0.5 * W, seed=derive(cfg.seed, "random-centres"))
            arms.append(Arm("random", "same pulse, random centre per sample",
                            lambda idx, c=centres: (pulse(c[idx]), []), meta={"centres": centres.tolist()}))
        elif name == "adaptive":
            target, lead = adaptive_lead(cfg, sigmas, tc)

            def make(idx, lead=lead):
                ad = GS.AdaptivePulse(pulse(0.0), threshold, cfg.indicator, lead=lead)
                return ad, [ad.observe]  # the pulse is the guidance weight, ad.observe the callback

            arms.append(Arm("adaptive", f"same pulse fired by {cfg.indicator} >= {threshold:.4g}", make,
                            meta={"threshold": threshold, "lead": lead, "target_fire_logsnr": target}))
        elif name == "window":
            if window is None:
                raise ValueError(f"window: the window arm needs a window: --tc-from {cfg.tc_from} estimates none; "
                                 "pass --window LO HI or use --tc-from sensitivity")
            iv = GS.Interval(window[0], window[1], h, b)
            arms.append(Arm(name, f"w = {h:g} on the estimated window logsnr [{iv.lo:.2f}, {iv.hi:.2f}]",
                            lambda idx, iv=iv: (iv, []), meta=iv.to_dict()))
        elif name == "sweep":
            for c in sweep_centres(cfg, sigmas):
                arms.append(Arm(f"sweep@{c:+.2f}", f"pulse at logsnr {c:.2f}", lambda idx, c=c: (pulse(c), []), centre=c))
    return arms


# --- running ---------------------------------------------------------------------------------
@dataclass
class Setup:
    cfg: GuideConfig
    model: Any
    classifier: Any
    images: Optional[torch.Tensor]  # None: a diffusers model run without --data
    labels: Optional[torch.Tensor]
    n_classes: int
    sigmas: torch.Tensor
    image_shape: tuple
    moments: Any = None  # the late start's Moments (critdiff.late_start), or None: the full range from noise
    start: Any = None  # its StartPlan (experiments.start), or None


def with_late_start(setup: Setup, tc: TimeEstimate) -> Setup:
    """``setup`` with the late start of ``cfg.late_start`` (unchanged when off): the grid rebuilt from the start
    level with the same steps and spacing (:func:`.start.run_grid`) and the Gaussian's moments; ``auto`` starts
    at ``tc.logsnr - AUTO_MARGIN``. The moments are the unconditional data's, for every arm."""
    from ..models import LoadedModel
    from ..start import plan_start

    cfg = setup.cfg
    loaded = LoadedModel(setup.model, setup.images, setup.labels, tuple(setup.image_shape))
    got = plan_start(cfg, loaded, tc=lambda: tc)
    if got is None:
        return setup
    sigmas = run_grid(cfg, setup.model, setup.image_shape, got[0].sigma)
    return replace(setup, sigmas=sigmas, moments=got[1], start=got[0])


def intended_labels(n: int, n_classes: int, offset: int = 0) -> torch.Tensor:
    return (torch.arange(offset, offset + n) % n_classes).long()


def run_arm(setup: Setup, guidance, callbacks, index: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``index`` under the guidance schedule ``guidance``; returns ``(x [B,C,H,W], nfe [B])`` (a latent
    model's samples decoded to images). Noise is common to arms."""
    cfg = setup.cfg
    n_all = int(index.max()) + 1
    gens0, gens1 = SM.seed_generators(cfg.seed, n_all), SM.seed_generators(derive(cfg.seed, "sampler-noise"), n_all)
    pick = index.tolist()
    x = initial_state(cfg, setup.image_shape, setup.sigmas, [gens0[j] for j in pick], setup.moments)
    g = Guided(setup.model, guidance)
    guard = FiniteGuard("guide")
    with torch.no_grad():
        out = SM.get(cfg.sampler)(g, x, setup.sigmas, label=labels, generator=[gens1[j] for j in pick],
                                  callback=[guard, *callbacks])
    return guard.final(decode_samples(setup.model, out)).cpu(), g.nfe.clone()


def calibrate_threshold(setup: Setup, tc: TimeEstimate) -> dict:
    """Threshold of the adaptive pulse: the median, over ``calib_n`` pilot samples (indices after the
    experiment's, run with ``w = baseline``), of the indicator at the target firing step."""
    cfg = setup.cfg
    target, lead = adaptive_lead(cfg, setup.sigmas, tc)
    index = torch.arange(cfg.n, cfg.n + cfg.calib_n)
    labels = intended_labels(cfg.calib_n, setup.n_classes, cfg.n)
    probe = GS.AdaptivePulse(GS.Pulse(0.0, cfg.width, cfg.height, cfg.baseline, cfg.profile), math.inf, cfg.indicator)
    run_arm(setup, GS.Constant(float(cfg.baseline)), [probe.observe], index, labels)
    lam = np.array(probe.logsnrs)
    k = int(np.argmin(np.abs(lam - target)))
    finite = [j for j, h in enumerate(probe.history) if bool(torch.isfinite(h).any())]
    if not finite:
        raise ValueError(f"threshold: the indicator {cfg.indicator!r} was never finite on the pilot samples")
    k = min(finite, key=lambda j: abs(j - k))  # the first steps have no rate yet: nearest step with values
    values = probe.history[k].numpy()
    thr = float(np.nanmedian(values))
    return {"type": "calibration", "threshold": thr, "target_fire_logsnr": target, "step": k, "lead": lead,
            "indicator": cfg.indicator, "n": cfg.calib_n,
            "median_indicator": [float(np.nanmedian(h.numpy())) if not bool(torch.isnan(h).all()) else None
                                 for h in probe.history], "logsnr": lam.tolist()}


def model_classes(model) -> int:
    """The conditional classes of a model that has no ``--data``: a diffusers text UNet's prompts, a class table's
    rows but the null row (its last: ``UNet2DModel`` ``num_class_embeds - 1``, DiT ``num_embeds_ada_norm``)."""
    conditioning = getattr(model, "conditioning", None)
    if conditioning is not None:
        return int(conditioning.prompts)
    k, null = n_classes_of(model), getattr(model, "null_class", None)
    if k == 0:
        raise ValueError("data: guidance needs a class- or text-conditional model (this one has no labels); "
                         "give --data SPEC of a labelled data set")
    if null != k - 1:
        raise ValueError(f"data: the null class {null} is not the class table's last row ({k - 1}); give --data SPEC "
                         "for the labels to guide")
    return int(k) - 1


def prepare(cfg: GuideConfig, classifier=None, model=None) -> Setup:
    """Load data, build the model and the sigma grid. A ``diffusers:DIR`` model runs without ``--data``: its labels
    are its own (:func:`model_classes`) and the metrics that need the data or a classifier are left out."""
    cfg.validate()
    need_data = cfg.data is not None or cfg.kind != "diffusers"
    images = labels = None
    if model is None:
        loaded = load_model(cfg, need_data=need_data, data_seed=0)
        model, images, labels = loaded.model, loaded.images, loaded.labels
    elif need_data:
        from ...data import load as load_data

        images, labels = load_data(cfg.data)
        images = images.to(cfg.torch_dtype)
    if labels is None and images is not None:
        raise ValueError(f"data: {cfg.data!r} has no class labels; guidance needs a labelled data set")
    if classifier is not None:
        if images is None:
            raise ValueError("classifier: the metrics compare the samples with the data's images; give --data SPEC")
        check_classifier(classifier)
    n_classes = model_classes(model) if labels is None else int(labels.max()) + 1
    image_shape = sample_shape_of(model) or tuple(images.shape[1:])  # latents for a latent model
    sigmas = run_grid(cfg, model, image_shape)
    return Setup(cfg, model, classifier, images, labels, n_classes, sigmas, image_shape)


