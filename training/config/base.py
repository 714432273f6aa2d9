"""Config plumbing shared by every stage: field help, parsing run.json plus ``--key=value`` overrides.

Torch-free by contract (import-linter): the worker and the CLI's ``--help`` import it without torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from training.errors import ConfigError

C = TypeVar("C")


def opt(default: Any = MISSING, help: str = "") -> Any:
    """A dataclass field carrying its help text in ``metadata["help"]``."""
    if not help:
        raise ValueError("every config field needs help text")
    return dataclasses.field(default=default, metadata={"help": help})


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _is_optional(tp: Any) -> tuple[bool, Any]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    return False, tp


def _coerce_scalar(tp: Any, value: Any, key: str) -> Any:
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported field type {tp!r}")


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert a JSON or command-line value to the field's declared type, or raise ConfigError."""
    optional, inner = _is_optional(tp)
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
        return None
    if typing.get_origin(inner) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_types = typing.get_args(inner)
        if item_types[-1] is not Ellipsis and len(items) != len(item_types):
            raise ConfigError(f"{key}: expected {len(item_types)} values, got {len(items)}")
        return tuple(_coerce_scalar(item_types[0], item, key) for item in items)
    return _coerce_scalar(inner, value, key)


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def read_json_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a JSON object of key: value pairs")
    return data


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``["--lr=1", "--epochs", "2"]`` -> ``{"lr": "1", "epochs": "2"}`` (dashes become underscores)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}; options look like --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ConfigError(f"option --{key} needs a value (--{key}=VALUE)")
            value = args[i + 1]
            i += 1
        out[key.replace("-", "_")] = value
        i += 1
    return out


def build_config(cls: type[C], values: dict[str, Any], *, stage: str = "") -> C:
    """Validate keys and types of ``values`` against dataclass ``cls`` and construct it."""
    hints = typing.get_type_hints(cls)
    spec: Any = cls  # a dataclass; fields() wants a DataclassInstance, which C cannot promise
    known = [f.name for f in fields(spec)]
    where = f" for stage {stage!r}" if stage else ""
    for key in values:
        if key not in hints:
            raise ConfigError(f"unknown option {key!r}{where}{_suggest(key, known)}")
    missing = [
        f.name
        for f in fields(spec)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in values
    ]
    if missing:
        raise ConfigError(f"missing required option(s){where}: {', '.join(missing)}")
    coerced = {key: coerce(hints[key], value, key) for key, value in values.items()}
    try:
        return cls(**coerced)
    except ValueError as exc:  # __post_init__ validation
        raise ConfigError(str(exc)) from None


def load_config(cls: type[C], config_path: str | None, overrides: dict[str, Any], *, stage: str = "") -> C:
    """run.json (if given) overlaid with command-line overrides, validated into ``cls``."""
    values: dict[str, Any] = read_json_config(config_path) if config_path else {}
    values.update(overrides)
    return build_config(cls, values, stage=stage)


def config_to_dict(config: Any) -> dict[str, Any]:
    return {key: list(v) if isinstance(v, tuple) else v for key, v in dataclasses.asdict(config).items()}


def describe_config(cls: type) -> str:
    """One line per field: name, type, default and help (for ``--help``)."""
    from training.config.runtime import RuntimeConfig  # here: runtime builds on this module

    hints = typing.get_type_hints(cls)
    runtime = {f.name for f in fields(RuntimeConfig)}
    lines = []
    for f in sorted(fields(cls), key=lambda f: f.name in runtime):  # the stage's own options first
        default = "required" if f.default is MISSING else f"default {f.default!r}"
        tp = getattr(hints[f.name], "__name__", None) or str(hints[f.name]).replace("typing.", "")
        lines.append(f"  --{f.name} ({tp}; {default})\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def check(condition: bool, message: str) -> None:
    """Raise ``ValueError`` (turned into a ConfigError by build_config) unless ``condition``."""
    if not condition:
        raise ValueError(message)
