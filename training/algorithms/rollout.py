"""Rollout: sampling with a KV cache from left-padded prompts (docs/design/method.md §5.2, §12.3).

A rollout batch is laid out as the reference's: ``input_ids = [prompt | response]`` of widths S and
R, prompts left-padded to S, responses right-padded after their first EOS. Every forward pass, in
generation and in training, gets explicit ``position_ids = cumsum(mask) - 1`` (clamped at 0), so
left padding shifts no position (§12.3; harmless for RoPE, wrong for absolute positions without).

Masks (§12.3): a response token is kept up to and including the first EOS; padding and everything
after the EOS are dropped. Unlike the reference, the unk token is *not* masked, and a pad id the
policy happens to sample stays a real action: the mask comes from positions, not token identity.

Log-probs are stored in *action space*: entry j of a (B, R) array belongs to response token j,
i.e. to entry S - 1 + j of the reference's shifted (B, L - 1) array. GAE over action space with
start 0 equals the reference's GAE from ``start = S - 1``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn

from training.models import position_ids_from_mask


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0


@dataclass
class Rollout:
    input_ids: torch.Tensor  # (B, S + R) prompt (left-padded) followed by the response
    attention_mask: torch.Tensor  # (B, S + R) long: prompt mask, then the response mask
    prompt_width: int  # S
    log_probs: torch.Tensor  # (B, R) log π_old of each response token (0 where masked)

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_width :]  # (B, R)

    @property
    def response_mask(self) -> torch.Tensor:
        return self.attention_mask[:, self.prompt_width :].bool()  # (B, R)

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=1)  # (B,)

    def split(self, size: int) -> list[Rollout]:
        """Micro-batches of ``size`` rows, each trimmed of the columns that are padding in every
        one of its rows (left of the prompts, right of the responses), so no compute goes to them.
        Positions are unaffected: they come from the mask."""
        width, parts = self.prompt_width, []
        for start in range(0, self.input_ids.shape[0], size):
            ids, mask = self.input_ids[start : start + size], self.attention_mask[start : start + size]
            left = int(mask[:, :width].any(dim=0).long().argmax())  # first prompt column in use
            right = int(mask[:, width:].any(dim=0).nonzero().max()) + 1  # longest response
            keep = torch.cat([torch.arange(left, width), torch.arange(width, width + right)]).to(ids.device)
            log_probs = self.log_probs[start : start + size, :right]
            parts.append(Rollout(ids[:, keep], mask[:, keep], width - left, log_probs))
        return parts


def _model_class(model: nn.Module) -> Any:
    """The class of the HF model itself (DeepSpeed's engine wraps it as ``.module``); typed Any
    because the functools.cache stubs reject a class as an unhashable argument."""
    return type(getattr(model, "module", model))


@cache
def _cache_keyword(model_class: type[Any]) -> str:
    """transformers ≥ 5.2x calls the KV cache argument ``cache``; earlier 5.x ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _output_cache(output: Any) -> object:
    found = getattr(output, "cache", None)
    return found if found is not None else output.past_key_values


@cache
def _accepts_logits_to_keep(model_class: type[Any]) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def forward_logits(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int, **kwargs: object
) -> tuple[torch.Tensor, object]:
    """Logits of the last ``keep`` positions (B, keep, V), with explicit position ids; the LM head
    runs only on those positions when the model supports ``logits_to_keep``."""
    extra = {"logits_to_keep": keep} if _accepts_logits_to_keep(_model_class(model)) else {}
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        **extra,
        **kwargs,
    )
    return out.logits[:, -keep:], out


FP32_CHUNK = 1 << 27  # elements of fp32 logits normalised at once (512 MiB)


def gather_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] without materialising a large fp32 log-softmax at once.

    logits: (B, T, V); tokens: (B, T) -> (B, T) fp32. Rows are normalised in chunks of at most
    ``FP32_CHUNK`` elements: one chunk for small vocabularies, a row at a time for 150k-token ones.
    """
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).float()  # (B, T)
    rows = max(1, FP32_CHUNK // max(1, logits.shape[1] * logits.shape[2]))
    norms = torch.cat([torch.logsumexp(chunk.float(), dim=-1) for chunk in logits.split(rows)])  # (B, T)
    return picked - norms


def response_log_probs(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int
) -> torch.Tensor:
    """log π(y_j | x, y_<j) for every response position j: (B, R). One forward pass; the logits
    at positions S-1 .. L-2 predict the response tokens S .. L-1."""
    width = input_ids.shape[1] - prompt_width  # R
    logits, _ = forward_logits(model, input_ids, attention_mask, keep=width + 1, use_cache=False)
    return gather_log_probs(logits[:, :-1], input_ids[:, prompt_width:])  # (B, R)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask all but the smallest set of tokens whose probability mass reaches ``top_p``. (B, V)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # keep the token crossing top_p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_tokens(logits: torch.Tensor, settings: SamplingSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row from the next-token logits (B, V); return it (B,) and its log-prob
    under the *untempered* policy (B,), which is the π_old of the PPO ratio."""
    logits = logits.float()
    if settings.temperature == 0:
        token = logits.argmax(dim=-1)
    else:
        scaled = logits / settings.temperature
        if settings.top_p < 1.0:
            scaled = _nucleus(scaled, settings.top_p)
        token = torch.multinomial(scaled.softmax(dim=-1), num_samples=1).squeeze(-1)
    log_prob = logits.gather(-1, token.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return token, log_prob


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    settings: SamplingSettings,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
) -> Rollout:
    """Sample responses with a KV cache: one prefill of the left-padded prompts (B, S), then one
    single-token step per new token, stopping early once every row has produced an EOS."""
    batch = prompt_ids.shape[0]
    eos = torch.tensor(list(eos_token_ids), device=prompt_ids.device)
    mask = prompt_mask.long()  # (B, S), grows by one column per step
    cache_kw = _cache_keyword(_model_class(model))
    logits, out = forward_logits(model, prompt_ids, mask, keep=1, use_cache=True)
    next_position = position_ids_from_mask(mask)[:, -1] + 1  # (B,)
    finished = torch.zeros(batch, dtype=torch.bool, device=prompt_ids.device)
    tokens, log_probs, kept = [], [], []
    for step in range(settings.max_new_tokens):
        token, log_prob = sample_tokens(logits[:, -1], settings)  # (B,), (B,)
        alive = ~finished
        token = torch.where(alive, token, pad_token_id)
        tokens.append(token)
        log_probs.append(log_prob * alive)
        kept.append(alive)
        finished = finished | torch.isin(token, eos)
        if bool(finished.all()) or step == settings.max_new_tokens - 1:
            break
        mask = torch.cat([mask, alive.long().unsqueeze(1)], dim=1)  # the new token's column
        out = model(
            input_ids=token.unsqueeze(1),
            attention_mask=mask,
            position_ids=next_position.unsqueeze(1),
            use_cache=True,
            **{cache_kw: _output_cache(out)},
        )
        logits = out.logits
        next_position = next_position + 1
    response = torch.stack(tokens, dim=1)  # (B, R)
    response_mask = torch.stack(kept, dim=1).long()  # (B, R)
    return Rollout(
        input_ids=torch.cat([prompt_ids, response], dim=1),
        attention_mask=torch.cat([prompt_mask.long(), response_mask], dim=1),
        prompt_width=prompt_ids.shape[1],
        log_probs=torch.stack(log_probs, dim=1),  # (B, R)
    )
