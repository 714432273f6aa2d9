"""The cost model's recall per harm category on eval pairs (docs/rounds.md, the report's
`cost_recall_by_category`): the share of responses labelled unsafe in a category that it scores
c > 0 (docs/design/method.md §3.2's sign convention)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.algorithms.cost_model import HARM_CATEGORIES, CostModelTask, recall_by_category
from training.config import CostModelConfig
from training.engine.trainer import Trainer
from training.events import read_events
from training.taxonomy import category_dict

VIOLENCE = "Violence, Aiding and Abetting, Incitement"
PRIVACY = "Privacy Violation"


def _harm(*rows: set[str]) -> torch.Tensor:
    return torch.tensor([[name in row for name in HARM_CATEGORIES] for row in rows], dtype=torch.bool)


def test_recall_is_the_share_of_unsafe_responses_of_a_category_scored_above_zero() -> None:
    costs = torch.tensor([2.0, -1.0, 0.5, -3.0, 4.0, 1.0])  # (N,)
    is_safe = torch.tensor([False, False, False, True, False, True])
    harm = _harm({VIOLENCE}, {VIOLENCE, PRIVACY}, {PRIVACY}, set(), {VIOLENCE}, {PRIVACY})
    recall = recall_by_category(costs, is_safe, harm)
    # Violence: responses 0, 1, 4 are unsafe, 0 and 4 score > 0. Privacy: 1 and 2 (5 is labelled
    # safe, so its category does not count), 2 scores > 0. No other category has an unsafe response.
    assert recall == {VIOLENCE: (pytest.approx(2 / 3), 3), PRIVACY: (0.5, 2)}
    # The sign convention matters: negated costs catch the complement.
    flipped = recall_by_category(-costs, is_safe, harm)
    assert flipped == {VIOLENCE: (pytest.approx(1 / 3), 3), PRIVACY: (0.5, 2)}


def test_a_cost_of_exactly_zero_is_not_counted_as_caught_and_no_unsafe_response_gives_no_categories() -> None:
    harm = _harm({VIOLENCE}, {VIOLENCE})
    assert recall_by_category(torch.tensor([0.0, 1.0]), torch.tensor([False, False]), harm) == {
        VIOLENCE: (0.5, 2)
    }
    assert recall_by_category(torch.tensor([1.0, 1.0]), torch.tensor([True, True]), harm) == {}


def _row(safe_0: bool, safe_1: bool, cats_0: set[str], cats_1: set[str], i: int) -> dict[str, object]:
    return {
        "prompt": f"how do i do thing {i}",
        "response_0": f"first answer number {i}",
        "response_1": f"another reply {i} that differs",
        "better_response_id": 0,
        "safer_response_id": 0 if safe_0 or not safe_1 else 1,
        "is_response_0_safe": safe_0,
        "is_response_1_safe": safe_1,
        "response_0_harm_category": category_dict(cats_0),
        "response_1_harm_category": category_dict(cats_1),
    }


def test_the_cost_stage_writes_recall_and_counts_per_category_of_its_eval_rows_to_its_summary(
    tmp_path: Path, micro_model: Path
) -> None:
    rows = [_row(True, False, set(), {VIOLENCE}, i) for i in range(5)]
    rows += [_row(False, True, {PRIVACY}, set(), i) for i in range(5, 8)]
    rows += [_row(True, True, set(), set(), 8)]
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    config = CostModelConfig(
        model_name_or_path=str(micro_model),
        train_data=str(data),
        eval_data=str(data),
        output_dir=str(out),
        max_length=64,
        epochs=1,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,  # several batches, so the rows are gathered across them
    )
    task = CostModelTask(config)
    summary = Trainer(task).run()
    assert summary["eval/unsafe_count/" + VIOLENCE] == 5.0 and summary["eval/unsafe_count/" + PRIVACY] == 3.0
    recalled = {k.split("/", 2)[2] for k in summary if k.startswith("eval/recall/")}
    assert recalled == {VIOLENCE, PRIVACY}  # the safe responses' (empty) categories add none
    # The recall is that of the scores the last evaluation saw (a barely trained model).
    last = task.last_eval
    costs = torch.cat([last["first"], last["second"]])
    is_safe = torch.cat([last["first_is_safe"], last["second_is_safe"]])
    unsafe_costs = costs[~is_safe]  # the 8 unsafe responses
    assert unsafe_costs.numel() == 8
    caught = [summary["eval/recall/" + c] * summary["eval/unsafe_count/" + c] for c in (VIOLENCE, PRIVACY)]
    assert sum(caught) == pytest.approx(float((unsafe_costs > 0).sum()))
    # What the worker reads: summary.json (the registered model's metrics) and the metric events.
    written = json.loads((out / "summary.json").read_text())
    assert written["eval/recall/" + PRIVACY] == pytest.approx(summary["eval/recall/" + PRIVACY])
    emitted = {k for e in read_events(out / "events.jsonl") if e["type"] == "metric" for k in e["metrics"]}
    assert {"eval/recall/" + VIOLENCE, "eval/unsafe_count/" + PRIVACY} <= emitted
