"""Reference models that ship with the package (DESIGN.md section 5c): nothing is downloaded.

Each model is a folder next to this file in the checkpoint layout of :mod:`critdiff.nets.checkpoint`
(``config.json`` plus ``ema.safetensors`` for a diffusion UNet, ``weights.safetensors`` and ``metrics.json``
for a classifier), and ``manifest.json`` records, per name, its kind, its folder, the sha256 of every file and
where it came from (training step, recipe in docs/models.md). Every file is checked against its sha256
before it is read: a corrupt or changed file is a one-line ``ValueError`` starting ``model:``.

Names: :func:`names`. Python: ``critdiff.pretrained.load("mnist28")`` (a
:class:`~critdiff.nets.net_denoiser.NetDenoiser`, ``D(x, sigma, label)``) and
``critdiff.pretrained.load("mnist28-clf")`` (a :class:`~critdiff.nets.classifier.Classifier`). Command line:
``--model pretrained:mnist28`` wherever a model is accepted (:func:`critdiff.experiments.models.build_model`)
and ``pretrained:mnist28-clf`` wherever a classifier folder is (:func:`load_classifier`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..io import sha256_file  # pack.py and the tests read it here too

ROOT = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
PREFIX = "pretrained"
KINDS = ("unet", "classifier")


def manifest(root: "str | Path" = ROOT) -> dict:
    """The manifest ``{name: {"kind", "folder", "files": {file: sha256}, ...}}`` of the shipped models."""
    path = Path(root) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"model: the pretrained manifest {str(path)!r} is missing or corrupt; reinstall critdiff") from None
    if not isinstance(doc, dict):
        raise ValueError(f"model: the pretrained manifest {str(path)!r} is not a mapping of names")
    return doc


def names(kind: Optional[str] = None, root: "str | Path" = ROOT) -> tuple[str, ...]:
    """The names of the shipped models (of one ``kind``: ``'unet'`` or ``'classifier'``), sorted."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    return tuple(sorted(n for n, e in manifest(root).items() if kind is None or e.get("kind") == kind))


def entry(name: str, kind: Optional[str] = None, root: "str | Path" = ROOT) -> dict:
    """The manifest entry of ``name`` (of ``kind`` when given); one-line error listing the valid names."""
    doc = manifest(root)
    valid = names(kind, root)
    if not isinstance(name, str) or name not in doc or name not in valid:
        what = {"unet": "diffusion model", "classifier": "classifier", None: "model"}[kind]
        raise ValueError(f"model: no pretrained {what} {name!r}; expected one of {', '.join(valid) or '(none)'}")
    return doc[name]


def folder(name: str, kind: Optional[str] = None, root: "str | Path" = ROOT) -> Path:
    """The folder of the shipped model ``name``, after checking every file against its recorded sha256."""
    e = entry(name, kind, root)
    base = Path(root) / e["folder"]
    for file, expected in sorted(e["files"].items()):
        path = base / file
        if not path.is_file():
            raise ValueError(f"model: pretrained {name!r}: {file} is missing from {str(base)!r}; reinstall critdiff")
        if sha256_file(path) != expected:  # every load (a few MB: milliseconds), so a changed file is always seen
            raise ValueError(f"model: pretrained {name!r}: {file} does not match its recorded sha256 (corrupt or "
                             "changed file); reinstall critdiff")
    return base


def spec_name(spec: str) -> Optional[str]:
    """``NAME`` of a ``pretrained:NAME`` spec, else ``None`` (a folder path or another model spec)."""
    if not isinstance(spec, str):
        return None
    head, sep, rest = spec.strip().partition(":")
    if head.strip().lower() != PREFIX:
        return None
    if not sep or not rest.strip():
        raise ValueError(f"model: {spec!r} names no model; expected pretrained:NAME with NAME one of {', '.join(names())}")
    return rest.strip()


def weights_id(spec) -> Optional[str]:
    """The identity of the weights a ``pretrained:NAME`` spec loads today (``NAME@`` + the first 16 hex digits of
    the sha256 of its weights file), else ``None``. Run logs key on it beside the name, so a log written with one
    release's weights refuses to be resumed with another's (a name may move to a later training step)."""
    name = spec_name(spec) if isinstance(spec, str) else None
    if name is None:
        return None
    from ..nets.checkpoint import EMA, WEIGHTS  # the files load_net reads, in the order the folder id uses

    files = entry(name)["files"]
    weights = next(f for f in (EMA, WEIGHTS) if f in files)
    return f"{name}@{files[weights][:16]}"


def resolve(path_or_spec: "str | Path", kind: Optional[str] = None) -> str:
    """A checkpoint folder: ``pretrained:NAME`` becomes its (verified) shipped folder; a path is returned as given."""
    name = spec_name(str(path_or_spec))
    return str(path_or_spec) if name is None else str(folder(name, kind))


def load(name: str, device="cpu", kind: Optional[str] = None):
    """Load the shipped model ``name`` on ``device`` (files checked first): a diffusion UNet as a
    :class:`~critdiff.nets.net_denoiser.NetDenoiser` (EMA weights, frozen), a classifier as a
    :class:`~critdiff.nets.classifier.Classifier` (eval mode). ``name`` may also be given as ``pretrained:NAME``;
    ``kind`` (``'unet'`` or ``'classifier'``) restricts the names accepted."""
    name = spec_name(name) or name
    e = entry(name, kind)
    path = folder(name)
    if e["kind"] == "unet":
        from ..nets.net_denoiser import load_net

        net = load_net(path, weights="ema", device=device)
        net.path = f"{PREFIX}:{name}"
        return net
    from ..nets.classifier import load_classifier as load_folder

    return load_folder(path, device=device)


def load_classifier(path_or_spec: "str | Path", device="cpu"):
    """A classifier from a folder written by ``critdiff train-classifier`` or from ``pretrained:NAME``."""
    from ..nets.classifier import load_classifier as load_folder

    return load_folder(resolve(path_or_spec, "classifier"), device=device)
