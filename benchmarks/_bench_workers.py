"""Benchmark workers, each run in a fresh subprocess: ours, TRL's RewardTrainer, the matmul ceiling.

Each worker times the steps after a warm-up (end of step ``warmup`` to end of the last step),
counts the non-pad tokens of those steps, records every step's loss and the peak RSS, and
writes one JSON result.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def cpu_snapshot() -> tuple[float, float, float]:
    """(CPU seconds busy on the whole machine, CPU seconds of this process, wall seconds)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / hz, time.process_time(), time.perf_counter()


def other_load(start: tuple[float, float, float], end: tuple[float, float, float]) -> float:
    """Share of the machine's cores used by other processes between two snapshots."""
    busy, own, wall = (b - a for a, b in zip(start, end, strict=True))
    return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _result(
    stamps: list[float], tokens: list[int], losses: list[float], warmup: int, snaps: list, **extra: Any
) -> dict:
    elapsed = stamps[-1] - stamps[warmup - 1]
    extra["other_load"] = other_load(snaps[warmup - 1], snaps[-1])
    timed_tokens = sum(tokens[warmup:])
    return {
        "tokens_per_s": timed_tokens / elapsed,
        "timed_steps": len(stamps) - warmup,
        "timed_s": elapsed,
        "timed_tokens": timed_tokens,
        "losses": losses,
        "step1_loss": losses[0],
        "peak_rss_mb": _peak_rss_mb(),
        "steps": len(stamps),
        "step_tokens": tokens,
        **extra,
    }


def logical_tokens(batch: dict) -> int:
    """Non-pad tokens of the pairs' logical sequences prompt+chosen and prompt+rejected (the prompt
    counted twice), whatever the layout: what TRL counts, and the data both frameworks consume."""
    if "sequence_lengths" in batch:  # shared-prompt rows: (B, 2) logical lengths
        return int(batch["sequence_lengths"].sum())
    return int(batch["attention_mask"].sum())  # two rows per pair: the rows are the sequences


def run_ours(
    model_dir: str, data_dir: str, steps: int, batch: int, lr: float, warmup: int, shared_prompt: bool = True
) -> dict:
    """Our reward stage (RewardModelTask + Trainer), exactly as ``python -m training reward`` runs it
    (``shared_prompt=False``: its two-row layout, for comparison)."""
    from training.algorithms.reward_model import RewardModelTask
    from training.config import RewardModelConfig
    from training.data import plan_epoch
    from training.engine.trainer import Trainer

    stamps: list[float] = []
    tokens: list[int] = []
    executed: list[int] = []
    losses: list[float] = []
    snaps: list[tuple[float, float, float]] = []

    class TimedTrainer(Trainer):
        def train_step(self, micro):  # type: ignore[no-untyped-def]
            tokens.append(sum(logical_tokens(b) for b in micro))
            executed.append(sum(int(b["attention_mask"].sum()) for b in micro))  # the prompt once
            out = super().train_step(micro)
            stamps.append(time.perf_counter())
            snaps.append(cpu_snapshot())
            losses.append(out["train/loss"])
            return out

    with tempfile.TemporaryDirectory() as out_dir:
        config = RewardModelConfig(
            model_name_or_path=model_dir,
            train_data=f"{data_dir}/pairs_train.jsonl",
            output_dir=out_dir,
            epochs=1,
            max_steps=steps,
            per_device_train_batch_size=batch,
            learning_rate=lr,
            lr_scheduler_type="constant",
            lr_warmup_ratio=0.0,
            weight_decay=0.0,
            regularization=0.0,
            max_grad_norm=1.0,
            logging_steps=10,
            save_steps=10**9,
            resume="never",
            max_length=512,
            seed=0,
            shared_prompt=shared_prompt,
        )
        trainer = TimedTrainer(RewardModelTask(config))
        trainer.run()
        if trainer.task.shared_prompt != shared_prompt:
            raise RuntimeError("the reward stage fell back to the two-row layout (see the log)")
        lengths = trainer.task.train_dataset.lengths
        order = [
            i
            for b in plan_epoch(lengths, batch, seed=0, epoch=0, group_size=config.length_group_size)
            for i in b
        ]
    result = _result(stamps, tokens, losses, warmup, snaps, order=order)
    result["executed_tokens_per_s"] = sum(executed[warmup:]) / result["timed_s"]
    return result


def run_trl(
    model_dir: str, tokens_file: str, order_file: str | None, steps: int, batch: int, lr: float, warmup: int
) -> dict:
    """TRL 1.12 RewardTrainer on the same pre-tokenized pairs; fp32, no gradient checkpointing (as ours).

    With ``order_file`` the data is fed in that exact order (a sequential sampler), so both
    frameworks see identical batches; without it TRL shuffles with its default sampler.
    """
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    rows = json.loads(Path(tokens_file).read_text())
    if order_file:
        rows = [rows[i] for i in json.loads(Path(order_file).read_text())]
    stamps: list[float] = []
    tokens: list[int] = []
    losses: list[float] = []
    snaps: list[tuple[float, float, float]] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            stamps.append(time.perf_counter())
            snaps.append(cpu_snapshot())

    class BenchRewardTrainer(RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[no-untyped-def]
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                tokens.append(int(inputs["attention_mask"].sum()))
                losses.append(float((out[0] if return_outputs else out).detach()))
            return out

        def _get_train_sampler(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return (
                SequentialSampler(self.train_dataset)
                if order_file
                else super()._get_train_sampler(*args, **kwargs)
            )

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as out_dir:
        args = RewardConfig(
            output_dir=out_dir,
            per_device_train_batch_size=batch,
            max_steps=steps,
            learning_rate=lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            adam_beta1=0.9,
            adam_beta2=0.95,
            max_grad_norm=1.0,
            logging_steps=10,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=0,
            dataloader_num_workers=0,
            disable_tqdm=True,
            bf16=False,
            gradient_checkpointing=False,
            max_length=512,
        )
        trainer = BenchRewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[Stamp()],
        )
        trainer.train()
    return _result(stamps, tokens, losses, warmup, snaps)


def run_matmul() -> dict:
    from benchmarks._bench_setup import peak_matmul_flops

    return {"peak_flops": max(peak_matmul_flops(2048), peak_matmul_flops(3072, repeats=3))}
