"""Benchmark: the training curve of the reference MNIST-28 network (docs/models.md, issue #22).

For each EMA snapshot of a ``critdiff train`` run (``--snapshots``: the folder of a watcher's copies named
``ckpt-<step>.ema.safetensors`` + ``ckpt-<step>.config.json``, or ``--model`` folders/specs given one by one):

- ``n`` conditional samples at w = 1 (``label = j mod K``, balanced classes), deterministic DDIM (eta = 0)
  with ``--steps`` steps uniform in logsnr of the training schedule, from the seeded noise of
  :func:`critdiff.samplers.seed_generators` (the same noise for every snapshot);
- ``accuracy``: the fraction classified as the intended class by the evaluation classifier, with a bootstrap
  95% interval (:func:`critdiff.probes.bootstrap.mean_interval`);
- ``fd``: the Frechet distance in the classifier's features (:func:`critdiff.experiments.guide.metrics.frechet_distance`)
  between the samples and the classifier's *training* digits (the reference set).

The floor: the same Frechet distance of the classifier's held-out real digits (never trained on by the
classifier; the diffusion net saw all 5000) against the same reference set, at the same ``n`` when there are
that many. Resumable: a snapshot already in ``--json`` is skipped, so rerun it as snapshots appear. Writes
``--json`` (atomically, after each snapshot) and ``--figure`` (FD and accuracy against the training step).

Usage: ``python benchmarks/ref_curve.py --snapshots RUNS/ref_snap --classifier pretrained:mnist28-clf
[--every 1000] [--n 1000] [--steps 20]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from critdiff import pretrained
from critdiff import samplers as SM
from critdiff import schedules as S
from critdiff.data import load as load_data
from critdiff.experiments.config import RunConfig
from critdiff.experiments.guide.metrics import classify, frechet_distance
from critdiff.experiments.models import build_model
from critdiff.io import save_json
from critdiff.nets import checkpoint as ckpt
from critdiff.nets.classifier import read_metrics, split_indices
from critdiff.nets.net_denoiser import NetDenoiser
from critdiff.nets.unet import UNet, UNetConfig
from critdiff.probes.bootstrap import mean_interval

SNAP = re.compile(r"^ckpt-(\d+)\.ema\.safetensors$")


def snapshots(folder: Path) -> "dict[int, tuple[Path, Path]]":
    """``{step: (ema file, config file)}`` of a watcher folder."""
    out = {}
    for p in folder.iterdir():
        m = SNAP.match(p.name)
        cfg = folder / p.name.replace(".ema.safetensors", ".config.json")
        if m and cfg.is_file():
            out[int(m.group(1))] = (p, cfg)
    return dict(sorted(out.items()))


def load_snapshot(ema: Path, config: Path) -> NetDenoiser:
    """A snapshot's EMA network (its own config file) as a denoiser."""
    record = json.loads(config.read_text())
    tensors, step = ckpt.read_weights(ema)
    with torch.random.fork_rng(devices=[]):
        net = UNet(UNetConfig.from_dict(record["net"]))
    ckpt.load_into(net, tensors, str(ema))
    return NetDenoiser(net.requires_grad_(False), path=str(ema), step=step, train_config=record.get("train"))


@torch.no_grad()
def conditional_samples(net, n: int, steps: int, schedule: str, seed: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` DDIM (eta = 0) samples at w = 1 with labels ``j mod K``; ``(x [n, C, H, W], labels [n])``."""
    sigmas = S.sigma_grid(S.get(schedule), steps, "logsnr")
    labels = torch.arange(n) % net.n_classes
    gens = SM.seed_generators(seed, n)
    out = []
    for i in range(0, n, batch):
        x = SM.initial_noise((len(gens[i:i + batch]), *net.sample_shape), sigmas, gens[i:i + batch])
        out.append(SM.sample_ddim(net, x, sigmas, label=labels[i:i + batch]).clamp(-1, 1))
    return torch.cat(out), labels


def reference(classifier_spec: str, data: str, n_floor: int, seed: int) -> dict:
    """The classifier, its training digits' features (the reference set) and the floor FD of its held-out digits."""
    folder = pretrained.resolve(classifier_spec, "classifier")
    clf = pretrained.load_classifier(folder)
    meta = read_metrics(folder)
    images, labels = load_data(data)
    tr, ho = split_indices(images.shape[0], meta["config"]["holdout"], meta["config"]["seed"])
    if sorted(ho.tolist()) != sorted(meta["heldout_indices"]):
        raise ValueError(f"classifier: its recorded held-out digits are not the split of {data!r}")
    ref = classify(clf, images[tr], labels[tr])
    held = ho[torch.randperm(ho.numel(), generator=torch.Generator().manual_seed(seed))[:n_floor]]
    hc = classify(clf, images[held], labels[held])
    return {"classifier": clf, "ref_embed": ref["embed"].numpy(), "n_ref": int(tr.numel()),
            "floor": {"n": int(held.numel()), "fd": frechet_distance(hc["embed"].numpy(), ref["embed"].numpy()),
                      "accuracy": float(hc["correct"].double().mean())},
            "classifier_heldout_accuracy": meta["heldout_accuracy"]}


def measure(net, ref: dict, a) -> dict:
    t0 = time.perf_counter()
    x, labels = conditional_samples(net, a.n, a.steps, net.train_config.get("schedule", "vp-cosine"), a.seed, a.batch)
    t_sample = time.perf_counter() - t0
    c = classify(ref["classifier"], x, labels)
    acc = mean_interval(c["correct"].double().numpy(), seed=a.seed)
    return {"step": net.step, "n": a.n, "accuracy": acc["diff"], "accuracy_ci": [acc["lo"], acc["hi"]],
            "mean_logp": float(c["logp"].mean()), "fd": frechet_distance(c["embed"].numpy(), ref["ref_embed"]),
            "sample_seconds": t_sample, "seconds": time.perf_counter() - t0}


def figure(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(steps, [r["fd"] for r in rows], "o-", label=f"samples (n={doc['n']})")
    ax1.axhline(doc["floor"]["fd"], color="k", ls="--", label=f"held-out real digits (n={doc['floor']['n']})")
    ax1.set(xlabel="training step", ylabel="FD (classifier features)", yscale="log", title="Frechet distance to the data")
    ax1.legend(fontsize=8)
    acc = np.array([r["accuracy"] for r in rows])
    ci = np.array([r["accuracy_ci"] for r in rows])
    ax2.errorbar(steps, acc, yerr=[acc - ci[:, 0], ci[:, 1] - acc], fmt="o-", capsize=3, label="samples at w = 1")
    ax2.axhline(doc["floor"]["accuracy"], color="k", ls="--", label="held-out real digits")
    ax2.set(xlabel="training step", ylabel="accuracy", title="conditional accuracy (shipped classifier)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snapshots", type=Path, help="watcher folder of ckpt-<step>.ema.safetensors + .config.json")
    ap.add_argument("--model", action="append", default=[], help="a checkpoint folder or pretrained:NAME (repeatable)")
    ap.add_argument("--classifier", default="pretrained:mnist28-clf", help="classifier folder or pretrained:NAME")
    ap.add_argument("--data", default="mnist", help="the training data spec")
    ap.add_argument("--every", type=int, default=1000, help="snapshot spacing in steps (the newest is always measured)")
    ap.add_argument("--n", type=int, default=1000, help="samples per snapshot")
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps")
    ap.add_argument("--batch", type=int, default=100, help="samples per sampler call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", type=int, action="append", default=[], help="measure only these steps (repeatable)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/ref_mnist28_curve.json"))
    ap.add_argument("--figure", type=Path, default=Path("docs/figures/ref_mnist28_curve.png"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings = {"n": a.n, "sampler": "ddim:eta=0", "steps": a.steps, "spacing": "logsnr", "seed": a.seed,
                "classifier": a.classifier, "data": a.data}
    doc = json.loads(a.json.read_text()) if a.json.is_file() else {}
    if doc and {k: doc.get(k) for k in settings} != settings:
        print(f"{a.json} holds another setting; choose another --json", file=sys.stderr)
        return 2
    ref = reference(a.classifier, a.data, a.n, a.seed)
    doc = {**settings, "n_ref": ref["n_ref"], "floor": ref["floor"],
           "classifier_heldout_accuracy": ref["classifier_heldout_accuracy"], "rows": doc.get("rows", [])}
    todo = []
    if a.snapshots is not None:
        snaps = snapshots(a.snapshots)
        wanted = [s for s in snaps if s % a.every == 0] + ([max(snaps)] if snaps else [])
        todo += [(s, lambda s=s: load_snapshot(*snaps[s])) for s in sorted(set(wanted), reverse=True)]  # newest first
    todo += [(None, lambda m=m: build_model(RunConfig(model=m if ":" in m else f"net:{m}"))) for m in a.model]
    done = {r["step"] for r in doc["rows"]}
    for step, make in todo:
        if step in done or (a.only and step not in a.only):
            continue
        net = make()
        if net.step in done:
            continue
        row = measure(net, ref, a)
        doc["rows"] = sorted(doc["rows"] + [row], key=lambda r: r["step"])
        done.add(net.step)
        save_json(a.json, doc)
        figure(doc, a.figure)
        print(f"step {row['step']}: FD {row['fd']:.3g} (floor {doc['floor']['fd']:.3g}), accuracy {row['accuracy']:.4f} "
              f"[{row['accuracy_ci'][0]:.4f}, {row['accuracy_ci'][1]:.4f}] ({row['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
