"""Rows of a dataset snapshot, in the PKU-SafeRLHF schema (docs/design/method.md §1.1), and the raw votes.

`data` rows carry every v0 field (`prompt`, `response_0/1`, `is_response_0/1_safe`,
`better_response_id`, `safer_response_id`) and the v1 fields (`prompt_source`,
`response_0/1_source`, `response_0/1_harm_category` keyed by category label,
`response_0/1_severity_level`), plus provenance and soft labels. `response_0` is the comparison's
canonical response a. Only comparisons whose two preferences are both strict (a or b) are data
rows: the PKU schema has no "equal", and a null id would be misread by trainers. The others go to
`excluded` with the reason, and every vote is in `votes` regardless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from backend.domain.enums import Choice
from backend.services.quality.aggregation import Aggregate, AxisResult, SideResult
from backend.services.quality.votes import Vote

SIDE_NAME = {"a": "response_0", "b": "response_1", "equal": "equal"}


@dataclass(frozen=True)
class PairText:
    comparison_id: int
    round_id: int | None
    prompt: str
    prompt_source: str
    response_0: str
    response_1: str
    response_0_source: str
    response_1_source: str
    complete: bool  # every annotation it was meant to get (overlap k) was submitted


def _categories(side: SideResult, taxonomy: list[dict[str, Any]]) -> dict[str, bool]:
    return {str(c["label"]): c["key"] in side.harm_categories for c in taxonomy}


def _strict(axis: AxisResult) -> int | None:
    if axis.label is Choice.a:
        return 0
    if axis.label is Choice.b:
        return 1
    return None


def data_row(pair: PairText, agg: Aggregate, taxonomy: list[dict[str, Any]]) -> dict[str, Any] | None:
    better, safer = _strict(agg.helpfulness), _strict(agg.harmlessness)
    if better is None or safer is None:
        return None
    return {
        "prompt": pair.prompt,
        "response_0": pair.response_0,
        "response_1": pair.response_1,
        "prompt_source": pair.prompt_source,
        "response_0_source": pair.response_0_source,
        "response_1_source": pair.response_1_source,
        "is_response_0_safe": agg.a.is_safe,
        "is_response_1_safe": agg.b.is_safe,
        "response_0_harm_category": _categories(agg.a, taxonomy),
        "response_1_harm_category": _categories(agg.b, taxonomy),
        "response_0_severity_level": agg.a.severity,
        "response_1_severity_level": agg.b.severity,
        "better_response_id": better,
        "safer_response_id": safer,
        "comparison_id": pair.comparison_id,
        "round_id": pair.round_id,
        "votes": agg.votes,
        "adjudicated": agg.adjudicated,
        "better_response_share": agg.helpfulness.shares["ab"[better]],
        "safer_response_share": agg.harmlessness.shares["ab"[safer]],
        "response_0_unsafe_share": agg.a.unsafe_share,
        "response_1_unsafe_share": agg.b.unsafe_share,
        "ties": list(agg.ties),
    }


def excluded_row(pair: PairText, agg: Aggregate) -> dict[str, Any]:
    reasons = []
    for name, axis in (("helpfulness", agg.helpfulness), ("harmlessness", agg.harmlessness)):
        if axis.tie:
            reasons.append(f"{name} tied")
        elif axis.label is Choice.equal:
            reasons.append(f"{name} judged equal")
    return {
        "comparison_id": pair.comparison_id,
        "round_id": pair.round_id,
        "prompt": pair.prompt,
        "response_0": pair.response_0,
        "response_1": pair.response_1,
        "helpfulness": SIDE_NAME[agg.helpfulness.label.value] if agg.helpfulness.label else None,
        "harmlessness": SIDE_NAME[agg.harmlessness.label.value] if agg.harmlessness.label else None,
        "is_response_0_safe": agg.a.is_safe,
        "is_response_1_safe": agg.b.is_safe,
        "votes": agg.votes,
        "reason": "; ".join(reasons),
    }


def vote_row(vote: Vote, weight: float) -> dict[str, Any]:
    a, b = vote.answer.a, vote.answer.b
    return {
        "annotation_id": vote.annotation_id,
        "comparison_id": vote.comparison_id,
        "annotator_id": vote.annotator_id,
        "round_id": vote.round_id,
        "is_gold": vote.is_gold,
        "is_response_0_safe": a.is_safe,
        "is_response_1_safe": b.is_safe,
        "response_0_harm_categories": list(a.harm_categories),
        "response_1_harm_categories": list(b.harm_categories),
        "response_0_severity_level": a.severity,
        "response_1_severity_level": b.severity,
        "helpfulness": SIDE_NAME[vote.answer.helpfulness.value],
        "harmlessness": SIDE_NAME[vote.answer.harmlessness.value],
        "shown_order": "response_0_left" if vote.shown_order.value == "ab" else "response_1_left",
        "confidence": vote.confidence,
        "time_spent_ms": vote.time_spent_ms,
        "rationale": vote.rationale,
        "created_at": vote.created_at.isoformat(),
        "annotator_weight": round(weight, 6),
    }


def data_schema(taxonomy: list[dict[str, Any]]) -> pa.Schema:
    cats = pa.struct([(str(c["label"]), pa.bool_()) for c in taxonomy])
    return pa.schema(
        [
            *((name, pa.string()) for name in ("prompt", "response_0", "response_1")),
            *((name, pa.string()) for name in ("prompt_source", "response_0_source", "response_1_source")),
            ("is_response_0_safe", pa.bool_()),
            ("is_response_1_safe", pa.bool_()),
            ("response_0_harm_category", cats),
            ("response_1_harm_category", cats),
            ("response_0_severity_level", pa.int64()),
            ("response_1_severity_level", pa.int64()),
            ("better_response_id", pa.int64()),
            ("safer_response_id", pa.int64()),
            ("comparison_id", pa.int64()),
            ("round_id", pa.int64()),
            ("votes", pa.int64()),
            ("adjudicated", pa.bool_()),
            ("better_response_share", pa.float64()),
            ("safer_response_share", pa.float64()),
            ("response_0_unsafe_share", pa.float64()),
            ("response_1_unsafe_share", pa.float64()),
            ("ties", pa.list_(pa.string())),
        ]
    )


VOTE_SCHEMA = pa.schema(
    [
        ("annotation_id", pa.int64()),
        ("comparison_id", pa.int64()),
        ("annotator_id", pa.int64()),
        ("round_id", pa.int64()),
        ("is_gold", pa.bool_()),
        ("is_response_0_safe", pa.bool_()),
        ("is_response_1_safe", pa.bool_()),
        ("response_0_harm_categories", pa.list_(pa.string())),
        ("response_1_harm_categories", pa.list_(pa.string())),
        ("response_0_severity_level", pa.int64()),
        ("response_1_severity_level", pa.int64()),
        ("helpfulness", pa.string()),
        ("harmlessness", pa.string()),
        ("shown_order", pa.string()),
        ("confidence", pa.int64()),
        ("time_spent_ms", pa.int64()),
        ("rationale", pa.string()),
        ("created_at", pa.string()),
        ("annotator_weight", pa.float64()),
    ]
)


def _feature(kind: pa.DataType) -> dict[str, Any]:
    if pa.types.is_struct(kind):
        return {kind.field(i).name: _feature(kind.field(i).type) for i in range(kind.num_fields)}
    if pa.types.is_list(kind):
        # "Sequence" is what every `datasets` release reads (5.x reads it as its List).
        return {"feature": _feature(kind.value_type), "_type": "Sequence"}
    names = {pa.string(): "string", pa.bool_(): "bool", pa.int64(): "int64", pa.float64(): "float64"}
    return {"dtype": names[kind], "_type": "Value"}


def hf_features(schema: pa.Schema) -> dict[str, Any]:
    """The Hugging Face `datasets` features of a schema, as `Features.to_dict()` writes them.

    JSON carries no types, so `load_dataset("json", ...)` infers them, and a column that is null
    in every row (`round_id` without rounds, `ties` without ties) comes out null-typed. Passing
    these features (from the manifest) makes the JSONL load exactly as the Parquet file does,
    which carries the same dict in its schema metadata (the key `datasets` reads).
    """
    return {field.name: _feature(field.type) for field in schema}


def with_hf_metadata(schema: pa.Schema) -> pa.Schema:
    info = {"info": {"features": hf_features(schema)}}
    return schema.with_metadata({"huggingface": json.dumps(info)})
