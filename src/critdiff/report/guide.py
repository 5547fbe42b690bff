"""Render a :class:`~critdiff.experiments.guide.GuideResult`: the key comparisons, the arms table and the
sweep curve (``sweep.png``, redrawn from the result's numbers)."""

from __future__ import annotations

import html as _html
from pathlib import Path
from typing import Optional

import numpy as np

from ..times import TimeEstimate
from .figures import plt, save_figure
from .fmt import interval, num
from .html import Section, table

QUESTION = ("Does a guidance pulse at the critical time align samples with their class better than the same "
            "pulse at random times, constant guidance or an adaptive pulse?")
# comparison key -> how the findings name it
COMPARED = {"tc-random": "pulse at t_c minus pulse at random centres",
            "tc-constant": "pulse at t_c minus constant guidance",
            "adaptive-tc": "adaptive pulse minus pulse at t_c"}


def _ci(r: dict) -> str:
    """``diff [lo, hi]`` with 4 significant digits."""
    return f"{num(r['diff'])} {interval(r['lo'], r['hi'])}"


def sweep_figure(result, path) -> Optional[Path]:
    """Class alignment against the pulse centre (logsnr), with t_c and the reference arms marked."""
    if not result.sweep:
        return None
    tc, arms, cfg = result.tc, result.arms, result.config
    c = np.array([s["centre_logsnr"] for s in result.sweep])
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for ax, key, name in ((axes[0], "accuracy", "accuracy of intended class"),
                          (axes[1], "logp", "mean log p(intended class)")):
        m, lo, hi = (np.array([s[key][k] for s in result.sweep]) for k in ("diff", "lo", "hi"))
        ax.errorbar(c, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label="pulse at centre")
        ax.axvline(tc.logsnr, color="C3", ls="--", label=f"t_c ({tc.source.split(' ')[0]})")
        if "tc" in arms:
            r = arms["tc"][key]
            ax.errorbar([tc.logsnr], [r["diff"]], yerr=[[r["diff"] - r["lo"]], [r["hi"] - r["diff"]]],
                        marker="*", ms=11, color="C3", capsize=3, ls="none", label="pulse at t_c")
        for arm, col in (("random", "C2"), ("constant", "C4"), ("none", "0.5"), ("adaptive", "C1")):
            if arm in arms:
                ax.axhline(arms[arm][key]["diff"], color=col, ls=":", label=arm)
        ax.set_xlabel("pulse centre (logsnr)")
        ax.set_ylabel(name)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"guidance pulse sweep: {cfg.model} on {cfg.data} (height {cfg.height:g}, width {cfg.width:g}, "
                 f"baseline {cfg.baseline:g})", fontsize=9)
    return save_figure(fig, path)


def _estimate_part(name: str, rec: dict) -> str:
    """``'theory -0.37 [lo, hi]'`` of one estimator's record (a :class:`~critdiff.times.TimeEstimate` or
    ``{error}``)."""
    if "logsnr" not in rec:
        return f"{name}: none"
    ci = TimeEstimate.from_dict(rec).logsnr_ci if "interval" in rec else rec.get("logsnr_ci")  # older results
    return f"{name} {num(rec['logsnr'])}" + (f" {interval(*ci)}" if ci else "")


def findings(result) -> list[str]:
    """Plain sentences with numbers and 95% intervals: what the comparisons and the sweep showed."""
    tc, out = result.tc, []
    out.append(f"critical time {tc.time.format()} (from {tc.source}).")
    est = (result.estimators or {}).get("estimates", {})
    if est:
        parts = [_estimate_part(k, v) for k, v in est.items()]
        out.append(f"critical-time estimators (logsnr [95% CI]; the pulse uses {result.estimators['chosen']}): "
                   + "; ".join(parts) + ".")
    for key, name in COMPARED.items():
        r = (result.comparisons or {}).get(key)
        if r is not None:
            out.append(f"{name}: accuracy {_ci(r['accuracy'])}, log p {_ci(r['logp'])}, NFE ratio "
                       f"{num(r['nfe_ratio'])} (paired bootstrap 95%).")
    if result.sweep_peak:
        p = result.sweep_peak
        fit = ""
        if "logp_peak_fit" in p:  # results written before the fitted peak existed lack it
            lo, hi = p["logp_peak_ci"]
            fit = f"; parabolic peak {num(p['logp_peak_fit'])} [{num(lo)}, {num(hi)}] (paired bootstrap 95%)"
        out.append(f"the sweep's log p peaks at the centre logsnr {num(p['logp_peak_logsnr'])} "
                   f"({num(p['logp_peak_minus_tc'])} from t_c{fit}) and its accuracy at {num(p['accuracy_peak_logsnr'])}.")
    return out


def arms_rows(result) -> list[dict]:
    """The arms table of the report and the CLI: per arm its numbers and the paired differences from the random
    arm as ``diff [lo, hi]`` (4 significant digits)."""
    rows = []
    for name, r in result.arms.items():
        vr = r.get("vs_random") or {}
        row = {"arm": name, "schedule": r["describe"], "accuracy [95% CI]": _ci(r["accuracy"]),
               "log p [95% CI]": _ci(r["logp"]), "FD": r["fd"], "precision": r.get("precision"),
               "recall": r.get("recall"), "diversity": r["diversity"], "NFE": r["nfe"]}
        if vr:
            row.update({f"d_{k} vs random [95% CI]": _ci(vr[k])
                        for k in ("accuracy", "logp", "fd", "precision", "recall", "diversity") if k in vr})
        rows.append(row)
    return rows


def equal_nfe_table(result) -> list[dict]:
    """The cost rows (:attr:`GuideResult.equal_nfe`) with their paired differences as ``diff [lo, hi]``."""
    return [{"comparison": r["comparison"], "nfe_ratio": r["nfe_ratio"], "equal_nfe": r["equal_nfe"],
             "d_acc [95% CI]": _ci(r["d_acc"]), "d_logp [95% CI]": _ci(r["d_logp"])} for r in result.equal_nfe]


def _settings(result) -> str:
    cfg, tc = result.config, result.tc
    clf = "" if result.status != "complete" else \
        f" Classifier accuracy on the training images: {num(result.classifier_train_accuracy)}."
    return (f"<p>{_html.escape(cfg.model)} on <code>{_html.escape(str(cfg.data))}</code>, {cfg.n} samples per arm "
            f"(intended classes balanced), {cfg.sampler} with {cfg.steps} steps uniform in {cfg.spacing} on "
            f"{cfg.schedule}. Every arm starts from the same noise and receives the same sampler noise. Pulses: "
            f"{cfg.profile}, height {num(cfg.height)}, width {num(cfg.width)} logsnr, baseline w = {num(cfg.baseline)}. "
            f"Critical time {tc.time.format()} (source: {_html.escape(tc.source)}).{clf}</p>")


def _unfinished(result, key: str, title: str) -> Section:
    """The section of a run without metrics: ``no-classifier`` (every trial ran; NFE and pixel diversity per arm)
    or ``stopped`` (some trials are missing)."""
    if result.status == "no-classifier":
        note = ("Every trial ran, but no classifier was given: accuracy, log p and FD wait for a rerun with "
                "<code>--classifier</code> (it reuses the trials).")
        rows = [{"arm": arm, "NFE": r["nfe"]["diff"], "pixel diversity": r.get("pixel_diversity"), "n": r["n"]}
                for arm, r in (result.arms or {}).items()]
    else:
        note, rows = "The run stopped before every trial ran; rerun the command to finish it.", []
    fact = f"{result.status}: critical time {result.tc.time.format()} ({result.tc.source})."
    return Section(key, title, _settings(result) + f"<p>{note}</p>" + (table(rows) if rows else ""),
                   question=QUESTION, findings=[fact])


def render_guide(result, folder: "str | Path | None" = None, key: str = "guidance",
                 title: str = "Guidance pulses at the critical time") -> Section:
    """The report section of a guidance run; ``sweep.png`` is drawn into ``folder`` (default: the run's
    folder, where its ``trials.jsonl`` is). A run without metrics (``no-classifier``, ``stopped``) shows its
    settings, critical time and what it holds."""
    if result.status != "complete":
        return _unfinished(result, key, title)
    folder = Path(result.log).parent if folder is None else Path(folder)
    facts = findings(result)
    html = (_settings(result) + "<ul>" + "".join(f"<li>{_html.escape(f)}</li>" for f in facts[1:]) + "</ul>"
            + table(arms_rows(result)))
    if result.equal_nfe:
        html += "<p>Cost: the pulse against the other schedules (equal NFE when within 5%).</p>" + table(
            equal_nfe_table(result))
    if sweep_figure(result, folder / "sweep.png") is not None:
        html += '<p><img src="sweep.png"></p>'
    return Section(key, title, html, question=QUESTION, findings=facts)
