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
# each case is a fresh interpreter (~4 CPU-s of imports): the default suite keeps the first, make test-slow runs all


@pytest.mark.parametrize("argv", [pytest.param(a, marks=() if i == 0 else pytest.mark.slow) for i, a in
                                  enumerate(SUBPROCESS)], ids=[" ".join(a[:1] + a[-3:]) for a in SUBPROCESS])
def test_real_process_prints_one_line_and_no_traceback(argv, files):
    argv = [a.replace("{tmp}", str(files)) for a in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    res = subprocess.run([sys.executable, "-m", "critdiff.cli", *argv], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("critdiff")]
    assert len(errors) == 1, res.stderr


# =====================================================================================================================
# Bad input, second round (issue #24; docs/reliability.md R4.4, R7-R10). Every case runs in a child process under a
# 3 GB address-space limit and a 60 s alarm (a runaway fails the case instead of the machine), many cases per child:
# exit 2, no traceback, the fragment naming the argument or the file and field. ``nothing`` cases also check that
# the --out folder was not created (everything checkable was checked before the first write).
# =====================================================================================================================
BIG = str(2 ** 64)
SMALL_SAMPLE = ["sample", "--model", "gaussian", "--data", "digits:size=8,n=40", "--steps", "2", "--n", "2"]
NET = ["sample", "--model", "net:{tmp}/{net}", "--steps", "2", "--n", "2"]
DIFF = ["sample", "--model", "diffusers:{tmp}/{diff}", "--steps", "2", "--n", "1", "--schedule", "vp-linear",
        "--sampler", "euler"]


def _net(name):
    return [a.replace("{net}", name) for a in NET]


def _diff(name):
    return [a.replace("{diff}", name) for a in DIFF]


def _sweep(name):
    return ["sweep", "{tmp}/" + name + ".toml"]


# (rule, argv without --out, fragment, nothing-written check); --out {tmp}/r2_<index> is added unless given
ROUND2 = [
    # R7: resources bounded before allocation
    ("R7", GUIDE + ["--n", "1000000000"], "--n", True),
    ("R7", ["sample", "--model", "patch", "--data", "mnist:size=5000,n=100", "--steps", "2"], "size= in --data", True),
    ("R7", _net("tall_net"), "height", True),
    ("R7", GUIDE + ["--arms", "sweep", "--sweep", "1000000000"], "--sweep", True),
    ("R7", SMALL_SAMPLE + ["--steps", "1000000000"], "--steps", True),
    ("R7", SMALL_SAMPLE + ["--n", "100000000"], "--n", True),
    ("R7", PROBE + ["--n", "100000000"], "--n", True),
    ("R7", TRAIN + ["--width", "8192", "--channel-mult", "1,1"], "--width", True),
    ("R7", TRAIN[:2] + ["twopoint:n=100000000,size=64"] + TRAIN[3:], "size= in --data", True),
    ("R7", CLF + ["--width", "8000"], "--width", True),
    ("R7", ["theory", "--data", "stripes:size=1024,n=1000,wavelength=4"], "size= in --data", True),
    ("R7", _sweep("huge_grid"), "grid values", True),
    ("R7", _sweep("huge_unit"), "--n", True),
    ("R7", SMALL_SAMPLE[:4] + ["digits:size=100000"] + SMALL_SAMPLE[5:], "size", True),
    ("R7", PROBE[:4] + ["stripes:size=8,channels=1000"] + PROBE[5:], "channels", True),
    ("R7", _diff("diff_huge_size"), "sample_size", True),
    ("R7", _diff("diff_huge_T"), "num_train_timesteps", True),
    ("R7", _net("wide_net"), "width", True),
    ("R7", _net("deep_net"), "channel_mult", True),
    ("R7", _net("many_class_net"), "n_classes", True),
    ("R7", GUIDE + ["--classifier", "{tmp}/tall_clf"], "height", True),
    ("R7", SMALL_SAMPLE + ["--max-memory", "0"], "max_memory", True),
    ("R7", SMALL_SAMPLE + ["--max-memory", "nan"], "max_memory", True),
    ("R7", SMALL_SAMPLE + ["--max-memory", "0.00001"], "--max-memory is 1e-05 GB", True),
    ("R7", ["guide", "--model", "gaussian", "--data", "twopoint:n=10000000000", "--n", "2", "--batch", "2",
            "--steps", "2", "--arms", "none,tc", "--tc-logsnr", "0.5"], "memory", True),
    ("R7", ["sample", "--model", "empirical", "--data", "grf:n=10000000,size=64", "--steps", "2"], "memory", True),
    # R8: every file read is an input, named with its field
    ("R8", ["report", "{tmp}/res_no_result"], "sections.demo.result", False),
    ("R8", ["report", "{tmp}/res_not_json"], "not valid json", False),
    ("R8", ["report", "{tmp}/res_sections_list"], "sections", False),
    ("R8", ["report", "{tmp}/res_outside"], "folder", False),
    ("R8", ["report", "{tmp}/res_unknown_kind"], "sections.demo.result", False),
    ("R8", ["report", "{tmp}/res_missing_field"], "sections.demo.result", False),
    ("R8", _diff("diff_neg_T"), "num_train_timesteps", True),
    ("R8", _diff("diff_beta_text"), "beta_start", True),
    ("R8", _diff("diff_no_in_channels"), "in_channels", True),
    ("R8", _diff("diff_bad_index_json"), "model_index.json", True),
    ("R8", _diff("diff_unknown_scheduler"), "FooScheduler", True),
    ("R8", _net("net_not_json"), "config.json", True),
    ("R8", _net("net_bad_kind"), "kind", True),
    ("R8", _net("net_bad_step"), "step", True),
    ("R8", _net("net_bad_prediction"), "prediction", True),
    ("R8", _net("net_junk_ema"), "ema.safetensors", True),
    ("R8", GUIDE + ["--classifier", "{tmp}/clf_no_classes"], "n_classes", True),
    ("R8", _sweep("data_not_text"), "data", True),
    ("R8", _sweep("not_toml"), "not valid toml", True),
    # R9: no meaningless success
    ("R9", _net("nan_net"), "non-finite", True),
    ("R9", ["guide", "--model", "net:{tmp}/inf_net", "--data", "digits:size=8,n=40", "--n", "2", "--batch", "2",
            "--steps", "2", "--arms", "none,tc", "--tc-logsnr", "0.5"], "non-finite", True),
    ("R9", ["probe", "--model", "net:{tmp}/nan_net"] + PROBE[3:], "non-finite", True),
    ("R9", _sweep("repeated_value"), "more than once", True),
    ("R9", _sweep("same_run"), "same run", True),
    ("R9", ["train", "--out", "{tmp}/trained2", "--resume", "--steps", "1"], "steps", False),
    ("R9", _net("net_missing_field"), "emb_freqs", True),
    ("R9", _net("net_extra_field"), "unknown field", True),
    ("R9", _diff("diff_unknown_unet_class"), "FooNet", True),
    ("R9", _diff("diff_index_not_pair"), "scheduler", True),
    ("R9", _diff("diff_nan_weights"), "non-finite", True),
    ("R9", GUIDE + ["--classifier", "{tmp}/nan_clf"], "non-finite", True),
    # R5 (messages name the culprit)
    ("R5", SMALL_SAMPLE + ["--seed", BIG], "seed", True),
    ("R5", GUIDE + ["--seed", str(2 ** 70)], "seed", True),
    ("R5", TRAIN + ["--seed", BIG], "seed", True),
    ("R5", CLF + ["--seed", BIG], "seed", True),
    ("R5", THEORY + ["--seed", BIG], "seed", True),
    ("R5", PROBE + ["--seed", BIG], "seed", True),
    ("R5", SMALL_SAMPLE[:4] + ["digits:size=8,n=40,seed=" + BIG] + SMALL_SAMPLE[5:], "seed", True),
    ("R5", _diff("diff_size_text"), "sample_size", True),
    ("R5", _diff("diff_size_one"), "sample_size", True),
    ("R5", _diff("diff_in_channels_text"), "in_channels", True),
    ("R5", _net("net_mult_text"), "channel_mult", True),
    ("R5", _net("net_height_text"), "height", True),
    ("R5", ["report", "{tmp}/res_list"], "results.json", False),
    ("R5", SMALL_SAMPLE + ["--max-memory", "abc"], "--max-memory", True),
    ("R5", _sweep("negative_seed"), "seed", True),
    # R10: everything checkable from the configuration, before the first write
    ("R10", GUIDE + ["--classifier", "{tmp}/clf16"], "takes images", True),
    ("R10", _sweep("missing_classifier"), "classifier", True),
    ("R10", _sweep("one_bad_data"), "data", True),
    ("R10", _sweep("one_missing_net"), "model", True),
    ("R10", GUIDE + ["--classifier", "{tmp}/clf_2classes"], "classes", True),
    ("R10", ["sample", "--model", "net:{tmp}/trained", "--data", "digits:size=16,n=40", "--steps", "2", "--n", "2"],
     "shape", True),
    # R4.4: one folder, one kind of run
    ("R4.4", _sweep("ok_sweep") + ["--out", "{tmp}/good_guide"], "holds a 'guide' run", False),
    ("R4.4", PROBE + ["--out", "{tmp}/kind_sample"], "holds a 'sample' run", False),
    ("R4.4", SMALL_SAMPLE + ["--out", "{tmp}/trained"], "holds a 'train' run", False),
    ("R4.4", GUIDE + ["--out", "{tmp}/trained"], "holds a 'train' run", False),  # (report reads any run folder)
    ("R4.4", GUIDE + ["--out", "{tmp}/kind_sample"], "holds a 'sample' run", False),
    ("R4.4", CLF + ["--out", "{tmp}/trained"], "holds a 'train' run", False),
    ("R4.4", SMALL_SAMPLE + ["--out", "{tmp}/kind_theory"], "holds a 'theory' run", False),
]
ROUND2 = [(r, argv if "--out" in argv or argv[0] == "report"
           else argv + ["--out", f"{{tmp}}/r2_{i}"], frag, nothing) for i, (r, argv, frag, nothing) in enumerate(ROUND2)]
# the default suite runs one child with a representative case or two per rule; the rest are slow
FAST = {0, 2, 5, 11, 14, 23, 26, 32, 37, 43, 46, 49, 51, 54, 58, 67, 71, 75, 77, 78}


def test_round2_has_60_new_distinct_cases_over_the_six_rules():
    assert len({tuple(a) for _, a, _, _ in ROUND2}) == len(ROUND2) >= 60
    old = {tuple(a) for a, _ in CASES}
    assert not old & {tuple(a) for _, a, _, _ in ROUND2}
    rules = [r for r, *_ in ROUND2]
    assert {r: rules.count(r) >= 6 for r in set(rules)} == {r: True for r in ("R7", "R8", "R9", "R5", "R10", "R4.4")}
    assert {ROUND2[i][0] for i in FAST} == set(rules)


def _edit_json(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _copy_net(tmp, name, change=None, weights=None):
    """A copy of the tiny trained network with its config (``change(net_dict, record)``) or EMA weights edited."""
    from critdiff.nets import checkpoint as ckpt

    shutil.copytree(tmp / "trained", tmp / name)
    d = ckpt.checkpoint_dir(tmp / name)
    if change is not None:
        _edit_json(d / ckpt.CONFIG, lambda doc: change(doc["net"], doc))
    if weights is not None:
        weights(d / ckpt.EMA)
    return d


def _poison(path, value):
    """Replace the first floating tensor of a safetensors file by ``value`` everywhere (a valid file, bad numbers)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    key = next(k for k, t in tensors.items() if t.is_floating_point())
    tensors[key] = tensors[key].clone().fill_(value)
    save_file(tensors, str(path), metadata={"step": "1", "format": "critdiff"})


def _classifier(folder, side, n_classes):
    """A classifier folder as train-classifier writes it (config, weights), from an untrained network."""
    import torch

    from critdiff.io import save_json
    from critdiff.nets import checkpoint as ckpt
    from critdiff.nets.classifier import Classifier, ClassifierConfig

    cfg = ClassifierConfig(channels=1, height=side, width_px=side, n_classes=n_classes, width=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ckpt.save_weights(folder / ckpt.WEIGHTS, Classifier(cfg), 0)
    save_json(folder / ckpt.CONFIG, {"kind": "classifier", "net": cfg.to_dict(), "train": {}, "step": 0})


def _toml(tmp, name, text):
    (tmp / f"{name}.toml").write_text(text.replace("{tmp}", str(tmp)))


@pytest.fixture(scope="module")
def round2(files):
    """The files of the second-round cases, next to the first round's (tiny real runs where a folder is needed)."""
    import torch

    tmp = files
    from critdiff.outdir import KIND_NAME

    # folders of one kind of run each (a real sample run: its result.json feeds the results.json cases)
    assert main(SAMPLE + ["--out", str(tmp / "kind_sample")]) == 0
    (tmp / "kind_theory").mkdir()
    (tmp / "kind_theory" / KIND_NAME).write_text("theory\n")
    _copy_net(tmp, "trained2", change=lambda n, r: r.update(step=5))  # a run at step 5 (only its record is read)
    _classifier(tmp / "clf_ok", 8, 10)  # untrained classifiers of the right layout (the metric is never reached)
    _classifier(tmp / "clf16", 16, 10)
    _classifier(tmp / "clf_2classes", 8, 2)
    (tmp / "clf_ok" / KIND_NAME).write_text("train-classifier\n")
    # networks with edited configs or weights
    _copy_net(tmp, "tall_net", lambda n, r: n.update(height=1000000))
    _copy_net(tmp, "wide_net", lambda n, r: n.update(width=100000))
    _copy_net(tmp, "deep_net", lambda n, r: n.update(channel_mult=[1] * 40))
    _copy_net(tmp, "many_class_net", lambda n, r: n.update(n_classes=10 ** 9))
    _copy_net(tmp, "net_missing_field", lambda n, r: n.pop("emb_freqs"))
    _copy_net(tmp, "net_extra_field", lambda n, r: n.update(colour="blue"))
    _copy_net(tmp, "net_mult_text", lambda n, r: n.update(channel_mult="abc"))
    _copy_net(tmp, "net_height_text", lambda n, r: n.update(height="16"))
    _copy_net(tmp, "net_bad_prediction", lambda n, r: n.update(prediction="x0"))
    _copy_net(tmp, "net_bad_kind", lambda n, r: r.update(kind="banana"))
    _copy_net(tmp, "net_bad_step", lambda n, r: r.update(step="abc"))
    (_copy_net(tmp, "net_not_json") / "config.json").write_text('{"kind": "unet", "net": {')
    _copy_net(tmp, "nan_net", weights=lambda p: _poison(p, float("nan")))
    _copy_net(tmp, "inf_net", weights=lambda p: _poison(p, float("inf")))
    _copy_net(tmp, "net_junk_ema", weights=lambda p: p.write_bytes(b"junk"))
    # classifiers
    for name, change in (("tall_clf", lambda doc: doc["net"].update(height=1000000)),
                         ("clf_no_classes", lambda doc: doc["net"].pop("n_classes"))):
        shutil.copytree(tmp / "clf_ok", tmp / name)
        _edit_json(tmp / name / "config.json", change)
    shutil.copytree(tmp / "clf_ok", tmp / "nan_clf")
    _poison(tmp / "nan_clf" / "weights.safetensors", float("nan"))
    # results.json of critdiff report
    run = json.loads((tmp / "kind_sample" / "result.json").read_text())["result"]
    good = {"title": "t", "meta": {}, "sections": {"demo": {"kind": "sample", "result": run, "folder": "."}}}
    bad = {"res_no_result": lambda d: d["sections"]["demo"].pop("result"),
           "res_sections_list": lambda d: d.update(sections=[]),
           "res_outside": lambda d: d["sections"]["demo"].update(folder="../elsewhere"),
           "res_unknown_kind": lambda d: d["sections"]["demo"].update(kind="mystery"),
           "res_missing_field": lambda d: d["sections"]["demo"]["result"].pop("shape"),
           "res_ok": lambda d: None}
    for name, change in bad.items():
        doc = json.loads(json.dumps(good))
        change(doc)
        shutil.copytree(tmp / "kind_sample", tmp / name, ignore=shutil.ignore_patterns(".critdiff*"))  # the figures
        (tmp / name / "results.json").write_text(json.dumps(doc))
    (tmp / "res_not_json").mkdir()
    (tmp / "res_not_json" / "results.json").write_text("{")
    (tmp / "res_list").mkdir()
    (tmp / "res_list" / "results.json").write_text("[]")
    # diffusers folders
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                 layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(tmp / "diff_ok")
    edits = {
        "diff_huge_size": ("unet/config.json", lambda d: d.update(sample_size=1000000)),
        "diff_huge_T": ("scheduler/scheduler_config.json", lambda d: d.update(num_train_timesteps=10 ** 9)),
        "diff_neg_T": ("scheduler/scheduler_config.json", lambda d: d.update(num_train_timesteps=-5)),
        "diff_beta_text": ("scheduler/scheduler_config.json", lambda d: d.update(beta_start="abc")),
        "diff_no_in_channels": ("unet/config.json", lambda d: d.pop("in_channels")),
        "diff_unknown_scheduler": ("scheduler/scheduler_config.json", lambda d: d.update(_class_name="FooScheduler")),
        "diff_unknown_unet_class": ("model_index.json", lambda d: d.update(unet=["diffusers", "FooNet"])),
        "diff_index_not_pair": ("model_index.json", lambda d: d.update(scheduler="DDPMScheduler")),
        "diff_size_text": ("unet/config.json", lambda d: d.update(sample_size="abc")),
        "diff_size_one": ("unet/config.json", lambda d: d.update(sample_size=[16])),
        "diff_in_channels_text": ("unet/config.json", lambda d: d.update(in_channels="x")),
    }
    for name, (rel, change) in edits.items():
        shutil.copytree(tmp / "diff_ok", tmp / name)
        _edit_json(tmp / name / rel, change)
    shutil.copytree(tmp / "diff_ok", tmp / "diff_bad_index_json")
    (tmp / "diff_bad_index_json" / "model_index.json").write_text("{")
    with torch.no_grad():
        next(iter(unet.parameters())).fill_(float("nan"))
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(tmp / "diff_nan_weights")
    # sweep specs
    probe = '[probe]\nmodel = "gaussian"\ndata = "digits:size=8,n=40"\nsteps = 3\nn = 2\ntimes = 3\nhomogeneous = 0\n' \
            'linear = 0\nchi = false\n'
    guide = '[guide]\nmodel = "gaussian"\ndata = "textures:size=8,per_class=6"\nn = 2\nbatch = 2\nsteps = 2\n' \
            'arms = ["none", "tc"]\ntc_logsnr = 0.5\n'
    axes = "\n".join(f"{k} = [{', '.join(map(str, range(1, 101)))}]" for k in ("seed", "steps", "n", "times", "probes",
                                                                                  "n_boot"))
    _toml(tmp, "huge_grid", probe + "[probe.grid]\n" + axes + "\n")
    _toml(tmp, "huge_unit", probe.replace("n = 2", "n = 100000000"))
    _toml(tmp, "data_not_text", probe.replace('data = "digits:size=8,n=40"', "data = 42"))
    _toml(tmp, "not_toml", "[probe\n")
    _toml(tmp, "repeated_value", probe + "[probe.grid]\nseed = [0, 1, 0]\n")
    _toml(tmp, "same_run", probe + "[probe.grid]\nseed = [0, 0.0]\n")
    _toml(tmp, "negative_seed", probe + "[probe.grid]\nseed = [-1]\n")
    _toml(tmp, "missing_classifier", guide + 'classifier = "{tmp}/nothing"\n[guide.grid]\nseed = [0, 1]\n')
    _toml(tmp, "one_bad_data", probe.replace('data = "digits:size=8,n=40"\n', "")
          + '[probe.grid]\ndata = ["digits:size=8,n=40", "digits:size=-1"]\n')
    _toml(tmp, "one_missing_net", probe.replace('model = "gaussian"\n', "")
          + '[probe.grid]\nmodel = ["gaussian", "net:{tmp}/nothing"]\n')
    _toml(tmp, "ok_sweep", probe + guide + 'classifier = "{tmp}/clf_ok"\n')
    return tmp


CHILD = r"""
import contextlib, io, json, resource, signal, sys, time, traceback
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import torch
torch.set_num_threads(1)
from critdiff.cli import main

def alarm(*_):
    raise TimeoutError("the case ran past 60 s")

signal.signal(signal.SIGALRM, alarm)
out = []
for argv in json.loads(sys.stdin.read()):
    err, t0 = io.StringIO(), time.time()
    try:
        signal.alarm(60)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
    except BaseException:
        code = "raised"
        err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
    out.append({"code": code, "err": err.getvalue(), "seconds": time.time() - t0})
print(json.dumps(out))
"""


def run_children(argvs: list) -> list:
    """Run the cases in one child process under a 3 GB address-space limit, 60 s per case (:data:`CHILD`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(argvs), capture_output=True, text=True,
                         env=env, timeout=60 * len(argvs) + 120)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def round2_results(round2, request):
    """The outcome of every selected second-round case, from one child process."""
    chosen = sorted({item.callspec.params["index"] for item in request.session.items
                     if item.originalname == "test_round2_case" and hasattr(item, "callspec")})
    argvs = [[a.replace("{tmp}", str(round2)) for a in ROUND2[i][1]] for i in chosen]
    return dict(zip(chosen, run_children(argvs)))


def _out_of(argv):
    return argv[argv.index("--out") + 1] if "--out" in argv else None


def _case_id(rule: str, argv: list) -> str:
    """``RULE-command-what differs from the command's base flags`` (the file name for a prepared file)."""
    base = {"sample": SMALL_SAMPLE + NET + DIFF, "guide": GUIDE, "probe": PROBE, "train": TRAIN, "train-classifier": CLF,
            "theory": THEORY}.get(argv[0], [])
    out = argv.index("--out") if "--out" in argv and "/r2_" in argv[argv.index("--out") + 1] else len(argv)
    parts = [a.replace("{tmp}/", "").replace("net:", "").replace("diffusers:", "")
             for a in argv[1:out] if a not in base or "{tmp}" in a]
    return f"{rule}-{argv[0]} {' '.join(parts)}"


@pytest.mark.parametrize("index", [pytest.param(i, marks=() if i in FAST else pytest.mark.slow, id=_case_id(r, a))
                                   for i, (r, a, _, _) in enumerate(ROUND2)])
def test_round2_case(index, round2, round2_results):
    """Exit 2 within 60 s under 3 GB, one line naming the culprit, no traceback; nothing written where promised."""
    rule, argv, fragment, nothing = ROUND2[index]
    got = round2_results[index]
    assert "Traceback" not in got["err"], got["err"][-2000:]
    assert got["code"] == 2, (got["code"], got["err"][-2000:])
    errors = [line for line in got["err"].splitlines() if line.startswith("critdiff: error:")]
    assert len(errors) == 1 and fragment.lower() in errors[0].lower(), got["err"][-2000:]
    assert got["seconds"] < 60
    if nothing and _out_of(argv):
        assert not os.path.exists(_out_of(argv).replace("{tmp}", str(round2))), errors[0]


@pytest.mark.slow
def test_round2_legitimate_neighbours_still_run(round2, capsys):
    """The untouched originals of the edited files work: the refusals above are about the edits alone."""
    tmp = round2
    shutil.copytree(tmp / "trained", tmp / "trained_resumed")
    ok = [
        (_net("trained")[:2] + ["net:" + str(tmp / "trained")] + _net("trained")[3:], "ok_net"),
        (["report", str(tmp / "res_ok")], None),
        (["sweep", str(tmp / "ok_sweep.toml")], "ok_sweep_out"),
        (GUIDE + ["--classifier", str(tmp / "clf_ok")], "ok_guide"),
        (["train", "--out", str(tmp / "trained_resumed"), "--resume", "--steps", "2"], None),  # same kind: resumes
        (GUIDE, "good_guide"),  # a rerun of the same kind resumes
    ]
    for argv, out in ok:
        argv = argv + (["--out", str(tmp / out)] if out else [])
        assert run_in_process(argv, capsys)[0] == 0, argv
    if pytest.importorskip("diffusers"):
        assert run_in_process(_diff("diff_ok")[:2] + ["diffusers:" + str(tmp / "diff_ok")] + _diff("x")[3:]
                              + ["--out", str(tmp / "ok_diff")], capsys)[0] == 0
