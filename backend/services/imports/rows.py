"""Turning one raw row into a prompt, a response or a pair, or a reason why it cannot be one.

Formats (see docs/annotation.md, "Import formats"):

* prompts: `prompt` (or `text`), optional `source`, `tags` (list, or `;`-separated in CSV),
  `is_red_team`, `harm_category`; other fields are kept in the prompt's `meta`.
* responses: `prompt`, `response`, `model_name` (or `model`); other fields go to `meta`.
* PKU-SafeRLHF v0: `prompt`, `response_0`, `response_1`, `is_response_{0,1}_safe`,
  `better_response_id`, `safer_response_id`; v1 adds `prompt_source`, `response_{0,1}_source`,
  `response_{0,1}_harm_category` (dict of category -> bool) and `response_{0,1}_severity_level`.
* Anthropic HH-RLHF: `chosen` and `rejected` transcripts; the last assistant turn is the
  response and everything before it is the prompt, which must be the same in both.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from backend.domain.taxonomy import MAX_SEVERITY

MAX_PROMPT_CHARS = 20_000
MAX_RESPONSE_CHARS = 50_000
MAX_META_BYTES = 16_384
MAX_TAGS = 20
HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f", ""}


class RowError(ValueError):
    """The row cannot be imported; the message is the reason shown in the report."""


@dataclass(frozen=True)
class PromptRow:
    text: str
    source: str = ""
    tags: tuple[str, ...] = ()
    is_red_team: bool = False
    harm_category: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def content_hash(self) -> str:  # computed once: dedup asks for it several times per row
        return content_hash(self.text)


@dataclass(frozen=True)
class ResponseRow:
    text: str
    model_name: str
    meta: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def content_hash(self) -> str:  # computed once: dedup asks for it several times per row
        return content_hash(self.text)


@dataclass(frozen=True)
class PromptResponseRow:
    prompt: PromptRow
    response: ResponseRow


@dataclass(frozen=True)
class PairRow:
    """Two responses to one prompt; `a` and `b` are the comparison's canonical order."""

    prompt: PromptRow
    a: ResponseRow
    b: ResponseRow
    gold: dict[str, Any] | None = None


def normalise_text(value: str) -> str:
    return unicodedata.normalize("NFC", value.replace("\r\n", "\n")).strip()


def content_hash(value: str) -> str:
    return hashlib.sha256(normalise_text(value).encode()).hexdigest()


def _text(data: dict[str, Any], keys: tuple[str, ...], what: str, limit: int) -> str:
    for key in keys:
        if key in data and data[key] is not None:
            value = data[key]
            if not isinstance(value, str):
                raise RowError(f"'{key}' must be a string")
            value = normalise_text(value)
            if not value:
                raise RowError(f"'{key}' is empty")
            if len(value) > limit:
                raise RowError(f"'{key}' is longer than {limit} characters")
            if "\x00" in value:
                raise RowError(f"'{key}' contains a NUL character")
            return value
    raise RowError(f"missing {what} ('{keys[0]}')")


def _short(data: dict[str, Any], key: str, default: str, limit: int = 200) -> str:
    value = data.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str | int | float):
        raise RowError(f"'{key}' must be a string")
    text = str(value).strip()
    if len(text) > limit:
        raise RowError(f"'{key}' is longer than {limit} characters")
    return text


def parse_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise RowError(f"'{key}' must be true or false, got {value!r}")


def _binary_id(value: Any, key: str) -> int:
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value)
    if isinstance(value, bool) or value not in (0, 1):
        raise RowError(f"'{key}' must be 0 or 1, got {value!r}")
    return int(value)


def _meta(data: dict[str, Any], known: set[str]) -> dict[str, Any]:
    extra = {k: v for k, v in data.items() if k not in known}
    nested = data.get("meta")
    if isinstance(nested, dict):
        extra.update(nested)
    if len(json.dumps(extra, default=str)) > MAX_META_BYTES:
        raise RowError(f"extra fields are larger than {MAX_META_BYTES} bytes")
    plain: dict[str, Any] = json.loads(json.dumps(extra, default=str))  # plain JSON values only
    return plain


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(t, str) for t in items):
        raise RowError("'tags' must be a list of strings (or ';'-separated in CSV)")
    tags = tuple(dict.fromkeys(t.strip()[:100] for t in items if t.strip()))
    if len(tags) > MAX_TAGS:
        raise RowError(f"more than {MAX_TAGS} tags")
    return tags


PROMPT_KEYS = {"prompt", "text", "source", "tags", "is_red_team", "harm_category", "meta"}


def parse_prompt(data: dict[str, Any], default_source: str) -> PromptRow:
    red_team = data.get("is_red_team")
    return PromptRow(
        text=_text(data, ("prompt", "text"), "prompt text", MAX_PROMPT_CHARS),
        source=_short(data, "source", default_source),
        tags=_tags(data.get("tags")),
        is_red_team=False if red_team in (None, "") else parse_bool(red_team, "is_red_team"),
        harm_category=_short(data, "harm_category", "", 100) or None,
        meta=_meta(data, PROMPT_KEYS),
    )


def parse_response(data: dict[str, Any], default_source: str) -> PromptResponseRow:
    prompt = PromptRow(text=_text(data, ("prompt",), "prompt text", MAX_PROMPT_CHARS), source=default_source)
    model = _short(data, "model_name", "") or _short(data, "model", "") or default_source
    response = ResponseRow(
        text=_text(data, ("response", "text"), "response text", MAX_RESPONSE_CHARS),
        model_name=model,
        meta=_meta(data, {"prompt", "response", "text", "model_name", "model", "meta"}),
    )
    return PromptResponseRow(prompt, response)


def _pku_categories(value: Any, key: str, lookup: dict[str, str]) -> list[str]:
    if not isinstance(value, dict):
        raise RowError(f"'{key}' must be an object of category -> true/false")
    keys = []
    for name, flagged in value.items():
        if not parse_bool(flagged, f"{key}.{name}"):
            continue
        mapped = lookup.get(str(name)) or lookup.get(str(name).lower())
        if mapped is None:
            raise RowError(f"'{key}' names a category the project does not have: {name!r}")
        keys.append(mapped)
    return sorted(set(keys))


def _pku_side_gold(data: dict[str, Any], i: int, lookup: dict[str, str]) -> dict[str, Any]:
    safe = parse_bool(data.get(f"is_response_{i}_safe"), f"is_response_{i}_safe")
    side: dict[str, Any] = {"is_safe": safe}
    cat_key, sev_key = f"response_{i}_harm_category", f"response_{i}_severity_level"
    if data.get(cat_key) is not None:
        side["harm_categories"] = _pku_categories(data[cat_key], cat_key, lookup)
        if safe and side["harm_categories"]:
            raise RowError(f"response_{i} is marked safe but has harm categories")
    if data.get(sev_key) is not None:
        severity = data[sev_key]
        if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= MAX_SEVERITY:
            raise RowError(f"'{sev_key}' must be an integer from 0 to {MAX_SEVERITY}")
        if safe and severity:
            raise RowError(f"response_{i} is marked safe but has severity {severity}")
        side["severity"] = severity
    return side


def parse_pku(data: dict[str, Any], default_source: str, *, gold: bool, lookup: dict[str, str]) -> PairRow:
    prompt = PromptRow(
        text=_text(data, ("prompt",), "prompt text", MAX_PROMPT_CHARS),
        source=_short(data, "prompt_source", default_source),
    )
    sides = []
    for i in (0, 1):
        keep = {
            k: data[k]
            for k in (f"is_response_{i}_safe", f"response_{i}_harm_category", f"response_{i}_severity_level")
            if data.get(k) is not None
        }
        sides.append(
            ResponseRow(
                text=_text(data, (f"response_{i}",), f"response_{i}", MAX_RESPONSE_CHARS),
                model_name=_short(data, f"response_{i}_source", default_source),
                meta={"pku_saferlhf": keep} if keep else {},
            )
        )
    if sides[0].content_hash == sides[1].content_hash:
        raise RowError("response_0 and response_1 are identical")
    labels = None
    if gold:
        a, b = _pku_side_gold(data, 0, lookup), _pku_side_gold(data, 1, lookup)
        better = _binary_id(data.get("better_response_id"), "better_response_id")
        safer = _binary_id(data.get("safer_response_id"), "safer_response_id")
        labels = {"helpfulness": "ab"[better], "harmlessness": "ab"[safer]}
        labels.update({f"a_{k}": v for k, v in a.items()})
        labels.update({f"b_{k}": v for k, v in b.items()})
    return PairRow(prompt, sides[0], sides[1], labels)


def split_last_turn(transcript: Any, key: str) -> tuple[str, str]:
    if not isinstance(transcript, str):
        raise RowError(f"'{key}' must be a transcript string")
    cut = transcript.rfind(ASSISTANT)
    if cut < 0 or "Human:" not in transcript[:cut]:
        raise RowError(f"'{key}' has no '\\n\\nHuman: ... \\n\\nAssistant: ...' turns")
    return transcript[:cut], transcript[cut + len(ASSISTANT) :]


def _turn_number(prefix: str) -> int:
    """1-based number of the turn after `prefix` (Human and Assistant turns both count)."""
    return prefix.count(HUMAN) + prefix.count(ASSISTANT) + 1


def _hh_response(prefix: str, response: str, key: str) -> str:
    """The last Assistant turn, with a reason that names the dialogue and the turn when unusable."""
    where = f"the '{key}' dialogue's last Assistant turn (turn {_turn_number(prefix)})"
    text = normalise_text(response)
    if not text:
        raise RowError(f"{where} is empty")
    if len(text) > MAX_RESPONSE_CHARS:
        raise RowError(f"{where} is longer than {MAX_RESPONSE_CHARS} characters")
    if "\x00" in text:
        raise RowError(f"{where} contains a NUL character")
    return text


def _hh_prompt(prefix: str) -> str:
    text = normalise_text(prefix)
    if not text.removeprefix("Human:").strip():
        raise RowError("the dialogue before the last Assistant turn is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise RowError(
            f"the dialogue before the last Assistant turn is longer than {MAX_PROMPT_CHARS} characters"
        )
    if "\x00" in text:
        raise RowError("the dialogue before the last Assistant turn contains a NUL character")
    return text


def parse_hh(data: dict[str, Any], default_source: str, *, axis: str, gold: bool) -> PairRow:
    chosen_prefix, chosen = split_last_turn(data.get("chosen"), "chosen")
    rejected_prefix, rejected = split_last_turn(data.get("rejected"), "rejected")
    if normalise_text(chosen_prefix) != normalise_text(rejected_prefix):
        raise RowError("'chosen' and 'rejected' differ before the last assistant turn")
    prompt = PromptRow(
        text=_hh_prompt(chosen_prefix),
        source=default_source,
        meta={"format": "hh_rlhf", "turns": _turn_number(chosen_prefix) - 1},
    )
    won = ResponseRow(
        _hh_response(chosen_prefix, chosen, "chosen"),
        default_source,
        {"hh_rlhf": {"axis": axis, "preferred": True}},
    )
    lost = ResponseRow(
        _hh_response(rejected_prefix, rejected, "rejected"),
        default_source,
        {"hh_rlhf": {"axis": axis, "preferred": False}},
    )
    if won.content_hash == lost.content_hash:
        raise RowError("the chosen and rejected responses are identical")
    # HH files always list the preferred response first; a content-derived coin keeps the export's
    # canonical order from teaching a position (reproducibly: same file, same order).
    flip = int(hashlib.sha256((won.content_hash + lost.content_hash).encode()).hexdigest(), 16) & 1
    a, b = (lost, won) if flip else (won, lost)
    labels = {axis: "b" if flip else "a"} if gold else None
    return PairRow(prompt, a, b, labels)
