"""Criticality of a trained network: the probes of DESIGN.md section 4 on ``D_net``, beside the patch theory.

``run_net_criticality(cfg, ctx) -> NetCriticalityResult`` loads a checkpoint (``net:DIR``, via
:func:`.models.load_model`) and its data, runs an ensemble of ``batch`` unconditional (``label=None``) Heun
trajectories ``x [B, C, H, W]`` on a logsnr-uniform grid of the network's training schedule, and records along
them

- the stiffness ``sigma^2 kappa(|k|) = 1 - Re Jhat_D(k)`` (spectral probe, random phase probes; shell means) and
  its low-|k| softening (:func:`critdiff.probes.softening.low_k_softening`),
- the second-moment correlation length ``xi_zero`` (about k = 0) of the states and the Ornstein-Zernike ``xi`` of the stiffness,
- the susceptibility ``chi(t)`` (white kicks, common random numbers),
- the linear response of the symmetric branch (:mod:`critdiff.probes.linear_response`),

and estimates ``t_c`` from each signal with bootstrap intervals (:mod:`critdiff.probes.critical_time`). **The
network's critical time** is one of them, the instability of the symmetric branch (``branch_growth['linear']``:
linear response, fluctuations of 1% of the noise); the others are reported beside it under their signal's name
(``t_c`` is the inverse-variance combination of the trajectory signals, ``xi_growth`` the steepest growth of the
correlation lengths). The
patch-size calibration (:mod:`critdiff.probes.calibration`) on the same states gives the effective stencil; the
patch theory (:func:`.net_signals.calibrated_theory`) of that stencil on the training images gives the theory's ``t_c``. Every
number the report shows is a field of the result (times as ``t`` of the training schedule, ``logsnr`` and
``sigma/a``). Absent signatures are reported as absent. :mod:`critdiff.report.net_criticality` renders it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from ..config import JsonConfig, arg
from ..devices import resolve as resolve_device
from ..errors import check_int
from ..probes.calibration import DEFAULT_STENCILS, check_candidates
from ..probes.softening import ONSET
from ..samplers import initial_noise, seed_generators
from ..schedules import get as get_schedule
from ..schedules import sigma_grid
from ..times import TimeEstimate
from . import net_signals as NS
from .context import ContextLike, as_context
from .result import Result

PHASES = ("trajectories", "susceptibility", "estimators", "linear response", "calibration", "theory")


@dataclass(frozen=True)
class NetCriticalityConfig(JsonConfig):
    """The measurement plan (:func:`demo_config` gives the demo's)."""

    model_dir: str = arg(help="folder of a network trained by critdiff train, or pretrained:NAME")
    data: Optional[str] = arg(None, "training data spec (default: the checkpoint's)")
    seed: int = arg(0, "random seed of the noise, probes, kicks and bootstrap")
    batch: int = arg(16, "trajectories in the ensemble")
    steps: int = arg(24, "Heun steps, uniform in logsnr of the training schedule")
    probe_every: int = arg(2, "probe every this many steps")
    n_probes: int = arg(4, "random probe vectors per state")
    kicks: int = arg(6, "kick times of the susceptibility")
    n_cal_times: int = arg(8, "recorded times of the patch-size calibration")
    n_cal_train: int = arg(128, "training images of the calibration's patch models")
    n_theory: int = arg(300, "training images of the patch theory")
    n_boot: int = arg(200, "bootstrap replicates")
    stencils: tuple[str, ...] = arg(DEFAULT_STENCILS, "stencils compared in the calibration")
    n_t_theory: int = arg(121, "times of the patch theory's stiffness scan")

    def validate(self) -> "NetCriticalityConfig":
        for name in ("batch", "steps", "probe_every", "n_probes", "kicks", "n_cal_times", "n_cal_train",
                     "n_theory", "n_boot", "n_t_theory"):
            check_int(name, getattr(self, name), 1)
        check_candidates(self.stencils, els_only=True)
        return self


def demo_config(quick: bool, model_dir: str) -> NetCriticalityConfig:
    """The demo's settings for a 28x28 network (the reference network, ``pretrained:mnist28``), sized so the whole
    demo fits in 5 minutes on a 2-core machine (:mod:`critdiff.experiments.demo.sections`): 10 trajectories of 16
    Heun steps, 4 kicks, three ELS stencils calibrated on 32 images at 3 times, the theory on 60 images at 41 times
    (the patch models cost ~3x more per image at 28x28 than at 16x16); quick: a small ensemble and a coarse scan."""
    if not quick:
        return NetCriticalityConfig(model_dir=str(model_dir), batch=10, steps=16, kicks=4, n_cal_times=3, n_cal_train=32,
                                    n_theory=60, stencils=("square:3", "square:5", "square:7"), n_t_theory=41)
    return NetCriticalityConfig(model_dir=str(model_dir), batch=6, steps=10, probe_every=1, n_probes=2, kicks=4,
                                n_cal_times=4, n_cal_train=64, n_theory=64, n_boot=50,
                                stencils=("square:3", "square:5", "square:7"), n_t_theory=61)


@dataclass(frozen=True)
class NetCriticalityResult(Result):
    """Every number of the trained-net section. Curves are in the sampling direction (logsnr ascending):
    ``probe_logsnr [T]``, ``k [K]``, ``sigma2_kappa_radial [T][K]``, ``xi_zero``, ``xi_oz [T]``; ``chi_logsnr``,
    ``chi_mean [J]``, ``chi_ci [J][2]``. ``estimates``: per trajectory signal, ``{'estimate': TimeEstimate record
    or None, 'feature': bool}``; ``t_c``: their inverse-variance combination (None when no signal has a feature);
    ``branch_growth``: per branch run, its ``estimate`` and the mode that grows. Payloads: see :mod:`.net_signals`."""

    kind = "net-criticality"
    config: NetCriticalityConfig
    data: str
    schedule: str
    sampler: str
    probe_logsnr: tuple[float, ...]
    k: tuple[float, ...]
    sigma2_kappa_radial: tuple
    xi_zero: tuple
    xi_oz: tuple
    chi_logsnr: tuple[float, ...]
    chi_mean: tuple[float, ...]
    chi_ci: tuple
    stiffness_low_k: dict
    xi_zero_peak: dict
    xi_oz_peak: dict
    chi_peak: dict
    estimates: dict
    t_c: Optional[TimeEstimate]
    branch_growth: dict
    onset_threshold: float
    calibration: dict
    theory: dict
    theory_others: tuple
    timing: dict
    xi_growth: Optional[dict] = None  # NS.xi_growth: first/last value and steepest growth of xi_zero and xi_oz


def load_trained(model_dir: str, data: Optional[str] = None, device="cpu", with_labels: bool = False):
    """A trained network (a folder of ``critdiff train`` or ``pretrained:NAME``, loaded on ``device``), its training images ``[N, C, H, W]`` (``data``,
    default the checkpoint's own spec, loaded with data seed 0), the data spec and the network's training schedule;
    ``with_labels``: and the images' labels ``[N]`` (or None) as a fifth item."""
    from .. import pretrained
    from ..nets import checkpoint as ckpt
    from .config import RunConfig
    from .models import load_model

    model_dir = pretrained.resolve(model_dir, "unet")  # pretrained:NAME -> its shipped (verified) folder
    stored = ckpt.read_config(model_dir).get("train", {})
    if data is None:
        if "data" not in stored:
            raise ValueError(f"data: {model_dir!r} records no training data; give a data spec")
        data = stored["data"]
    loaded = load_model(RunConfig(model=f"net:{model_dir}", data=data, device=str(device)), need_data=True, data_seed=0)
    out = (loaded.model, loaded.images, data, stored.get("schedule", "vp-cosine"))
    return (*out, loaded.labels) if with_labels else out


def run_net_criticality(cfg: NetCriticalityConfig, ctx: ContextLike = None, device="cpu") -> NetCriticalityResult:
    """Measure the network's critical signatures (module docstring); write ``result.json`` to ``ctx.out`` (when
    it has one; ``ctx``: a :class:`~critdiff.experiments.context.Context`, a folder or ``None``) and return the
    result. ``device``: where the network runs (its ensemble too;
    the network moves any other input there itself)."""
    cfg.validate()
    ctx = as_context(ctx)
    t_start = time.perf_counter()
    net, images, data, schedule = load_trained(cfg.model_dir, cfg.data, device)
    sigmas = sigma_grid(get_schedule(schedule), cfg.steps, "logsnr")
    x = initial_noise((cfg.batch, *net.sample_shape), sigmas, seed_generators(cfg.seed, cfg.batch),
                      device=resolve_device(device))
    timing: dict = {}
    with ctx.bar(len(PHASES), "net criticality") as bar:
        def phase(name, fn, *a):
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            out = fn(*a)
            timing[f"{name.replace(' ', '_')}_s"] = time.perf_counter() - t0
            bar.update(1)
            return out

        traj = phase("trajectories", NS.trajectories, net, x, sigmas, cfg)
        susc = phase("susceptibility", NS.kicks, net, x, sigmas, cfg)
        ests, feature, combined = phase("estimators", NS.estimates, traj, susc, schedule, cfg)
        branch = phase("linear response", NS.branch_growth, net, schedule, cfg)
        cal = phase("calibration", NS.calibrate, net, images, traj, cfg)
        # the network's critical time is the branch instability (linear response): the theory's stencil is the one
        # calibrated nearest it (the trajectory signals' combination is reported beside it, as what it is)
        critical = branch["linear"]["estimate"]
        theory, others = phase("theory", NS.calibrated_theory, images, cal,
                               None if critical is None else TimeEstimate.from_dict(critical), schedule, cfg)
    curves = NS.curves(traj, susc)
    result = NetCriticalityResult(
        config=cfg, data=data, schedule=schedule, sampler="heun", **curves,
        **NS.peaks(curves, None if ests["xi_oz"] is None else ests["xi_oz"].logsnr, feature["xi_oz"]),
        estimates={k: {"estimate": NS.record_of(e), "feature": feature[k]} for k, e in ests.items()},
        t_c=combined, branch_growth=branch, onset_threshold=ONSET, calibration=cal.to_dict(), theory=theory,
        theory_others=tuple(others), timing={**timing, "total_s": time.perf_counter() - t_start},
        xi_growth=NS.xi_growth(curves))
    ctx.save(result)
    return result
