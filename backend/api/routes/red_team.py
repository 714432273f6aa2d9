"""Red-team prompts over REST: members write them, reviewers and admins accept or reject them.

Annotators see only their own prompts; reviewers and admins see every red-team prompt of the
projects they may see (`mine=true` narrows to their own). A prompt of a project the caller may
not see is 'not found', like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from backend.api.schemas.common import ERROR_RESPONSES, ErrorRead
from backend.api.schemas.red_team import (
    RedTeamCountsRead,
    RedTeamList,
    RedTeamPromptRead,
    RedTeamReview,
    RedTeamSubmit,
)
from backend.domain.enums import TokenScope, UserRole
from backend.domain.errors import NotFound
from backend.edge.deps import ALL_ROLES, DbDep, Principal, require
from backend.services.access import can_see_project, visible_project
from backend.services.red_team import (
    get_red_team_prompt,
    list_red_team_prompts,
    red_team_counts,
    review_red_team_prompt,
    submit_red_team_prompt,
)

router = APIRouter(tags=["red team"], responses=ERROR_RESPONSES)
Member = Annotated[Principal, Depends(require(*ALL_ROLES, scope=TokenScope.annotate))]
Reviewer = Annotated[
    Principal, Depends(require(UserRole.reviewer, UserRole.admin, scope=TokenScope.annotate))
]


@router.post(
    "/projects/{project_id}/red-team-prompts",
    response_model=RedTeamPromptRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {
            "model": ErrorRead,
            "description": "the same prompt (normalised text) is already in the project",
        },
        422: {"model": ErrorRead, "description": "empty or too long, or not a harm category of the project"},
    },
    summary="Propose an adversarial prompt aimed at a harm category (pending review)",
)
def post_red_team_prompt(
    project_id: int, body: RedTeamSubmit, db: DbDep, principal: Member
) -> RedTeamPromptRead:
    project = visible_project(db, user=principal.user, project_id=project_id)
    prompt = submit_red_team_prompt(
        session=db,
        caller=principal.caller,
        project=project,
        text=body.prompt,
        harm_category=body.harm_category,
    )
    return RedTeamPromptRead.model_validate(prompt)


@router.get(
    "/projects/{project_id}/red-team-prompts",
    response_model=RedTeamList,
    summary="Red-team prompts with counts per review state and of those used in a round",
)
def get_red_team_prompts(
    project_id: int,
    db: DbDep,
    principal: Member,
    review_state: Annotated[str | None, Query(description="pending, accepted or rejected")] = None,
    mine: Annotated[bool, Query(description="only your own (always so for annotators)")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RedTeamList:
    visible_project(db, user=principal.user, project_id=project_id)
    author = principal.user_id if mine or principal.role is UserRole.annotator else None
    prompts = list_red_team_prompts(
        session=db,
        project_id=project_id,
        author_id=author,
        review_state=review_state,
        limit=limit,
        offset=offset,
    )
    counts = red_team_counts(session=db, project_id=project_id, author_id=author)
    return RedTeamList(
        prompts=[RedTeamPromptRead.model_validate(p) for p in prompts],
        counts=RedTeamCountsRead.model_validate(counts),
    )


@router.post(
    "/red-team-prompts/{prompt_id}/review",
    response_model=RedTeamPromptRead,
    responses={409: {"model": ErrorRead, "description": "a round already took the prompt"}},
    summary="Accept (it enters the next launched round) or reject a red-team prompt",
)
def post_review(prompt_id: int, body: RedTeamReview, db: DbDep, principal: Reviewer) -> RedTeamPromptRead:
    prompt = get_red_team_prompt(session=db, prompt_id=prompt_id)
    if not can_see_project(db, user=principal.user, project_id=prompt.project_id):
        raise NotFound(f"red-team prompt {prompt_id} not found")
    reviewed = review_red_team_prompt(
        session=db, caller=principal.caller, prompt_id=prompt_id, decision=body.decision
    )
    return RedTeamPromptRead.model_validate(reviewed)
