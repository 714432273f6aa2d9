"""Cost model on harmlessness preferences plus safety labels (docs/design/method.md §3.2).

``python -m training cost --config run.json``. Sign convention: cost > 0 means unsafe. Metrics:
``accuracy`` (c_u > c_s), ``accuracy_sign`` (c < 0 for safe, c > 0 for unsafe), ``cost_mean``,
``cost_std``; ``score_distribution.png`` shows safe and unsafe eval costs around the 0 boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from training.algorithms.losses import (
    cost_loss,
    diverging_span_mask,
    pairwise_accuracy,
    sign_accuracy,
    token_wise_cost_loss,
)
from training.algorithms.score_training import ScoreModelTask
from training.config import CostModelConfig
from training.data import (
    SafetyPreferenceCollator,
    SafetyPreferenceDataset,
    SharedPromptSafetyPreferenceCollator,
)
from training.engine.reporting import plot_score_histogram
from training.engine.task import Batch
from training.engine.trainer import Trainer


class CostModelTask(ScoreModelTask):
    stage = "cost"
    score_type = "cost"

    dataset_cls = SafetyPreferenceDataset
    two_row_collator = SafetyPreferenceCollator
    shared_prompt_collator = SharedPromptSafetyPreferenceCollator

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, end = self.end_scores(model, batch)  # end: (2B,) costs, rows [0, B) safer
        half = end.shape[0] // 2
        safer, unsafer = end[:half], end[half:]  # (B,), (B,)
        is_safe = batch["is_safe"]  # (2B,)
        eta = self.config.regularization
        if self.config.loss_type == "token-wise":  # always two rows per pair (score_layout)
            scores = out.scores.squeeze(-1)  # (2B, L)
            ids, ends = batch["input_ids"], out.end_index
            span = diverging_span_mask(ids[:half], ids[half:], ends[:half], ends[half:])  # (B, L)
            loss = token_wise_cost_loss(
                scores[:half], scores[half:], is_safe[:half], is_safe[half:], span, eta
            )
        else:
            loss = cost_loss(safer, unsafer, is_safe[:half], is_safe[half:], eta)
        metrics = {
            "accuracy": pairwise_accuracy(unsafer, safer).detach(),
            "accuracy_sign": sign_accuracy(end, is_safe).detach(),
            "cost_mean": end.mean().detach(),
        }
        return loss, metrics

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        scores = self.gather_eval(model, batches, flag="is_safe")
        safer, unsafer = scores["first"], scores["second"]  # (N,), (N,)
        safer_safe, unsafer_safe = scores["first_is_safe"], scores["second_is_safe"]  # (N,), (N,)
        both = torch.cat([safer, unsafer])
        return {
            "accuracy": float(pairwise_accuracy(unsafer, safer)),
            "accuracy_sign": float(sign_accuracy(both, torch.cat([safer_safe, unsafer_safe]))),
            "loss": float(cost_loss(safer, unsafer, safer_safe, unsafer_safe, 0.0)),
            "cost_mean": float(both.mean()),
            "cost_std": float(both.std()) if both.numel() > 1 else 0.0,
        }

    def final_report(self, output_dir: Path) -> None:
        if not self.last_eval:
            return
        ev = self.last_eval
        costs = torch.cat([ev["first"], ev["second"]])
        is_safe = torch.cat([ev["first_is_safe"], ev["second_is_safe"]])
        plot_score_histogram(
            output_dir / "score_distribution.png",
            {"safe": costs[is_safe].tolist(), "unsafe": costs[~is_safe].tolist()},
            "Cost model: eval end costs",
            "cost (end score); > 0 unsafe",
        )


def run_cost(config: CostModelConfig) -> dict[str, float]:
    return Trainer(CostModelTask(config)).run()
