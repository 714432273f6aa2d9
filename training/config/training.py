"""Frozen, documented configs of the supervised stages: SFT, reward model and cost model.

Defaults follow the reference scripts (docs/design/method.md §3.3, §4, §12.1) where they make sense on
any hardware; DeepSpeed is off unless ``zero_stage`` is set, and bf16 is used only on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from training.config.base import check, opt
from training.config.runtime import Device, Precision, RuntimeConfig

Offload = Literal["none", "parameter", "optimizer", "all"]


@dataclass(frozen=True, kw_only=True)
class TrainingConfig(RuntimeConfig):
    """Options shared by every training stage (the runtime options' help says "train" here)."""

    model_name_or_path: str = opt(help="local HF model directory to start from (e.g. the SFT output)")
    train_data: str = opt(help="training data: a .jsonl/.json/.parquet file or a directory of them")
    eval_data: str | None = opt(None, "evaluation data in the same format; none skips evaluation")
    output_dir: str = opt(help="directory for the model, checkpoints, summary.json and events.jsonl")
    seed: int = opt(42, "random seed for initialisation, shuffling and dropout")
    epochs: int = opt(2, "number of passes over the training data")
    max_steps: int = opt(-1, "stop after this many optimizer steps (-1: run all epochs)")
    max_length: int = opt(512, "truncate tokenized sequences to this many tokens (right truncation)")
    per_device_train_batch_size: int = opt(16, "training micro-batch size per device (pairs or rows)")
    per_device_eval_batch_size: int = opt(16, "evaluation batch size per device")
    gradient_accumulation_steps: int = opt(1, "micro-batches accumulated into one optimizer step")
    learning_rate: float = opt(2e-5, "peak AdamW learning rate")
    weight_decay: float = opt(0.1, "AdamW weight decay (not applied to biases and layer-norm weights)")
    adam_betas: tuple[float, float] = opt((0.9, 0.95), "AdamW betas (spec §12.1: 0.9, 0.95)")
    lr_scheduler_type: Literal["cosine", "linear", "constant"] = opt(
        "cosine", "learning-rate schedule after warmup"
    )
    lr_warmup_ratio: float = opt(0.03, "fraction of optimizer steps spent in linear warmup")
    max_grad_norm: float = opt(1.0, "gradient-norm clipping threshold (0 disables clipping)")
    group_by_length: bool = opt(True, "batch sequences of similar length together so padding is not paid for")
    length_group_size: int = opt(
        50, "length grouping sorts windows of this many batches (randomness vs padding)"
    )
    eval_steps: int = opt(0, "evaluate every N optimizer steps (0: at the end of every epoch)")
    logging_steps: int = opt(10, "emit train metrics every N optimizer steps")
    save_steps: int = opt(0, "write a checkpoint every N optimizer steps (0: at the end of every epoch)")
    save_total_limit: int = opt(2, "keep at most this many checkpoints (oldest removed first)")
    resume: str = opt("auto", "'auto' resumes from output_dir's latest checkpoint if any, 'never', or a path")
    device: Device = opt("auto", "where to train; auto picks CUDA when available")
    precision: Precision = opt("auto", "auto: bf16 autocast on a GPU that supports it, fp32 on CPU")
    tf32: bool = opt(True, "allow TF32 matmuls on Ampere+ GPUs")
    gradient_checkpointing: bool = opt(False, "recompute activations in backward to save memory")
    zero_stage: int | None = opt(None, "DeepSpeed ZeRO stage 0-3; none trains with plain PyTorch")
    offload: Offload = opt("none", "DeepSpeed CPU offload of parameters, optimizer state or both")
    num_threads: int = opt(0, "torch CPU threads (0: torch default)")
    trust_remote_code: bool = opt(False, "allow custom modelling code shipped with the model directory")

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "epochs must be at least 1")
        check(self.max_steps == -1 or self.max_steps >= 1, "max_steps must be -1 or at least 1")
        check(self.max_length >= 8, "max_length must be at least 8")
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "length_group_size",
            "save_total_limit",
        ):
            check(getattr(self, name) >= 1, f"{name} must be at least 1")
        for name in ("eval_steps", "logging_steps", "save_steps", "num_threads"):
            check(getattr(self, name) >= 0, f"{name} must not be negative")
        check(self.learning_rate > 0, "learning_rate must be positive")
        check(self.weight_decay >= 0, "weight_decay must not be negative")
        check(all(0.0 <= b < 1.0 for b in self.adam_betas), "adam_betas must lie in [0, 1)")
        check(0.0 <= self.lr_warmup_ratio < 1.0, "lr_warmup_ratio must lie in [0, 1)")
        check(self.max_grad_norm >= 0, "max_grad_norm must not be negative")
        check(
            self.zero_stage is None or self.zero_stage in (0, 1, 2, 3),
            "zero_stage must be 0, 1, 2, 3 or none",
        )
        check(
            self.offload == "none" or self.zero_stage is not None, "offload needs DeepSpeed (set zero_stage)"
        )
        check(
            self.offload in ("none", "optimizer") or self.zero_stage == 3,
            "parameter offload needs ZeRO stage 3",
        )
        check(bool(self.resume), "resume must be 'auto', 'never' or a checkpoint path")


@dataclass(frozen=True, kw_only=True)
class SFTConfig(TrainingConfig):
    """Supervised fine-tuning on (prompt, answer) rows; the loss covers answer tokens only (§4)."""

    epochs: int = opt(3, "number of passes over the training data (spec §4: 3)")
    per_device_train_batch_size: int = opt(4, "training micro-batch size per device (spec §4: 4)")
    gradient_accumulation_steps: int = opt(8, "micro-batches per optimizer step (spec §4: 8)")
    weight_decay: float = opt(0.0, "AdamW weight decay (spec §4: 0)")


LossType = Literal["sequence-wise", "token-wise"]
NormalizerType = Literal["none", "RunningMeanStd", "ExponentialMovingAverage"]


@dataclass(frozen=True, kw_only=True)
class ScoreModelConfig(TrainingConfig):
    """Options shared by the reward and the cost model (spec §2, §3)."""

    loss_type: LossType = opt(
        "sequence-wise", "sequence-wise (end scores) or token-wise (diverging span) loss"
    )
    regularization: float = opt(0.001, "L2 score regularisation coefficient eta (spec §3.1: 0.001)")
    normalizer_type: NormalizerType = opt("ExponentialMovingAverage", "running statistics of end scores")
    normalizer_momentum: float = opt(0.9, "momentum of the exponential-moving-average normalizer")
    normalize_score_during_training: bool = opt(False, "apply the normalizer to scores while training")
    shared_prompt: bool = opt(
        True,
        "run each pair as one row [prompt, first, second] under a block-causal mask, so the prompt "
        "is computed once (same scores and losses as two rows); falls back to two rows, with the "
        "reason logged, for the token-wise loss and for backbones that cannot take a 4D mask",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.regularization >= 0, "regularization must not be negative")
        check(0.0 < self.normalizer_momentum < 1.0, "normalizer_momentum must lie in (0, 1)")


@dataclass(frozen=True, kw_only=True)
class RewardModelConfig(ScoreModelConfig):
    """Reward model on helpfulness preferences (`better_response_id`), spec §3.1."""


@dataclass(frozen=True, kw_only=True)
class CostModelConfig(ScoreModelConfig):
    """Cost model on harmlessness preferences plus per-response safety signs, spec §3.2."""
