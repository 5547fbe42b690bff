"""Kills and interrupts (docs/reliability.md R1-R3), slow: ``make test-slow``.

``train --checkpoint-every 1`` and a multi-arm ``guide`` are killed with SIGKILL at 20 random moments (seeded,
spread over the length of an uninterrupted run) and rerun each time: every rerun succeeds, no finished trial
is lost or duplicated, and the final weights / summary are bit-identical to an uninterrupted run. The same
for SIGINT (and SIGTERM) sent to a run in the foreground and to one started in the background of a
non-interactive shell (where bash starts it with SIGINT ignored).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from critdiff.nets import checkpoint as ckpt

pytestmark = pytest.mark.slow

TRAIN = ["train", "--data", "digits:size=8,n=32", "--steps", "24", "--batch", "8", "--width", "8",
         "--channel-mult", "1,2", "--checkpoint-every", "1", "--threads", "1"]
GUIDE = ["guide", "--model", "gaussian", "--data", "textures:size=8,per_class=12", "--n", "8", "--batch", "2", "--steps", "12",
         "--arms", "none,tc,random,constant", "--tc-logsnr", "0.5"]
CLF = ["train-classifier", "--data", "textures:size=8,per_class=12", "--steps", "3", "--batch", "8", "--width", "8",
       "--threads", "1"]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}


def _cmd(argv):
    return [sys.executable, "-m", "critdiff.cli", *argv]


def _run(argv, check=True):
    res = subprocess.run(_cmd(argv), env=_env(), capture_output=True, text=True, timeout=600)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def _argv(kind, out, clf):
    if kind == "train":
        return TRAIN + ["--out", str(out)] + (["--resume"] if ckpt.has_checkpoint(out) else [])
    return GUIDE + ["--classifier", str(clf), "--out", str(out)]


def _result(kind, out):
    """What must be bit-identical: the final weights and optimiser step, or the trials and the summary."""
    if kind == "train":
        folder = ckpt.checkpoint_dir(out)
        return {"weights": load_file(str(folder / ckpt.WEIGHTS)), "ema": load_file(str(folder / ckpt.EMA)),
                "step": ckpt.read_training_state(out)["step"]}
    recs = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("log")
    return {"trials": [{k: v for k, v in r.items() if k != "seconds"} for r in recs], "summary": summary}


def _assert_same(kind, a, b):
    if kind == "train":
        assert a["step"] == b["step"]
        for part in ("weights", "ema"):
            assert a[part].keys() == b[part].keys()
            assert all(bool((a[part][k] == b[part][k]).all()) for k in a[part]), part
    else:
        keys = [(r["arm"], r["start"]) for r in a["trials"] if r["type"] == "trial"]
        assert len(keys) == len(set(keys)) == 16  # no trial lost, none duplicated
        assert sorted(a["trials"], key=json.dumps) == sorted(b["trials"], key=json.dumps)
        assert a["summary"] == b["summary"]


def _no_leftovers(out):
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".critdiff.lock"]
    assert not hidden, hidden


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs (and their wall time, the range of the random kill moments)."""
    root = tmp_path_factory.mktemp("reference")
    _run(CLF + ["--out", str(root / "clf")])
    out = {}
    for kind in ("train", "guide"):
        t0 = time.perf_counter()
        _run(_argv(kind, root / kind, root / "clf"))
        out[kind] = (_result(kind, root / kind), time.perf_counter() - t0)
    return root, out


@pytest.mark.parametrize("kind", ["train", "guide"])
def test_sigkill_at_20_random_moments_then_resume(kind, reference, tmp_path):
    root, ref = reference
    expected, seconds = ref[kind]
    out = tmp_path / kind
    rng = random.Random(12)
    for _ in range(20):
        proc = subprocess.Popen(_cmd(_argv(kind, out, root / "clf")), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            proc.wait(timeout=rng.uniform(0.0, seconds))
        except subprocess.TimeoutExpired:
            proc.kill()
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err  # every rerun succeeds (or is killed)
    _run(_argv(kind, out, root / "clf"))
    _assert_same(kind, _result(kind, out), expected)
    _no_leftovers(out)


def _progress(kind, out):
    if kind == "train":
        return ckpt.has_checkpoint(out)
    log = out / "trials.jsonl"
    return log.is_file() and log.read_text().count('"type":"trial"') >= 2


@pytest.mark.parametrize("kind", ["train", "guide"])
@pytest.mark.parametrize("how", ["INT-foreground", "INT-background", "TERM-foreground"])
def test_interrupt_exits_130_keeps_what_finished_and_resumes(kind, how, reference, tmp_path):
    root, ref = reference
    out = tmp_path / kind
    sig = signal.SIGINT if how.startswith("INT") else signal.SIGTERM
    argv = _cmd(_argv(kind, out, root / "clf"))
    if how.endswith("background"):  # a non-interactive shell starts background jobs with SIGINT ignored
        pidfile = tmp_path / "pid"
        shell = subprocess.Popen(["bash", "-c", '"$@" & echo $! > ' + str(pidfile) + '; wait $!', "bash", *argv],
                                 env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while not (pidfile.is_file() and pidfile.read_text().strip()):
            time.sleep(0.01)
        pid, waiter = int(pidfile.read_text()), shell
    else:
        waiter = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        pid = waiter.pid
    deadline = time.time() + 300
    while not _progress(kind, out) and waiter.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(pid, sig)
    _, err = waiter.communicate(timeout=300)
    assert waiter.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _progress(kind, out)  # what finished is kept
    _run(_argv(kind, out, root / "clf"))
    _assert_same(kind, _result(kind, out), ref[kind][0])
    _no_leftovers(out)
