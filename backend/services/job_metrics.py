"""The read side of a job's metrics: the points after a given step, grouped per metric, so a page
can poll for what is new instead of fetching the whole history every time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import Metric

MAX_POINTS = 20_000


@dataclass(frozen=True)
class MetricSeries:
    series: dict[str, list[tuple[int, float]]]
    last_step: int | None


def list_metrics(
    *,
    session: Session,
    job_id: int,
    after_step: int | None,
    names: list[str] | None = None,
    max_points: int = MAX_POINTS,
) -> MetricSeries:
    """Points with step > after_step, in step order. When more than max_points are waiting, the
    answer stops at a step boundary, so the next call with after_step=last_step misses nothing."""
    query = select(Metric.step, Metric.name, Metric.value).where(Metric.job_id == job_id)
    if after_step is not None:
        query = query.where(Metric.step > after_step)
    if names:
        query = query.where(Metric.name.in_(names))
    rows = session.execute(query.order_by(Metric.step, Metric.name).limit(max_points + 1)).all()
    if len(rows) > max_points:
        cut = rows[max_points].step
        kept = [r for r in rows[:max_points] if r.step < cut]
        rows = kept or [r for r in rows[:max_points]]  # one step with more points than the cap
    series: dict[str, list[tuple[int, float]]] = {}
    for step, name, value in rows:
        series.setdefault(name, []).append((step, value))
    return MetricSeries(series=series, last_step=rows[-1].step if rows else after_step)
