"""Render the late-start / critical-grid benchmark (``benchmarks/bench_late_start.py``, docs/samplers.md "Late start
and critical grid: measured"): its curves figure, the small-budget table (FD, the paired differences with their
intervals, the NFE the full range needs for the same FD) and the best start of the scan beside the critical-time
estimates. Numbers come from the benchmark's JSON document as they are; this module only formats them."""

from __future__ import annotations

from .fmt import num
from .html import Section, table

ESTIMATES = (("speciation", "speciation"), ("speciation_within_class", "speciation (within class)"),
             ("linear_response", "linear response (auto's)"), ("linear_response_label_median", "linear response, label"),
             ("theory", "patch theory"), ("commitment", "commitment"), ("commitment_midpoint", "commitment midpoint"),
             ("step_density_peak", "step-density peak"))


def _ci(row: dict, lo: str = "lo", hi: str = "hi") -> str:
    return f"[{num(row[lo])}, {num(row[hi])}]"


def budget_rows(doc: dict, nfes=(6, 8)) -> list[dict]:
    """One row per model, sampler, variant and small NFE: FD, the full range's FD, the paired difference and the
    NFE the full range needs for the same FD (``None`` when it never gets there on the measured curve)."""
    rows = []
    for name, rec in doc["models"].items():
        paired = {(p["sampler"], p["variant"], p["nfe"]): p for p in rec.get("paired", [])}
        summ = doc.get("summary", {}).get(name, {}).get("samplers", {})
        for sampler, s in summ.items():
            for r in s["nfe_saved"]:
                if r["nfe"] not in nfes:
                    continue
                p = paired.get((sampler, r["variant"], r["nfe"]))
                rows.append({"model (n)": f"{name} ({rec['n']})", "sampler": sampler, "variant": r["variant"],
                             "NFE": r["nfe"], "FD": r["fd"], "FD full range": r["fd_full"],
                             "paired FD diff [95%]": "-" if p is None else f"{num(p['diff'])} {_ci(p)}",
                             "full-range NFE at equal FD": r["full_nfe_at_equal_fd"] if r["full_nfe_at_equal_fd"]
                             is not None else "> largest", "floor": rec["floor_fd"]})
    return rows


def start_rows(doc: dict) -> list[dict]:
    """Per model and sampler: the best start of the scan and its distance to each critical-time estimate."""
    rows = []
    for name, m in doc.get("summary", {}).items():
        for sampler, s in m["samplers"].items():
            row = {"model": name, "sampler": sampler, "best start": s["best_start"], "FD there": s["best_fd"]}
            for key, label in ESTIMATES:
                v = m["estimates"].get(key)
                d = s["best_minus"].get(key)
                row[label] = "-" if v is None else f"{num(v)} ({'+' if d >= 0 else ''}{num(d)})"
            rows.append(row)
    return rows


def budget_findings(doc: dict, nfe: int = 8, variant: str = "late") -> list[str]:
    """One sentence per model and sampler: ``variant`` against the full range at ``nfe`` with the paired interval."""
    out = []
    for name, rec in doc["models"].items():
        for p in rec.get("paired", []):
            if p["nfe"] == nfe and p["variant"] == variant:
                verdict = "lower" if p["hi"] < 0 else "higher" if p["lo"] > 0 else "no resolved difference"
                out.append(f"{name} ({p['sampler']}, NFE {nfe}, n = {rec['n']}): {variant} minus full-range FD "
                           f"{num(p['diff'])} {_ci(p)}: {verdict}.")
    return out


def render_late_start(doc: dict, figure: str = "late_start.png", key: str = "late-start", findings=None) -> Section:
    """The section (``figure``: the benchmark's curves PNG, beside the report); ``findings`` default to
    :func:`budget_findings`."""
    html = (f'<p><img src="{figure}"></p>'
            "<h3>Small budgets (NFE 6 and 8)</h3>"
            "<p class='note'>FD against held-out data (pixels for the analytic models; the evaluation classifier's "
            "features for the trained net). Paired: every setting starts from the same standard normal draws; the "
            "interval is a bootstrap over samples. 'floor': held-out data against held-out data at the same n.</p>"
            + table(budget_rows(doc))
            + "<h3>Best start of the scan and the critical-time estimates (logsnr; best start minus estimate in "
              "brackets)</h3>" + table(start_rows(doc)))
    return Section(key, "Late start and critical grid", html,
                   question="Does starting late from the matching Gaussian, or placing the steps by the measured step "
                            "density, lower FD at a small NFE; and where is the best start relative to t_c?",
                   findings=list(budget_findings(doc) if findings is None else findings))
