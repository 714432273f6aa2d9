"""Reviewers and admins: comparisons with their votes, the disagreement queue, adjudication,
quality figures and aggregated labels. Admins also change overlap, priority and gold status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from backend.api.convert import adjudication_read, aggregate_read, comparison_read, vote_read
from backend.api.schemas.common import ERROR_RESPONSES
from backend.api.schemas.review import (
    AdjudicationCreate,
    AdjudicationRead,
    AggregatePage,
    ComparisonDetailRead,
    ComparisonPage,
    ComparisonRead,
    ComparisonUpdate,
    CountRead,
    GoldLabels,
    PrioritiesUpdate,
    ReviewItemRead,
    VotePage,
)
from backend.domain.enums import Choice, ComparisonStatus, TokenScope, UserRole
from backend.domain.labels import CanonicalAnswer, ResponseLabel
from backend.edge.deps import DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.comparisons import (
    ComparisonChanges,
    ComparisonFilter,
    list_comparisons,
    set_gold,
    set_priorities,
    update_comparison,
)
from backend.services.quality.report import aggregates
from backend.services.quality.review import (
    VoteView,
    adjudicate,
    comparison_detail,
    review_queue,
    visible_comparison,
)
from backend.services.quality.votes import load_votes
from backend.services.user_lookup import get_emails

router = APIRouter(tags=["review"], responses=ERROR_RESPONSES)
Reader = Annotated[Principal, Depends(require(UserRole.reviewer, UserRole.admin, scope=TokenScope.read))]
Reviewer = Annotated[
    Principal, Depends(require(UserRole.reviewer, UserRole.admin, scope=TokenScope.annotate))
]
Admin = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.admin))]


@router.get("/projects/{project_id}/comparisons", response_model=ComparisonPage, summary="List comparisons")
def read_comparisons(
    project_id: int,
    db: DbDep,
    principal: Reader,
    status_filter: Annotated[ComparisonStatus | None, Query(alias="status")] = None,
    is_gold: bool | None = None,
    round_id: int | None = None,
    sort: Annotated[str, Query(max_length=50, description="id, priority, submitted_count, ...")] = "id",
    descending: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ComparisonPage:
    project = visible_project(db, user=principal.user, project_id=project_id)
    where = ComparisonFilter(status_filter, is_gold, round_id, sort, descending, limit, offset)
    rows, total = list_comparisons(db, project=project, where=where)
    return ComparisonPage(total=total, items=[comparison_read(c) for c in rows])


@router.post(
    "/projects/{project_id}/comparisons/priorities",
    response_model=CountRead,
    summary="Set the priorities of many comparisons (higher is claimed first)",
)
def post_priorities(project_id: int, body: PrioritiesUpdate, db: DbDep, principal: Admin) -> CountRead:
    project = visible_project(db, user=principal.user, project_id=project_id)
    count = set_priorities(
        session=db, actor=principal.user, project=project, priorities={i.id: i.priority for i in body.items}
    )
    return CountRead(updated=count)


@router.get(
    "/comparisons/{comparison_id}",
    response_model=ComparisonDetailRead,
    summary="A comparison with its texts, every vote, the aggregate and adjudications",
)
def read_comparison(comparison_id: int, db: DbDep, principal: Reader) -> ComparisonDetailRead:
    comparison = visible_comparison(db, user=principal.user, comparison_id=comparison_id)
    detail = comparison_detail(db, comparison=comparison)
    return ComparisonDetailRead(
        comparison=comparison_read(comparison),
        prompt=comparison.prompt.text,
        response_a=comparison.response_a.text,
        response_b=comparison.response_b.text,
        gold_labels=comparison.gold_labels,
        votes=[vote_read(v) for v in detail.votes],
        aggregate=aggregate_read(detail.aggregate) if detail.aggregate else None,
        adjudications=[adjudication_read(a) for a in detail.adjudications],
        disagreeing=detail.disagreeing,
    )


@router.patch(
    "/comparisons/{comparison_id}",
    response_model=ComparisonRead,
    summary="Change overlap k, priority, or retire (k may change at any time; never more than k are kept)",
)
def patch_comparison(
    comparison_id: int, body: ComparisonUpdate, db: DbDep, principal: Admin
) -> ComparisonRead:
    visible_comparison(db, user=principal.user, comparison_id=comparison_id)
    changes = ComparisonChanges(**body.model_dump(exclude_unset=True))
    return comparison_read(
        update_comparison(session=db, actor=principal.user, comparison_id=comparison_id, changes=changes)
    )


@router.put(
    "/comparisons/{comparison_id}/gold", response_model=ComparisonRead, summary="Make it a gold check"
)
def put_gold(comparison_id: int, body: GoldLabels, db: DbDep, principal: Admin) -> ComparisonRead:
    comparison = visible_comparison(db, user=principal.user, comparison_id=comparison_id)
    project = visible_project(db, user=principal.user, project_id=comparison.project_id)
    changed = set_gold(
        session=db, actor=principal.user, project=project, comparison=comparison, labels=body.as_dict()
    )
    return comparison_read(changed)


@router.delete(
    "/comparisons/{comparison_id}/gold", response_model=ComparisonRead, summary="Stop using it as gold"
)
def delete_gold(comparison_id: int, db: DbDep, principal: Admin) -> ComparisonRead:
    comparison = visible_comparison(db, user=principal.user, comparison_id=comparison_id)
    project = visible_project(db, user=principal.user, project_id=comparison.project_id)
    return comparison_read(
        set_gold(session=db, actor=principal.user, project=project, comparison=comparison, labels=None)
    )


@router.post(
    "/comparisons/{comparison_id}/adjudications",
    response_model=AdjudicationRead,
    status_code=status.HTTP_201_CREATED,
    summary="Record final labels for a comparison (replaces the votes in aggregation)",
)
def post_adjudication(
    comparison_id: int, body: AdjudicationCreate, db: DbDep, principal: Reviewer
) -> AdjudicationRead:
    comparison = visible_comparison(db, user=principal.user, comparison_id=comparison_id)
    answer = CanonicalAnswer(
        a=ResponseLabel(body.a.is_safe, tuple(body.a.harm_categories), body.a.severity),
        b=ResponseLabel(body.b.is_safe, tuple(body.b.harm_categories), body.b.severity),
        helpfulness=Choice(body.helpfulness),
        harmlessness=Choice(body.harmlessness),
    )
    adj = adjudicate(
        session=db,
        reviewer=principal.user,
        comparison=comparison,
        answer=answer,
        note=body.note,
        promote_to_gold=body.promote_to_gold and principal.role is UserRole.admin,
    )
    return adjudication_read(adj)


@router.get(
    "/projects/{project_id}/review-queue",
    response_model=list[ReviewItemRead],
    summary="Comparisons whose annotators disagree, unadjudicated first",
)
def read_review_queue(
    project_id: int,
    db: DbDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ReviewItemRead]:
    project = visible_project(db, user=principal.user, project_id=project_id)
    return [
        ReviewItemRead(**vars(item)) for item in review_queue(db, project=project, limit=limit, offset=offset)
    ]


@router.get(
    "/projects/{project_id}/labels",
    response_model=AggregatePage,
    summary="Aggregated labels per comparison (reliability-weighted majority, ties reported)",
)
def read_labels(
    project_id: int,
    db: DbDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AggregatePage:
    project = visible_project(db, user=principal.user, project_id=project_id)
    items = sorted(aggregates(db, project=project), key=lambda a: a.comparison_id)
    return AggregatePage(total=len(items), items=[aggregate_read(a) for a in items[offset : offset + limit]])


@router.get(
    "/projects/{project_id}/votes",
    response_model=VotePage,
    summary="Raw votes of a project (every annotation, canonical terms), by id",
)
def read_votes(
    project_id: int,
    db: DbDep,
    principal: Reader,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> VotePage:
    project = visible_project(db, user=principal.user, project_id=project_id)
    votes = load_votes(db, project_id=project.id, after_id=after_id, limit=limit)
    emails = get_emails(session=db, user_ids={v.annotator_id for v in votes})
    items = [vote_read(VoteView(v, emails.get(v.annotator_id, "?"), 1.0)) for v in votes]
    return VotePage(items=items, next_after_id=votes[-1].annotation_id if len(votes) == limit else None)
