"""API tokens (own, or any user's for admins) and user management (admins)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from backend.api.schemas.accounts import (
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserCreated,
    UserRead,
    UserUpdate,
)
from backend.api.schemas.common import ERROR_RESPONSES
from backend.domain.enums import TokenScope, UserRole
from backend.edge.deps import ALL_ROLES, ROLE_SCOPES, DbDep, Principal, require
from backend.services.accounts import UserChanges, list_users, update_user
from backend.services.tokens import NewToken, create_token, list_tokens, revoke_token
from backend.services.users import create_user, get_user

router = APIRouter(responses=ERROR_RESPONSES)
Anyone = Annotated[Principal, Depends(require(*ALL_ROLES))]
Admin = Annotated[Principal, Depends(require(UserRole.admin, scope=TokenScope.admin))]


def _created(new: NewToken) -> TokenCreated:
    return TokenCreated(**TokenRead.model_validate(new.record).model_dump(), token=new.secret)


@router.get("/tokens", response_model=list[TokenRead], tags=["account"], summary="List your API tokens")
def read_own_tokens(db: DbDep, principal: Anyone) -> list[TokenRead]:
    return [TokenRead.model_validate(t) for t in list_tokens(session=db, owner=principal.user)]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["account"],
    summary="Create an API token for yourself (the secret is shown once)",
)
def create_own_token(body: TokenCreate, db: DbDep, principal: Anyone) -> TokenCreated:
    new = create_token(
        session=db,
        actor=principal.user,
        owner=principal.user,
        name=body.name,
        scopes=body.scopes,
        allowed=ROLE_SCOPES[principal.role],
        expires_in_days=body.expires_in_days,
    )
    return _created(new)


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["account"],
    summary="Revoke a token (yours; admins: anyone's). It stops working on the next request.",
)
def delete_token(token_id: int, db: DbDep, principal: Anyone) -> Response:
    revoke_token(session=db, actor=principal.user, token_id=token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[UserRead], tags=["users"], summary="List users")
def read_users(db: DbDep, principal: Admin, role: UserRole | None = None) -> list[UserRead]:
    return [UserRead.model_validate(u) for u in list_users(session=db, role=role)]


@router.post(
    "/users",
    response_model=UserCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["users"],
    summary="Create a user",
)
def create_user_route(body: UserCreate, db: DbDep, principal: Admin) -> UserCreated:
    # A sync route runs in the threadpool: argon2 is slow on purpose and stays off the event loop.
    password = body.password or secrets.token_urlsafe(12)
    user = create_user(
        session=db,
        email=body.email,
        password=password,
        role=body.role,
        display_name=body.display_name,
        actor_id=principal.user.id,
    )
    read = UserRead.model_validate(user).model_dump()
    return UserCreated(**read, generated_password=None if body.password else password)


@router.get("/users/{user_id}", response_model=UserRead, tags=["users"], summary="Read a user")
def read_user(user_id: int, db: DbDep, principal: Admin) -> UserRead:
    return UserRead.model_validate(get_user(session=db, user_id=user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    tags=["users"],
    summary="Change a user's name, role, active flag or password",
)
def patch_user(user_id: int, body: UserUpdate, db: DbDep, principal: Admin) -> UserRead:
    changes = UserChanges(**body.model_dump(exclude_unset=True))
    user = update_user(session=db, actor=principal.user, user_id=user_id, changes=changes)
    return UserRead.model_validate(user)


@router.get(
    "/users/{user_id}/tokens",
    response_model=list[TokenRead],
    tags=["users"],
    summary="List a user's API tokens",
)
def read_user_tokens(user_id: int, db: DbDep, principal: Admin) -> list[TokenRead]:
    owner = get_user(session=db, user_id=user_id)
    return [TokenRead.model_validate(t) for t in list_tokens(session=db, owner=owner)]


@router.post(
    "/users/{user_id}/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["users"],
    summary="Create an API token for a user (e.g. a simulated annotator); shown once",
)
def create_user_token(user_id: int, body: TokenCreate, db: DbDep, principal: Admin) -> TokenCreated:
    owner = get_user(session=db, user_id=user_id)
    new = create_token(
        session=db,
        actor=principal.user,
        owner=owner,
        name=body.name,
        scopes=body.scopes,
        allowed=ROLE_SCOPES[owner.role],
        expires_in_days=body.expires_in_days,
    )
    return _created(new)
