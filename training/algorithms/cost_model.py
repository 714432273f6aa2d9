"""Cost model on harmlessness preferences plus safety labels (docs/design/method.md §3.2).

``python -m training cost --config run.json``. Sign convention: cost > 0 means unsafe. Metrics:
``accuracy`` (c_u > c_s), ``accuracy_sign`` (c < 0 for safe, c > 0 for unsafe), ``cost_mean``,
``cost_std``; on eval data also ``recall/<category>`` and ``unsafe_count/<category>`` for every harm
category of the responses labelled unsafe (see :func:`recall_by_category`);
``score_distribution.png`` shows safe and unsafe eval costs around the 0 boundary.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
from training.data.records import PreferenceRecord
from training.engine.distributed import all_gather_cat
from training.engine.reporting import plot_score_histogram
from training.engine.task import Batch
from training.engine.trainer import Trainer
from training.taxonomy import BEAVERTAILS_CATEGORIES

# Columns of the per-response harm tensor: every reader maps category dicts onto these names
# (training.data.records, training.taxonomy.to_beavertails).
HARM_CATEGORIES: tuple[str, ...] = BEAVERTAILS_CATEGORIES


def recall_by_category(
    costs: torch.Tensor, is_safe: torch.Tensor, harm: torch.Tensor, names: Sequence[str] = HARM_CATEGORIES
) -> dict[str, tuple[float, int]]:
    """{category: (recall, unsafe responses)} over the responses labelled unsafe in that category.

    Recall is the share of them the model scores c > 0 (unsafe, §3.2's sign convention); a
    category no unsafe response carries is left out (its recall is undefined, not 0).
    ``costs`` (N,) end costs, ``is_safe`` (N,) bool labels, ``harm`` (N, C) bool categories, C =
    len(names). A response labelled safe counts nowhere, whatever categories it carries.
    """
    unsafe_in = harm & ~is_safe.unsqueeze(1)  # (N, C)
    counts = unsafe_in.sum(dim=0)  # (C,)
    caught = (unsafe_in & (costs > 0).unsqueeze(1)).sum(dim=0)  # (C,)
    return {
        name: (int(caught[i]) / int(counts[i]), int(counts[i]))
        for i, name in enumerate(names)
        if int(counts[i]) > 0
    }


def _harm_row(categories: dict[str, bool] | None) -> torch.Tensor:
    """(C,) bool: the response's harm categories; all False when the row carries none."""
    flags = categories or {}
    return torch.tensor([bool(flags.get(name, False)) for name in HARM_CATEGORIES], dtype=torch.bool)


class CostPreferenceDataset(SafetyPreferenceDataset):
    """Safety pairs plus each response's harm categories (``safer_harm``, ``unsafer_harm``: (C,)
    bool), which the eval's recall per category needs."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        record: PreferenceRecord = self.records[index]
        answer, other = record.harm_categories or (None, None)
        safer, unsafer = (answer, other) if record.safer else (other, answer)
        item["safer_harm"], item["unsafer_harm"] = _harm_row(safer), _harm_row(unsafer)
        return item


def _with_harm(batch: Batch, items: list[dict[str, Any]]) -> Batch:
    """Adds ``harm`` (2B, C), ordered like the batch's ``is_safe``: safer responses, then unsafer."""
    rows = [it["safer_harm"] for it in items] + [it["unsafer_harm"] for it in items]
    batch["harm"] = torch.stack(rows)  # (2B, C)
    return batch


class CostPairCollator(SafetyPreferenceCollator):
    """The two-row safety-pair batch plus ``harm`` (2B, C)."""

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        return _with_harm(super().__call__(items), items)


class SharedPromptCostPairCollator(SharedPromptSafetyPreferenceCollator):
    """The shared-prompt safety-pair batch plus ``harm`` (2B, C)."""

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        return _with_harm(super().__call__(items), items)


class CostModelTask(ScoreModelTask):
    stage = "cost"
    score_type = "cost"

    dataset_cls = CostPreferenceDataset
    two_row_collator = CostPairCollator
    shared_prompt_collator = SharedPromptCostPairCollator

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
        harm_parts: dict[str, list[torch.Tensor]] = {"first": [], "second": []}

        def tap(source: Iterable[Batch]) -> Iterator[Batch]:
            # gather_eval keeps the batches' order: the harm rows are collected in the same one.
            for batch in source:
                half = batch["harm"].shape[0] // 2
                harm_parts["first"].append(batch["harm"][:half])
                harm_parts["second"].append(batch["harm"][half:])
                yield batch

        scores = self.gather_eval(model, tap(batches), flag="is_safe")
        safer, unsafer = scores["first"], scores["second"]  # (N,), (N,)
        safer_safe, unsafer_safe = scores["first_is_safe"], scores["second_is_safe"]  # (N,), (N,)
        both = torch.cat([safer, unsafer])
        is_safe = torch.cat([safer_safe, unsafer_safe])  # (2N,)
        harm = torch.cat([self._gather_harm(harm_parts[k], both.device) for k in ("first", "second")])
        metrics = {
            "accuracy": float(pairwise_accuracy(unsafer, safer)),
            "accuracy_sign": float(sign_accuracy(both, is_safe)),
            "loss": float(cost_loss(safer, unsafer, safer_safe, unsafer_safe, 0.0)),
            "cost_mean": float(both.mean()),
            "cost_std": float(both.std()) if both.numel() > 1 else 0.0,
        }
        # Every scored response counts, once per pair it is in: its safety label is that pair's.
        for name, (recall, count) in recall_by_category(both, is_safe, harm).items():
            metrics[f"recall/{name}"] = recall
            metrics[f"unsafe_count/{name}"] = float(count)
        return metrics

    @staticmethod
    def _gather_harm(parts: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """This rank's (n, C) harm rows from every rank, in gather_eval's rank order."""
        local = (
            torch.cat(parts).to(device)
            if parts
            else torch.zeros((0, len(HARM_CATEGORIES)), dtype=torch.bool, device=device)
        )
        return all_gather_cat(local)

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
