"""The theory section of the demo report (docs/theory.md): numbers, figures and an HTML fragment."""

from __future__ import annotations

import html
import os

import torch


def theory_section(images: torch.Tensor, stencil, schedule, out_dir: str, *, weights: str = "exact") -> dict:
    """Run :func:`critdiff.theory.analysis.analyze` and return ``{'title', 'html', 'results', 'figures'}``."""
    from ..theory.analysis import analyze
    from ..theory.figures import write_figures

    report = analyze(images, stencil, schedule, weights=weights)
    figures = write_figures(report, out_dir)
    res = report.to_dict()
    cp = report.critical
    rows = [("critical time t_c", cp.t_c), ("logsnr_c", cp.logsnr_c), ("sigma/a at t_c", cp.sigma_over_a_c),
            ("k* (rad/pixel)", None if cp.k_star is None else [round(v, 6) for v in cp.k_star]),
            ("|k*|", cp.k_star_abs), ("global-model speciation logsnr", res["global_speciation"]["logsnr_c"])]
    for name, v in cp.instability.items():
        rows.append((f"{name.upper()} sampler instability t (schedule frame)", v.get("t") if v["found"] else v["message"]))
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    note = f"<p>{html.escape(cp.message)}</p>" if cp.message else ""
    imgs = "".join(f'<img src="{html.escape(os.path.basename(p))}" alt="{html.escape(os.path.basename(p))}">'
                   for p in figures)
    frag = (f"<p>Linear stability of the patch model ({html.escape(report.stencil)}, {html.escape(report.schedule)}, "
            f"{html.escape(cp.weights)} weights) around the homogeneous solution.</p>{note}"
            f"<table>{body}</table>{imgs}")
    return {"title": "Theory: linear stability of the patch model", "html": frag, "results": res, "figures": figures}
