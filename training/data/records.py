"""Reading rows from JSONL / JSON / Parquet, and mapping them to the internal records (spec §1.1-1.2).

PKU-SafeRLHF v0 rows have ``prompt``, ``response_{0,1}``, ``is_response_{0,1}_safe``,
``better_response_id`` and ``safer_response_id``; v1 adds sources, ``response_{0,1}_harm_category``
dicts and ``response_{0,1}_severity_level``, which are read when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import DataError
from training.taxonomy import to_beavertails

SUFFIXES = (".jsonl", ".json", ".parquet")


def _read_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: a .json data file must hold a list of objects")
        return data
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a data file, or of every data file in a directory (sorted by name)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in SUFFIXES)
        if not files:
            raise DataError(f"data directory {p} holds no {'/'.join(SUFFIXES)} files")
    elif p.is_file():
        if p.suffix not in SUFFIXES:
            raise DataError(f"data file {p} must end in one of {', '.join(SUFFIXES)}")
        files = [p]
    else:
        raise DataError(f"data file not found: {p}")
    rows = [row for f in files for row in _read_file(f)]
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise DataError(f"{p}: row {bad} is not a JSON object")
    return rows


def _require(row: dict[str, Any], keys: tuple[str, ...], index: int, what: str) -> None:
    missing = [k for k in keys if k not in row or row[k] is None]
    if missing:
        raise DataError(f"row {index} lacks {', '.join(missing)} required for {what} data")


@dataclass(frozen=True)
class PreferenceRecord:
    """One PKU-SafeRLHF pair in the internal schema (§1.2): ``answer`` = response_0."""

    input: str
    answer: str
    other_answer: str
    better: bool  # answer is more helpful
    safer: bool | None = None  # answer is more harmless
    is_safe: bool | None = None
    is_other_safe: bool | None = None
    harm_categories: tuple[dict[str, bool], dict[str, bool]] | None = field(default=None, compare=False)
    severity: tuple[int, int] | None = None


def _as_bool(value: Any, index: int, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise DataError(f"row {index}: {key} must be a boolean, got {value!r}")


def _as_id(value: Any, index: int, key: str) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise DataError(f"row {index}: {key} must be 0 or 1, got {value!r}")
    return int(value)


def preference_record(row: dict[str, Any], index: int, *, need_safety: bool) -> PreferenceRecord:
    """Map a PKU-SafeRLHF row (or a ``prompt/chosen/rejected`` row) to a PreferenceRecord."""
    if "chosen" in row and "response_0" not in row and not need_safety:
        _require(row, ("prompt", "chosen", "rejected"), index, "preference")
        return PreferenceRecord(str(row["prompt"]), str(row["chosen"]), str(row["rejected"]), better=True)
    keys: tuple[str, ...] = ("prompt", "response_0", "response_1", "better_response_id")
    if need_safety:
        keys = (
            "prompt",
            "response_0",
            "response_1",
            "safer_response_id",
            "is_response_0_safe",
            "is_response_1_safe",
        )
    _require(row, keys, index, "safety-preference" if need_safety else "preference")
    has_safety = all(
        row.get(k) is not None for k in ("safer_response_id", "is_response_0_safe", "is_response_1_safe")
    )
    cats = None
    if isinstance(row.get("response_0_harm_category"), dict) and isinstance(
        row.get("response_1_harm_category"), dict
    ):
        try:
            cats = (
                to_beavertails(row["response_0_harm_category"]),
                to_beavertails(row["response_1_harm_category"]),
            )
        except ValueError as exc:
            raise DataError(f"row {index}: {exc}") from None
    severity = None
    if row.get("response_0_severity_level") is not None and row.get("response_1_severity_level") is not None:
        severity = (int(row["response_0_severity_level"]), int(row["response_1_severity_level"]))
    return PreferenceRecord(
        input=str(row["prompt"]),
        answer=str(row["response_0"]),
        other_answer=str(row["response_1"]),
        better=_as_id(row["better_response_id"], index, "better_response_id") == 0
        if row.get("better_response_id") is not None
        else True,
        safer=_as_id(row["safer_response_id"], index, "safer_response_id") == 0 if has_safety else None,
        is_safe=_as_bool(row["is_response_0_safe"], index, "is_response_0_safe") if has_safety else None,
        is_other_safe=_as_bool(row["is_response_1_safe"], index, "is_response_1_safe")
        if has_safety
        else None,
        harm_categories=cats,
        severity=severity,
    )


def supervised_fields(row: dict[str, Any], index: int) -> tuple[str | list[str], str | None]:
    """(input or dialogue, answer) of an SFT row: prompt/response, input/answer, Alpaca, or dialogue.

    A ``dialogue`` (list of turns, user first, ending on an assistant turn) returns answer None.
    """
    if isinstance(row.get("dialogue"), list):
        turns = [str(t) for t in row["dialogue"]]
        if len(turns) < 2 or len(turns) % 2:
            raise DataError(f"row {index}: a dialogue needs user/assistant turns ending on the assistant")
        return turns, None
    if "instruction" in row and "output" in row:  # Stanford Alpaca (spec §1.4, PTX)
        extra = str(row.get("input") or "")
        text = f"{row['instruction']} {extra}" if extra else str(row["instruction"])
        return text, str(row["output"])
    for prompt_key, answer_key in (("prompt", "response"), ("input", "answer"), ("prompt", "answer")):
        if prompt_key in row and answer_key in row:
            return str(row[prompt_key]), str(row[answer_key])
    raise DataError(
        f"row {index}: supervised rows need prompt/response, input/answer, instruction/output or dialogue"
    )


def prompt_field(row: dict[str, Any], index: int) -> str:
    for key in ("prompt", "input", "instruction"):
        if isinstance(row.get(key), str):
            return row[key]
    raise DataError(f"row {index}: prompt-only rows need a prompt (or input) field")
