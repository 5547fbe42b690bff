"""Making the shipped models (maintainers only; docs/models.md): copy a trained network's EMA weights or a
classifier folder into ``ROOT/NAME/`` and record every file's sha256 in ``ROOT/manifest.json``.

Usage (from a source checkout)::

    python -m critdiff.pretrained.pack unet mnist28 --config RUN/ckpt-N/config.json --ema RUN/ckpt-N/ema.safetensors \\
        [--first-losses L1 L2 ...]
    python -m critdiff.pretrained.pack classifier mnist28-clf --folder CLF_DIR

``--first-losses``: the per-step training losses of the run's first steps, which
``tests/test_pretrained.py`` reproduces by retraining those steps with the recorded recipe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..io import atomic_write_bytes, save_json
from . import MANIFEST, ROOT, manifest, sha256_file

UNET_FILES = ("config.json", "ema.safetensors")
CLASSIFIER_FILES = ("config.json", "weights.safetensors", "metrics.json")


def _record(root: Path, name: str, entry: dict) -> dict:
    path = root / MANIFEST
    doc = manifest(root) if path.is_file() else {}
    doc[name] = entry
    save_json(path, dict(sorted(doc.items())))
    return entry


def pack_unet(name: str, config: "str | Path", ema: "str | Path", root: "str | Path" = ROOT,
              first_losses: Optional[Sequence[float]] = None, about: str = "") -> dict:
    """Copy a UNet checkpoint's ``config.json`` and ``ema.safetensors`` to ``root/name/`` and record them."""
    from ..nets import checkpoint as ckpt

    root, dest = Path(root), Path(root) / name
    record = json.loads(Path(config).read_text())
    if record.get("kind") != "unet":
        raise ValueError(f"config: {str(config)!r} is not a diffusion UNet checkpoint config")
    _, step = ckpt.read_weights(ema)
    dest.mkdir(parents=True, exist_ok=True)
    save_json(dest / "config.json", {**record, "step": step})
    atomic_write_bytes(dest / "ema.safetensors", Path(ema).read_bytes())
    entry = {"kind": "unet", "folder": name, "step": step, "about": about,
             "files": {f: sha256_file(dest / f) for f in UNET_FILES}}
    if first_losses:
        entry["first_losses"] = [float(v) for v in first_losses]
    return _record(root, name, entry)


def pack_classifier(name: str, folder: "str | Path", root: "str | Path" = ROOT, about: str = "") -> dict:
    """Copy a ``critdiff train-classifier`` folder to ``root/name/`` and record its files."""
    root, dest, src = Path(root), Path(root) / name, Path(folder)
    dest.mkdir(parents=True, exist_ok=True)
    for f in CLASSIFIER_FILES:
        if not (src / f).is_file():
            raise ValueError(f"folder: {str(src)!r} has no {f}; is it a critdiff train-classifier folder?")
        shutil.copyfile(src / f, dest / f)
    metrics = json.loads((dest / "metrics.json").read_text())
    entry = {"kind": "classifier", "folder": name, "about": about,
             "heldout_accuracy": metrics["heldout_accuracy"], "n_heldout": metrics["n_heldout"],
             "files": {f: sha256_file(dest / f) for f in CLASSIFIER_FILES}}
    return _record(root, name, entry)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m critdiff.pretrained.pack", description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("unet", "classifier"))
    ap.add_argument("name")
    ap.add_argument("--config", help="unet: the checkpoint's config.json")
    ap.add_argument("--ema", help="unet: the checkpoint's ema.safetensors")
    ap.add_argument("--folder", help="classifier: the train-classifier folder")
    ap.add_argument("--first-losses", type=float, nargs="*", help="unet: per-step losses of the first steps")
    ap.add_argument("--about", default="", help="one line on what it is")
    ap.add_argument("--root", default=str(ROOT), help="where the shipped models live (default: this package)")
    a = ap.parse_args(argv)
    if a.kind == "unet":
        if not (a.config and a.ema):
            ap.error("unet needs --config and --ema")
        entry = pack_unet(a.name, a.config, a.ema, a.root, a.first_losses, a.about)
    else:
        if not a.folder:
            ap.error("classifier needs --folder")
        entry = pack_classifier(a.name, a.folder, a.root, a.about)
    print(json.dumps(entry, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
