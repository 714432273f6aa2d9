"""Reward model on helpfulness preferences (docs/design/method.md §3.1).

``python -m training reward --config run.json``: loss -logsig(r_w - r_l) + eta * r^2 on end scores
(or the token-wise variant); metrics ``train/accuracy`` and ``eval/accuracy``, ``eval/reward_mean``,
``eval/reward_std``; the eval score histogram goes to ``score_distribution.png``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from training.algorithms.losses import (
    diverging_span_mask,
    pairwise_accuracy,
    reward_loss,
    token_wise_reward_loss,
)
from training.algorithms.score_training import ScoreModelTask
from training.config import RewardModelConfig
from training.data import PreferenceCollator, PreferenceDataset, SharedPromptPreferenceCollator
from training.engine.reporting import plot_score_histogram
from training.engine.task import Batch
from training.engine.trainer import Trainer


class RewardModelTask(ScoreModelTask):
    stage = "reward"
    score_type = "reward"

    dataset_cls = PreferenceDataset
    two_row_collator = PreferenceCollator
    shared_prompt_collator = SharedPromptPreferenceCollator

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, end = self.end_scores(model, batch)  # end: (2B,)
        half = end.shape[0] // 2
        better, worse = end[:half], end[half:]  # (B,), (B,)
        eta = self.config.regularization
        if self.config.loss_type == "token-wise":  # always two rows per pair (score_layout)
            scores = out.scores.squeeze(-1)  # (2B, L)
            ids, ends = batch["input_ids"], out.end_index
            span = diverging_span_mask(ids[:half], ids[half:], ends[:half], ends[half:])  # (B, L)
            loss = token_wise_reward_loss(scores[:half], scores[half:], span, eta)
        else:
            loss = reward_loss(better, worse, eta)
        metrics = {"accuracy": pairwise_accuracy(better, worse).detach(), "reward_mean": end.mean().detach()}
        return loss, metrics

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        scores = self.gather_eval(model, batches)
        better, worse = scores["first"], scores["second"]
        both = torch.cat([better, worse])
        return {
            "accuracy": float(pairwise_accuracy(better, worse)),
            "loss": float(reward_loss(better, worse, 0.0)),
            "reward_mean": float(both.mean()),
            "reward_std": float(both.std()) if both.numel() > 1 else 0.0,
        }

    def final_report(self, output_dir: Path) -> None:
        if self.last_eval:
            groups = {"better": self.last_eval["first"].tolist(), "worse": self.last_eval["second"].tolist()}
            plot_score_histogram(
                output_dir / "score_distribution.png",
                groups,
                "Reward model: eval end scores",
                "reward (end score)",
            )


def run_reward(config: RewardModelConfig) -> dict[str, float]:
    return Trainer(RewardModelTask(config)).run()
