"""Data: PKU-SafeRLHF readers (v0/v1, JSONL/Parquet), the prompt template, datasets, collators (the
two-row and the shared-prompt layout of pairs) and length-aware batching (docs/design/method.md §1)."""

from training.data.batching import padding_fraction, plan_epoch
from training.data.collators import (
    PreferenceCollator,
    PromptOnlyCollator,
    SafetyPreferenceCollator,
    SupervisedCollator,
    lengths_mask,
    pad_sequences,
)
from training.data.datasets import (
    IGNORE_INDEX,
    PreferenceDataset,
    PromptOnlyDataset,
    SafetyPreferenceDataset,
    SupervisedDataset,
    tokenize,
)
from training.data.filtering import FilterReport, filter_records, is_inconsistent
from training.data.records import PreferenceRecord, preference_record, read_rows
from training.data.shared_prompt import (
    SharedPromptPreferenceCollator,
    SharedPromptSafetyPreferenceCollator,
    common_prefix_length,
    shared_prompt_batch,
    shared_prompt_inputs,
)
from training.data.template import PROMPT_ASSISTANT, PROMPT_BEGIN, PROMPT_INPUT, PROMPT_USER, format_prompt

__all__ = [
    "IGNORE_INDEX",
    "PROMPT_ASSISTANT",
    "PROMPT_BEGIN",
    "PROMPT_INPUT",
    "PROMPT_USER",
    "FilterReport",
    "PreferenceCollator",
    "PreferenceDataset",
    "PreferenceRecord",
    "PromptOnlyCollator",
    "PromptOnlyDataset",
    "SafetyPreferenceCollator",
    "SafetyPreferenceDataset",
    "SharedPromptPreferenceCollator",
    "SharedPromptSafetyPreferenceCollator",
    "SupervisedCollator",
    "SupervisedDataset",
    "common_prefix_length",
    "filter_records",
    "format_prompt",
    "is_inconsistent",
    "lengths_mask",
    "pad_sequences",
    "padding_fraction",
    "plan_epoch",
    "preference_record",
    "read_rows",
    "shared_prompt_batch",
    "shared_prompt_inputs",
    "tokenize",
]
