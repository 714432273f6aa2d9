"""Run outputs other than events: summary.json, TensorBoard, score histograms, the progress bar."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, allow_nan=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def clean_metrics(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}


def write_summary(output_dir: Path, metrics: Mapping[str, float]) -> Path:
    """Final metrics keyed ``train/*``, ``eval/*`` (and ``data/*``) in ``summary.json``."""
    path = output_dir / SUMMARY_FILE
    write_json_atomic(path, clean_metrics(metrics))
    return path


class TensorBoardLogger:
    """Scalars to TensorBoard event files when the tensorboard package is installed; else a no-op."""

    def __init__(self, log_dir: Path, enabled: bool = True) -> None:
        self._writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.info("tensorboard is not installed: no TensorBoard files")
            return
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for key, value in metrics.items():
            if math.isfinite(float(value)):
                self._writer.add_scalar(key, float(value), step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ProgressBar:
    """A tqdm bar only when a person is watching a terminal (stderr is a TTY)."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True) -> None:
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=sys.stderr)

    def update(self, step: int, postfix: Mapping[str, float] | None = None) -> None:
        if self._bar is None:
            return
        self._bar.n = step
        if postfix:
            self._bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def plot_score_histogram(path: Path, groups: Mapping[str, list[float]], title: str, xlabel: str) -> None:
    """A 100-bin histogram of end scores, one overlaid series per group (spec §3.4).

    Skipped with a log line when matplotlib is not installed (e.g. a bare GPU image).
    """
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed: no %s", path.name)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for label, values in groups.items():
        if values:
            ax.hist(values, bins=100, alpha=0.6, label=f"{label} (n={len(values)})")
    if xlabel.startswith("cost"):
        ax.axvline(0.0, color="black", linewidth=1, linestyle="--", label="safe | unsafe boundary")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("responses")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
