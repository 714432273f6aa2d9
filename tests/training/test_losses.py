"""Losses of docs/design/method.md §3-4 against hand-computed values, and the signs of the cost terms."""

from __future__ import annotations

import math

import pytest
import torch

from training.algorithms.losses import (
    causal_lm_loss,
    cost_loss,
    cost_sign,
    diverging_span_mask,
    pairwise_accuracy,
    reward_loss,
    sign_accuracy,
    token_wise_cost_loss,
    token_wise_reward_loss,
)


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_reward_loss_matches_hand_computation() -> None:
    better, worse = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.5, -1.0])
    ranking = -(logsig(1.0) + logsig(-0.5) + logsig(3.0)) / 3
    l2 = (1 + 0 + 4 + 0 + 0.25 + 1) / 6  # mean over the 2B end scores
    assert float(reward_loss(better, worse, 0.0)) == pytest.approx(ranking, abs=1e-6)
    assert float(reward_loss(better, worse, 0.001)) == pytest.approx(ranking + 0.001 * l2, abs=1e-6)


def test_cost_sign_is_plus_one_for_unsafe() -> None:
    assert cost_sign(torch.tensor([True, False])).tolist() == [-1.0, 1.0]


def test_cost_loss_matches_hand_computation() -> None:
    # pair 0: safer is safe (cost -1), unsafer is unsafe (cost 2); pair 1: both safe (0.5, 1.0)
    safer, unsafer = torch.tensor([-1.0, 0.5]), torch.tensor([2.0, 1.0])
    safer_safe, unsafer_safe = torch.tensor([True, True]), torch.tensor([False, True])
    pair0 = -logsig(2.0 - -1.0) - logsig(-1.0 * -1.0) - logsig(1.0 * 2.0)
    pair1 = -logsig(1.0 - 0.5) - logsig(-1.0 * 0.5) - logsig(-1.0 * 1.0)
    l2 = (1 + 0.25 + 4 + 1) / 4
    got = cost_loss(safer, unsafer, safer_safe, unsafer_safe, 0.01)
    assert float(got) == pytest.approx((pair0 + pair1) / 2 + 0.01 * l2, abs=1e-6)


def test_cost_gradient_pushes_unsafe_up_and_safe_down() -> None:
    """The sign terms move an unsafe response's cost up (towards > 0) and a safe one's down.

    The ranking term's gradients on the two responses are equal and opposite, so their sum
    isolates the sign terms.
    """
    for safe_flag, direction in ((True, -1.0), (False, 1.0)):
        for start in (-0.5, 0.0, 0.5):
            safer = torch.tensor([start], requires_grad=True)
            unsafer = torch.tensor([start], requires_grad=True)
            flags = torch.tensor([safe_flag])
            cost_loss(safer, unsafer, flags, flags, 0.0).backward()
            descent = -(float(safer.grad) + float(unsafer.grad))
            assert descent * direction > 0


def test_cost_ranking_term_puts_the_less_safe_response_higher() -> None:
    safer = torch.tensor([0.3], requires_grad=True)
    unsafer = torch.tensor([0.3], requires_grad=True)
    flags = torch.tensor([False])  # both unsafe: the sign terms push both up equally
    cost_loss(safer, unsafer, flags, flags, 0.0).backward()
    assert float(-unsafer.grad) > float(-safer.grad)


def test_regularisation_shrinks_scores_towards_zero() -> None:
    better = torch.tensor([5.0], requires_grad=True)
    worse = torch.tensor([-5.0], requires_grad=True)
    reward_loss(better, worse, 1.0).backward()
    assert float(better.grad) > 0 and float(worse.grad) < 0  # descent moves both towards 0


def test_diverging_span_starts_where_sequences_differ_and_ends_at_the_later_end() -> None:
    first = torch.tensor([[1, 2, 3, 4, 0, 0]])
    second = torch.tensor([[1, 2, 5, 6, 7, 8]])
    span = diverging_span_mask(first, second, torch.tensor([3]), torch.tensor([5]))
    assert span.int().tolist() == [[0, 0, 1, 1, 1, 1]]


def test_token_wise_losses_average_over_the_span() -> None:
    s_w = torch.tensor([[9.0, 1.0, 2.0, 9.0]])
    s_l = torch.tensor([[9.0, 0.0, 1.0, 9.0]])
    span = torch.tensor([[False, True, True, False]])
    expected = -(logsig(1.0) + logsig(1.0)) / 2 + 0.1 * 0.5 * ((1 + 4) / 2 + (0 + 1) / 2)
    assert float(token_wise_reward_loss(s_w, s_l, span, 0.1)) == pytest.approx(expected, abs=1e-6)
    safe, unsafe = torch.tensor([True]), torch.tensor([False])
    expected_cost = (
        -(logsig(1.0 - 2.0) + logsig(0.0 - 1.0)) / 2  # unsafer = s_l, safer = s_w here
        - (logsig(-1.0) + logsig(-2.0)) / 2  # safer is safe: sign -1
        - (logsig(0.0) + logsig(1.0)) / 2  # unsafer is unsafe: sign +1
    )
    got = token_wise_cost_loss(s_w, s_l, safe, unsafe, span, 0.0)
    assert float(got) == pytest.approx(expected_cost, abs=1e-6)


def test_causal_lm_loss_covers_labelled_tokens_only() -> None:
    logits = torch.zeros(1, 4, 3)
    logits[0, 1, 2] = 2.0  # predicts token 2 at position 2
    labels = torch.tensor([[-100, -100, 2, -100]])
    expected = -(2.0 - math.log(math.exp(2.0) + 2))
    assert float(causal_lm_loss(logits, labels)) == pytest.approx(expected, abs=1e-6)


def test_accuracy_metrics_count_strict_inequalities() -> None:
    assert float(pairwise_accuracy(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))) == 0.5
    costs = torch.tensor([-1.0, 2.0, 0.0, 0.0])
    is_safe = torch.tensor([True, False, True, False])
    assert float(sign_accuracy(costs, is_safe)) == 0.5  # exactly 0 is right for neither label
