"""PKU-SafeRLHF readers, the prompt template, datasets, collators, filtering and length grouping."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from training.data import (
    IGNORE_INDEX,
    PreferenceCollator,
    PreferenceDataset,
    PromptOnlyCollator,
    PromptOnlyDataset,
    SafetyPreferenceCollator,
    SafetyPreferenceDataset,
    SupervisedCollator,
    SupervisedDataset,
    format_prompt,
    padding_fraction,
    plan_epoch,
    read_rows,
)
from training.errors import DataError
from training.models import load_tokenizer


@pytest.fixture(scope="module")
def tok(micro_model: Path):
    return load_tokenizer(str(micro_model))


def pku_row(
    r0: str,
    r1: str,
    *,
    better: int = 0,
    safer: int = 0,
    safe0: bool = True,
    safe1: bool = True,
    v1: bool = False,
) -> dict:
    row = {
        "prompt": "how do i bake bread",
        "response_0": r0,
        "response_1": r1,
        "better_response_id": better,
        "safer_response_id": safer,
        "is_response_0_safe": safe0,
        "is_response_1_safe": safe1,
    }
    if v1:
        row.update(
            {
                "prompt_source": "x",
                "response_0_source": "a",
                "response_1_source": "b",
                "response_0_harm_category": {"Violence": not safe0, "Drugs": False},
                "response_1_harm_category": {"Violence": False, "Drugs": not safe1},
                "response_0_severity_level": 0 if safe0 else 2,
                "response_1_severity_level": 0 if safe1 else 1,
            }
        )
    return row


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prompt_template_is_exact() -> None:
    assert format_prompt("hi there") == "BEGINNING OF CONVERSATION: USER: hi there ASSISTANT:"
    assert format_prompt(["a", "b", "c"], eos_token="</s>") == (
        "BEGINNING OF CONVERSATION: USER: a ASSISTANT:b</s>USER: c ASSISTANT:"
    )


def test_reads_jsonl_json_parquet_and_directories(tmp_path: Path) -> None:
    rows = [pku_row("a.", "b."), pku_row("c.", "d.", v1=True)]
    write_jsonl(tmp_path / "x.jsonl", rows)
    (tmp_path / "y.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist([pku_row("e.", "f.")]), tmp_path / "z.parquet")
    assert read_rows(tmp_path / "x.jsonl") == rows
    assert read_rows(tmp_path / "y.json") == rows
    assert read_rows(tmp_path / "z.parquet")[0]["response_0"] == "e."
    assert len(read_rows(tmp_path)) == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json\n", "not valid JSON"), ('["a"]', "row 0 is not a JSON object")],
)
def test_malformed_files_are_clear_data_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / ("bad.jsonl" if content.startswith("{") else "bad.json")
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_rows(path)
    with pytest.raises(DataError, match="not found"):
        read_rows(tmp_path / "missing.jsonl")


def test_v1_fields_are_read_into_the_project_taxonomy(tmp_path: Path, tok) -> None:
    path = write_jsonl(tmp_path / "v1.jsonl", [pku_row("a.", "b.", safer=1, safe0=False, v1=True)])
    record = SafetyPreferenceDataset(str(path), tok, 64).records[0]
    assert record.severity == (2, 0)
    assert record.harm_categories[0]["Violence, Aiding and Abetting, Incitement"] is True
    assert not any(record.harm_categories[1].values())


def test_safety_dataset_drops_inconsistent_and_identical_rows_and_counts_them(tmp_path: Path, tok) -> None:
    rows = [
        pku_row("a.", "b.", safer=0, safe0=True, safe1=False),  # fine
        pku_row("a.", "b.", safer=0, safe0=False, safe1=True),  # safer labelled unsafe, other safe
        pku_row("a.", "b.", safer=1, safe0=True, safe1=False),  # same, the other way round
        pku_row("same.", "same."),  # identical responses
        pku_row("a.", "b.", safer=1, safe0=False, safe1=False),  # both unsafe: consistent
    ]
    ds = SafetyPreferenceDataset(str(write_jsonl(tmp_path / "p.jsonl", rows)), tok, 64)
    assert (ds.report.total, ds.report.kept) == (5, 2)
    assert (ds.report.dropped_inconsistent, ds.report.dropped_identical) == (2, 1)
    assert ds.report.as_metrics("train")["data/train_dropped_inconsistent"] == 2.0
    # The reward model's preference data keeps the inconsistent rows: safety is not its concern.
    assert PreferenceDataset(str(tmp_path / "p.jsonl"), tok, 64).report.kept == 4


def test_rows_identical_after_truncation_are_dropped(tmp_path: Path, tok) -> None:
    rows = [pku_row("same start, tail one.", "same start, tail two."), pku_row("short.", "other.")]
    n_prompt = len(tok(format_prompt(rows[0]["prompt"])).input_ids)
    ds = PreferenceDataset(str(write_jsonl(tmp_path / "t.jsonl", rows)), tok, max_length=n_prompt + 2)
    assert ds.report.dropped_truncated_identical == 1 and len(ds) == 1


def test_preference_pairs_follow_the_better_flag(tmp_path: Path, tok) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [pku_row("first.", "second.", better=1)])
    item = PreferenceDataset(str(path), tok, 64)[0]
    assert tok.decode(item["better_input_ids"], skip_special_tokens=True).endswith("ASSISTANT:second.")
    assert item["better_input_ids"][-1] == tok.eos_token_id


def test_pair_collators_pad_both_responses_jointly_into_one_batch(tmp_path: Path, tok) -> None:
    rows = [
        pku_row("short.", "a much longer answer here.", safer=1, safe0=False, safe1=True),
        pku_row("mid answer.", "x.", safer=0),
    ]
    ds = SafetyPreferenceDataset(str(write_jsonl(tmp_path / "s.jsonl", rows)), tok, 64)
    batch = SafetyPreferenceCollator(tok.pad_token_id)([ds[0], ds[1]])
    assert batch["input_ids"].shape[0] == 4  # (2B, L): safer rows, then unsafer rows
    assert batch["is_safe"].tolist() == [True, True, False, True]
    lengths = [
        len(ds[0]["safer_input_ids"]),
        len(ds[1]["safer_input_ids"]),
        len(ds[0]["unsafer_input_ids"]),
        len(ds[1]["unsafer_input_ids"]),
    ]
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["input_ids"].shape[1] == max(lengths)
    pref = PreferenceCollator(tok.pad_token_id)(
        [{"better_input_ids": torch.tensor([1, 2, 3]), "worse_input_ids": torch.tensor([4])}]
    )
    assert pref["input_ids"].tolist() == [[1, 2, 3], [4, tok.pad_token_id, tok.pad_token_id]]


def test_supervised_labels_mask_the_prompt_and_keep_the_eos(tok) -> None:
    ds = SupervisedDataset([{"prompt": "how do i bake bread", "response": "preheat the oven."}], tok, 64)
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    n_prompt = len(tok(format_prompt("how do i bake bread")).input_ids)
    assert (labels[:n_prompt] == IGNORE_INDEX).all()
    assert labels[n_prompt:].tolist() == ids[n_prompt:].tolist()
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(labels[labels != IGNORE_INDEX], skip_special_tokens=True) == "preheat the oven."
    batch = SupervisedCollator(tok.pad_token_id)([ds[0], {"input_ids": ids[:3], "labels": labels[:3]}])
    assert batch["labels"][1, 3:].eq(IGNORE_INDEX).all() and batch["attention_mask"][1].sum() == 3


def test_dialogue_masks_every_user_segment(tok) -> None:
    ds = SupervisedDataset([{"dialogue": ["hi", "hello.", "bye", "ok."]}], tok, 64)
    kept = tok.decode(ds[0]["labels"][ds[0]["labels"] != IGNORE_INDEX])
    assert kept == f"hello.{tok.eos_token}ok.{tok.eos_token}"


def test_alpaca_rows_join_instruction_and_input(tok) -> None:
    ds = SupervisedDataset([{"instruction": "add", "input": "1 and 2", "output": "3."}], tok, 64)
    assert "USER: add 1 and 2 ASSISTANT:3." in tok.decode(ds[0]["input_ids"])


def test_prompt_only_dedupes_keeping_the_last_occurrence_and_left_pads(tok) -> None:
    rows = [{"prompt": "a"}, {"prompt": "b b b"}, {"prompt": "a", "tag": "last"}]
    ds = PromptOnlyDataset(rows, tok, 64)
    assert ds.prompts == ["b b b", "a"] and ds.rows[1]["tag"] == "last"
    batch = PromptOnlyCollator(tok.pad_token_id)([ds[0], ds[1]])
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][1, -1] == 1
    assert batch["input_ids"][1, 0] == tok.pad_token_id


def test_length_grouping_cuts_padding_and_is_deterministic() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(32, 160, (2048,), generator=gen).tolist()
    grouped = plan_epoch(lengths, 16, seed=1, epoch=0)
    assert grouped == plan_epoch(lengths, 16, seed=1, epoch=0)
    assert grouped != plan_epoch(lengths, 16, seed=1, epoch=1)
    assert sorted(i for b in grouped for i in b) == list(range(2048))  # every row once
    plain = plan_epoch(lengths, 16, seed=1, epoch=0, group_by_length=False)
    assert padding_fraction(grouped, lengths) < 0.05 < 0.25 < padding_fraction(plain, lengths)


def test_ranks_get_disjoint_equal_shares() -> None:
    lengths = list(range(100))
    shares = [plan_epoch(lengths, 4, seed=0, epoch=0, rank=r, world_size=2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 12
    assert not {i for b in shares[0] for i in b} & {i for b in shares[1] for i in b}


def test_sft_rows_whose_answer_is_cut_by_max_length_are_dropped_and_counted(tok) -> None:
    rows = [{"prompt": "word " * 60, "response": "lost."}, {"prompt": "hi", "response": "kept."}]
    ds = SupervisedDataset(rows, tok, max_length=24)
    assert len(ds) == 1 and ds.dropped_no_answer == 1
    assert (ds[0]["labels"] != IGNORE_INDEX).any()
