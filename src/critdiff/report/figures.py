"""Figures of the report (:mod:`critdiff.report`); the drawing primitives live in :mod:`critdiff.figures`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import image_grid, plt, save_figure, trajectory_strip  # noqa: F401 - the renderers' primitives


# the candidate families of a calibration (probes/calibration.py) as the calibration figure draws them:
# (line style of the distance curves, marker colour of the winners, legend label)
FAMILY_STYLE = {"els": ("o-", "k", "ELS (equivariant)"), "ls": ("o--", "C3", "LS (position-specific)"),
                "boundary": ("s:", "C0", "b: (ELS inside, LS near the frame)")}


def winner_families(best_stencil) -> dict:
    """``{family: [T] bool}``: the levels whose winning candidate is of each family (``'els'``, ``'ls'``,
    ``'boundary'``; :func:`~critdiff.probes.calibration.candidate_family`), the families that win somewhere only."""
    from ..probes.calibration import candidate_family

    fam = np.array([candidate_family(s) for s in best_stencil])
    return {f: fam == f for f in FAMILY_STYLE if (fam == f).any()}


def calibration_figure(cal: dict, path) -> Path:
    """A patch-size calibration (``Calibration.to_dict()``): each candidate's relative L2 distance to the
    network over logsnr (ELS solid, LS ``ls:`` dashed, boundary-aware ``b:`` dotted; one colour each) and the
    winning candidate's size, coloured by its family (:data:`FAMILY_STYLE`)."""
    from ..probes.calibration import candidate_family

    lam = np.asarray(cal["logsnr"], dtype=np.float64)
    rel = np.asarray(cal["rel_l2"], dtype=np.float64)
    size = np.asarray(cal["best_size"], dtype=np.float64)
    fig, axs = plt.subplots(1, 2, figsize=(9, 4.2))
    colours = plt.get_cmap("tab20" if len(cal["stencils"]) > 10 else "tab10")
    for j, s in enumerate(cal["stencils"]):
        axs[0].plot(lam, rel[:, j], FAMILY_STYLE[candidate_family(s)][0], ms=3, label=s, color=colours(j))
    axs[0].set_xlabel("logsnr"); axs[0].set_ylabel(r"$|D_{net} - D_S| / |D_{net}|$")
    axs[0].legend(fontsize=6, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.17))
    axs[0].set_title("network vs patch model")
    axs[1].step(lam, size, where="mid", color="k")
    for fam, mask in winner_families(cal["best_stencil"]).items():
        _, colour, label = FAMILY_STYLE[fam]
        axs[1].plot(lam[mask], size[mask], "o", color=colour, label=label)
    axs[1].set_xlabel("logsnr"); axs[1].set_ylabel("best stencil size"); axs[1].set_title("effective locality")
    axs[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
