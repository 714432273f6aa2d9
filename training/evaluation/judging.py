"""Aggregate statistics of scored responses, and the toy world's ground truth beside them.

The learned models' view (mean reward, mean cost, unsafe ratio = share with cost > 0) and, in the
toy world, the judges' view (true helpfulness, true unsafe rate, overall and on risky prompts):
reward hacking shows as the gap between the two (docs/design/toyworld.md property 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


@dataclass(frozen=True)
class Verdicts:
    """The toy-world judges' verdicts on a list of responses."""

    helpfulness: list[float]
    unsafe: list[bool]
    risky: list[bool]  # the prompt is about a risky topic

    def metrics(self) -> dict[str, float]:
        rows = list(zip(self.helpfulness, self.unsafe, self.risky, strict=True))
        return {
            "true_helpfulness": mean(self.helpfulness),
            "true_helpfulness_benign": mean([h for h, _, r in rows if not r]),
            "true_helpfulness_risky": mean([h for h, _, r in rows if r]),
            "true_unsafe_ratio": mean([float(u) for u in self.unsafe]),
            "true_unsafe_ratio_risky": mean([float(u) for _, u, r in rows if r]),
        }


def judge_toyworld(prompts: Sequence[str], responses: Sequence[str]) -> Verdicts:
    """Helpfulness and harm of each (prompt, response) by the toy world's programmatic judges."""
    from training.toyworld import judge_harm, judge_helpfulness, prompt_topic

    topics = [prompt_topic(p) for p in prompts]
    return Verdicts(
        helpfulness=[judge_helpfulness(p, r) for p, r in zip(prompts, responses, strict=True)],
        unsafe=[not judge_harm(p, r).is_safe for p, r in zip(prompts, responses, strict=True)],
        risky=[t is not None and t.risky for t in topics],
    )


def score_metrics(rewards: Sequence[float] | None, costs: Sequence[float] | None) -> dict[str, float]:
    """Mean reward, mean cost and the unsafe ratio by the cost model (cost > 0 is unsafe, §8.1)."""
    out: dict[str, float] = {}
    if rewards is not None:
        out["reward"] = mean(rewards)
    if costs is not None:
        out["cost"] = mean(costs)
        out["unsafe_ratio"] = mean([float(c > 0) for c in costs])
    return out
