"""Up-front filtering of preference rows (docs/design/method.md §1.4, §12.3).

Upstream raises mid-epoch on such rows because it tokenizes lazily; we drop them before training
and report how many went.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from training.data.records import PreferenceRecord

logger = logging.getLogger(__name__)


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    dropped_identical: int = 0  # both responses the same text, or the same tokens
    dropped_inconsistent: int = 0  # the safer response labelled unsafe while the other is safe
    dropped_truncated_identical: int = 0  # different texts, identical after truncation

    def as_metrics(self, split: str) -> dict[str, float]:
        return {f"data/{split}_{k}": float(v) for k, v in vars(self).items()}

    def log(self, split: str) -> None:
        logger.info(
            "%s data: kept %d of %d rows (dropped %d identical, %d inconsistent safety labels, "
            "%d identical after truncation)",
            split,
            self.kept,
            self.total,
            self.dropped_identical,
            self.dropped_inconsistent,
            self.dropped_truncated_identical,
        )


def is_inconsistent(record: PreferenceRecord) -> bool:
    """The safer response is labelled unsafe while the less safe one is labelled safe (§1.4)."""
    if record.safer is None:
        return False
    safer_safe, other_safe = (
        (record.is_safe, record.is_other_safe) if record.safer else (record.is_other_safe, record.is_safe)
    )
    return (not safer_safe) and bool(other_safe)


def filter_records(
    records: list[PreferenceRecord], *, check_safety: bool
) -> tuple[list[PreferenceRecord], FilterReport]:
    """Drop identical-response rows, and (for safety data) rows with inconsistent safety labels."""
    report = FilterReport(total=len(records))
    kept = []
    for record in records:
        if record.answer == record.other_answer:
            report.dropped_identical += 1
        elif check_safety and is_inconsistent(record):
            report.dropped_inconsistent += 1
        else:
            kept.append(record)
    report.kept = len(kept)
    return kept, report
