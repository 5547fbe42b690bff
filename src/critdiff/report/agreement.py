"""Render an :class:`~critdiff.experiments.agreement.AgreementResult`: the per-seed r (histogram, median, interval,
the Kamb & Ganguli anchor) and the per-level r of the two denoisers, redrawn from the result's numbers."""

from __future__ import annotations

import html as _html
from pathlib import Path

import numpy as np

from .fmt import interval, num
from .html import Section, table

FIGURES = ("agreement_r.png", "agreement_levels.png", "agreement_pairs.png", "agreement_calibration.png")


def _arr(v) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in v], dtype=np.float64)


def write_figures(r, out_dir: "str | Path") -> tuple[str, ...]:
    """Redraw the section's PNGs into ``out_dir``; return their names."""
    from .figures import calibration_figure, plt, save_figure

    out, s = Path(out_dir), r.summary
    fig, ax = plt.subplots(figsize=(5, 3.5))
    vals = _arr(r.r)
    ax.hist(vals[np.isfinite(vals)], bins=min(30, max(5, len(vals) // 3)), color="C0", alpha=0.7)
    if s["median"] is not None:
        ax.axvline(s["median"], color="k", label=f"median {num(s['median'])}")
        ax.axvspan(*s["median_ci"], color="k", alpha=0.15, label="95% interval of the median")
    ax.axvline(r.anchor_r, color="C3", ls="--", label=f"Kamb & Ganguli MNIST {r.anchor_r}")
    ax.set_xlabel("Pearson r (patch model vs network, same noise)"); ax.set_ylabel("seeds"); ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / FIGURES[0], dpi=100)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    lam = _arr(r.level_logsnr)
    ax.plot(lam, _arr(r.level_r_median), "o-", label="median over seeds")
    ax.fill_between(lam, _arr(r.level_r_q25), _arr(r.level_r_q75), alpha=0.25, label="interquartile range")
    ax.set_xlabel("logsnr"); ax.set_ylabel("Pearson r of the denoisers"); ax.legend(fontsize=7)
    ax.set_title("denoisers on the network's states")
    fig.tight_layout()
    save_figure(fig, out / FIGURES[1], dpi=100)
    _pairs_figure(r, out / FIGURES[2])
    calibration_figure(r.calibration, out / FIGURES[3])
    return FIGURES


def _pairs_figure(r, path: Path) -> None:
    """The example pairs: patch model (left) and network (right) from the same noise, captioned with r."""
    import torch

    from .figures import image_grid

    images, captions = [], []
    for ex in r.examples:
        for key, who in (("x_patch", "patch"), ("x_net", "net")):
            images.append(torch.tensor(ex[key], dtype=torch.float32).reshape(r.shape))
            captions.append(f"seed {ex['seed']} {who}" + (f" r={num(ex['r'])}" if who == "patch" else ""))
    if images:
        image_grid(torch.stack(images), path, nrow=4, title="patch model | network, same noise", labels=captions)


def findings(r) -> list[str]:
    """The summary sentence: the median r with its interval, beside the anchor."""
    s = r.summary
    if s["median"] is None:
        return ["agreement: no finite Pearson r (every sample pair had a constant image)."]
    return [f"patch model vs trained network from identical noise: median Pearson r {num(s['median'])} "
            f"{interval(*s['median_ci'])} (IQR {num(s['q25'])} to {num(s['q75'])}) over {s['n']} seeds; "
            f"Kamb & Ganguli report {r.anchor_r} on MNIST."]


def _final_selection(r) -> str:
    """The final-sample rule's table (stencil_rule 'final'): median r of every assignment on the calibration seeds."""
    fs = r.final_selection
    if not fs:
        return ""
    rows = [{"assignment": name + (" (chosen)" if name == fs["chosen"] else ""), "median r (calibration seeds)": m,
             "stencils (high noise first)": ", ".join(fs["assignments"][name])} for name, m in fs["median_r"].items()]
    return ("<p>Final-sample calibration: each per-level assignment's median r of its final images against the "
            f"network's on the {r.config.n_cal_traj} calibration seeds ('f@k': the LS winner before level k, "
            "family f's winner from level k on); the largest wins and is then measured on the seeds above, which "
            f"it did not see.</p>{table(rows)}")


def render_agreement(result, folder: "str | Path" = ".", key: str = "agreement",
                     title: str = "Agreement of the patch model with the trained network") -> Section:
    """The agreement section; its figures are redrawn into ``folder``."""
    r, e, cfg = result, _html.escape, result.config
    write_figures(r, folder)
    s = r.summary
    rows = [{"seeds": s["n"], "median r": s["median"], "95% CI of the median": interval(*s["median_ci"]),
             "q25": s["q25"], "q75": s["q75"], "non-finite": s["n_nonfinite"], "anchor (K&G, MNIST)": r.anchor_r,
             "s per seed": r.seconds_per_seed, "CPU s per seed": r.cpu_seconds_per_seed,
             "max certified bound": r.max_bound}]
    levels = [{"logsnr": lam, "sigma": sg, "stencil": st, "median r": m, "q25": a, "q75": b}
              for lam, sg, st, m, a, b in zip(r.level_logsnr, r.level_sigma, r.level_stencil, r.level_r_median,
                                              r.level_r_q25, r.level_r_q75)]
    cond = getattr(cfg, "conditional", False)
    who = ("at label j mod 10 for seed j, against the class-conditional patch model (the pool of that class)" if cond
           else "unconditionally (label None; the patch model is unconditional)")
    html = (f"<p>Deterministic DDIM (eta = 0), {cfg.steps} steps uniform in logsnr of the network's training "
            f"schedule ({e(r.schedule)}), from identical initial noise per seed. Network: {e(cfg.net)}, sampled "
            f"{who}. Patch model: per level the "
            f"calibrated candidate, an equivariant (ELS) stencil, a position-specific (LS, 'ls:') one or a "
            f"boundary-aware one ('b:', ELS inside and LS within the stencil's reach of the frame), "
            f"{e(cfg.boundary)} boundary, ELS patch pool '{e(cfg.patch_pool)}' of {e(cfg.pool)} ({r.n_pool} images), "
            f"certified tol "
            f"{num(r.patch.get('tol'))}; stencil calibrated per level ({e(cfg.stencil_rule)}) on states of "
            f"{cfg.n_cal_traj} network trajectories with {cfg.n_cal_train} pool images, among "
            f"{e(', '.join(cfg.stencils))}. r: Pearson correlation of the "
            f"mean-centred final images.</p>{table(rows)}"
            f'<p><img src="{FIGURES[0]}"> <img src="{FIGURES[1]}"></p><p><img src="{FIGURES[2]}"></p>{table(levels)}'
            f"<p>The calibration: every candidate's relative L2 distance to the network's denoiser at each level "
            f"(mean over {r.calibration['n_states']} states), and the winner's size.</p>"
            f'<p><img src="{FIGURES[3]}"></p>{_final_selection(r)}')
    return Section(key, title, html, question="How closely does the calibrated patch model reproduce the trained "
                   "network's samples from the same noise (Kamb & Ganguli's agreement)?", findings=findings(r))
