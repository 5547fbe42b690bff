"""to_jsonable, the one JSON converter: every value kind it promises, checked against hand-written JSON."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from critdiff.io import save_json, to_jsonable


@dataclass(frozen=True)
class _Plain:
    a: float
    b: tuple


@dataclass(frozen=True)
class _Own:
    a: float

    def to_dict(self):
        return {"own": self.a}


def test_every_kind():
    obj = {
        1: (np.float32(0.5), np.int64(3), np.bool_(True), True, 2),
        "arr": np.arange(4, dtype=np.float64).reshape(2, 2),
        "tensor": torch.tensor([1.5, float("nan")], dtype=torch.float64),
        "bf16": torch.tensor([2.0], dtype=torch.bfloat16),
        "complex": np.array([1 + 2j, 3 - 1j]),
        "ctensor": torch.tensor([0.5j]),
        "cscalar": np.complex128(2 - 3j),
        "nonfinite": [float("inf"), -math.inf, np.float64("nan"), torch.tensor(float("inf"))],
        "path": Path("/a/b"),
        "plain": _Plain(1.0, (np.float64(2.0), None)),
        "own": _Own(4.0),
        "none": None, "s": "x",
    }
    want = {
        "1": [0.5, 3, True, True, 2],
        "arr": [[0.0, 1.0], [2.0, 3.0]],
        "tensor": [1.5, None],
        "bf16": [2.0],
        "complex": {"re": [1.0, 3.0], "im": [2.0, -1.0]},
        "ctensor": {"re": [0.0], "im": [0.5]},
        "cscalar": {"re": 2.0, "im": -3.0},
        "nonfinite": [None, None, None, None],
        "path": "/a/b",
        "plain": {"a": 1.0, "b": [2.0, None]},
        "own": {"own": 4.0},
        "none": None, "s": "x",
    }
    got = to_jsonable(obj)
    assert got == want
    assert json.loads(json.dumps(got, allow_nan=False)) == want  # strict JSON: no NaN/Infinity tokens
    assert type(got["1"][1]) is int and type(got["1"][2]) is bool


def test_save_json_round_trip(tmp_path):
    p = save_json(tmp_path / "r.json", {"x": np.array([1.0, np.inf])})
    assert json.loads(p.read_text()) == {"x": [1.0, None]}

