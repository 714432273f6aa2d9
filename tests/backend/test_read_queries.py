"""The read queries that routes and pages call instead of querying the session themselves: what
they return, and that the routes built on them answer as before."""

from __future__ import annotations

import ast
import datetime as dt
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.db.models import ImportBatch, ModelArtifact, Prompt, WorkerHeartbeat
from backend.domain.enums import ArtifactKind, ImportKind, ImportStatus, UserRole
from backend.domain.errors import NotFound
from backend.services.artifact_lookup import get_round, get_snapshot
from backend.services.imports.batches import get_import, list_imports
from backend.services.models import list_models_of_job, list_policies
from backend.services.overview import count_rows, list_worker_heartbeats
from backend.services.project_lookup import get_project, get_project_names, list_visible_projects
from backend.services.red_team import count_waiting_red_team
from backend.services.rounds.settings import list_prompt_sources
from backend.services.user_lookup import get_display_names, get_emails, list_active_users
from tests.factories import login, make_user
from tests.factories.annotation import make_project, token_headers
from tests.factories.models import make_job

ROOT = Path(__file__).resolve().parents[2]
EDGE_DIRS = (ROOT / "backend" / "api" / "routes", ROOT / "backend" / "web")
# Session methods that run a query; `get` only counts on a session, since dicts have one too.
QUERY_METHODS = {"execute", "scalar", "scalars", "query"}
SESSION_NAMES = {"db", "session"}
QUERY_BUILDERS = {"select", "insert", "update", "delete", "text", "func"}


def test_get_emails_maps_known_ids_and_leaves_unknown_ones_out(db_session: Session) -> None:
    alice, bob = make_user(db_session), make_user(db_session)
    assert get_emails(session=db_session, user_ids={alice.id, bob.id, 10**9}) == {
        alice.id: alice.email,
        bob.id: bob.email,
    }
    assert get_emails(session=db_session, user_ids=[]) == {}


def test_a_member_sees_only_their_projects_and_an_admin_sees_all(db_session: Session) -> None:
    admin = make_user(db_session, role=UserRole.admin)
    member = make_user(db_session)
    mine = make_project(db_session, admin, members=[member], name="b mine")
    other = make_project(db_session, admin, name="a other")
    assert [p.id for p in list_visible_projects(session=db_session, user=member)] == [mine.id]
    ids = [p.id for p in list_visible_projects(session=db_session, user=admin)]
    assert ids.index(other.id) < ids.index(mine.id)  # ordered by name


def test_unknown_round_and_snapshot_ids_are_not_found(db_session: Session, client: TestClient) -> None:
    for lookup in (
        lambda: get_round(session=db_session, round_id=10**9),
        lambda: get_snapshot(session=db_session, snapshot_id=10**9),
    ):
        try:
            lookup()
        except NotFound as exc:
            assert "not found" in exc.detail
        else:
            raise AssertionError("an unknown id was found")
    admin = make_user(db_session, role=UserRole.admin)
    response = client.get(f"/api/v1/snapshots/{10**9}/models", headers=token_headers(db_session, admin))
    assert response.status_code == 404 and response.json()["detail"] == f"snapshot {10**9} not found"


def test_the_system_overview_counts_rows_and_lists_workers_newest_first(
    db_session: Session, client: TestClient
) -> None:
    admin = make_user(db_session, role=UserRole.admin)
    now = dt.datetime.now(dt.UTC)
    for name, seen in (("old-worker", now - dt.timedelta(minutes=5)), ("new-worker", now)):
        db_session.add(WorkerHeartbeat(worker_id=name, hostname="h", pid=1, queues="gpu", last_seen_at=seen))
    db_session.flush()
    assert count_rows(session=db_session)["Users"] >= 1
    names = [w.worker_id for w in list_worker_heartbeats(session=db_session)]
    assert names.index("new-worker") < names.index("old-worker")

    login(client, admin.email)
    page = client.get("/admin/system")
    assert page.status_code == 200
    assert page.text.index("new-worker") < page.text.index("old-worker")
    assert "<dt>Users</dt>" in page.text and 'aria-current="page"' in page.text


def _query_sites(path: Path, root: Path = ROOT) -> list[str]:
    """Each place in the module that builds or runs a query itself, as 'file:line what'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        what = None
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            names = {alias.name for alias in node.names} & QUERY_BUILDERS
            what = f"from {node.module} import {', '.join(sorted(names))}" if names else None
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "select":
            what = "select("
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
            method = node.func.attr
            if method in QUERY_METHODS or (method == "get" and name in SESSION_NAMES):
                what = f"{name}.{method}("
        if what:
            found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)} {what}")
    return found


def test_no_route_or_page_module_builds_or_runs_a_query_itself() -> None:
    modules = [path for folder in EDGE_DIRS for path in sorted(folder.glob("*.py"))]
    assert len(modules) > 10  # the check looks where the routes are
    sites = [site for path in modules for site in _query_sites(path)]
    assert sites == [], "move these queries into backend/services:\n" + "\n".join(sites)


def test_the_query_check_catches_each_kind_of_query(tmp_path: Path) -> None:
    module = tmp_path / "route.py"
    module.write_text(
        "from sqlalchemy import func, select\n"
        "a = db.get(Project, 1)\n"
        "b = db.scalars(select(Project))\n"
        "c = session.execute(q)\n"
        "d = self.db.scalar(q)\n"
        "e = form.get('name')\n"
    )
    sites = [site.split(" ", 1)[1] for site in _query_sites(module, root=tmp_path)]
    expected = ["from sqlalchemy import func, select", "db.get(", "db.scalars(", "select("]
    assert sorted(sites) == sorted([*expected, "session.execute(", "db.scalar("])


def _batch(session: Session, project_id: int, name: str) -> ImportBatch:
    batch = ImportBatch(
        project_id=project_id,
        kind=ImportKind.prompts,
        status=ImportStatus.committed,
        filename=name,
        file_sha256="0" * 64,
        size_bytes=1,
        total_rows=1,
        accepted_rows=1,
        rejected_rows=0,
        duplicate_rows=0,
    )
    session.add(batch)
    session.flush()
    return batch


def test_imports_are_listed_newest_first_and_an_unknown_one_is_a_404(
    db_session: Session, client: TestClient
) -> None:
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    first, second, third = (_batch(db_session, project.id, f"f{i}.jsonl") for i in range(3))
    db_session.commit()
    newest_first = [third.id, second.id, first.id]
    assert [b.id for b in list_imports(session=db_session, project_id=project.id)] == newest_first
    limited = list_imports(session=db_session, project_id=project.id, limit=2)
    assert [b.id for b in limited] == newest_first[:2]
    assert get_import(session=db_session, import_id=first.id) is first
    with pytest.raises(NotFound, match=f"import {10**9} not found"):
        get_import(session=db_session, import_id=10**9)

    headers = token_headers(db_session, admin)
    listed = client.get(f"/api/v1/projects/{project.id}/imports", headers=headers).json()
    assert [b["id"] for b in listed] == newest_first
    missing = client.get(f"/api/v1/imports/{10**9}", headers=headers)
    assert missing.status_code == 404 and missing.json()["detail"] == f"import {10**9} not found"
    login(client, admin.email)
    assert client.get(f"/admin/imports/{10**9}").status_code == 404
    assert client.get(f"/admin/imports/{first.id}").status_code == 200


def test_project_and_user_lookups_return_only_what_exists(db_session: Session) -> None:
    admin = make_user(db_session, role=UserRole.admin)
    member = make_user(db_session)
    gone = make_user(db_session)
    gone.is_active = False
    one, two = make_project(db_session, admin), make_project(db_session, admin)
    db_session.flush()
    assert get_project(session=db_session, project_id=one.id) is one
    with pytest.raises(NotFound, match=f"project {10**9} not found"):
        get_project(session=db_session, project_id=10**9)
    assert get_project_names(session=db_session, project_ids={one.id, 10**9}) == {one.id: one.name}
    assert get_project_names(session=db_session, project_ids=set()) == {}
    assert {one.id: one.name, two.id: two.name}.items() <= get_project_names(session=db_session).items()
    names = get_display_names(session=db_session, user_ids=[member.id, 10**9])
    assert names == {member.id: member.display_name}
    assert get_display_names(session=db_session, user_ids=[]) == {}
    active = [u.email for u in list_active_users(session=db_session)]
    assert member.email in active and gone.email not in active and active == sorted(active)


def _model(
    session: Session, kind: ArtifactKind, project_id: int | None, job_id: int | None = None
) -> ModelArtifact:
    key = uuid.uuid4().hex
    model = ModelArtifact(
        kind=kind, name=key, project_id=project_id, training_job_id=job_id, sha256="0" * 64, storage_key=key
    )
    session.add(model)
    session.flush()
    return model


def _prompt(session: Session, project_id: int, source: str, **values: object) -> None:
    digest = uuid.uuid4().hex
    session.add(Prompt(project_id=project_id, text=digest, content_hash=digest, source=source, **values))


def test_the_round_launcher_reads_policies_prompt_sets_and_waiting_red_team_prompts(
    db_session: Session,
) -> None:
    admin = make_user(db_session, role=UserRole.admin)
    project, other = make_project(db_session, admin), make_project(db_session, admin)
    shared = _model(db_session, ArtifactKind.policy, None)
    own = _model(db_session, ArtifactKind.policy, project.id)
    _model(db_session, ArtifactKind.policy, other.id)
    _model(db_session, ArtifactKind.reward, project.id)
    policies = [m.id for m in list_policies(session=db_session, project_id=project.id)]
    assert policies[:1] == [own.id] and shared.id in policies and len(policies) == len(set(policies))
    assert all(
        m.kind is ArtifactKind.policy and m.project_id in (None, project.id)
        for m in list_policies(session=db_session, project_id=project.id)
    )

    job = make_job(db_session, project_id=project.id)
    made = [_model(db_session, ArtifactKind.reward, project.id, job.id) for _ in range(2)]
    assert [m.id for m in list_models_of_job(session=db_session, job_id=job.id)] == [m.id for m in made]

    for source, n in (("small", 1), ("big", 3), ("big-heldout", 5), ("tie", 1)):
        for _ in range(n):
            _prompt(db_session, project.id, source)
    _prompt(db_session, project.id, "red-team", is_red_team=True, review_state="accepted")
    _prompt(db_session, project.id, "red-team", is_red_team=True, review_state="accepted")
    _prompt(db_session, project.id, "red-team", is_red_team=True, review_state="pending")
    db_session.flush()
    # held-out and red-team prompts are left out; a tie is broken by name
    expected = [("big", 3), ("small", 1), ("tie", 1)]
    assert list_prompt_sources(session=db_session, project_id=project.id) == expected
    assert count_waiting_red_team(session=db_session, project_id=project.id) == 2
    assert count_waiting_red_team(session=db_session, project_id=other.id) == 0


def test_a_job_page_shows_inputs_that_are_gone_instead_of_failing(
    db_session: Session, client: TestClient
) -> None:
    admin = make_user(db_session, role=UserRole.admin)
    project = make_project(db_session, admin)
    job = make_job(
        db_session, project_id=project.id, inputs={"snapshot_id": 10**9, "base_model_id": 10**9 + 1}
    )
    login(client, admin.email)
    page = client.get(f"/admin/jobs/{job.id}")
    assert page.status_code == 200
    assert f"snapshot {10**9} (gone)" in page.text and f"model {10**9 + 1} (gone)" in page.text
    assert project.name in page.text
