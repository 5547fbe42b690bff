"""The demo report's summary: at most six numbered findings, one per claim of the paper, each one sentence with
the measured number, its interval and a verdict (holds / partly / does not hold), linking to its section.

The verdict rules are :data:`VERDICT_RULES` (shown in the report under the summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..times import TimeEstimate
from .fmt import interval, num

VERDICTS = ("holds", "partly", "does not hold")
VERDICT_RULES = (
    "Verdicts: (1) theory vs probes: holds when the probes' interval contains the theory's critical time or they "
    "differ by at most 0.25 logsnr, partly within 1; (2) softening: holds when the low-|k| stiffness falls below the "
    "high-|k| one by more than twice its standard error and 0.05; (3) correlation growth: holds when xi grows by at "
    "least 1 pixel with its steepest growth inside the recorded range, partly when it grows less; (4) critical time: "
    "holds when the patch theory's t_c lies inside the interval of the network's critical time (its branch "
    "instability), partly within 2 logsnr; (5) pulse vs random: holds when the paired 95% interval of the accuracy "
    "difference lies above 0, partly when only its mean does; (6) agreement: holds when the median Pearson r reaches "
    "0.9 (Kamb & Ganguli report 0.94), partly from 0.7.")
MAX_FINDINGS = 6


@dataclass(frozen=True)
class Finding:
    """One numbered finding: the sentence (claim and measured number), its verdict and its section's key."""

    text: str
    verdict: str
    key: str


def _probe_signal(combined: dict) -> str:
    """The signal the probes' critical time comes from: linear response of the symmetric branch, or the ensemble."""
    return "linear response" if "linear response" in combined.get("source", "") else "sampler ensemble"


def _probe_theory(r, key: str) -> Optional[Finding]:
    from ..probes.theory_compare import comparison_rows

    c, th = r.combined, r.theory or {}
    if th.get("logsnr_c") is None or c.get("logsnr_c") is None:
        return Finding(f"The patch model's linear theory predicts the critical time of its probes on {r.config.data}: "
                       "the theory finds no crossing here", "does not hold", key)
    d = c["logsnr_c"] - th["logsnr_c"]
    agree = [row["agrees"] for row in comparison_rows(r.to_dict()) if row["signal"] == "combined"][0]
    verdict = "holds" if agree is True else "partly" if abs(d) <= 1.0 else "does not hold"
    return Finding(f"The patch model's linear theory predicts the probed critical time on stripes: theory logsnr "
                   f"{num(th['logsnr_c'])}, probes ({_probe_signal(c)}) {num(c['logsnr_c'])} {interval(*c['logsnr_ci'])} "
                   f"(difference {num(d)})", verdict, key)


def _softening(r, key: str) -> Finding:
    st = r.stiffness_low_k
    text = (f"The reference network's low-|k| modes soften: sigma^2 kappa at |k| = {num(st['k_low'])} falls below "
            f"|k| = {num(st['k_high'])} by up to {num(st['contrast_max'])} (standard error {num(st['contrast_se'])}) at "
            f"logsnr {num(st['contrast_logsnr'])}")
    return Finding(text, "holds" if st["weakens"] else "does not hold", key)


def _growth(r, key: str) -> Optional[Finding]:
    g = (r.xi_growth or {}).get("xi_zero") or {}
    name = "xi_0 of the states"
    if "error" in g or not g or (r.xi_zero_peak or {}).get("all_zero"):
        g, name = (r.xi_growth or {}).get("xi_oz") or {}, "the Ornstein-Zernike xi of the stiffness"
    if not g or "error" in g:
        return None
    a, b = g["from"], g["to"]
    grow = b["value"] - a["value"]
    interior = g["logsnr"] is not None and a["logsnr"] < g["logsnr"] < b["logsnr"]
    verdict = "holds" if grow >= 1.0 and interior else "partly" if grow > 0 else "does not hold"
    steep = f", fastest at logsnr {num(g['logsnr'])}" if g["logsnr"] is not None else ""
    return Finding(f"Spatial correlations grow rapidly during sampling: {name} goes from {num(a['value'])} px at logsnr "
                   f"{num(a['logsnr'])} to {num(b['value'])} px at {num(b['logsnr'])}{steep}", verdict, key)


def _critical_time(r, key: str) -> Optional[Finding]:
    rec, th = (r.branch_growth or {}).get("linear") or {}, r.theory
    if rec.get("estimate") is None:
        return None
    li = TimeEstimate.from_dict(rec["estimate"])
    lo, hi = li.logsnr_ci or (None, None)
    how = "turns unstable" if li.extras.get("method") == "zero-crossing" else "is softest (no crossing)"
    head = (f"The reference network's critical time (its symmetric branch {how}, linear response) is logsnr "
            f"{num(li.logsnr)} {interval(lo, hi)}")
    if not th.get("found"):
        return Finding(head + f"; the patch theory of its calibrated stencil {th['stencil']} has no critical point",
                       "does not hold", key)
    d = th["logsnr"] - li.logsnr
    inside = lo is not None and hi is not None and lo <= th["logsnr"] <= hi
    verdict = "holds" if inside else "partly" if abs(d) <= 2.0 else "does not hold"
    return Finding(head + f"; the patch theory of its calibrated stencil {th['stencil']} predicts {num(th['logsnr'])} "
                   f"(difference {num(d)})", verdict, key)


def _pulse(r, key: str) -> Optional[Finding]:
    c = (r.comparisons or {}).get("tc-random")
    if r.status != "complete" or c is None:
        return None
    a, lp = c["accuracy"], c["logp"]
    verdict = "holds" if a["lo"] > 0 else "partly" if a["diff"] > 0 else "does not hold"
    source = (r.estimators or {}).get("chosen") or r.tc.source
    return Finding(f"A guidance pulse at the critical time (logsnr {num(r.tc.logsnr)}, from {source}) "
                   f"beats the same pulse at random times: accuracy {num(a['diff'])} {interval(a['lo'], a['hi'])}, "
                   f"log p {num(lp['diff'])} {interval(lp['lo'], lp['hi'])} (paired, n = {a['n']})", verdict, key)


def _agreement(r, key: str) -> Optional[Finding]:
    s = r.summary
    if not s or s.get("median") is None:
        return None
    verdict = "holds" if s["median"] >= 0.9 else "partly" if s["median"] >= 0.7 else "does not hold"
    level = [v for v in r.level_r_median if v is not None]
    lr = f"; per-level denoiser r from {num(min(level))} to {num(max(level))}" if level else ""
    return Finding(f"The patch model reproduces the reference network's samples from the same noise: median r "
                   f"{num(s['median'])} {interval(*s['median_ci'])} over {s['n']} seeds (Kamb & Ganguli: "
                   f"{num(r.anchor_r)}){lr}", verdict, key)


# (section key, result kind, finding) in the order of the summary
RULES = (("probe-stripes", "probe", _probe_theory), ("trained-net", "net-criticality", _softening),
         ("trained-net", "net-criticality", _growth), ("trained-net", "net-criticality", _critical_time),
         ("guidance", "guide", _pulse), ("agreement", "agreement", _agreement))


def demo_findings(results: dict) -> list[Finding]:
    """The summary of the demo from its results ``{section key: Result}`` (at most :data:`MAX_FINDINGS`)."""
    out = []
    for key, kind, rule in RULES:
        r = results.get(key)
        if r is not None and r.kind == kind:
            f = rule(r, key)
            if f is not None:
                out.append(f)
    return out[:MAX_FINDINGS]
