"""benchmarks/guidance_estimators.py: the estimator records (size, CPU time, counted network evaluations) that the
benchmark keeps beside a sweep's cost (docs/guidance.md section 5)."""

import importlib.util
import json
from pathlib import Path

from critdiff.experiments.guide import estimators as E
from critdiff.experiments.probe import probe_steps

ROOT = Path(__file__).parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_guidance_estimators", ROOT / "benchmarks" / "guidance_estimators.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tiny_cfg(B):
    fields, _, _ = B.TINY["tiny-patch-a"]
    sizes = dict(batch=6, steps=8, width=2.0, n_boot=50, n_boot_set=10)  # main()'s --tiny sizes
    return B._config(fields, "", 6, sizes, arms=("sweep",), sweep=3, tc_logsnr=None)


def test_estimator_records_count_the_evaluations_of_a_sized_run(tmp_path):
    """With ``n`` = 2: the commitment run evaluates the model 2 x N along the trajectories plus k x 2 x (N - i) for
    the clones of each probed step i (closed-form count), the profile 2 x N per sample (conditional and
    unconditional at every step; the classifier's evaluations are not the model's) plus, on this analytic model,
    2 x (N - 1) recomputed in the backward pass (SENS_RECOMPUTE: the first step's inputs carry no gradient, so its
    two evaluations are not recomputed); the sizes and the CPU time are
    recorded, the family's other members cost nothing more, and a second call reads the cache."""
    B = _bench()
    cfg = _tiny_cfg(B)
    clf, _ = B._classifier("", None, cfg)
    path = tmp_path / "estimators.json"
    names = ["commitment", "commitment-midpoint", "commitment-slope", "sensitivity", "sensitivity-box"]
    out = B.estimators(cfg, clf, path, names, n=2)
    N = cfg.steps
    clones = sum(N - i for i in probe_steps(N, E.COMMIT_TIMES))
    assert out["commitment"]["evaluations"] == 2 * N + E.COMMIT_K * 2 * clones
    assert out["commitment"]["cost"] == {"states": 2, "clones": E.COMMIT_K, "probed_steps": len(probe_steps(N, E.COMMIT_TIMES))}
    assert out["commitment-midpoint"]["evaluations"] == 0 and out["commitment-slope"]["cost"]["states"] == 2
    assert cfg.kind in E.SENS_RECOMPUTE
    assert out["sensitivity"]["evaluations"] == 2 * (2 * N + 2 * (N - 1)) and out["sensitivity-box"]["evaluations"] == 0
    assert out["sensitivity"]["cost"]["samples"] == 2 and out["sensitivity"]["cost"]["nfe_forward_per_sample"] == 2 * N
    for name in ("commitment", "sensitivity"):
        assert 0 < out[name]["cpu_seconds"] and 0 < out[name]["seconds"]
    assert json.loads(path.read_text()) == json.loads(json.dumps(out))
    assert B.estimators(cfg, clf, path, names, n=2) == json.loads(path.read_text())  # cached: nothing recomputed


def test_without_the_classifier_the_classifier_estimators_say_so(tmp_path):
    """A missing evaluation classifier: ``sensitivity`` / ``sensitivity-box`` and the commitment family are recorded
    with the reason instead of a value (``sensitivity`` is NOT silently replaced by the implicit profile), while
    ``sensitivity-implicit`` needs none; ``_classifier`` returns None only when told a missing folder is allowed."""
    B = _bench()
    cfg = _tiny_cfg(B)
    out = B.estimators(cfg, None, tmp_path / "e.json", ["sensitivity", "sensitivity-box", "commitment-midpoint",
                                                         "sensitivity-implicit"], n=2)
    assert "not on disk" in out["sensitivity"]["error"] and "not on disk" in out["sensitivity-box"]["error"]
    assert "needs a classifier" in out["commitment-midpoint"]["error"]
    assert "logsnr" in out["sensitivity-implicit"] and out["sensitivity-implicit"]["cost"]["samples"] == 2
    assert B._classifier(str(tmp_path), "clf_none", cfg, allow_missing=True) == (None, None)


def test_a_model_that_names_its_sampler_keeps_it():
    """The protocol's sizes (DDPM) do not override a model's own sampler: the DDIM validation model samples with
    DDIM; the others with the protocol's."""
    B = _bench()
    sizes = dict(batch=50, steps=20, schedule="vp-linear", sampler="ddpm", spacing="logsnr")
    ddim = B._config(B.VALIDATION["patch-textures16-ddim"][0], "", 50, sizes)
    ddpm = B._config(B.MODELS["patch-textures16"][0], "", 50, sizes)
    assert ddim.sampler == "ddim" and ddpm.sampler == "ddpm"
    assert ddim.to_dict() == {**ddpm.to_dict(), "sampler": "ddim"}


def test_distance_table_gives_every_cell_a_value_or_a_reason():
    """The distance table: ``estimate - peak`` with ``*`` inside the peak's interval, the reason where an estimator
    has no value (a missing classifier, a deterministic sampler, not run), and guide's default's mean |error| on the
    same models; the sweep's network evaluations are NFE per sample summed over centres times n."""
    B = _bench()
    from critdiff.experiments.guide.config import DEFAULT_TC_FROM

    peak = {"logp_peak_fit": 0.0, "logp_peak_ci": [-0.2, 0.3]}
    rows = {"patch-textures16": {"model": "patch-textures16", "peak_logsnr": 0.0, "sweep_peak": peak,
                                 "config": {"n": 10}, "sweep": [{"nfe": 23.0}, {"nfe": 22.5}],
                                 "estimators": {"commitment-slope": {"logsnr": 0.25},
                                                "sensitivity": {"error": "needs the evaluation classifier, which "
                                                                         "is not on disk"},
                                                "commitment": {"error": "sampler: the commitment time needs a "
                                                                        "stochastic sampler"},
                                                DEFAULT_TC_FROM: {"logsnr": -1.5}}}}
    res = B.finish({"rows": rows}, {"patch-textures16": None}, DEFAULT_TC_FROM)
    line = {r.split(" | ")[0][2:]: r.split(" | ") for r in B.distance_table(res).splitlines()[2:]}
    assert line["commitment-slope"][1] == "+0.25*" and line["commitment-slope"][-1] == "1.5 |"
    assert line["sensitivity"][1] == "no classifier" and line["commitment"][1] == "deterministic sampler"
    assert line["sensitivity-implicit"][1] == "not run"
    assert B.sweep_nfe(rows["patch-textures16"]) == 455
    assert B.sweep_nfe({**rows["patch-textures16"], "sweep_cost": {"nfe": 450}}) == 450  # counted, where stored


def test_estimator_batch_sets_the_profiles_backward_passes(tmp_path):
    """``--estimator-batch 1`` (the memory knob of the patch model on digits) runs the sweep phase's profile one
    sample per backward pass: 3 samples, 3 backward passes; no sweep is run with ``--no-sweep``."""
    B = _bench()
    out = tmp_path / "r.json"
    B.main(["--tiny", "--phase", "sweep", "--no-sweep", "--only", "tiny-patch-a", "--estimators", "sensitivity",
            "--estimator-n", "3", "--estimator-batch", "1", "--work", str(tmp_path / "w"), "--out", str(out),
            "--tc-from", "speciation"])
    e = json.loads(out.read_text())["rows"]["tiny-patch-a"]["estimators"]["sensitivity"]
    assert e["cost"] == {"samples": 3, "nfe_forward_per_sample": 16.0, "backward_passes": 3}


def test_a_recreated_net_takes_its_stored_rows_place_only_with_its_own_sweep():
    """A stored row whose net was retrained as another model (REPLACES) stays in the result as history; the six
    that RULE uses take the re-created row instead once it has a sweep, never its estimates under the stored name;
    and the stored name can no longer be run (the net under --runs is the re-created one)."""
    import pytest

    B = _bench()
    new, (old, _) = next(iter(B.REPLACES.items()))
    assert new in B.RECREATED and old in B.MODELS
    rows = {k: {"model": k} for k in B.MODELS}
    assert B.originals(rows, B.MODELS) == list(B.MODELS)  # no sweep of the re-created net yet: the stored six
    rows[new] = {"model": new, "estimators": {}}
    assert B.originals(rows, B.MODELS) == list(B.MODELS)
    rows[new]["peak_logsnr"] = 0.0
    six = B.originals(rows, B.MODELS)
    assert new in six and old not in six and len(six) == len(B.MODELS)
    with pytest.raises(SystemExit) as exc:
        B.main(["--phase", "sweep", "--no-sweep", "--only", old, "--out", "/nonexistent/r.json"])
    assert exc.value.code == 2
