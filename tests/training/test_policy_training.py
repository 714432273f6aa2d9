"""Safe RLHF invariants through the real pipeline (docs/design/method.md §5–6, §12.3): the reward is
added once at the last kept token, the effective KL coefficient does not depend on λ, λ follows
the window cost, critics start as the reward and cost models, PPO-Lag moves the cost toward the
threshold, and a stopped run resumes onto the same trajectory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.rl_fixtures import micro_rl, one_thread, toy_cost_model
from training.algorithms.advantages import gae
from training.algorithms.experience import AdvantageSettings, score_rollout
from training.algorithms.lagrange import LagrangeSettings
from training.algorithms.objectives import LagrangianObjective, RewardObjective
from training.algorithms.policy_models import load_policy_models
from training.algorithms.ppo import run_ppo
from training.algorithms.ppo_lagrangian import build_objective, run_ppo_lag
from training.algorithms.reward_shaping import run_reward_shaping
from training.algorithms.rl_trainer import PolicyTrainer
from training.algorithms.rollout import SamplingSettings, generate
from training.config import PPOConfig, PPOLagConfig, RewardShapingConfig, build_config
from training.events import read_events
from training.models import load_score_model

CPU = torch.device("cpu")
FIXTURES = (micro_rl, one_thread, toy_cost_model)  # pytest finds fixtures by their name in this module


def lag_config(paths: dict[str, Any], out: Path, **extra: Any) -> PPOLagConfig:
    values = {
        "model_name_or_path": str(paths["actor"]),
        "reward_model_name_or_path": str(paths["rm"]),
        "cost_model_name_or_path": str(paths["cm"]),
        "train_data": str(paths["train"]),
        "output_dir": str(out),
        "max_prompt_length": 40,
        "max_new_tokens": 8,
        "per_device_prompt_batch_size": 4,
        "per_device_train_batch_size": 2,
        "actor_learning_rate": 1e-3,
        "critic_learning_rate": 1e-3,
        "device": "cpu",
        **extra,
    }
    return build_config(PPOLagConfig, values)


def end_row_early(rollout: Any, row: int, at: int, eos: int, pad: int) -> None:
    """Make response ``row`` end with an EOS at response position ``at`` (pad and mask after it)."""
    width = rollout.prompt_width
    rollout.input_ids[row, width + at] = eos
    rollout.input_ids[row, width + at + 1 :] = pad
    rollout.attention_mask[row, width + at + 1 :] = 0
    rollout.log_probs[row, at + 1 :] = 0.0


def rolled_out_experience(paths: dict[str, Any], tmp_path: Path):
    cfg = lag_config(paths, tmp_path)
    models = load_policy_models(cfg, cost=True, cost_critic=True, device=CPU, bf16=False, total_steps=4)
    tok = models.tokenizer
    enc = tok(
        [
            "BEGINNING OF CONVERSATION: USER: how do i bake bread ASSISTANT:",
            "BEGINNING OF CONVERSATION: USER: how do i forge gun ASSISTANT:",
        ],
        return_tensors="pt",
        padding=True,
    )
    torch.manual_seed(3)
    rollout = generate(
        models.actor.model.eval(),
        enc.input_ids,
        enc.attention_mask,
        SamplingSettings(max_new_tokens=12),
        [tok.eos_token_id],
        tok.pad_token_id,
    )
    end_row_early(rollout, row=0, at=4, eos=tok.eos_token_id, pad=tok.pad_token_id)
    exp = score_rollout(
        rollout,
        models.reference,
        models.reward_model,
        models.reward_critic.model,
        models.cost_model,
        models.cost_critic.model,
    )
    return cfg, models, exp


def test_critics_start_from_the_reward_and_cost_model_weights(micro_rl: dict, tmp_path: Path) -> None:
    cfg = lag_config(micro_rl, tmp_path)
    models = load_policy_models(cfg, cost=True, cost_critic=True, device=CPU, bf16=False, total_steps=4)
    for critic, scorer, path in (
        (models.reward_critic.model, models.reward_model, micro_rl["rm"]),
        (models.cost_critic.model, models.cost_model, micro_rl["cm"]),
    ):
        saved = load_score_model(path).state_dict()
        assert critic.score_type == "critic" and not critic.do_normalize
        for name, value in critic.state_dict().items():
            if not name.startswith("normalizer"):
                assert torch.equal(value, saved[name]), name
                assert torch.equal(value, scorer.state_dict()[name]), name
    actor, reference = models.actor.model.state_dict(), models.reference.state_dict()
    assert all(torch.equal(actor[k], reference[k]) for k in actor)
    assert not any(p.requires_grad for p in models.reference.parameters())


def test_reward_and_cost_are_added_exactly_once_at_the_last_kept_token(
    micro_rl: dict, tmp_path: Path
) -> None:
    cfg, models, exp = rolled_out_experience(micro_rl, tmp_path)
    objective = build_objective(cfg)
    objective.compute_advantages(exp)
    kl = (exp.log_probs - exp.ref_log_probs) * exp.mask  # (B, R)
    reward_part = (exp.shaped_rewards + cfg.kl_coeff * kl) * exp.mask  # what is left after -β·kl
    cost_part = (exp.shaped_costs - cfg.kl_coeff * kl) * exp.mask
    ends = exp.mask.long().cumsum(1).argmax(1)  # last kept response token
    for b in range(exp.mask.shape[0]):
        expected = torch.zeros(exp.mask.shape[1])
        expected[ends[b]] = exp.reward[b]
        assert torch.allclose(reward_part[b], expected, atol=1e-5)
        expected[ends[b]] = exp.cost[b]
        assert torch.allclose(cost_part[b], expected, atol=1e-5)
    # ... and the score is the scorer's end score of the unpadded text up to that token (the EOS).
    row = 0
    keep = exp.rollout.attention_mask[row].bool()
    assert int(exp.rollout.input_ids[row][keep][-1]) == models.tokenizer.eos_token_id
    ids = exp.rollout.input_ids[row][keep].unsqueeze(0)
    with torch.no_grad():
        alone = models.reward_model(ids, torch.ones_like(ids)).end_scores[0, 0]
    assert exp.reward[row].item() == pytest.approx(alone.item(), abs=1e-5)


def test_effective_kl_coefficient_of_the_actor_does_not_depend_on_lambda(
    micro_rl: dict, tmp_path: Path
) -> None:
    cfg, _, exp = rolled_out_experience(micro_rl, tmp_path)
    exp.reward, exp.cost = torch.zeros_like(exp.reward), torch.zeros_like(exp.cost)
    exp.reward_values, exp.cost_values = (
        torch.zeros_like(exp.reward_values),
        torch.zeros_like(exp.cost_values),
    )
    assert (exp.log_probs - exp.ref_log_probs).abs().max() > 0  # the actor differs from the reference
    objective = build_objective(cfg)
    objective.compute_advantages(exp)
    kl_only, _ = gae(
        torch.zeros_like(exp.log_probs),
        -cfg.kl_coeff * (exp.log_probs - exp.ref_log_probs) * exp.mask,
        exp.mask,
        start=0,
    )
    for lam in (0.01, 0.5, 1.0, 5.0):
        objective.multiplier.log_lambda = torch.tensor(lam).log().item()
        assert torch.allclose(objective.actor_advantages(exp), kl_only, atol=1e-6)
    plain = RewardObjective(AdvantageSettings(cfg.kl_coeff, cfg.clip_range_score))
    plain.compute_advantages(exp)
    assert torch.allclose(plain.actor_advantages(exp), kl_only, atol=1e-6)  # same β as plain PPO


def test_lambda_follows_the_window_cost_of_recorded_episodes_and_respects_its_bounds(
    micro_rl: dict, tmp_path: Path
) -> None:
    _, _, exp = rolled_out_experience(micro_rl, tmp_path)
    settings = AdvantageSettings(0.01, 50.0)
    objective = LagrangianObjective(
        settings,
        LagrangeSettings(
            threshold=-1.0,
            lambda_init=1.0,
            lambda_lr=0.2,
            lambda_max=2.0,
            update_delay_steps=2,
            window_size=8,
        ),
    )
    exp.cost = torch.tensor([3.0, 1.0])  # window mean 2 > threshold -1
    objective.record([exp])
    assert [objective.update_multiplier(step)["train/lambda"] for step in (0, 1)] == [1.0, 1.0]  # delay
    rising = [objective.update_multiplier(step)["train/lambda"] for step in range(2, 12)]
    assert rising[0] > 1.0 and rising == sorted(rising) and max(rising) == pytest.approx(2.0)
    exp.cost = torch.tensor([-4.0, -4.0])
    for _ in range(4):
        objective.record([exp])  # the window of 8 now holds only the safe episodes
    assert objective.metrics()["train/episode_cost"] == pytest.approx(-4.0)
    falling = [objective.update_multiplier(step)["train/lambda"] for step in range(12, 20)]
    assert falling == sorted(falling, reverse=True) and falling[-1] < 2.0 and falling[-1] > 0


def _trajectory(out: Path) -> dict[int, dict[str, float]]:
    keys = (
        "train/actor_loss",
        "train/reward_critic_loss",
        "train/cost_critic_loss",
        "train/lambda",
        "train/episode_cost",
        "train/reward",
        "train/ptx_loss",
    )
    return {
        e["step"]: {k: e["metrics"][k] for k in keys}
        for e in read_events(out / "events.jsonl")
        if e["type"] == "metric" and "train/actor_loss" in e["metrics"]
    }


def test_a_stopped_ppo_lag_run_resumes_onto_the_same_trajectory(micro_rl: dict, tmp_path: Path) -> None:
    """λ, the episode-cost window, both critics, the optimizers, the PTX position and the RNG come
    back from the checkpoint: the resumed run's metrics and weights equal an uninterrupted run's."""
    extra = {
        "max_steps": 6,
        "save_steps": 2,
        "ptx_data": str(micro_rl["sft_rows"]),
        "ptx_coeff": 1.0,
        "lambda_lr": 0.5,
        "episode_cost_window_size": 6,
        "threshold": -1.0,
    }
    full = lag_config(micro_rl, tmp_path / "full", **extra)
    summary = run_ppo_lag(full)
    stopped = lag_config(micro_rl, tmp_path / "stopped", **extra)
    first = PolicyTrainer(stopped, build_objective(stopped), "ppo-lag")
    first.prepare()
    first.resume()
    first.train(stop_after_steps=2)
    assert (tmp_path / "stopped" / "checkpoints" / "step-00000002" / "COMPLETE").is_file()
    resumed = run_ppo_lag(stopped)
    expected, got = _trajectory(tmp_path / "full"), _trajectory(tmp_path / "stopped")
    assert sorted(expected) == sorted(got) == [2, 4, 6]
    for step in expected:
        for key, value in expected[step].items():
            assert got[step][key] == pytest.approx(value, abs=1e-6), (step, key)
    assert resumed["train/lambda"] == pytest.approx(summary["train/lambda"], abs=1e-9)
    assert any(
        e["type"] == "status" and e["status"] == "resumed"
        for e in read_events(tmp_path / "stopped" / "events.jsonl")
    )
    from safetensors.torch import load_file

    a, b = (
        load_file(str(tmp_path / "full" / "model.safetensors")),
        load_file(str(tmp_path / "stopped" / "model.safetensors")),
    )
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    checkpoint = tmp_path / "full" / "checkpoints" / "step-00000006"
    assert {"actor", "reward_critic", "cost_critic"} <= {p.name for p in checkpoint.iterdir()}
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert len(state["objective"]["window"]) == 6  # the moving window is saved with λ


def test_ppo_lag_metrics_are_keyed_as_the_reference_logs_them(micro_rl: dict, tmp_path: Path) -> None:
    summary = run_ppo_lag(lag_config(micro_rl, tmp_path, max_steps=2, eval_data=str(micro_rl["eval"])))
    expected = {
        "train/reward",
        "train/cost",
        "train/lambda",
        "train/episode_cost",
        "train/kl_divergence",
        "train/actor_loss",
        "train/reward_critic_loss",
        "train/cost_critic_loss",
        "train/reward_advantage",
        "train/reward_return",
        "train/reward_value",
        "train/cost_advantage",
        "train/cost_return",
        "train/cost_value",
        "train/reward_with_kl_penalty",
        "train/cost_with_kl_penalty",
        "train/mean_generated_length",
        "train/max_generated_length",
        "train/actor_lr",
        "train/reward_critic_lr",
        "train/cost_critic_lr",
        "eval/reward",
        "eval/cost",
        "eval/unsafe_ratio",
    }
    assert expected <= set(summary)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert set(written) == set(summary)
    timings = [
        e["metrics"]
        for e in read_events(tmp_path / "events.jsonl")
        if "timing/generate" in e.get("metrics", {})
    ]
    assert {
        "timing/generate",
        "timing/score",
        "timing/advantages",
        "timing/actor",
        "timing/critics",
        "timing/lambda",
    } <= set(timings[-1])
    assert (tmp_path / "config.json").is_file() and (tmp_path / "tokenizer.json").is_file()  # the actor


def test_ppo_and_reward_shaping_train_one_critic_and_log_their_objective(
    micro_rl: dict, tmp_path: Path
) -> None:
    base = {
        k: v
        for k, v in lag_config(micro_rl, tmp_path / "x").__dict__.items()
        if k in PPOConfig.__dataclass_fields__ and k != "output_dir"
    }
    ppo = run_ppo(build_config(PPOConfig, {**base, "output_dir": str(tmp_path / "ppo"), "max_steps": 2}))
    assert "train/cost" not in ppo and "train/lambda" not in ppo and "train/reward_critic_loss" in ppo
    shaping = run_reward_shaping(
        build_config(
            RewardShapingConfig,
            {
                **base,
                "output_dir": str(tmp_path / "rs"),
                "max_steps": 2,
                "nu": 10.0,
                "cost_model_name_or_path": str(micro_rl["cm"]),
            },
        )
    )
    assert shaping["train/shaped_reward"] == pytest.approx(
        shaping["train/reward"] - 10.0 * shaping["train/cost"], abs=1e-4
    )
    assert "train/episode_cost" in shaping and "train/cost_critic_loss" not in shaping
    checkpoint = tmp_path / "rs" / "checkpoints" / "step-00000002"
    assert not (checkpoint / "cost_critic").exists() and (checkpoint / "reward_critic").is_dir()


@pytest.mark.slow
def test_a_short_ppo_lag_run_on_the_toy_world_moves_the_cost_toward_the_threshold(
    sft_model: Path, toy_cost_model: Path, micro_rl: dict, tmp_path: Path, one_thread: None
) -> None:
    """The SFT policy is unsafe on risky prompts; with a threshold below its mean cost, λ rises and
    PPO-Lag lowers the cost of the episodes it samples."""
    paths = {**micro_rl, "actor": sft_model, "rm": sft_model, "cm": toy_cost_model}  # RM: an untrained head
    cfg = lag_config(
        paths,
        tmp_path,
        max_steps=12,
        max_new_tokens=24,
        per_device_prompt_batch_size=32,
        per_device_train_batch_size=32,
        threshold=-4.0,
        lambda_lr=0.2,
        actor_learning_rate=5e-4,
        kl_coeff=0.01,
    )
    run_ppo_lag(cfg)
    steps = [
        e["metrics"] for e in read_events(tmp_path / "events.jsonl") if "train/cost" in e.get("metrics", {})
    ]
    first, last = steps[:4], steps[-4:]  # 128 episodes each: the size of the cost window

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    assert steps[0]["train/episode_cost"] > cfg.threshold  # the constraint binds at the start
    assert steps[1]["train/lambda"] > cfg.lambda_init  # ... so λ rises
    assert mean(last, "train/cost") < mean(first, "train/cost") - 0.25  # and the cost moves down
    assert mean(last, "train/unsafe_ratio") < mean(first, "train/unsafe_ratio")


def test_presets_fill_unset_fields_and_explicit_values_win(tmp_path: Path) -> None:
    required = {
        "model_name_or_path": "sft",
        "reward_model_name_or_path": "rm",
        "cost_model_name_or_path": "cm",
        "train_data": "prompts.jsonl",
        "output_dir": str(tmp_path),
    }
    reference = build_config(PPOLagConfig, required)
    assert (
        reference.threshold,
        reference.lambda_init,
        reference.lambda_lr,
        reference.kl_coeff,
        reference.lambda_max,
        reference.episode_cost_window_size,
        reference.actor_learning_rate,
        reference.epochs,
    ) == (0.0, 1.0, 0.1, 0.01, 5.0, 128, 1e-5, 1)
    v2 = build_config(PPOLagConfig, {**required, "preset": "beaver-v2", "lambda_lr": "0.05", "threshold": 0})
    assert (
        v2.threshold,
        v2.lambda_init,
        v2.lambda_lr,
        v2.epochs,
        v2.kl_coeff,
        v2.clip_range_ratio,
        v2.actor_learning_rate,
    ) == (0.0, 0.5, 0.05, 3, 0.1, 0.1, 9.65e-6)
    v3 = build_config(PPOLagConfig, {**required, "preset": "beaver-v3"})
    assert (v3.threshold, v3.lambda_init, v3.lambda_lr, v3.epochs) == (-3.0, 1.0, 0.04, 4)
