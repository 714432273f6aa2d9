"""Service results to API schemas (one place, so pages and API agree on field meanings)."""

from __future__ import annotations

from backend.api.schemas.queue import AnnotationRead, ResponseLabelRead, TaskRead, WarningRead
from backend.api.schemas.review import (
    AdjudicationRead,
    AggregateRead,
    AxisAggregateRead,
    CanonicalLabelIn,
    ComparisonRead,
    SideAggregateRead,
    VoteRead,
)
from backend.db.models import Adjudication, Comparison
from backend.domain.labels import ResponseLabel
from backend.services.annotation_views import SubmittedAnnotation
from backend.services.assignments import Task
from backend.services.quality.aggregation import Aggregate, AxisResult, SideResult
from backend.services.quality.review import VoteView


def task_read(task: Task) -> TaskRead:
    return TaskRead(
        assignment_id=task.assignment_id,
        comparison_id=task.comparison_id,
        project_id=task.project_id,
        lease_token=task.lease_token,
        state=task.state,
        expires_at=task.expires_at,
        prompt=task.prompt,
        left=task.left,
        right=task.right,
    )


def _label(label: ResponseLabel) -> ResponseLabelRead:
    return ResponseLabelRead(
        is_safe=label.is_safe, harm_categories=list(label.harm_categories), severity=label.severity
    )


def annotation_read(item: SubmittedAnnotation) -> AnnotationRead:
    answer = item.answer
    return AnnotationRead(
        id=item.id,
        assignment_id=item.assignment_id,
        comparison_id=item.comparison_id,
        project_id=item.project_id,
        left=_label(answer.left),
        right=_label(answer.right),
        helpfulness=answer.helpfulness,
        harmlessness=answer.harmlessness,
        confidence=answer.confidence,
        rationale=answer.rationale,
        time_spent_ms=answer.time_spent_ms,
        warnings=[WarningRead(code=w.code, message=w.message) for w in item.warnings],
        created_at=item.created_at,
    )


def comparison_read(c: Comparison) -> ComparisonRead:
    return ComparisonRead(
        id=c.id,
        project_id=c.project_id,
        prompt_id=c.prompt_id,
        response_a_id=c.response_a_id,
        response_b_id=c.response_b_id,
        round_id=c.round_id,
        overlap_target=c.overlap_target,
        priority=c.priority,
        submitted_count=c.submitted_count,
        active_count=c.active_count,
        status=c.status,
        is_gold=c.is_gold,
        created_at=c.created_at,
    )


def canonical_label(label: ResponseLabel) -> CanonicalLabelIn:
    return CanonicalLabelIn(
        is_safe=label.is_safe, harm_categories=list(label.harm_categories), severity=label.severity
    )


def vote_read(view: VoteView) -> VoteRead:
    vote = view.vote
    return VoteRead(
        annotation_id=vote.annotation_id,
        comparison_id=vote.comparison_id,
        annotator_id=vote.annotator_id,
        annotator_email=view.annotator_email,
        weight=round(view.weight, 4),
        a=canonical_label(vote.answer.a),
        b=canonical_label(vote.answer.b),
        helpfulness=vote.answer.helpfulness,
        harmlessness=vote.answer.harmlessness,
        shown_order=vote.shown_order.value,
        confidence=vote.confidence,
        rationale=vote.rationale,
        time_spent_ms=vote.time_spent_ms,
        warnings=vote.warnings,
        created_at=vote.created_at,
    )


def _axis(axis: AxisResult) -> AxisAggregateRead:
    return AxisAggregateRead(label=axis.label, tie=axis.tie, shares=axis.shares, votes=axis.votes)


def _side(side: SideResult) -> SideAggregateRead:
    return SideAggregateRead(
        is_safe=side.is_safe,
        tie=side.tie,
        unsafe_share=side.unsafe_share,
        harm_categories=side.harm_categories,
        severity=side.severity,
    )


def aggregate_read(agg: Aggregate) -> AggregateRead:
    return AggregateRead(
        comparison_id=agg.comparison_id,
        votes=agg.votes,
        adjudicated=agg.adjudicated,
        ties=agg.ties,
        helpfulness=_axis(agg.helpfulness),
        harmlessness=_axis(agg.harmlessness),
        a=_side(agg.a),
        b=_side(agg.b),
    )


def adjudication_read(adj: Adjudication) -> AdjudicationRead:
    return AdjudicationRead(
        id=adj.id,
        comparison_id=adj.comparison_id,
        reviewer_id=adj.reviewer_id,
        helpfulness=adj.helpfulness,
        harmlessness=adj.harmlessness,
        a=CanonicalLabelIn(
            is_safe=adj.a_is_safe, harm_categories=adj.a_harm_categories, severity=adj.a_severity
        ),
        b=CanonicalLabelIn(
            is_safe=adj.b_is_safe, harm_categories=adj.b_harm_categories, severity=adj.b_severity
        ),
        note=adj.note,
        created_at=adj.created_at,
    )
