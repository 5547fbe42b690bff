"""Text conditioning of a ``UNet2DConditionModel`` as tensors, and local prompt encoding.

A text-to-image UNet is called as ``unet(z, t, encoder_hidden_states=E)`` with ``E: [B, L, D]`` (``L``
tokens of width ``D = cross_attention_dim``). critdiff's denoiser contract has only ``label``, so the
conditioning is fixed when the model is loaded and ``label`` selects it:

- ``label=None`` (the unconditional model of classifier-free guidance) -> the null prompt's states;
- any label -> the conditional prompt's states when one prompt is given (``P = 1``); with ``P > 1``
  prompts, label ``k`` selects prompt ``k`` (``0 <= k < P``);
- a :data:`~critdiff.denoisers.NULL_LABEL` entry of a label tensor -> the null prompt's states for that
  sample (guidance evaluates ``[null; label]`` in one batch, as diffusers' pipelines do).

The file of ``--cond PATH.safetensors`` holds (:data:`COND_KEY`, :data:`NULL_KEY`):

- ``encoder_hidden_states``: ``[P, L, D]`` (or ``[L, D]`` for one prompt), the conditional prompt(s);
- ``null_encoder_hidden_states``: ``[L, D]`` or ``[1, L, D]``, the null (empty) prompt.

``--prompt "..."`` makes the same two tensors from the pipeline folder's own ``tokenizer/`` and
``text_encoder/`` (the null prompt is ``""``), as ``StableDiffusionPipeline.encode_prompt`` does with
``clip_skip=None``: tokens padded to ``tokenizer.model_max_length``, the encoder's last hidden state. It
needs the optional ``transformers`` (``pip install critdiff[text]``); nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ...denoisers import check_classes, null_mask

COND_KEY = "encoder_hidden_states"
NULL_KEY = "null_encoder_hidden_states"
TEXT_HINT = ("prompt: encoding a prompt needs the optional dependency transformers; install it with "
             "`pip install critdiff[text]`, or give the encoder states with --cond PATH.safetensors")


@dataclass(frozen=True)
class TextConditioning:
    """The conditional states ``cond [P, L, D]`` and the null states ``null [1, L, D]`` (float32, cpu)."""

    cond: torch.Tensor
    null: torch.Tensor
    source: str = "tensors"

    def __post_init__(self):
        for name, t in (("cond", self.cond), ("null", self.null)):
            if not isinstance(t, torch.Tensor) or t.ndim != 3 or not t.is_floating_point():
                raise ValueError(f"cond: {name} expected a floating tensor [P, L, D], got "
                                 f"{getattr(t, 'shape', type(t).__name__)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"cond: {name} holds non-finite values")
        if self.null.shape[0] != 1 or self.null.shape[1:] != self.cond.shape[1:]:
            raise ValueError(f"cond: the null states {tuple(self.null.shape)} must be [1, L, D] with the conditional "
                             f"states' L, D {tuple(self.cond.shape[1:])}")

    @property
    def prompts(self) -> int:
        return int(self.cond.shape[0])

    @property
    def width(self) -> int:
        return int(self.cond.shape[-1])

    def states(self, labels: Optional[torch.Tensor], batch: int, device, dtype) -> torch.Tensor:
        """``encoder_hidden_states [B, L, D]`` for ``labels`` (LongTensor ``[B]`` or ``None``; module docstring)."""
        if labels is None:
            out = self.null.expand(batch, -1, -1)
        else:
            lab = labels.cpu()
            null = null_mask(lab)
            if self.prompts == 1:
                out = self.cond.expand(batch, -1, -1)
            else:
                check_classes(lab, self.prompts, "prompt indices")
                out = self.cond[torch.where(null, torch.zeros_like(lab), lab)]
            out = torch.where(null.reshape(-1, 1, 1), self.null.expand(batch, -1, -1), out)
        return out.to(device=device, dtype=dtype)

    def record(self) -> dict:
        return {"source": self.source, "prompts": self.prompts, "tokens": int(self.cond.shape[1]), "width": self.width}


def _as3(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(0) if isinstance(t, torch.Tensor) and t.ndim == 2 else t


def load_cond(path) -> TextConditioning:
    """Read a ``--cond`` safetensors file (keys :data:`COND_KEY`, :data:`NULL_KEY`) as float32 tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"cond: {str(path)!r} is not a file; expected a .safetensors file with keys {COND_KEY}, {NULL_KEY}")
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"cond: cannot read {str(path)!r} as safetensors ({type(e).__name__})") from None
    missing = [k for k in (COND_KEY, NULL_KEY) if k not in tensors]
    if missing:
        raise ValueError(f"cond: {str(path)!r} lacks {', '.join(missing)}; expected keys {COND_KEY} [P, L, D] "
                         f"and {NULL_KEY} [1, L, D] (got {', '.join(sorted(tensors)) or 'none'})")
    return TextConditioning(_as3(tensors[COND_KEY]).float(), _as3(tensors[NULL_KEY]).float(), source=str(p))


def save_cond(path, cond: torch.Tensor, null: torch.Tensor) -> None:
    """Write the two tensors of a ``--cond`` file (``[P, L, D]`` / ``[L, D]`` and ``[1, L, D]`` / ``[L, D]``)."""
    from safetensors.torch import save_file

    TextConditioning(_as3(cond).float(), _as3(null).float())  # validates
    save_file({COND_KEY: cond.detach().contiguous().cpu(), NULL_KEY: null.detach().contiguous().cpu()}, str(path))


def _component(root: Path, part: str) -> str:
    """The transformers class named for ``part`` in ``model_index.json`` (``["transformers", "CLIPTextModel"]``)."""
    index_file = root / "model_index.json"
    index = json.loads(index_file.read_text()) if index_file.is_file() else {}
    entry = index.get(part)
    if not (root / part).is_dir() or not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
        raise ValueError(f"prompt: {str(root)!r} has no {part}/ component in model_index.json; --prompt needs a full "
                         "pipeline folder (tokenizer/ and text_encoder/), else give --cond PATH.safetensors")
    return str(entry[1])


def encode_prompt(root, prompt: str, negative_prompt: str = "") -> TextConditioning:
    """Encode ``prompt`` and the null prompt (``negative_prompt``, default ``""`` as the pipelines) with the folder's
    own tokenizer and text encoder (local only)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt: expected a non-empty text")
    root = Path(root)
    tok_cls, enc_cls = _component(root, "tokenizer"), _component(root, "text_encoder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise ValueError(TEXT_HINT) from None
    tok_type, enc_type = getattr(transformers, tok_cls, None), getattr(transformers, enc_cls, None)
    if tok_type is None or enc_type is None:
        raise ValueError(f"prompt: unknown tokenizer/text encoder classes {tok_cls!r}/{enc_cls!r} in model_index.json")
    try:
        tokenizer = tok_type.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        encoder = enc_type.from_pretrained(str(root / "text_encoder"), local_files_only=True).eval()
    except (OSError, ValueError, TypeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"prompt: cannot load the tokenizer/text encoder of {str(root)!r}: {first}") from None
    if not isinstance(negative_prompt, str):
        raise ValueError(f"negative_prompt: expected a text, got {type(negative_prompt).__name__}")
    ids = tokenizer([prompt, negative_prompt], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        states = encoder(ids).last_hidden_state.float()
    return TextConditioning(states[:1], states[1:], source=f"prompt {prompt!r}")
