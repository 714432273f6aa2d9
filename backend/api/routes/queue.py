"""The annotator's API: claim the next pair, skip it, submit it (idempotently), own annotations.

Every lookup is scoped to the caller: other people's assignments and annotations are 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from backend.api.convert import annotation_read, task_read
from backend.api.schemas.common import ERROR_RESPONSES, ErrorRead
from backend.api.schemas.queue import AnnotationRead, AnnotationSubmit, SubmitAndNextRead, TaskRead
from backend.domain.enums import TokenScope
from backend.domain.errors import DomainError
from backend.edge.deps import ALL_ROLES, DbDep, Principal, require
from backend.services.access import visible_project
from backend.services.annotation_views import SubmittedAnnotation, get_own_annotation, list_own_annotations
from backend.services.assignments import claim_next, get_assignment, skip_assignment
from backend.services.submissions import submit_annotation

router = APIRouter(tags=["annotate"], responses=ERROR_RESPONSES)
Annotator = Annotated[Principal, Depends(require(*ALL_ROLES, scope=TokenScope.annotate))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)]
SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorRead, "description": "the Idempotency-Key header is missing"},
    409: {
        "model": ErrorRead,
        "description": "lease_expired (given to someone else), overlap_reached, already_submitted, "
        "assignment_skipped or comparison_retired",
    },
    422: {"model": ErrorRead, "description": "invalid labels, or the key was used with another body"},
}


def required_key(idempotency_key: str | None) -> str:
    if not idempotency_key:
        raise DomainError(
            "send an Idempotency-Key header (any unique string per submit)", code="key_required"
        )
    return idempotency_key


@router.post(
    "/projects/{project_id}/assignments/next",
    response_model=TaskRead,
    responses={204: {"description": "no comparison is left for you in this project"}},
    summary="Claim the next comparison (or resume the one you hold) under a lease",
)
def claim(project_id: int, db: DbDep, principal: Annotator) -> Response:
    task = claim_next(session=db, user=principal.caller, project_id=project_id)
    if task is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # Serialised here once; response_model above still documents the shape.
    return JSONResponse(task_read(task).model_dump(mode="json"))


@router.get("/assignments/{assignment_id}", response_model=TaskRead, summary="One of your assignments")
def read_assignment(assignment_id: int, db: DbDep, principal: Annotator) -> TaskRead:
    return task_read(get_assignment(session=db, user=principal.caller, assignment_id=assignment_id))


@router.post(
    "/assignments/{assignment_id}/skip",
    response_model=TaskRead,
    summary="Give the comparison back to the pool; you will not be offered it again",
)
def skip(assignment_id: int, db: DbDep, principal: Annotator) -> TaskRead:
    return task_read(skip_assignment(session=db, user=principal.caller, assignment_id=assignment_id))


@router.post(
    "/assignments/{assignment_id}/submit",
    response_model=AnnotationRead,
    status_code=status.HTTP_201_CREATED,
    responses=SUBMIT_ERRORS,
    summary="Submit your labels; the same Idempotency-Key and body replays the first result",
)
def submit(
    assignment_id: int,
    body: AnnotationSubmit,
    db: DbDep,
    principal: Annotator,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    result = _submit(db, principal, assignment_id, body, idempotency_key)
    return _created(annotation_read(result).model_dump(mode="json"), result)


@router.post(
    "/assignments/{assignment_id}/submit-and-next",
    response_model=SubmitAndNextRead,
    status_code=status.HTTP_201_CREATED,
    responses=SUBMIT_ERRORS,
    summary="Submit your labels and claim the next pair of the same project, in one request",
)
def submit_and_next(
    assignment_id: int,
    body: AnnotationSubmit,
    db: DbDep,
    principal: Annotator,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The same submit as `/submit` (idempotent, fenced by the lease), then the same claim as
    `/projects/{id}/assignments/next`. The submit is committed before the claim runs, so a failed
    claim never loses the answer; an error of the submit itself claims nothing. A replay of the
    same key and body replays the annotation and returns the pair you now hold."""
    result = _submit(db, principal, assignment_id, body, idempotency_key)
    task = claim_next(session=db, user=principal.caller, project_id=result.project_id)
    payload = {
        "annotation": annotation_read(result).model_dump(mode="json"),
        "next": None if task is None else task_read(task).model_dump(mode="json"),
    }
    return _created(payload, result)


def _submit(
    db: Session, principal: Principal, assignment_id: int, body: AnnotationSubmit, key: str | None
) -> SubmittedAnnotation:
    return submit_annotation(
        session=db,
        user=principal.caller,
        assignment_id=assignment_id,
        answer=body.to_domain(),
        idempotency_key=required_key(key),
    )


def _created(payload: dict[str, Any], result: SubmittedAnnotation) -> JSONResponse:
    """201 with the payload; a replay of an earlier submit says so in a header."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(payload, status_code=status.HTTP_201_CREATED, headers=headers)


@router.get("/annotations", response_model=list[AnnotationRead], summary="Your annotations, oldest first")
def read_own_annotations(
    db: DbDep,
    principal: Annotator,
    project_id: int | None = None,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AnnotationRead]:
    if project_id is not None:
        visible_project(db, user=principal.user, project_id=project_id)
    items = list_own_annotations(
        session=db, user=principal.caller, project_id=project_id, after_id=after_id, limit=limit
    )
    return [annotation_read(item) for item in items]


@router.get("/annotations/{annotation_id}", response_model=AnnotationRead, summary="One of your annotations")
def read_own_annotation(annotation_id: int, db: DbDep, principal: Annotator) -> AnnotationRead:
    return annotation_read(get_own_annotation(session=db, user=principal.caller, annotation_id=annotation_id))
