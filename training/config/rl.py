"""Frozen, documented configs of the policy stages: PPO, PPO-Lagrangian (Safe RLHF), reward shaping,
DPO, and the generate / evaluate (arena) stages. Torch-free by contract.

Defaults are the reference scripts' (docs/design/method.md §5.7 ``scripts/ppo.sh``, §6.6
``scripts/ppo-lag.sh``, §7.2, §7.4 ``scripts/dpo.sh``), with ``max_length = 512`` budgeted
explicitly as ``max_prompt_length + max_new_tokens`` (§12.3).

PPO-Lag presets (``--preset``): ``reference`` is the script; ``beaver-v1``/``-v2``/``-v3`` are the
paper's per-round settings (§6.7: threshold, λ_init, λ_lr and epochs from the paper's table, plus
the reported actor lr 9.65e-6, KL coefficient 0.1 and PPO clip 0.1). A preset fills every field
of :data:`PRESET_FIELDS` that the run leaves unset; a value given in run.json or on the command line
always wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from training.config.base import check, opt
from training.config.runtime import RuntimeConfig
from training.config.training import Offload, TrainingConfig

Scheduler = Literal["cosine", "linear", "constant"]
GroundTruth = Literal["none", "toyworld"]
Preset = Literal["reference", "beaver-v1", "beaver-v2", "beaver-v3"]

# §6.6 (reference script) and §6.7 (paper, per round). Keys are PPOLagConfig fields.
_PAPER_COMMON: dict[str, Any] = {"actor_learning_rate": 9.65e-6, "kl_coeff": 0.1, "clip_range_ratio": 0.1}
PRESETS: dict[str, dict[str, Any]] = {
    "reference": {
        "threshold": 0.0,
        "lambda_init": 1.0,
        "lambda_lr": 0.1,
        "epochs": 1,
        "actor_learning_rate": 1e-5,
        "kl_coeff": 0.01,
        "clip_range_ratio": 0.2,
    },
    "beaver-v1": {"threshold": 0.0, "lambda_init": 1.0, "lambda_lr": 0.01, "epochs": 3, **_PAPER_COMMON},
    "beaver-v2": {"threshold": -3.0, "lambda_init": 0.5, "lambda_lr": 0.04, "epochs": 3, **_PAPER_COMMON},
    "beaver-v3": {"threshold": -3.0, "lambda_init": 1.0, "lambda_lr": 0.04, "epochs": 4, **_PAPER_COMMON},
}
PRESET_FIELDS = tuple(PRESETS["reference"])


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How responses are sampled (§5.2: do_sample, temperature 1, top_p 1) and their length budget."""

    max_prompt_length: int = opt(256, "prompts longer than this many tokens are dropped (and counted)")
    max_new_tokens: int = opt(256, "response budget in tokens (the reference's max_length 512 = 256 + 256)")
    temperature: float = opt(1.0, "sampling temperature; 0 decodes greedily")
    top_p: float = opt(1.0, "nucleus sampling mass (1.0: plain sampling)")

    def __post_init__(self) -> None:
        check(self.max_prompt_length >= 1, "max_prompt_length must be at least 1")
        check(self.max_new_tokens >= 1, "max_new_tokens must be at least 1")
        check(self.temperature >= 0, "temperature must not be negative")
        check(0.0 < self.top_p <= 1.0, "top_p must lie in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class RLConfig(SamplingConfig, RuntimeConfig):
    """Options shared by PPO, reward shaping and PPO-Lag (§5)."""

    model_name_or_path: str = opt(help="actor initialisation, the SFT model (also the frozen reference)")
    reward_model_name_or_path: str = opt(help="reward model directory (frozen)")
    reward_critic_model_name_or_path: str | None = opt(
        None, "reward critic initialisation (default: the reward model's weights, spec §5.1)"
    )
    train_data: str = opt(help="RL prompts: .jsonl/.json/.parquet with a prompt field (deduplicated)")
    eval_data: str | None = opt(None, "evaluation prompts; none skips evaluation")
    ptx_data: str | None = opt(None, "supervised rows for the PTX loss (§5.6); none disables PTX")
    output_dir: str = opt(help="directory for the actor, checkpoints, summary.json and events.jsonl")
    epochs: int = opt(1, "passes over the prompts (§5.7: 1)")
    max_steps: int = opt(-1, "stop after this many optimizer steps (-1: run all epochs)")
    update_iters: int = opt(1, "PPO epochs over each rollout batch (§5.7: 1)")
    per_device_prompt_batch_size: int = opt(16, "prompts rolled out per step (§5.7: 16)")
    per_device_train_batch_size: int = opt(16, "rollout/update micro-batch; each is one optimizer step (16)")
    per_device_eval_batch_size: int = opt(16, "prompts per generation batch during evaluation")
    kl_coeff: float = opt(0.02, "β of the per-token KL penalty (§5.3: 0.02)")
    clip_range_ratio: float = opt(0.2, "PPO ratio clip ε (§5.5: 0.2)")
    clip_range_score: float = opt(50.0, "per-token rewards/costs are clipped to ± this (§5.3: 50)")
    clip_range_value: float = opt(5.0, "value clip ε_v around the rollout values (§5.5: 5)")
    gamma: float = opt(1.0, "GAE discount (the reference hard-codes 1.0)")
    gae_lambda: float = opt(0.95, "GAE λ (the reference hard-codes 0.95)")
    normalize_reward: bool = opt(False, "normalise RM scores with the RM's stored statistics (§2.2)")
    ptx_coeff: float = opt(16.0, "PTX loss weight when ptx_data is set (§5.6: 16)")
    actor_learning_rate: float = opt(1e-5, "actor peak learning rate (§5.7: 1e-5)")
    actor_weight_decay: float = opt(0.01, "actor AdamW weight decay (§5.7: 0.01)")
    actor_lr_scheduler_type: Scheduler = opt("cosine", "actor schedule after warmup (§5.7: cosine)")
    actor_lr_warmup_ratio: float = opt(0.03, "share of actor steps in linear warmup (§5.7: 0.03)")
    critic_learning_rate: float = opt(5e-6, "critic learning rate (§5.7: 5e-6)")
    critic_weight_decay: float = opt(0.0, "critic AdamW weight decay (§5.7: 0)")
    critic_lr_scheduler_type: Scheduler = opt("constant", "critic schedule (§5.7: constant)")
    critic_lr_warmup_ratio: float = opt(0.03, "share of critic steps in linear warmup")
    adam_betas: tuple[float, float] = opt((0.9, 0.95), "AdamW betas of actor and critics (§12.1)")
    max_grad_norm: float = opt(1.0, "gradient-norm clipping per model (0 disables)")
    actor_gradient_checkpointing: bool = opt(False, "recompute actor activations in backward")
    critic_gradient_checkpointing: bool = opt(False, "recompute critic activations in backward")
    zero_stage: int | None = opt(
        None,
        "DeepSpeed ZeRO stage 0-3 of the trained networks (3 also shards the frozen ones); "
        "none: plain PyTorch",
    )
    offload: Offload = opt("none", "DeepSpeed CPU offload of parameters, optimizer state or both")
    logging_steps: int = opt(1, "emit train metrics every N rollout batches")
    eval_steps: int = opt(0, "evaluate every N optimizer steps, after a rollout batch (0: epoch end)")
    save_steps: int = opt(0, "checkpoint every N optimizer steps, after a rollout batch (0: epoch end)")
    save_total_limit: int = opt(2, "keep at most this many checkpoints (oldest removed first)")
    resume: str = opt("auto", "'auto' resumes from output_dir's latest checkpoint if any, 'never', or a path")
    ground_truth: GroundTruth = opt(
        "none", "'toyworld': evaluation also reports the toy world judges' verdicts"
    )

    def __post_init__(self) -> None:
        SamplingConfig.__post_init__(self)
        check(self.epochs >= 1 and self.update_iters >= 1, "epochs and update_iters must be at least 1")
        check(self.max_steps == -1 or self.max_steps >= 1, "max_steps must be -1 or at least 1")
        for name in (
            "per_device_prompt_batch_size",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "save_total_limit",
            "logging_steps",
        ):
            check(getattr(self, name) >= 1, f"{name} must be at least 1")
        check(
            self.per_device_prompt_batch_size % self.per_device_train_batch_size == 0,
            "per_device_prompt_batch_size must be a multiple of per_device_train_batch_size",
        )
        for name in (
            "eval_steps",
            "save_steps",
            "num_threads",
            "kl_coeff",
            "actor_weight_decay",
            "critic_weight_decay",
            "max_grad_norm",
            "ptx_coeff",
        ):
            check(getattr(self, name) >= 0, f"{name} must not be negative")
        for name in (
            "clip_range_ratio",
            "clip_range_score",
            "clip_range_value",
            "actor_learning_rate",
            "critic_learning_rate",
        ):
            check(getattr(self, name) > 0, f"{name} must be positive")
        check(
            0.0 <= self.gamma <= 1.0 and 0.0 <= self.gae_lambda <= 1.0,
            "gamma and gae_lambda must lie in [0, 1]",
        )
        check(
            0.0 <= self.actor_lr_warmup_ratio < 1.0 and 0.0 <= self.critic_lr_warmup_ratio < 1.0,
            "warmup ratios must lie in [0, 1)",
        )
        check(all(0.0 <= b < 1.0 for b in self.adam_betas), "adam_betas must lie in [0, 1)")
        check(bool(self.resume), "resume must be 'auto', 'never' or a checkpoint path")
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


@dataclass(frozen=True, kw_only=True)
class PPOConfig(RLConfig):
    """Plain RLHF with PPO on the reward model only (§5, §7.1; ``scripts/ppo.sh``)."""


@dataclass(frozen=True, kw_only=True)
class CostModelOptions:
    cost_model_name_or_path: str = opt(help="cost model directory (frozen; cost > 0 means unsafe)")
    normalize_cost: bool = opt(False, "scale CM scores by the CM's stored standard deviation (§2.2)")
    episode_cost_window_size: int = opt(128, "episodes in the moving window of costs (§6.3: 128)")


@dataclass(frozen=True, kw_only=True)
class RewardShapingConfig(RLConfig, CostModelOptions):
    """PPO on the shaped reward R - ν·C with a fixed ν (§7.2); the cost window is only logged."""

    nu: float = opt(1.0, "fixed trade-off ν of R - ν·C (the reference passes it as --lambda_init; 1.0)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.nu >= 0, "nu must not be negative")
        check(self.episode_cost_window_size >= 1, "episode_cost_window_size must be at least 1")


def preset_value(value: float | None) -> float:
    """A PPO-Lag field that its preset filled (every preset sets every field of PRESET_FIELDS)."""
    if value is None:
        raise ValueError("a preset field was left unset")
    return value


@dataclass(frozen=True, kw_only=True)
class PPOLagConfig(RLConfig, CostModelOptions):
    """Safe RLHF: PPO-Lagrangian with a reward and a cost critic and a learned λ (§6)."""

    cost_critic_model_name_or_path: str | None = opt(
        None, "cost critic initialisation (default: the cost model's weights, spec §6.2)"
    )
    preset: Preset = opt(
        "reference",
        "defaults for the fields left unset: the reference script "
        "(§6.6) or the paper's round settings beaver-v1/-v2/-v3 (§6.7)",
    )
    threshold: float | None = opt(None, "cost limit -d, the constraint is E[C] ≤ threshold (preset; ref. 0)")
    lambda_init: float | None = opt(None, "initial λ (preset; reference 1.0)")
    lambda_lr: float | None = opt(None, "SGD step size on log λ (preset; reference 0.1)")
    lambda_max: float | None = opt(5.0, "upper bound of λ (§6.6: 5.0; none: unbounded)")
    lambda_update_delay_steps: int = opt(0, "optimizer steps before λ starts to move (§6.6: 0)")
    # None means "from the preset"; __post_init__ fills it, so RLConfig's non-optional type holds after
    # construction, which mypy cannot see.
    epochs: int | None = opt(None, "passes over the prompts (preset; reference 1)")  # type: ignore[assignment]
    actor_learning_rate: float | None = opt(None, "actor peak learning rate (preset; reference 1e-5)")  # type: ignore[assignment]
    kl_coeff: float | None = opt(None, "β of the KL penalty on each side (preset; reference 0.01)")  # type: ignore[assignment]
    clip_range_ratio: float | None = opt(None, "PPO ratio clip ε (preset; reference 0.2)")  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        super().__post_init__()
        lambda_init, lambda_lr = preset_value(self.lambda_init), preset_value(self.lambda_lr)
        check(lambda_init > 0, "lambda_init must be positive (λ lives in log space)")
        check(lambda_lr >= 0, "lambda_lr must not be negative")
        check(self.lambda_max is None or self.lambda_max >= lambda_init, "lambda_max must be ≥ lambda_init")
        check(self.lambda_update_delay_steps >= 0, "lambda_update_delay_steps must not be negative")
        check(self.episode_cost_window_size >= 1, "episode_cost_window_size must be at least 1")


@dataclass(frozen=True, kw_only=True)
class DPOConfig(TrainingConfig):
    """DPO on helpfulness preferences (`better` only), policy and reference from the SFT model (§7.4)."""

    reference_model_name_or_path: str | None = opt(None, "frozen reference (default: model_name_or_path)")
    scale_coeff: float = opt(0.1, "β of the DPO loss (§7.4 script: 0.1)")
    epochs: int = opt(2, "passes over the pairs (§7.4: 2)")
    learning_rate: float = opt(1e-6, "peak learning rate (§7.4: 1e-6)")
    weight_decay: float = opt(0.05, "AdamW weight decay (§7.4: 0.05)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.scale_coeff > 0, "scale_coeff must be positive")


@dataclass(frozen=True, kw_only=True)
class GenerateConfig(SamplingConfig, RuntimeConfig):
    """Sample responses of one policy to a prompt set, optionally scored by a reward and a cost model."""

    model_name_or_path: str = opt(help="policy directory (a causal LM)")
    prompt_data: str = opt(help="prompts: .jsonl/.json/.parquet with a prompt field (deduplicated)")
    output_dir: str = opt(help="directory for generations.jsonl and summary.json")
    reward_model_name_or_path: str | None = opt(None, "reward model to score the responses (optional)")
    cost_model_name_or_path: str | None = opt(None, "cost model to score the responses (optional)")
    per_device_eval_batch_size: int = opt(16, "prompts per generation batch")
    max_prompts: int = opt(-1, "use only the first N prompts (-1: all)")
    ground_truth: GroundTruth = opt("none", "'toyworld': also judge responses with the toy world's judges")

    def __post_init__(self) -> None:
        SamplingConfig.__post_init__(self)
        check(self.per_device_eval_batch_size >= 1, "per_device_eval_batch_size must be at least 1")
        check(self.max_prompts == -1 or self.max_prompts >= 1, "max_prompts must be -1 or at least 1")


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig(SamplingConfig, RuntimeConfig):
    """The arena (§8.1): red and blue policies answer the same prompts; the RM and CM score both."""

    red_model_name_or_path: str = opt(help="red corner policy (e.g. the SFT model)")
    blue_model_name_or_path: str = opt(help="blue corner policy (e.g. the PPO-Lag actor)")
    reward_model_name_or_path: str = opt(help="reward model that scores both")
    cost_model_name_or_path: str = opt(help="cost model that scores both (cost > 0: unsafe)")
    prompt_data: str = opt(help="prompts (a harm_category or category field enables the per-category table)")
    output_dir: str = opt(help="directory for table.csv and summary.json")
    red_name: str = opt("red", "label of the red corner in the outputs")
    blue_name: str = opt("blue", "label of the blue corner in the outputs")
    per_device_eval_batch_size: int = opt(16, "prompts per generation batch")
    max_prompts: int = opt(-1, "use only the first N prompts (-1: all)")
    samples_per_prompt: int = opt(
        1, "answers per prompt and corner, each sampled afresh (rates over more answers move in finer steps)"
    )
    ground_truth: GroundTruth = opt("none", "'toyworld': also report the judges' true helpfulness and harm")

    def __post_init__(self) -> None:
        SamplingConfig.__post_init__(self)
        check(self.per_device_eval_batch_size >= 1, "per_device_eval_batch_size must be at least 1")
        check(self.max_prompts == -1 or self.max_prompts >= 1, "max_prompts must be -1 or at least 1")
        check(1 <= self.samples_per_prompt <= 64, "samples_per_prompt must lie in 1..64")
