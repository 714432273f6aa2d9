"""GET /projects/{id}/quality: agreement per axis and round, and per-annotator quality."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backend.api.schemas.common import ERROR_RESPONSES
from backend.api.schemas.quality import (
    AgreementRead,
    AnnotatorQualityRead,
    CategoryErrorsRead,
    QualityRead,
    RateRead,
)
from backend.domain.enums import TokenScope, UserRole
from backend.edge.deps import DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.quality.annotators import Tally
from backend.services.quality.report import AnnotatorRow, quality_report

router = APIRouter(tags=["review"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require(UserRole.reviewer, UserRole.admin, scope=TokenScope.read))]


def _rate(tally: Tally) -> RateRead:
    return RateRead(correct=tally.correct, total=tally.total, rate=tally.rate)


def annotator_quality(row: AnnotatorRow) -> AnnotatorQualityRead:
    s = row.stats
    return AnnotatorQualityRead(
        user_id=row.user_id,
        email=row.email,
        display_name=row.display_name,
        annotations=s.annotations,
        gold_items=s.gold_items,
        gold_helpfulness=_rate(s.gold["helpfulness"]),
        gold_harmlessness=_rate(s.gold["harmlessness"]),
        gold_safety=_rate(s.gold["safety"]),
        missed_unsafe=s.missed_unsafe,
        false_alarm_unsafe=s.false_alarm_unsafe,
        categories=[
            CategoryErrorsRead(category=key, hits=e.hits, missed=e.missed, false_alarms=e.false_alarms)
            for key, e in sorted(s.categories.items())
        ],
        agreement_with_others_helpfulness=_rate(s.with_others["helpfulness"]),
        agreement_with_others_harmlessness=_rate(s.with_others["harmlessness"]),
        left_rate=s.left_rate,
        position_bias_p=s.position_bias_p,
        position_biased=s.position_biased,
        inconsistency_rate=s.inconsistency_rate,
        median_time_ms=s.median_time_ms,
        reliability=round(s.reliability, 4),
        weight=round(s.weight, 4),
    )


@router.get(
    "/projects/{project_id}/quality",
    response_model=QualityRead,
    summary="Agreement (Krippendorff's alpha, percent agreement) and annotator quality (gold, bias)",
)
def read_quality(project_id: int, db: DbDep, principal: Reader) -> QualityRead:
    project = visible_project(db, user=principal.user, project_id=project_id)
    report = quality_report(db, project=project)
    return QualityRead(
        project_id=report.project_id,
        votes=report.votes,
        comparisons_with_votes=report.comparisons_with_votes,
        disagreements=report.disagreements,
        adjudicated=report.adjudicated,
        ties=report.ties,
        agreement=[
            AgreementRead(
                round=row.round_label,
                axis=row.axis,
                units=row.result.units,
                alpha=row.result.alpha,
                percent_agreement=row.result.percent,
            )
            for row in report.agreement
        ],
        annotators=[annotator_quality(row) for row in report.annotators],
    )
