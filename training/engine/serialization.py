"""Pickle-free serialization of nested state (optimizer/scheduler/RNG state dicts).

Tensors go to a safetensors file; the structure, numbers and strings go to a JSON file. Tuples,
non-string dict keys and NaN/inf survive the round trip.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

_T, _TUPLE, _DICT, _FLOAT = "__tensor__", "__tuple__", "__dict__", "__float__"


def encode(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """JSON-able form of ``obj``; tensors are moved to ``tensors`` under unique keys."""
    if isinstance(obj, torch.Tensor):
        key = f"{path}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {_T: key}
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {_FLOAT: repr(obj)}
    if isinstance(obj, tuple):
        return {_TUPLE: [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {
            _DICT: [
                [encode(k, tensors, f"{path}.k{i}"), encode(v, tensors, f"{path}.v{i}")]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    raise TypeError(f"cannot serialize {type(obj).__name__} at {path}")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {_T}:
            return tensors[obj[_T]]
        if set(obj) == {_FLOAT}:
            return float(obj[_FLOAT])
        if set(obj) == {_TUPLE}:
            return tuple(decode(v, tensors) for v in obj[_TUPLE])
        if set(obj) == {_DICT}:
            return {decode(k, tensors): decode(v, tensors) for k, v in obj[_DICT]}
        return {k: decode(v, tensors) for k, v in obj.items()}
    return obj


def save_state(directory: Path, name: str, obj: Any) -> None:
    """Write ``name.json`` (+ ``name.safetensors`` if there are tensors) into ``directory``."""
    tensors: dict[str, torch.Tensor] = {}
    structure = encode(obj, tensors)
    (directory / f"{name}.json").write_text(json.dumps(structure), encoding="utf-8")
    if tensors:
        save_file(tensors, str(directory / f"{name}.safetensors"), metadata={"format": "pt"})


def load_state(directory: Path, name: str, device: torch.device | str = "cpu") -> Any:
    structure = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    tensor_file = directory / f"{name}.safetensors"
    tensors = load_file(str(tensor_file), device=str(device)) if tensor_file.exists() else {}
    return decode(structure, tensors)
