"""The networks of a policy stage (docs/design/method.md §5.1, §6.2) and their optimizers.

PPO-Lag holds six: actor and reference (from the SFT model), reward and cost models (frozen), and
reward and cost critics initialised from the reward and cost models' weights with
``score_type='critic'`` and no normalisation. Trained networks run in fp32 with bf16 autocast on a
GPU; frozen ones are loaded directly in bf16 there. Without ``zero_stage`` a run is one process of
plain PyTorch; with it, each trained network gets its own DeepSpeed engine (ZeRO 0-3, offload) and,
under ZeRO-3, the frozen ones are partitioned by an inference engine too (§12.1), so no rank holds
a whole network outside the rollout's gathered generation.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from training.config import RLConfig
from training.engine.backends import DeepSpeedBackend, TorchBackend
from training.engine.distributed import world_size
from training.errors import ConfigError
from training.models import (
    ScoreModel,
    load_causal_lm,
    load_score_model,
    load_tokenizer,
    resize_embeddings_mean,
)

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=nn.Module)
TRAINED = ("actor", "reward_critic", "cost_critic")


@dataclass(frozen=True)
class OptimizerSettings:
    """The attributes :class:`TorchBackend` and ``build_optimizer``/``build_scheduler`` read."""

    learning_rate: float
    weight_decay: float
    adam_betas: tuple[float, float]
    lr_scheduler_type: str
    lr_warmup_ratio: float
    max_grad_norm: float
    gradient_accumulation_steps: int = 1
    # Read by DeepSpeedBackend only.
    per_device_train_batch_size: int = 1
    zero_stage: int | None = None
    offload: str = "none"


def uses_ptx(cfg: RLConfig) -> bool:
    return bool(cfg.ptx_data) and cfg.ptx_coeff > 0


def actor_settings(cfg: RLConfig) -> OptimizerSettings:
    """With PTX the RL and PTX gradients are two micro-batches of one step (§5.6), as in the
    reference's doubled gradient accumulation: each is scaled by ½."""
    return OptimizerSettings(
        cfg.actor_learning_rate,
        cfg.actor_weight_decay,
        cfg.adam_betas,
        cfg.actor_lr_scheduler_type,
        cfg.actor_lr_warmup_ratio,
        cfg.max_grad_norm,
        gradient_accumulation_steps=2 if uses_ptx(cfg) else 1,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        zero_stage=cfg.zero_stage,
        offload=cfg.offload,
    )


def critic_settings(cfg: RLConfig) -> OptimizerSettings:
    return OptimizerSettings(
        cfg.critic_learning_rate,
        cfg.critic_weight_decay,
        cfg.adam_betas,
        cfg.critic_lr_scheduler_type,
        cfg.critic_lr_warmup_ratio,
        cfg.max_grad_norm,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        zero_stage=cfg.zero_stage,
        offload=cfg.offload,
    )


Backend = TorchBackend | DeepSpeedBackend


def make_backend(
    model: nn.Module, settings: OptimizerSettings, total_steps: int, device: torch.device, bf16: bool
) -> Backend:
    if settings.zero_stage is None:
        return TorchBackend(model, settings, total_steps, device, bf16)
    return DeepSpeedBackend(model, settings, total_steps, device, bf16)  # type: ignore[arg-type]


def check_same_tokenizer(path: str, tokenizer: PreTrainedTokenizerBase, role: str, *, required: bool) -> None:
    """Critics must share the actor's tokenizer (§5.1). Scorers with another vocabulary would need
    re-tokenisation, which is not supported: say so instead of scoring garbage."""
    directory = Path(path)
    if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        if required:
            logger.info("%s at %s has no tokenizer files; assuming the actor's", role, path)
        return
    other = load_tokenizer(path)
    if other.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(
            f"the {role} at {path} uses a different tokenizer than the actor; the {role} must "
            "share the actor's tokenizer (train it from the same SFT model)"
        )


class RolloutCopy:
    """A bf16 copy of the actor for sampling on a GPU, refreshed from the fp32 weights before each
    rollout. Decoding is memory-bound: it should read 2 bytes per parameter per token, not the fp32
    master weights plus an autocast cast of each of them at every step. Only parameters are cast;
    buffers such as rotary frequencies keep their precision."""

    def __init__(self, actor: nn.Module, dtype: torch.dtype) -> None:
        self.module = copy.deepcopy(actor).eval().requires_grad_(False)
        for param in self.module.parameters():
            param.data = param.data.to(dtype)
        self.sources: list[torch.Tensor] = list(actor.parameters())
        self.targets: list[torch.Tensor] = list(self.module.parameters())

    @torch.no_grad()
    def refresh(self) -> nn.Module:
        torch._foreach_copy_(self.targets, self.sources)
        return self.module


@dataclass
class PolicyModels:
    tokenizer: PreTrainedTokenizerBase
    actor: Backend
    reference: nn.Module
    reward_model: ScoreModel
    reward_critic: Backend
    cost_model: ScoreModel | None = None
    cost_critic: Backend | None = None
    rollout_copy: RolloutCopy | None = None
    zero_stage: int | None = None
    frozen_engines: list[Any] | None = None  # ZeRO-3 inference engines: keep them alive

    @contextlib.contextmanager
    def generation_context(self) -> Iterator[None]:
        """Under ZeRO-3 the actor's parameters are gathered once for the whole rollout, and decode
        steps run on local weights, not layer by layer at every token (see
        :meth:`DeepSpeedBackend.gathered_for_generation`)."""
        if isinstance(self.actor, DeepSpeedBackend):
            with self.actor.gathered_for_generation():
                yield
        else:
            yield

    def sampling_policy(self) -> nn.Module:
        """The module to sample from: the bf16 rollout copy on a GPU, else the actor itself."""
        return self.actor.model if self.rollout_copy is None else self.rollout_copy.refresh()

    def trained(self) -> dict[str, Backend]:
        found = {"actor": self.actor, "reward_critic": self.reward_critic, "cost_critic": self.cost_critic}
        return {name: backend for name, backend in found.items() if backend is not None}

    def save_state(self, directory: Path) -> None:
        """Weights, optimizer and scheduler of every trained network, one sub-directory each."""
        for name, backend in self.trained().items():
            (directory / name).mkdir()
            backend.save_state(directory / name)

    def load_state(self, directory: Path) -> None:
        for name, backend in self.trained().items():
            if not (directory / name).is_dir():
                raise ConfigError(f"checkpoint {directory} has no {name} state")
            backend.load_state(directory / name)


def _frozen(
    module: M, device: torch.device, cfg: RLConfig | None = None, engines: list[Any] | None = None
) -> M:
    """Eval mode, no gradients; under ZeRO-3 partitioned across ranks by an inference engine."""
    module.eval()
    module.requires_grad_(False)
    if cfg is None or cfg.zero_stage != 3:
        return module.to(device)
    import deepspeed

    from training.engine.deepspeed_config import build_eval_deepspeed_config

    ds_config = build_eval_deepspeed_config(
        zero_stage=3,
        offload=cfg.offload,
        bf16=next(module.parameters()).dtype == torch.bfloat16,
        world_size=world_size(),
    )
    engine, *_ = deepspeed.initialize(model=module, config=ds_config, dist_init_required=True)
    if engines is not None:
        engines.append(engine)
    return module


def _score_model(path: str, cfg: RLConfig, tokenizer: Any, **kwargs: Any) -> ScoreModel:
    model = load_score_model(path, trust_remote_code=cfg.trust_remote_code, **kwargs)
    resize_embeddings_mean(model.backbone, tokenizer)
    return model


def _actor_and_reference(
    cfg: RLConfig, tokenizer: Any, frozen_dtype: torch.dtype
) -> tuple[nn.Module, nn.Module]:
    """Both start as the SFT model (§5.1); the reference is frozen, in bf16 on a GPU."""
    actor = load_causal_lm(cfg.model_name_or_path, trust_remote_code=cfg.trust_remote_code)
    reference = load_causal_lm(
        cfg.model_name_or_path, dtype=frozen_dtype, trust_remote_code=cfg.trust_remote_code
    )
    for model in (actor, reference):
        resize_embeddings_mean(model, tokenizer)
    if cfg.actor_gradient_checkpointing:
        actor.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return actor, reference


def _scorer(
    path: str,
    role: str,
    cfg: RLConfig,
    tokenizer: Any,
    frozen_dtype: torch.dtype,
    device: torch.device,
    *,
    normalize: bool,
    engines: list[Any],
) -> ScoreModel:
    """A frozen reward or cost model, end scores normalised only if asked (§2.2)."""
    check_same_tokenizer(path, tokenizer, f"{role} model", required=False)
    model = _score_model(path, cfg, tokenizer, score_type=role, do_normalize=normalize, dtype=frozen_dtype)
    return _frozen(model, device, cfg, engines)


def load_policy_models(
    cfg: RLConfig, *, cost: bool, cost_critic: bool, device: torch.device, bf16: bool, total_steps: int
) -> PolicyModels:
    """Load the networks an objective needs; ``cost``: the cost model, ``cost_critic``: its critic."""
    tokenizer = load_tokenizer(
        cfg.model_name_or_path, padding_side="left", trust_remote_code=cfg.trust_remote_code
    )
    frozen_dtype = torch.bfloat16 if bf16 else torch.float32
    actor, reference = _actor_and_reference(cfg, tokenizer, frozen_dtype)
    reward_critic_path = cfg.reward_critic_model_name_or_path or cfg.reward_model_name_or_path
    engines: list[Any] = []
    deepspeed = cfg.zero_stage is not None
    models = PolicyModels(
        tokenizer=tokenizer,
        actor=make_backend(actor, actor_settings(cfg), total_steps, device, bf16),
        reference=_frozen(reference, device, cfg, engines),
        reward_model=_scorer(
            cfg.reward_model_name_or_path,
            "reward",
            cfg,
            tokenizer,
            frozen_dtype,
            device,
            normalize=cfg.normalize_reward,
            engines=engines,
        ),
        reward_critic=_critic(reward_critic_path, "reward", cfg, tokenizer, device, bf16, total_steps),
        # DeepSpeed's bf16 mode already holds bf16 weights (fp32 masters in the optimizer).
        rollout_copy=RolloutCopy(actor, torch.bfloat16) if bf16 and not deepspeed else None,
        zero_stage=cfg.zero_stage,
        frozen_engines=engines,
    )
    options: Any = cfg  # the cost fields exist on the configs of the stages that use a cost model
    if cost:
        models.cost_model = _scorer(
            options.cost_model_name_or_path,
            "cost",
            cfg,
            tokenizer,
            frozen_dtype,
            device,
            normalize=options.normalize_cost,
            engines=engines,
        )
    if cost_critic:
        path = options.cost_critic_model_name_or_path or options.cost_model_name_or_path
        models.cost_critic = _critic(path, "cost", cfg, tokenizer, device, bf16, total_steps)
    return models


def _critic(
    path: str, role: str, cfg: RLConfig, tokenizer: Any, device: torch.device, bf16: bool, total_steps: int
) -> Backend:
    """A critic starts as a copy of its score model (§5.1, §6.2): per-token scores, never normalised."""
    check_same_tokenizer(path, tokenizer, f"{role} critic", required=True)
    critic = _score_model(
        path, cfg, tokenizer, score_type="critic", normalizer_type="none", do_normalize=False
    )
    if cfg.critic_gradient_checkpointing:
        critic.gradient_checkpointing_enable()
    return make_backend(critic, critic_settings(cfg), total_steps, device, bf16)
