"""Bad input for every command (docs/reliability.md R5): exit status exactly 2, no traceback, one message
that names the argument or file at fault. The cases come from a table; the files they need (a regular
file as --out, labels files, damaged trial logs, a trained folder) are written here, in a temporary folder.

Most cases run in-process through ``critdiff.cli.main(argv)``; a handful run as real subprocesses to check
that nothing but the one-line message reaches stderr.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from critdiff.cli import main

SAMPLE = ["sample", "--model", "gaussian", "--data", "digits:size=8,n=40", "--steps", "2", "--n", "2"]
GUIDE = ["guide", "--model", "gaussian", "--data", "textures:size=8,per_class=6", "--n", "2", "--batch", "2", "--steps", "2",
         "--arms", "none,tc", "--tc-logsnr", "0.5"]
PROBE = ["probe", "--model", "gaussian", "--data", "stripes:size=8,n=20,wavelength=4", "--steps", "3", "--n", "2",
         "--times", "3", "--homogeneous", "0", "--linear", "0", "--no-chi"]
TRAIN = ["train", "--data", "digits:size=8,n=32", "--steps", "2", "--batch", "8", "--width", "8",
         "--channel-mult", "1,2", "--threads", "1"]
CLF = ["train-classifier", "--data", "digits:size=8,n=40", "--steps", "2", "--batch", "8", "--width", "8"]
THEORY = ["theory", "--data", "stripes:size=8,n=20,wavelength=4"]

# (flags, fragment) for the options shared by sample, guide and probe (model, data, stencil, schedule)
MODEL_BAD = [
    (["--model", "foo"], "model"), (["--model", "net:{tmp}/nothing"], "nothing"), (["--model", "net"], "model"),
    (["--model", "diffusers:{tmp}/nothing"], "nothing"), (["--data", "foo"], "data"), (["--data", "digits:size=-1"], "size"),
    (["--data", "digits:size=abc"], "size"), (["--data", "digits:n=0"], "n"), (["--data", "digits:bogus=1"], "bogus"),
    (["--data", ""], "data"), (["--data", "npy:{tmp}/missing.npy"], "missing.npy"),
    (["--data", "npy:{tmp}/x.npy,labels={tmp}/huge.npy"], "huge.npy"),
    (["--data", "npy:{tmp}/x.npy,labels={tmp}/negative.npy"], "negative.npy"),
    (["--data", "npy:{tmp}/x.npy,labels={tmp}/short.npy"], "short.npy"),
    (["--data", "npy:{tmp}/x.npy,labels={tmp}/float.npy"], "float.npy"),
    (["--data", "npy:{tmp}/afile"], "afile"), (["--data", "idx:{tmp}/afile"], "afile"),
    (["--data", "folder:{tmp}/nothing"], "nothing"),
    (["--model", "patch", "--stencil", "square:0"], "stencil"), (["--model", "patch", "--stencil", "foo:3"], "stencil"),
    (["--model", "patch", "--stencil", "square:x"], "stencil"), (["--model", "patch", "--stencil", "dilated:3"], "stencil"),
    (["--boundary", "mirror"], "--boundary"), (["--pool", "some"], "--pool"),
    (["--schedule", "foo"], "schedule"), (["--schedule", "vp-linear:beta_max=-1"], "beta_max"),
    (["--schedule", "vp-linear:beta_min=nan"], "beta_min"), (["--schedule", "vp-linear:foo=1"], "foo"),
    (["--schedule", "vp-cosine:s=-1"], "s must"), (["--schedule", "ve:sigma_min=-1"], "sigma_lo"),
    (["--schedule", "edm:t_min=5,t_max=1"], "t_min"), (["--schedule", "vp-linear:t_max=inf"], "t_max"),
    (["--schedule", "vp-linear:3"], "schedule"), (["--sampler", "foo"], "sampler"),
    (["--spacing", "cubic"], "--spacing"), (["--steps", "0"], "steps"), (["--steps", "x"], "--steps"),
    (["--seed", "-1"], "seed"), (["--seed", "1.5"], "--seed"),
    (["--out", ""], "out"), (["--out", "{tmp}/afile"], "afile"), (["--out", "{tmp}/afile/sub"], "afile"),
    (["--out", "/proc/critdiff-fuzz"], "out"),
]
SAMPLE_BAD = [
    (["--n", "0"], "n"), (["--n", "-2"], "n"), (["--label", "-1"], "label"), (["--label", "99"], "label"),
    (["--dtype", "float16"], "--dtype"), (["--sampler", "ddim:eta=-1"], "eta"), (["--bogus"], "--bogus"),
]
GUIDE_BAD = [
    (["--tc-logsnr", "nan"], "tc-logsnr"), (["--tc-logsnr", "inf"], "tc-logsnr"), (["--tc-logsnr", "-inf"], "tc-logsnr"),
    (["--tc-logsnr", "x"], "--tc-logsnr"), (["--threshold", "nan"], "threshold"), (["--threshold", "inf"], "threshold"),
    (["--arms", "none,none"], "arms"), (["--arms", "foo"], "arms"), (["--arms", ","], "arms"),
    (["--arms", "tc,random,tc"], "arms"), (["--n", "0"], "n"), (["--batch", "0"], "batch"), (["--height", "-1"], "height"),
    (["--height", "nan"], "height"), (["--width", "0"], "width"), (["--width", "inf"], "width"),
    (["--baseline", "2"], "--baseline"), (["--shape", "tri"], "--shape"), (["--sweep", "0"], "sweep"),
    (["--interval", "2", "1"], "interval"), (["--interval", "1"], "--interval"), (["--indicator", "x"], "--indicator"),
    (["--classifier", "{tmp}/nothing"], "nothing"), (["--classifier", "{tmp}/afile"], "afile"),
    (["--out", "{tmp}/bad_json"], "line 4"), (["--out", "{tmp}/renamed_key"], "line 4"),
    (["--out", "{tmp}/unknown_type"], "line 3"), (["--out", "{tmp}/nan_tc"], "line 2"),
    (["--out", "{tmp}/other_config"], "different configuration"), (["--out", "{tmp}/not_json_head"], "line 1"),
]
PROBE_BAD = [
    (["--n", "0"], "n"), (["--times", "0"], "times"), (["--probes", "0"], "probes"), (["--n-boot", "0"], "n_boot"),
    (["--homogeneous", "-1"], "homogeneous"), (["--linear", "-1"], "linear"), (["--linear", "4", "--linear-n", "0"], "linear_n"),
    (["--linear", "4", "--linear-eps", "-1"], "linear_eps"), (["--eps-scan", "a,b"], "eps-scan"),
    (["--window", "-1"], "window"), (["--threads", "0"], "threads"), (["--dtype", "int8"], "--dtype"),
    (["--label", "-3"], "label"), (["--times", "x"], "--times"),
]
TRAIN_BAD = [
    (["--steps", "0"], "steps"), (["--batch", "0"], "batch"), (["--lr", "0"], "lr"), (["--lr", "-1"], "lr"),
    (["--lr", "nan"], "lr"), (["--warmup", "-1"], "warmup"), (["--ema", "1"], "ema"), (["--ema", "-0.1"], "ema"),
    (["--cond-drop", "1"], "cond_drop"), (["--cond-drop", "-1"], "cond_drop"), (["--width", "7"], "multiple of 8"),
    (["--width", "0"], "width"), (["--width", "12"], "multiple of 8"), (["--channel-mult", "a,b"], "channel-mult"),
    (["--channel-mult", "1,,2"], "channel-mult"), (["--res-blocks", "0"], "num_res_blocks"),
    (["--padding", "reflect"], "--padding"), (["--prediction", "x0"], "--prediction"), (["--seed", "-1"], "seed"),
    (["--checkpoint-every", "0"], "checkpoint_every"), (["--device", "foo"], "device"),
    (["--device", "cuda:0"], "device"), (["--device", "cuda:7"], "device"), (["--device", "cuda:-1"], "device"),
    (["--threads", "0"], "threads"), (["--schedule", "vp-linear:beta_max=-1"], "beta_max"), (["--schedule", "x"], "schedule"),
    (["--data", "npy:{tmp}/x.npy,labels={tmp}/huge.npy"], "huge.npy"), (["--data", "foo"], "data"),
    (["--out", "{tmp}/nothing_here", "--resume"], "resume"), (["--out", "{tmp}/trained"], "already holds a checkpoint"),
    (["--out", "{tmp}/trained", "--resume", "--width", "16"], "width"),
    (["--out", "{tmp}/trained", "--resume", "--lr", "0.5"], "lr"),
    (["--out", "{tmp}/trained", "--resume", "--batch", "4"], "batch"),
    (["--out", ""], "out"), (["--out", "{tmp}/afile"], "afile"), (["--out", "{tmp}/afile/x"], "afile"),
    (["--out", "{tmp}/corrupt_ckpt", "--resume"], "truncated or corrupt"), (["--unknown-flag"], "--unknown-flag"),
]
CLF_BAD = [
    (["--steps", "0"], "steps"), (["--batch", "0"], "batch"), (["--lr", "-1"], "lr"), (["--width", "0"], "width"),
    (["--holdout", "1.5"], "holdout"), (["--holdout", "-0.1"], "holdout"), (["--seed", "-1"], "seed"),
    (["--device", "foo"], "device"), (["--device", "cuda:0"], "device"), (["--threads", "0"], "threads"),
    (["--data", "foo"], "data"), (["--data", "stripes:size=8,n=20,wavelength=4"], "classes"),
    (["--data", "npy:{tmp}/x.npy,labels={tmp}/huge.npy"], "huge.npy"),
    (["--out", ""], "out"), (["--out", "{tmp}/afile"], "afile"), (["--out", "{tmp}/afile/x"], "afile"),
    (["--steps", "two"], "--steps"),
]
THEORY_BAD = [
    (["--data", "foo"], "data"), (["--stencil", "foo"], "stencil"), (["--stencil", "square:0"], "stencil"),
    (["--schedule", "foo"], "schedule"), (["--schedule", "vp-linear:beta_max=-1"], "beta_max"), (["--seed", "-1"], "seed"),
    (["--out", ""], "out"), (["--out", "{tmp}/afile"], "afile"), (["--out", "{tmp}/afile/x"], "afile"),
    (["--data", "npy:{tmp}/missing.npy"], "missing.npy"), (["--data", "digits:size=0"], "size"),
]
DEMO_BAD = [
    (["--out", ""], "out"), (["--out", "{tmp}/afile"], "afile"), (["--out", "{tmp}/afile/x"], "afile"),
    (["--out", "/proc/critdiff-demo"], "out"), (["--quick", "--bogus"], "--bogus"), (["--quick=1"], "--quick"),
]


def table():
    rows = []
    for base, extra in ((SAMPLE, SAMPLE_BAD), (GUIDE, GUIDE_BAD), (PROBE, PROBE_BAD)):
        for flags, frag in MODEL_BAD + extra:
            out = [] if "--out" in flags else ["--out", "{tmp}/run_" + base[0]]
            rows.append((base + flags + out, frag))
    for base, extra in ((TRAIN, TRAIN_BAD), (CLF, CLF_BAD), (THEORY, THEORY_BAD), (["demo"], DEMO_BAD)):
        for flags, frag in extra:
            out = [] if "--out" in flags else ["--out", "{tmp}/run_" + base[0]]
            rows.append((base + flags + out, frag))
    rows.append((["guide", "--model", "gaussian", "--out", "{tmp}/g"], "data"))
    rows.append((["theory", "--out", "{tmp}/t"], "--data"))
    rows.append((["sample", "--model", "patch", "--out", "{tmp}/s"], "data"))
    rows.append((["nocommand"], "nocommand"))
    rows += [(["report", "{tmp}/nothing-here"], "results.json"), (["report", "{tmp}/afile"], "afile"),
             (["report"], "out"), (["report", "{tmp}/x", "--bogus"], "--bogus")]
    rows += [(["guide-config", "--tc-logsnr", "0"], "--model"), (["guide-config", "--model", "diffusers:{tmp}/x"], "diffusers directory"),
             (["guide-config", "--model", "patch", "--tc-logsnr", "0"], "model"),
             (["guide-config", "--model", "diffusers:{tmp}/x", "--tc-logsnr", "zero"], "--tc-logsnr"),
             (["guide-config", "--model", "diffusers:{tmp}/x", "--tc-logsnr", "0", "--steps", "two"], "--steps")]
    rows += [(["sweep", "{tmp}/no-spec.toml", "--out", "{tmp}/sw"], "spec"), (["sweep", "--out", "{tmp}/sw"], "spec"),
             (["sweep", "{tmp}/no-spec.toml", "--out", "{tmp}/sw", "--workers", "two"], "--workers"),
             (["sweep", "{tmp}/no-spec.toml", "--out", "{tmp}/sw", "--executor", "dask"], "spec")]
    return rows


CASES = table()


def test_the_table_has_150_distinct_cases_over_every_command():
    assert len({tuple(argv) for argv, _ in CASES}) == len(CASES) >= 150
    from critdiff.cli import COMMANDS

    assert {argv[0] for argv, _ in CASES} >= set(COMMANDS)


def _write_trials(folder, lines):
    folder.mkdir()
    (folder / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" if isinstance(r, dict) else r for r in lines))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every file the cases refer to, made here (the run folders of guide and train by tiny real runs)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "afile").write_text("not a folder\n")
    rng = np.random.default_rng(0)
    np.save(tmp / "x.npy", rng.random((20, 8, 8)).astype(np.float32))
    np.save(tmp / "huge.npy", np.r_[np.arange(19) % 2, 10 ** 9])
    np.save(tmp / "negative.npy", np.r_[np.arange(19) % 2, -1])
    np.save(tmp / "short.npy", np.arange(5))
    np.save(tmp / "float.npy", np.arange(20) / 2)
    good = tmp / "good_guide"
    assert main(GUIDE + ["--out", str(good)]) == 0
    recs = [json.loads(line) for line in (good / "trials.jsonl").read_text().splitlines()]
    assert [r["type"] for r in recs] == ["config", "tc", "estimators", "trial", "trial"]
    bad_json = [json.dumps(r) + "\n" for r in recs]
    bad_json[3] = bad_json[3][:40] + "}\n"
    _write_trials(tmp / "bad_json", bad_json)
    renamed = [dict(r) for r in recs]
    renamed[3]["#ndex"] = renamed[3].pop("index")
    _write_trials(tmp / "renamed_key", renamed)
    _write_trials(tmp / "unknown_type", recs[:2] + [{"type": "mystery"}] + recs[2:])
    _write_trials(tmp / "nan_tc", [recs[0], {**recs[1], "logsnr": None}] + recs[2:])
    _write_trials(tmp / "other_config", [{**recs[0], "hash": "0123"}] + recs[1:])
    _write_trials(tmp / "not_json_head", ["{config\n"] + [json.dumps(r) + "\n" for r in recs[1:]])
    assert main(TRAIN + ["--steps", "1", "--out", str(tmp / "trained")]) == 0
    shutil.copytree(tmp / "trained", tmp / "corrupt_ckpt")
    from critdiff.nets import checkpoint as ckpt

    (ckpt.checkpoint_dir(tmp / "corrupt_ckpt") / ckpt.STATE).write_bytes(b"junk")
    return tmp


def run_in_process(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,fragment", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_naming_the_culprit(argv, fragment, files, capsys):
    argv = [a.replace("{tmp}", str(files)) for a in argv]
    code, err = run_in_process(argv, capsys)
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if "error" in line or line.startswith("critdiff")]
    assert lines and fragment.replace("{tmp}", str(files)).lower() in err.lower(), err


def test_damaged_logs_are_left_as_they_were(files, capsys):
    for name in ("bad_json", "renamed_key", "unknown_type", "nan_tc"):
        before = (files / name / "trials.jsonl").read_bytes()
        assert run_in_process(GUIDE + ["--out", str(files / name)], capsys)[0] == 2
        assert (files / name / "trials.jsonl").read_bytes() == before


def test_nan_tc_writes_nothing(files, capsys):
    out = files / "fresh_nan"
    assert run_in_process(GUIDE + ["--tc-logsnr", "nan", "--out", str(out)], capsys)[0] == 2
    assert not (out / "trials.jsonl").exists()


SUBPROCESS = [CASES[0][0], TRAIN + ["--device", "cuda:0", "--out", "{tmp}/d"], GUIDE + ["--out", "{tmp}/renamed_key"]]


@pytest.mark.parametrize("argv", SUBPROCESS, ids=[" ".join(a[:1] + a[-3:]) for a in SUBPROCESS])
def test_real_process_prints_one_line_and_no_traceback(argv, files):
    argv = [a.replace("{tmp}", str(files)) for a in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    res = subprocess.run([sys.executable, "-m", "critdiff.cli", *argv], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("critdiff")]
    assert len(errors) == 1, res.stderr
