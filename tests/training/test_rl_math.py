"""Hand-computed checks of the PPO / Safe RLHF arithmetic (docs/design/method.md §5.3–5.5, §6.4–6.5, §7.4)."""

from __future__ import annotations

import math

import pytest
import torch

from training.algorithms.advantages import (
    end_positions,
    gae,
    kl_shaped_scores,
    mixed_advantage,
    shaped_reward,
)
from training.algorithms.dpo_loss import dpo_loss, response_log_prob_sum
from training.algorithms.lagrange import LagrangeMultiplier, LagrangeSettings
from training.algorithms.ppo_losses import actor_loss, critic_loss, masked_mean


def test_end_position_is_the_last_kept_action() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool)
    assert end_positions(mask).tolist() == [2, 4, 2]


def test_reward_is_added_exactly_once_at_the_last_kept_token() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    zeros = torch.zeros(1, 6)
    shaped = kl_shaped_scores(torch.tensor([2.5]), zeros, zeros, mask, kl_coeff=0.1, clip_range_score=50)
    assert shaped.tolist() == [[0.0, 0.0, 0.0, 2.5, 0.0, 0.0]]
    assert shaped.sum().item() == pytest.approx(2.5)


def test_kl_penalty_is_minus_beta_kl_for_rewards_and_plus_for_costs() -> None:
    mask = torch.ones(1, 3, dtype=torch.bool)
    logp = torch.tensor([[-1.0, -2.0, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, -0.5]])  # kl = [0.5, -1.0, 0.0]
    r = kl_shaped_scores(torch.tensor([1.0]), logp, ref, mask, kl_coeff=0.2, clip_range_score=50)
    c = kl_shaped_scores(
        torch.tensor([-3.0]), logp, ref, mask, kl_coeff=0.2, clip_range_score=50, kl_sign=1.0
    )
    assert r[0].tolist() == pytest.approx([-0.1, 0.2, 1.0])
    assert c[0].tolist() == pytest.approx([0.1, -0.2, -3.0])


def test_shaped_scores_are_clipped_and_zero_outside_the_mask() -> None:
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    shaped = kl_shaped_scores(torch.tensor([80.0]), torch.zeros(1, 3), torch.zeros(1, 3), mask, 0.1, 50.0)
    assert shaped.tolist() == [[0.0, 50.0, 0.0]]


def test_gae_matches_a_hand_computed_example() -> None:
    # T = 4 actions from start = 1; the response ends at t = 3 (mask 0 at t = 4 is padding).
    values = torch.tensor([[9.0, 0.5, 1.0, 2.0, 7.0]])
    rewards = torch.tensor([[9.0, 0.0, -0.1, 1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    adv, ret = gae(values, rewards, mask, start=1, gamma=1.0, lam=0.95)
    # Masked: V = [.,0.5,1,2,0], r = [.,0,-0.1,1,0]. Backwards from t=4:
    d4 = 0.0 + 0.0 - 0.0
    a4 = d4
    d3 = 1.0 + 0.0 - 2.0
    a3 = d3 + 0.95 * a4
    d2 = -0.1 + 2.0 - 1.0
    a2 = d2 + 0.95 * a3
    d1 = 0.0 + 1.0 - 0.5
    a1 = d1 + 0.95 * a2
    assert adv[0].tolist() == pytest.approx([a1, a2, a3, a4])
    assert ret[0].tolist() == pytest.approx([a1 + 0.5, a2 + 1.0, a3 + 2.0, a4 + 0.0])


def test_effective_kl_coefficient_does_not_depend_on_lambda() -> None:
    """With the score terms removed, the KL part of (A^R - λA^C)/(1+λ) is the reward side's alone:
    r = -βkl and c = +βkl give (-βkl - λβkl)/(1+λ) = -βkl for every λ (§6.4)."""
    torch.manual_seed(0)
    logp, ref = torch.randn(4, 6), torch.randn(4, 6)
    mask = torch.ones(4, 6, dtype=torch.bool)
    zero = torch.zeros(4)
    r = kl_shaped_scores(zero, logp, ref, mask, kl_coeff=0.05, clip_range_score=50)
    c = kl_shaped_scores(zero, logp, ref, mask, kl_coeff=0.05, clip_range_score=50, kl_sign=1.0)
    baseline = None
    for lam in (0.0, 0.3, 1.0, 4.0):
        mixed = mixed_advantage(r, c, lam)
        assert torch.allclose(mixed, -0.05 * (logp - ref), atol=1e-6)
        baseline = mixed if baseline is None else baseline
        assert torch.allclose(mixed, baseline, atol=1e-6)


def test_mixed_advantage_and_shaping_formulas() -> None:
    a_r, a_c = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 3.0])
    assert mixed_advantage(a_r, a_c, 1.0).tolist() == pytest.approx([0.5, -2.0])
    assert shaped_reward(torch.tensor([3.0]), torch.tensor([2.0]), nu=0.5).tolist() == [2.0]


def test_masked_mean_weights_sequences_equally() -> None:
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx((1.0 + 4.0) / 2)


def test_actor_loss_clips_the_ratio_per_sign_of_the_advantage() -> None:
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    # token 1: A>0, ρ=1.5 -> min(1.5, 1.2) = 1.2 -> -1.2
    # token 2: A<0, ρ=0.5 -> min(-0.5, -0.8) = -0.8 -> 0.8
    assert actor_loss(new, old, adv, mask, 0.2).item() == pytest.approx((-1.2 + 0.8) / 2)


def test_critic_loss_takes_the_pessimistic_of_clipped_and_unclipped() -> None:
    values, old, ret = torch.tensor([[10.0]]), torch.tensor([[0.0]]), torch.tensor([[12.0]])
    # clipped value 5 -> (5-12)² = 49 > (10-12)² = 4 -> 0.5·49
    assert critic_loss(values, old, ret, torch.ones(1, 1), clip_range_value=5.0).item() == pytest.approx(24.5)


def test_lambda_rises_above_threshold_falls_below_and_never_exceeds_max() -> None:
    lag = LagrangeMultiplier(LagrangeSettings(threshold=0.0, lambda_init=1.0, lambda_lr=0.5, lambda_max=3.0))
    lag.record([2.0, 2.0])
    history = [lag.update(step) for step in range(20)]
    assert history[0] == pytest.approx(math.exp(0.5 * 1.0 * 2.0))  # log λ += lr·λ·(J_C - d)
    assert all(b >= a for a, b in zip(history, history[1:], strict=False))
    assert max(history) == pytest.approx(3.0) and all(h <= 3.0 + 1e-12 for h in history)
    lag.record([-1.0] * 128)  # the window slides: now safe on average
    falling = [lag.update(20 + step) for step in range(10)]
    assert all(b < a for a, b in zip(falling, falling[1:], strict=False))
    assert falling[-1] > 0


def test_lambda_waits_for_the_update_delay() -> None:
    lag = LagrangeMultiplier(LagrangeSettings(lambda_init=0.5, update_delay_steps=3))
    lag.record([1.0])
    assert [lag.update(s) for s in range(3)] == [0.5, 0.5, 0.5]
    assert lag.update(3) > 0.5


def test_lambda_state_round_trips_with_its_window() -> None:
    settings = LagrangeSettings(window_size=4)
    lag = LagrangeMultiplier(settings)
    lag.record([1.0, 2.0, 3.0, 4.0, 5.0])
    lag.update(0)
    copy = LagrangeMultiplier(settings)
    copy.load_state_dict(lag.state_dict())
    assert copy.value == lag.value and list(copy.window) == [2.0, 3.0, 4.0, 5.0]


def test_dpo_sums_log_probs_from_the_first_differing_token_to_the_end() -> None:
    # tokens:      0   1   2   3   4   (first differing token d = 2, end e = 3)
    # shifted t:   0   1   2   3       entry t = log π(x_{t+1})
    token_logps = torch.tensor([[-9.0, -1.0, -2.0, -7.0]])
    total = response_log_prob_sum(token_logps, first=torch.tensor([2]), end=torch.tensor([3]))
    assert total.item() == pytest.approx(-1.0 + -2.0)  # entries 1..2 = tokens 2..3


def test_dpo_loss_prefers_the_better_response() -> None:
    loss, rw, rl = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.1
    )
    assert rw.item() == pytest.approx(0.1) and rl.item() == pytest.approx(-0.1)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.2))))
