"""Tokenized datasets of docs/design/method.md §1.4: supervised, preference, safety preference, prompt-only.

Tokenization is eager (fast tokenizers batch it), so lengths are known for length-aware batching
and bad rows are dropped before the first step instead of crashing mid-epoch. Texts are
``prompt + answer`` with the EOS id appended, right-truncated to ``max_length`` (which may cut
the EOS; the score is then read at the last kept token, §2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from training.data.filtering import FilterReport, filter_records
from training.data.records import (
    PreferenceRecord,
    preference_record,
    prompt_field,
    read_rows,
    supervised_fields,
)
from training.data.shared_prompt import common_prefix_length, shared_row_length
from training.data.template import format_prompt
from training.errors import DataError

logger = logging.getLogger(__name__)
IGNORE_INDEX = -100
_CHUNK = 2048


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, *, add_eos: bool
) -> list[torch.Tensor]:
    """Token ids (with the tokenizer's own special tokens, e.g. LLaMA's BOS) per text, each (L_i,)."""
    out: list[torch.Tensor] = []
    for start in range(0, len(texts), _CHUNK):
        batch = tokenizer(list(texts[start : start + _CHUNK]), add_special_tokens=True)["input_ids"]
        for ids in batch:
            if add_eos:
                ids = [*ids, tokenizer.eos_token_id]
            out.append(torch.tensor(ids[:max_length], dtype=torch.long))
    return out


class SupervisedDataset(Dataset[dict[str, torch.Tensor]]):
    """``labels = input_ids`` with prompt tokens (every user segment of a dialogue) set to -100."""

    def __init__(
        self, rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> None:
        fields = [supervised_fields(row, index) for index, row in enumerate(rows)]
        answers = {i: answer for i, (_, answer) in enumerate(fields) if answer is not None}
        single = list(answers)
        prompts = [format_prompt(fields[i][0]) for i in single]
        full = tokenize(
            tokenizer,
            [p + answers[i] for p, i in zip(prompts, single, strict=True)],
            max_length,
            add_eos=True,
        )
        prompt_lens = [len(ids) for ids in tokenize(tokenizer, prompts, max_length, add_eos=False)]
        self.input_ids: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * len(rows)
        self.labels: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * len(rows)
        for i, ids, n_prompt in zip(single, full, prompt_lens, strict=True):
            labels = ids.clone()
            labels[:n_prompt] = IGNORE_INDEX  # spec §1.4: prompt tokens carry no loss
            self.input_ids[i], self.labels[i] = ids, labels
        eos = tokenizer.eos_token or ""
        for i, (turns, answer) in enumerate(fields):
            if answer is None:
                self.input_ids[i], self.labels[i] = _tokenize_dialogue(
                    tokenizer, list(turns), eos, max_length
                )
        # A prompt that fills max_length leaves no answer token to learn from (and a NaN loss).
        keep = [i for i, labels in enumerate(self.labels) if bool((labels != IGNORE_INDEX).any())]
        self.dropped_no_answer = len(rows) - len(keep)
        self.input_ids = [self.input_ids[i] for i in keep]
        self.labels = [self.labels[i] for i in keep]
        self.lengths = [len(ids) for ids in self.input_ids]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


def _n_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=True)["input_ids"])


def _tokenize_dialogue(
    tokenizer: PreTrainedTokenizerBase, turns: list[str], eos: str, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A dialogue [u1, a1, ..., un, an]: user segments (through each "ASSISTANT:") are masked."""
    full = tokenize(tokenizer, [format_prompt(turns[:-1], eos) + turns[-1]], max_length, add_eos=True)[0]
    labels = full.clone()
    start = 0
    for j in range(len(turns) // 2):
        through_user = format_prompt(turns[: 2 * j + 1], eos)
        labels[start : _n_tokens(tokenizer, through_user)] = IGNORE_INDEX
        start = _n_tokens(tokenizer, through_user + turns[2 * j + 1] + eos)
    return full, labels


def _load_pairs(path: str, *, need_safety: bool) -> tuple[list[PreferenceRecord], FilterReport]:
    rows = read_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    records = [preference_record(row, i, need_safety=need_safety) for i, row in enumerate(rows)]
    return filter_records(records, check_safety=need_safety)


class _PairDataset(Dataset[dict[str, Any]]):
    """Two tokenized responses per row, ``first`` and ``second``; token-identical pairs dropped."""

    need_safety = False

    def __init__(self, path: str, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        records, self.report = _load_pairs(path, need_safety=self.need_safety)
        firsts, seconds = zip(*(self._order(r) for r in records), strict=True) if records else ((), ())
        prompts = [format_prompt(r.input) for r in records]
        first_ids = tokenize(
            tokenizer, [p + a for p, a in zip(prompts, firsts, strict=True)], max_length, add_eos=True
        )
        second_ids = tokenize(
            tokenizer, [p + a for p, a in zip(prompts, seconds, strict=True)], max_length, add_eos=True
        )
        keep = [i for i in range(len(records)) if not torch.equal(first_ids[i], second_ids[i])]
        self.report.dropped_truncated_identical = len(records) - len(keep)
        self.report.kept = len(keep)
        if not keep:
            raise DataError(f"{path}: no usable pairs left after filtering ({self.report})")
        self.records = [records[i] for i in keep]
        self.first = [first_ids[i] for i in keep]
        self.second = [second_ids[i] for i in keep]
        pairs = list(zip(self.first, self.second, strict=True))
        self.prefix_lengths = [common_prefix_length(a, b) for a, b in pairs]
        # Length grouping sorts by the row the collator builds: the longer of the two rows in the
        # two-row layout, the pair's one row in the shared-prompt layout (``use_shared_prompt``).
        self.two_row_lengths = [max(len(a), len(b)) for a, b in pairs]
        self.shared_lengths = [
            shared_row_length(a, b, p) for (a, b), p in zip(pairs, self.prefix_lengths, strict=True)
        ]
        self.lengths = self.two_row_lengths

    def use_shared_prompt(self, shared: bool) -> None:
        """Batch by the lengths of the layout the pairs are collated in (see ``lengths``)."""
        self.lengths = self.shared_lengths if shared else self.two_row_lengths

    def _order(self, record: PreferenceRecord) -> tuple[str, str]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.first)


class PreferenceDataset(_PairDataset):
    """Helpfulness pairs (the ``better`` flag only): better/worse token ids (RM, DPO)."""

    def _order(self, record: PreferenceRecord) -> tuple[str, str]:
        return (record.answer, record.other_answer) if record.better else (record.other_answer, record.answer)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "better_input_ids": self.first[index],
            "worse_input_ids": self.second[index],
            "prefix_length": self.prefix_lengths[index],
        }


class SafetyPreferenceDataset(_PairDataset):
    """Harmlessness pairs (``safer``, ``is_safe``, ``is_other_safe``): safer/unsafer ids and safety.

    The safety sign of a response is ``+1`` if safe and ``-1`` if unsafe; the cost sign is its
    negative (spec §1.4, §3.2). Rows with inconsistent labels were dropped in ``filter_records``.
    """

    need_safety = True

    def _order(self, record: PreferenceRecord) -> tuple[str, str]:
        return (record.answer, record.other_answer) if record.safer else (record.other_answer, record.answer)

    def _safety(self, record: PreferenceRecord) -> tuple[bool | None, bool | None]:
        return (
            (record.is_safe, record.is_other_safe) if record.safer else (record.is_other_safe, record.is_safe)
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        safer_safe, unsafer_safe = self._safety(self.records[index])
        return {
            "safer_input_ids": self.first[index],
            "unsafer_input_ids": self.second[index],
            "is_safer_safe": bool(safer_safe),
            "is_unsafer_safe": bool(unsafer_safe),
            "prefix_length": self.prefix_lengths[index],
        }


class PromptOnlyDataset(Dataset[dict[str, torch.Tensor]]):
    """Templated prompts for RL and generation; duplicates removed keeping the last occurrence (§1.4)."""

    def __init__(
        self, path_or_rows: str | list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> None:
        rows = read_rows(path_or_rows) if isinstance(path_or_rows, str) else path_or_rows
        last: dict[str, int] = {}
        for index, row in enumerate(rows):
            last[prompt_field(row, index)] = index
        order = sorted(last, key=last.__getitem__)  # last occurrences, in index order
        self.prompts = order
        self.rows = [rows[last[p]] for p in order]
        self.input_ids = tokenize(tokenizer, [format_prompt(p) for p in order], max_length, add_eos=False)
        self.lengths = [len(ids) for ids in self.input_ids]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index]}
