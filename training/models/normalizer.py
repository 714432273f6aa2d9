"""Running statistics of end scores and the score normalisation of docs/design/method.md §2.2.

reward: affine (x - mu) / (sigma + eps); cost: scale-only x / (sigma + eps), which keeps the sign and
with it the 0 = safe/unsafe boundary; critic: identity.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from training.engine.distributed import all_gather_cat

EPS = 1e-8
ScoreType = Literal["reward", "cost", "critic"]
NormalizerType = Literal["none", "RunningMeanStd", "ExponentialMovingAverage"]


class Normalizer(nn.Module):
    """Mean/variance of the end scores seen in train mode (buffers: saved with the model)."""

    mean: torch.Tensor  # buffers, declared so they type as tensors rather than Tensor | Module
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, kind: NormalizerType = "none", momentum: float = 0.9) -> None:
        super().__init__()
        self.kind = kind
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("var", torch.ones(1))
        self.register_buffer("count", torch.zeros(1, dtype=torch.float64))

    @torch.no_grad()
    def update(self, scores: torch.Tensor) -> None:
        """Merge a batch of end scores (B, D), all-gathered across ranks (§2.2)."""
        batch = all_gather_cat(scores.detach().float().reshape(-1, self.mean.numel()))  # (N, D)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0, unbiased=False)
        # Work in float64 on copies: under DeepSpeed bf16 the buffers themselves may be bf16.
        mean, var, count = self.mean.double(), self.var.double(), self.count.double()
        if self.kind == "RunningMeanStd":
            # Parallel (Chan et al.) merge of two sets of moments.
            total = count + n
            delta = batch_mean.double() - mean
            var = (var * count + batch_var.double() * n + delta.pow(2) * count * n / total) / total
            mean = mean + delta * n / total
        elif self.kind == "ExponentialMovingAverage":
            m = self.momentum
            mean = m * mean + (1 - m) * batch_mean.double()
            var = m * var + (1 - m) * batch_var.double()
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count + n)

    def normalize(self, x: torch.Tensor, score_type: ScoreType) -> torch.Tensor:
        std = self.var.sqrt()
        if score_type == "reward":
            return (x - self.mean) / (std + EPS)
        if score_type == "cost":
            return x / (std + EPS)
        return x

    def stats(self) -> dict[str, list[float] | float]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count.item())}

    def load_stats(self, stats: dict[str, Any]) -> None:
        with torch.no_grad():
            self.mean.copy_(torch.tensor(stats.get("mean", [0.0]), dtype=self.mean.dtype))
            self.var.copy_(torch.tensor(stats.get("var", [1.0]), dtype=self.var.dtype))
            self.count.fill_(float(stats.get("count", 0.0)))
