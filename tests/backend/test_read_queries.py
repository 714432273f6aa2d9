"""The read queries that routes and pages call instead of querying the session themselves: what
they return, and that the routes built on them answer as before."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.db.models import WorkerHeartbeat
from backend.domain.enums import UserRole
from backend.domain.errors import NotFound
from backend.services.artifact_lookup import get_round, get_snapshot
from backend.services.overview import count_rows, list_worker_heartbeats
from backend.services.project_lookup import list_visible_projects
from backend.services.user_lookup import get_emails
from tests.factories import login, make_user
from tests.factories.annotation import make_project, token_headers


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
