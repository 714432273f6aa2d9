"""Default-deny authorization (docs/design/reliability.md C5, C6).

1. Every route of the app is in MATRIX, and declares exactly that policy: a new route without an
   entry fails this test.
2. Each role is refused exactly where the matrix says (live requests, with a logged-in session).
3. IDOR probes: through every route that takes an object id, another annotator's (or another
   project's) objects are 'not found'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.models import ApiToken, ImportBatch, ModelArtifact, Round, TrainingJob
from backend.domain.enums import UserRole
from backend.services.assignments import claim_next
from backend.services.red_team import submit_red_team_prompt
from backend.services.snapshots import create_snapshot
from backend.services.submissions import submit_annotation
from tests.factories import login, make_user
from tests.factories.annotation import (
    answer,
    answer_json,
    csrf_of,
    make_comparisons,
    make_project,
    token_headers,
)

A, R, N = "admin", "reviewer", "annotator"
PUBLIC = "public"
ANYONE = frozenset({A, R, N})
STAFF = frozenset({A, R})
ADMIN = frozenset({A})

MATRIX: dict[tuple[str, str], str | frozenset[str]] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("MOUNT", "/static/api-docs/{path}"): PUBLIC,
    ("MOUNT", "/static/{path}"): PUBLIC,
    ("POST", "/logout"): ANYONE,
    ("GET", "/account/tokens"): ANYONE,
    ("POST", "/account/tokens"): ANYONE,
    ("POST", "/account/tokens/{token_id}/revoke"): ANYONE,
    ("GET", "/annotate"): ANYONE,
    ("GET", "/annotate/{project_id}"): ANYONE,
    ("POST", "/annotate/{project_id}/next"): ANYONE,
    ("POST", "/annotate/{project_id}/skip"): ANYONE,
    ("POST", "/annotate/{project_id}/submit"): ANYONE,
    ("GET", "/review"): STAFF,
    ("GET", "/review/projects/{project_id}"): STAFF,
    ("GET", "/review/comparisons/{comparison_id}"): STAFF,
    ("POST", "/review/comparisons/{comparison_id}/adjudicate"): STAFF,
    ("POST", "/review/comparisons/{comparison_id}/settings"): ADMIN,
    ("GET", "/admin"): ADMIN,
    ("GET", "/admin/system"): ADMIN,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("POST", "/admin/users/{user_id}"): ADMIN,
    ("POST", "/admin/projects"): ADMIN,
    ("GET", "/admin/projects/{project_id}"): ADMIN,
    ("POST", "/admin/projects/{project_id}/settings"): ADMIN,
    ("POST", "/admin/projects/{project_id}/members"): ADMIN,
    ("POST", "/admin/projects/{project_id}/members/{user_id}/remove"): ADMIN,
    ("POST", "/admin/projects/{project_id}/imports"): ADMIN,
    ("POST", "/admin/projects/{project_id}/snapshots"): ADMIN,
    ("GET", "/admin/projects/{project_id}/quality"): STAFF,  # reviewers read quality figures
    ("GET", "/admin/imports/{import_id}"): ADMIN,
    ("GET", "/api/v1/me"): ANYONE,
    ("GET", "/api/v1/tokens"): ANYONE,
    ("POST", "/api/v1/tokens"): ANYONE,
    ("DELETE", "/api/v1/tokens/{token_id}"): ANYONE,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{user_id}"): ADMIN,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    ("GET", "/api/v1/users/{user_id}/tokens"): ADMIN,
    ("POST", "/api/v1/users/{user_id}/tokens"): ADMIN,
    ("GET", "/api/v1/projects"): ANYONE,
    ("POST", "/api/v1/projects"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}"): ANYONE,
    ("PATCH", "/api/v1/projects/{project_id}"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/members"): ADMIN,
    ("PUT", "/api/v1/projects/{project_id}/members/{user_id}"): ADMIN,
    ("DELETE", "/api/v1/projects/{project_id}/members/{user_id}"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/progress"): ANYONE,
    ("POST", "/api/v1/projects/{project_id}/assignments/next"): ANYONE,
    ("GET", "/api/v1/assignments/{assignment_id}"): ANYONE,
    ("POST", "/api/v1/assignments/{assignment_id}/skip"): ANYONE,
    ("POST", "/api/v1/assignments/{assignment_id}/submit"): ANYONE,
    ("POST", "/api/v1/assignments/{assignment_id}/submit-and-next"): ANYONE,
    ("GET", "/api/v1/annotations"): ANYONE,
    ("GET", "/api/v1/annotations/{annotation_id}"): ANYONE,
    ("GET", "/api/v1/projects/{project_id}/comparisons"): STAFF,
    ("POST", "/api/v1/projects/{project_id}/comparisons/priorities"): ADMIN,
    ("GET", "/api/v1/comparisons/{comparison_id}"): STAFF,
    ("PATCH", "/api/v1/comparisons/{comparison_id}"): ADMIN,
    ("PUT", "/api/v1/comparisons/{comparison_id}/gold"): ADMIN,
    ("DELETE", "/api/v1/comparisons/{comparison_id}/gold"): ADMIN,
    ("POST", "/api/v1/comparisons/{comparison_id}/adjudications"): STAFF,
    ("GET", "/api/v1/projects/{project_id}/review-queue"): STAFF,
    ("GET", "/api/v1/projects/{project_id}/quality"): STAFF,
    ("GET", "/api/v1/projects/{project_id}/labels"): STAFF,
    ("GET", "/api/v1/projects/{project_id}/votes"): STAFF,
    ("POST", "/api/v1/projects/{project_id}/imports"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/imports"): ADMIN,
    ("GET", "/api/v1/imports/{import_id}"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/snapshots"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/snapshots"): STAFF,
    ("GET", "/api/v1/snapshots/{snapshot_id}"): STAFF,
    ("GET", "/api/v1/snapshots/{snapshot_id}/files/{name}"): STAFF,
    # Model registry, job metrics and their pages: admins only (issue 10, items 4 and 5).
    ("GET", "/vendor/plotly.min.js"): PUBLIC,
    ("GET", "/admin/jobs"): ADMIN,
    ("GET", "/admin/jobs/{job_id}"): ADMIN,
    ("POST", "/admin/jobs/{job_id}/cancel"): ADMIN,
    ("POST", "/admin/jobs/{job_id}/retry"): ADMIN,
    ("GET", "/admin/models"): ADMIN,
    ("GET", "/admin/models/{model_id}"): ADMIN,
    ("GET", "/api/v1/models"): ADMIN,
    ("POST", "/api/v1/models"): ADMIN,
    ("GET", "/api/v1/models/{model_id}"): ADMIN,
    ("GET", "/api/v1/models/{model_id}/files"): ADMIN,
    ("GET", "/api/v1/models/{model_id}/archive"): ADMIN,
    ("GET", "/api/v1/snapshots/{snapshot_id}/models"): ADMIN,
    ("GET", "/api/v1/jobs/{job_id}/metrics"): ADMIN,
    ("POST", "/api/v1/jobs"): ADMIN,
    ("GET", "/api/v1/jobs"): ADMIN,
    ("GET", "/api/v1/jobs/{job_id}"): ADMIN,
    ("POST", "/api/v1/jobs/{job_id}/cancel"): ADMIN,
    ("POST", "/api/v1/jobs/{job_id}/retry"): ADMIN,
    ("GET", "/api/v1/jobs/{job_id}/log"): ADMIN,
    # Red-team intake (issue 11): members write prompts, reviewers and admins review them.
    ("GET", "/red-team"): ANYONE,
    ("POST", "/red-team/{project_id}"): ANYONE,
    ("GET", "/review/red-team"): STAFF,
    ("POST", "/review/red-team/{prompt_id}"): STAFF,
    ("POST", "/api/v1/projects/{project_id}/red-team-prompts"): ANYONE,
    ("GET", "/api/v1/projects/{project_id}/red-team-prompts"): ANYONE,
    ("POST", "/api/v1/red-team-prompts/{prompt_id}/review"): STAFF,
    # Rounds over REST (issue 11): admins only.
    ("GET", "/api/v1/projects/{project_id}/rounds/presets"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/rounds"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/rounds"): ADMIN,
    ("GET", "/api/v1/rounds/{round_id}"): ADMIN,
    ("POST", "/api/v1/rounds/{round_id}/launch"): ADMIN,
    ("POST", "/api/v1/rounds/{round_id}/cancel"): ADMIN,
    ("POST", "/api/v1/rounds/{round_id}/retry"): ADMIN,
    ("POST", "/api/v1/rounds/{round_id}/close-collection"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/rounds/report"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/rounds/report.csv"): ADMIN,
    # Round pages (issue 11): admins only.
    ("GET", "/admin/rounds"): ADMIN,
    ("GET", "/admin/projects/{project_id}/rounds"): ADMIN,
    ("GET", "/admin/projects/{project_id}/rounds/new"): ADMIN,
    ("POST", "/admin/projects/{project_id}/rounds"): ADMIN,
    ("GET", "/admin/projects/{project_id}/rounds/report"): ADMIN,
    ("GET", "/admin/rounds/{round_id}"): ADMIN,
    ("POST", "/admin/rounds/{round_id}/launch"): ADMIN,
    ("POST", "/admin/rounds/{round_id}/cancel"): ADMIN,
    ("POST", "/admin/rounds/{round_id}/retry"): ADMIN,
    ("POST", "/admin/rounds/{round_id}/close-collection"): ADMIN,
}
BUILTIN = {"/openapi.json"}  # FastAPI's own, read-only
# Valid bodies, so that probes reach the object lookup instead of stopping at validation.
BODIES = {
    ("POST", "/api/v1/assignments/{assignment_id}/submit"): answer_json(),
    ("POST", "/api/v1/assignments/{assignment_id}/submit-and-next"): answer_json(),
    ("POST", "/api/v1/comparisons/{comparison_id}/adjudications"): {
        "helpfulness": "a",
        "harmlessness": "a",
        "a": {"is_safe": True},
        "b": {"is_safe": True},
    },
    ("PATCH", "/api/v1/comparisons/{comparison_id}"): {"priority": 1},
    ("PUT", "/api/v1/comparisons/{comparison_id}/gold"): {"helpfulness": "a"},
    ("POST", "/api/v1/projects/{project_id}/red-team-prompts"): {
        "prompt": "Another red-team probe prompt.",
        "harm_category": "violence",
    },
    ("POST", "/api/v1/red-team-prompts/{prompt_id}/review"): {"decision": "accept"},
}


def app_routes(app) -> list[tuple[str, str, object]]:  # type: ignore[no-untyped-def]
    routes = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path_format or ctx.path
        methods = sorted(m for m in (ctx.methods or []) if m != "HEAD") or ["MOUNT"]
        routes += [(m, path, ctx) for m in methods]
    return routes


def declared_policy(ctx) -> object | None:  # type: ignore[no-untyped-def]
    try:
        dependant = ctx.dependant
    except AttributeError:
        return None
    stack, found = [dependant], []
    while stack:
        node = stack.pop()
        if node.call is not None and hasattr(node.call, "policy"):
            found.append(node.call.policy)
        stack += node.dependencies
    assert len(found) <= 1, f"{ctx.path} declares {len(found)} policies"
    return found[0] if found else None


def test_every_route_is_in_the_matrix_and_declares_that_policy(app) -> None:  # type: ignore[no-untyped-def]
    routes = app_routes(app)
    missing = [(m, p) for m, p, _ in routes if (m, p) not in MATRIX]
    assert not missing, f"routes missing from the RBAC matrix (default deny): {missing}"
    stale = set(MATRIX) - {(m, p) for m, p, _ in routes}
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"
    for method, path, ctx in routes:
        expected = MATRIX[(method, path)]
        if method == "MOUNT" or path in BUILTIN:
            continue
        policy = declared_policy(ctx)
        assert policy is not None, f"{method} {path} declares no require()/public() policy"
        if expected == PUBLIC:
            assert policy.public, f"{method} {path} should be public"  # type: ignore[attr-defined]
        else:
            roles = {r.value for r in policy.roles}  # type: ignore[attr-defined]
            assert not policy.public and roles == expected, f"{method} {path}: {roles} != {expected}"  # type: ignore[attr-defined]


@dataclass
class World:
    ids: dict[str, object]
    clients: dict[str, TestClient]
    csrf: dict[str, str]


def fill(path: str, ids: dict[str, object]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


@pytest.fixture
def world(app, db_session, settings) -> World:  # type: ignore[no-untyped-def]
    admin = make_user(db_session, role=UserRole.admin)
    reviewer = make_user(db_session, role=UserRole.reviewer)
    alice, bob, victim = make_user(db_session), make_user(db_session), make_user(db_session)
    project = make_project(db_session, admin, members=[alice, reviewer], gold_rate=0.0)
    other = make_project(db_session, admin, members=[bob], gold_rate=0.0)
    comparisons = make_comparisons(db_session, project, 3, overlap=3)
    other_comparison = make_comparisons(db_session, other, 1)[0]
    done = claim_next(session=db_session, user=alice, project_id=project.id)
    note = submit_annotation(
        session=db_session, user=alice, assignment_id=done.assignment_id, answer=answer(), idempotency_key="x"
    )
    held = claim_next(session=db_session, user=alice, project_id=project.id)
    token_headers(db_session, alice)
    alice_token = db_session.scalar(select(ApiToken.id).where(ApiToken.user_id == alice.id))
    counts = {"size_bytes": 1, "total_rows": 1, "accepted_rows": 1, "rejected_rows": 0, "duplicate_rows": 0}
    batch = ImportBatch(
        project_id=project.id,
        kind="prompts",
        status="committed",
        filename="f",
        file_sha256="0" * 64,
        **counts,
    )
    db_session.add(batch)
    db_session.commit()
    snapshot = create_snapshot(
        session=db_session, actor=admin, project=project, artifacts_dir=settings.artifacts_dir
    )
    job = TrainingJob(kind="reward", project_id=project.id)
    model = ModelArtifact(
        kind="reward", name="probe", project_id=project.id, sha256="0" * 64, storage_key="models/probe"
    )
    red_team = submit_red_team_prompt(
        session=db_session,
        caller=alice,
        project=project,
        text="A red-team probe prompt.",
        harm_category="violence",
    )
    round_ = Round(project_id=project.id, number=1)
    db_session.add_all([job, model, round_])
    db_session.commit()
    ids = {
        "round_id": round_.id,
        "prompt_id": red_team.id,
        "job_id": job.id,
        "model_id": model.id,
        "project_id": project.id,
        "comparison_id": comparisons[0].id,
        "assignment_id": held.assignment_id,
        "annotation_id": note.id,
        "token_id": alice_token,
        "user_id": victim.id,
        "import_id": batch.id,
        "snapshot_id": snapshot.snapshot.id,
        "name": "manifest.json",
        "path": "css/app.css",
        "other_project_id": other.id,
        "other_comparison_id": other_comparison.id,
    }
    clients, csrf = {}, {}
    for role, user in (("admin", admin), ("reviewer", reviewer), ("annotator", bob), ("alice", alice)):
        client = TestClient(app, follow_redirects=False)
        login(client, user.email)
        clients[role], csrf[role] = client, csrf_of(db_session, user)
    clients["anonymous"] = TestClient(app, follow_redirects=False)
    return World(ids, clients, csrf)


def send(world: World, who: str, method: str, path: str):  # type: ignore[no-untyped-def]
    headers = {"Accept": "text/html", "X-CSRF-Token": world.csrf.get(who, ""), "Idempotency-Key": "probe"}
    body = BODIES.get((method, path))
    return world.clients[who].request(method, fill(path, world.ids), headers=headers, json=body)


def test_each_role_is_denied_exactly_where_the_matrix_says(app, world: World) -> None:  # type: ignore[no-untyped-def]
    problems = []
    for method, path, _ in app_routes(app):
        expected = MATRIX[(method, path)]
        if method == "MOUNT" or path in BUILTIN or (method, path) == ("POST", "/logout"):
            continue  # static files and docs are public; logging out would end the probe's session
        for who in ("anonymous", A, R, N):
            status = send(world, who, method, path).status_code
            allowed = expected == PUBLIC or who in expected  # type: ignore[operator]
            denied = status in (401, 403) or (status == 303 and who == "anonymous" and expected != PUBLIC)
            if allowed == denied:
                problems.append(f"{who} {method} {path}: {status}")
    assert not problems, "\n".join(problems)


def test_another_annotators_objects_are_not_found_through_every_route_shape(app, world: World) -> None:  # type: ignore[no-untyped-def]
    """Bob is an annotator outside Alice's project; every id of Alice's is 'not found' to him."""
    problems = []
    for method, path, _ in app_routes(app):
        expected = MATRIX[(method, path)]
        if expected == PUBLIC or N not in expected or "{" not in path:  # type: ignore[operator]
            continue
        status = send(world, N, method, path).status_code
        if status not in (404, 403):
            problems.append(f"{method} {path}: {status}")
    # Ids sent in form bodies are scoped the same way.
    form = {"assignment_id": str(world.ids["assignment_id"]), "csrf_token": world.csrf[N]}
    bob_project = world.ids["other_project_id"]
    for action in ("skip", "submit"):
        status = world.clients[N].post(f"/annotate/{bob_project}/{action}", data=form).status_code
        if status not in (404, 422):
            problems.append(f"form {action} with Alice's assignment: {status}")
    assert not problems, "\n".join(problems)


def test_reviewers_outside_a_project_cannot_reach_its_data(app, db_session, world: World) -> None:  # type: ignore[no-untyped-def]
    outsider = make_user(db_session, role=UserRole.reviewer)
    client = TestClient(app, follow_redirects=False)
    login(client, outsider.email)
    world.clients[R], world.csrf[R] = client, csrf_of(db_session, outsider)
    problems = []
    for method, path, _ in app_routes(app):
        expected = MATRIX[(method, path)]
        if expected == PUBLIC or R not in expected or "{" not in path:  # type: ignore[operator]
            continue
        status = send(world, R, method, path).status_code
        if status not in (404, 403):
            problems.append(f"{method} {path}: {status}")
    assert not problems, "\n".join(problems)


def test_the_owner_can_reach_what_others_cannot(world: World) -> None:
    alice = world.clients["alice"]
    assert alice.get(f"/api/v1/assignments/{world.ids['assignment_id']}").status_code == 200
    assert alice.get(f"/api/v1/annotations/{world.ids['annotation_id']}").status_code == 200
    assert alice.get(f"/api/v1/projects/{world.ids['project_id']}").status_code == 200
