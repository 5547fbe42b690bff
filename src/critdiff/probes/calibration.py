"""Patch-size calibration: the effective locality scale of any denoiser against patch models (a probe).

At states ``x_t [B, C, H, W]`` visited by the network's own sampling trajectories, compare the network's
denoiser ``D_net(x_t, sigma)`` with the patch model's ``D_S(x_t, sigma)`` (DESIGN.md section 2) for a list of
candidates ``S`` (default ``square:3, 5, 7, 9``), per recorded time. A candidate is a stencil spec, the
equivariant patch model (ELS) of that stencil, or ``ls:`` + a stencil spec, the local but position-specific
model (LS, ``equivariant=False``: the pool at pixel ``i`` holds only the training patches at ``i``; always
``pool='all'``), or ``b:`` + a stencil spec, the boundary-aware model (ELS with the ``'valid'`` pool in the
interior, LS within the stencil's reach of the frame; :mod:`critdiff.scores.boundary`). A large LS stencil sees the whole frame from every pixel, so LS ``square:K`` with ``K >= 2 max(H, W) - 1``
and the zero boundary is the global empirical model:

- cosine similarity ``cos_b = <D_net, D_S>_b / (|D_net|_b |D_S|_b)`` (per sample, flattened over ``C, H, W``),
  averaged over the ``B`` states;
- relative L2 error ``rel_b = |D_net - D_S|_b / |D_net|_b``, averaged over the states.

The calibrated stencil at each time is the one with the smallest mean relative L2 error (equivalently, for
outputs of equal norm, the largest cosine); its size, as a curve over ``logsnr = -2 log sigma``, is the
network's effective locality scale. Arrays are float64 numpy with time first, ``[T, S]``; times are sorted by
decreasing ``sigma`` (the sampling direction).

The trajectories are Heun runs of the denoiser over a logsnr-uniform sigma grid of ``schedule`` from seeded
noise (``label`` as given; ``None`` = unconditional), or any states the caller already has (``states``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..denoisers import Denoiser, Label
from ..errors import check_choice, check_images, check_int
from ..samplers import initial_noise, sample_heun, seed_generators
from ..schedules import get as get_schedule
from ..schedules import sigma_grid
from ..scores.boundary import BoundaryPatchScore
from ..scores.patch import PatchScore
from ..stencil import parse_stencil

DEFAULT_STENCILS = ("square:3", "square:5", "square:7", "square:9")
LS_PREFIX = "ls:"  # candidate prefix of the local, non-equivariant (LS) patch model
BOUNDARY_PREFIX = "b:"  # candidate prefix of the boundary-aware model (ELS inside, LS near the frame)
FAMILIES = ("els", "ls", "boundary")
_PREFIX = {"ls": LS_PREFIX, "boundary": BOUNDARY_PREFIX, "els": ""}


def split_candidate(candidate: str) -> tuple[str, str]:
    """A calibration candidate -> ``(family, stencil spec)``: ``'square:7'`` is the ELS model of ``square:7``
    (family ``'els'``), ``'ls:square:7'`` the LS model (``'ls'``), ``'b:square:7'`` the boundary-aware model
    (``'boundary'``: ELS in the interior, LS within the stencil's reach of the frame; docs/theory.md section 14)."""
    if not isinstance(candidate, str):
        raise TypeError(f"stencils: expected candidate strings such as 'square:7', 'ls:square:15' or 'b:square:7', "
                        f"got {candidate!r}")
    for family in ("ls", "boundary"):
        if candidate.startswith(_PREFIX[family]):
            return family, parse_stencil(candidate[len(_PREFIX[family]):]).spec
    return "els", parse_stencil(candidate).spec


def parse_candidate(candidate: str) -> tuple[bool, str]:
    """A calibration candidate -> ``(equivariant, stencil spec)`` (:func:`split_candidate`; only the ELS
    family is equivariant everywhere)."""
    family, spec = split_candidate(candidate)
    return family == "els", spec


def candidate_family(candidate: str) -> str:
    """``'els'``, ``'ls'`` or ``'boundary'`` (:func:`split_candidate`)."""
    return split_candidate(candidate)[0]


def canonical_candidate(candidate: str) -> str:
    """The candidate's canonical spelling (``'ls:square:7'``, ``'b:square:7'``, ``'square:7'``)."""
    family, spec = split_candidate(candidate)
    return _PREFIX[family] + spec


def check_candidates(stencils, els_only: bool = False) -> tuple[str, ...]:
    """Validate a list of candidates (argument ``stencils``): at least one, each parseable; ``els_only``
    refuses LS and boundary-aware candidates (for callers whose patch theory is of the equivariant model)."""
    if isinstance(stencils, str) or not stencils:
        raise ValueError(f"stencils: expected at least one candidate such as 'square:7' or 'ls:square:15', got {stencils!r}")
    out = tuple(canonical_candidate(s) for s in stencils)
    if els_only and any(candidate_family(s) != "els" for s in out):
        raise ValueError(f"stencils: expected equivariant (ELS) stencils only here (the patch theory is of the "
                         f"ELS model), got {', '.join(s for s in out if candidate_family(s) != 'els')}")
    return out


def candidate_model(images: torch.Tensor, candidate: str, pool: str = "all", parts: Optional[dict] = None,
                    **patch_kwargs):
    """The denoiser of a candidate: a :class:`PatchScore` (``pool`` applies to ELS candidates; LS pools hold
    every image) or a :class:`~critdiff.scores.boundary.BoundaryPatchScore` (its interior pool is ``'valid'``).
    ``parts``: already built models by canonical candidate; a boundary-aware candidate reuses the ELS
    (``pool='valid'``) and LS models of its stencil found there."""
    family, spec = split_candidate(candidate)
    if family == "boundary":
        parts = parts or {}
        return BoundaryPatchScore(images, spec, els=parts.get(spec) if pool == "valid" else None,
                                  ls=parts.get(LS_PREFIX + spec), **patch_kwargs)
    return PatchScore(images, spec, equivariant=family == "els", pool=pool if family == "els" else "all",
                      **patch_kwargs)


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate_patch_size` (module docstring).

    ``stencils [S]``; ``sizes [S]`` (stencil extent: the side of a square); ``sigma [T]``, ``logsnr [T]``;
    ``cosine [T, S]``, ``rel_l2 [T, S]`` (means over states), ``cosine_se``, ``rel_l2_se`` (standard errors);
    ``best [T]`` (index into ``stencils``), ``best_stencil [T]``, ``best_size [T]``, ``margin [T]`` (runner-up minus
    best relative L2); ``n_states``, ``n_train``.
    """

    stencils: tuple
    sizes: np.ndarray
    sigma: np.ndarray
    logsnr: np.ndarray
    cosine: np.ndarray
    cosine_se: np.ndarray
    rel_l2: np.ndarray
    rel_l2_se: np.ndarray
    best: np.ndarray
    n_states: int
    n_train: int
    boundary: str

    @property
    def best_stencil(self) -> list:
        return [self.stencils[i] for i in self.best]

    @property
    def best_size(self) -> np.ndarray:
        return self.sizes[self.best]

    @property
    def margin(self) -> np.ndarray:
        """``[T]`` runner-up's mean relative L2 minus the best one's (0 with a single stencil)."""
        r = np.sort(self.rel_l2, axis=1)
        return r[:, 1] - r[:, 0] if r.shape[1] > 1 else np.zeros(r.shape[0])

    def stencil_at(self, logsnr: float) -> str:
        """The calibrated stencil at the recorded time nearest ``logsnr``."""
        return self.stencils[int(self.best[int(np.argmin(np.abs(self.logsnr - float(logsnr))))])]

    def modal_stencil(self) -> str:
        """The stencil calibrated at the most recorded times (ties: the smaller stencil)."""
        counts = np.bincount(self.best, minlength=len(self.stencils))
        return self.stencils[int(np.argmax(counts))]

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        """The inverse of :meth:`to_dict`."""
        a = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        stencils = tuple(d["stencils"])
        return cls(stencils=stencils, sizes=np.asarray(d["sizes"]), sigma=a("sigma"), logsnr=a("logsnr"),
                   cosine=a("cosine"), cosine_se=a("cosine_se"), rel_l2=a("rel_l2"), rel_l2_se=a("rel_l2_se"),
                   best=np.array([stencils.index(s) for s in d["best_stencil"]]), n_states=int(d["n_states"]),
                   n_train=int(d["n_train"]), boundary=d["boundary"])

    def to_dict(self) -> dict:
        f = lambda a: [[float(v) for v in row] for row in a]  # noqa: E731
        return {
            "stencils": list(self.stencils), "sizes": [int(s) for s in self.sizes],
            "sigma": [float(s) for s in self.sigma], "logsnr": [float(s) for s in self.logsnr],
            "cosine": f(self.cosine), "cosine_se": f(self.cosine_se),
            "rel_l2": f(self.rel_l2), "rel_l2_se": f(self.rel_l2_se),
            "best_stencil": self.best_stencil, "best_size": [int(s) for s in self.best_size],
            "margin": [float(v) for v in self.margin], "modal_stencil": self.modal_stencil(), "n_states": self.n_states, "n_train": self.n_train,
            "boundary": self.boundary,
        }


def stencil_extent(stencil) -> int:
    """Side of the bounding box of a stencil's (or a candidate's) offsets (``square:K``, ``ls:square:K`` -> ``K``)."""
    offs = np.array(parse_stencil(parse_candidate(stencil)[1] if isinstance(stencil, str) else stencil).offsets)
    return int((offs.max(0) - offs.min(0)).max() + 1)


def trajectory_states(denoiser: Denoiser, shape, *, n_times: int = 8, schedule="vp-cosine", steps: int = 24,
                      label: Label = None, seed: int = 0, dtype=torch.float32) -> list[tuple[float, torch.Tensor]]:
    """``n_times`` (sigma, ``x [B, C, H, W]``) pairs visited by a Heun run of ``denoiser`` (evenly spaced steps)."""
    n_times = check_int("n_times", n_times)
    steps = check_int("steps", steps)
    if n_times > steps:
        raise ValueError(f"n_times: expected at most steps={steps} recorded times, got {n_times}")
    sigmas = sigma_grid(get_schedule(schedule), steps, "logsnr")
    keep = set(np.unique(np.round(np.linspace(0, steps - 1, n_times)).astype(int)).tolist())
    out: list = []

    def cb(step):
        if step.i in keep:
            out.append((float(step.sigma), step.x.detach().clone()))

    x = initial_noise(tuple(shape), sigmas, seed_generators(seed, shape[0]), dtype=dtype)
    with torch.no_grad():
        sample_heun(denoiser, x, sigmas, label=label, callback=cb)
    return out


def _stats(a: np.ndarray) -> tuple[float, float]:
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0


def calibrate_patch_size(denoiser: Denoiser, images: torch.Tensor, *, stencils: Sequence = DEFAULT_STENCILS,
                         states: Optional[Sequence[tuple[float, torch.Tensor]]] = None, n_traj: int = 8,
                         n_times: int = 8, schedule="vp-cosine", steps: int = 24, label: Label = None,
                         labels: Optional[torch.Tensor] = None, boundary: str = "zero", pool: str = "all",
                         seed: int = 0, dtype=torch.float32) -> Calibration:
    """Which stencil's patch model best matches ``denoiser`` at each time (module docstring).

    ``images [N, C, H, W]``: the patch models' training images (a few hundred suffice); ``labels [N]`` with an
    int/LongTensor ``label`` gives class-conditional pools. ``states``: (sigma, ``x``) pairs to compare at;
    when None, ``n_traj`` trajectories of the denoiser are run (:func:`trajectory_states`).
    ``boundary``: of the patch models (``'zero'`` matches a zero-padded convolutional network); ``pool``: their
    pool (``'valid'``: only patches wholly inside the training images, Kamb & Ganguli's convention; ELS
    candidates only). ``stencils``: the candidates (module docstring).
    """
    images = check_images("images", images)
    check_choice("boundary", boundary, ("periodic", "zero"))
    stencils = check_candidates(stencils)
    if states is None:
        n_traj = check_int("n_traj", n_traj)
        states = trajectory_states(denoiser, (n_traj, *images.shape[1:]), n_times=n_times, schedule=schedule,
                                   steps=steps, label=label, seed=seed, dtype=dtype)
    states = sorted(((float(s), x.to(dtype)) for s, x in states), key=lambda p: -p[0])
    if not states:
        raise ValueError("states: expected at least one (sigma, x) pair")
    built: dict = {}  # plain models first, so a boundary-aware candidate shares its stencil's ELS and LS models
    for st in sorted(stencils, key=lambda c: candidate_family(c) == "boundary"):
        built[st] = candidate_model(images.to(dtype), st, parts=built, boundary=boundary, pool=pool,
                                    labels=labels if label is not None else None)
    models = [built[st] for st in stencils]
    order = sorted(range(len(stencils)), key=lambda j: candidate_family(stencils[j]) == "boundary")
    T, S = len(states), len(stencils)
    cos, cos_se, rel, rel_se = (np.zeros((T, S)) for _ in range(4))
    with torch.no_grad():
        for i, (sig, x) in enumerate(states):
            check_images("states", x)
            dn = denoiser(x, sig, label).to(torch.float64).flatten(1)
            nn_ = dn.norm(dim=1).clamp_min(1e-300)
            outs: dict = {}  # id(model) -> its output at this state
            for j in order:
                m = models[j]
                if isinstance(m, BoundaryPatchScore):
                    # eq. (14.2) from the outputs of its parts (those of candidates are already computed here)
                    for part in (m.els, m.ls):
                        if id(part) not in outs:
                            outs[id(part)] = part(x, sig, label)
                    out = torch.where(m.interior.to(x.device), outs[id(m.els)], outs[id(m.ls)].to(outs[id(m.els)].dtype))
                else:
                    out = m(x, sig, label)
                outs[id(m)] = out
                dp = out.to(torch.float64).flatten(1)
                c = ((dn * dp).sum(1) / (nn_ * dp.norm(dim=1).clamp_min(1e-300))).cpu().numpy()
                r = ((dn - dp).norm(dim=1) / nn_).cpu().numpy()
                cos[i, j], cos_se[i, j] = _stats(c)
                rel[i, j], rel_se[i, j] = _stats(r)
    sig = np.array([s for s, _ in states], dtype=np.float64)
    return Calibration(stencils=stencils, sizes=np.array([stencil_extent(s) for s in stencils]), sigma=sig,
                       logsnr=-2.0 * np.log(sig), cosine=cos, cosine_se=cos_se, rel_l2=rel, rel_l2_se=rel_se,
                       best=np.argmin(rel, axis=1), n_states=int(states[0][1].shape[0]), n_train=int(images.shape[0]),
                       boundary=boundary)


class CalibratedPatchScore:
    """A patch denoiser whose stencil follows a calibration: at noise ``sigma`` it is the
    :class:`~critdiff.scores.patch.PatchScore` of the candidate calibrated at the level nearest in logsnr.

    ``sigma [T]`` and ``stencils [T]``: the calibrated levels and their candidates (e.g. ``Calibration.sigma``
    and ``Calibration.best_stencil``, or one candidate repeated; ``ls:`` candidates are LS models, module
    docstring); ``patch_kwargs`` go to every ``PatchScore`` (one per distinct candidate, sharing ``images``;
    ``pool`` applies to the ELS ones; ``models``: candidate -> model already built with the same ``images`` and
    ``patch_kwargs``, reused). ``last_bound``: the largest certified bound of the last call's models.
    """

    def __init__(self, images: torch.Tensor, sigma: Sequence[float], stencils: Sequence[str],
                 models: Optional[dict] = None, **patch_kwargs):
        sigma = np.asarray(sigma, dtype=np.float64)
        if sigma.ndim != 1 or sigma.size == 0 or len(stencils) != sigma.size or not np.all(sigma > 0):
            raise ValueError(f"sigma, stencils: expected T > 0 positive levels and T stencils, got {sigma.size} "
                             f"and {len(stencils)}")
        self.logsnr = -2.0 * np.log(sigma)
        self.stencils = tuple(canonical_candidate(s) for s in stencils)
        self.models: dict = {}
        for st, m in (models or {}).items():  # models already built (with the same images and kwargs) are reused
            if canonical_candidate(st) in self.stencils:
                self.models[canonical_candidate(st)] = m
        # plain ELS/LS models first, so that a boundary-aware candidate of the same stencil shares their pools
        for st in sorted(dict.fromkeys(self.stencils), key=lambda c: candidate_family(c) == "boundary"):
            if st not in self.models:
                self.models[st] = candidate_model(images, st, parts=self.models, **patch_kwargs)
        self.last_bound = 0.0

    @property
    def n_classes(self) -> int:
        """The class count of the patch models (labels select class pools; ``NULL_LABEL`` the whole pool)."""
        return next(iter(self.models.values())).n_classes

    def stencil_at(self, sigma: float) -> str:
        """The stencil used at noise level ``sigma`` (the calibrated level nearest in logsnr)."""
        return self.stencils[int(np.argmin(np.abs(self.logsnr + 2.0 * np.log(float(sigma)))))]

    def config(self) -> dict:
        first = next(iter(self.models.values())).config()
        return {**first, "model": "patch-calibrated", "stencil": None, "stencil_size": None,
                "levels_logsnr": [float(v) for v in self.logsnr], "stencils": list(self.stencils)}

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        """``x0_hat [B, C, H, W]``; per-sample sigmas are grouped by their stencil."""
        s = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().reshape(-1)
        if s.numel() == 1:
            model = self.models[self.stencil_at(float(s[0]))]
            out = model(x, sigma, label)
            self.last_bound = model.last_bound
            return out
        if s.numel() != x.shape[0]:
            raise ValueError(f"sigma: expected a scalar or one value per sample ({x.shape[0]}), got {s.numel()}")
        picks = [self.stencil_at(float(v)) for v in s]
        out, self.last_bound = torch.empty_like(x), 0.0
        lab = label if label is None or isinstance(label, int) else torch.as_tensor(label)
        for st in dict.fromkeys(picks):
            idx = torch.tensor([i for i, p in enumerate(picks) if p == st], device=x.device)
            sub = lab if lab is None or isinstance(lab, int) or lab.ndim == 0 else lab[idx.to(lab.device)]
            out[idx] = self.models[st](x[idx], s[idx.cpu()], sub).to(out.dtype)
            self.last_bound = max(self.last_bound, self.models[st].last_bound)
        return out
