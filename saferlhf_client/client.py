"""Synchronous client of the Safe RLHF platform REST API (/api/v1), authenticated by API token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from saferlhf_client.errors import error_for
from saferlhf_client.jobs import JobsMixin
from saferlhf_client.models import (
    Annotation,
    Answer,
    ImportKind,
    ImportResult,
    Project,
    Role,
    Scope,
    Snapshot,
    Task,
    Token,
    User,
)
from saferlhf_client.registry import RegistryMixin
from saferlhf_client.rounds import RoundsMixin

API = "/api/v1"


def check(response: httpx.Response) -> Any:
    """The JSON body of a successful response; an ApiError subclass otherwise."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:500], "code": "error"}
        raise error_for(response.status_code, body if isinstance(body, dict) else {"detail": str(body)})
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def parse_submit_and_next(data: Any, replayed: bool) -> tuple[Annotation, Task | None]:
    following = data["next"]
    annotation = Annotation.from_json(data["annotation"], replayed=replayed)
    return annotation, None if following is None else Task.from_json(following)


class Client(RegistryMixin, JobsMixin, RoundsMixin):
    """client = Client("http://127.0.0.1:8000", token="srlhf_...")
    task = client.claim_next(project_id)
    client.submit(task.assignment_id, Answer(SAFE, unsafe("violence"), "left", "left"))
    """

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 30.0, http: httpx.Client | None = None
    ) -> None:
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return check(self.http.request(method, API + path, headers=headers, **kwargs))

    # -- account --------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/me")
        return result

    def create_token(
        self,
        name: str,
        scopes: list[Scope],
        *,
        user_id: int | None = None,
        expires_in_days: int | None = None,
    ) -> Token:
        """A token for yourself, or (admins) for another user. `Token.secret` is shown only now."""
        path = f"/users/{user_id}/tokens" if user_id is not None else "/tokens"
        body = {"name": name, "scopes": scopes, "expires_in_days": expires_in_days}
        return Token.from_json(self._call("POST", path, json=body))

    def revoke_token(self, token_id: int) -> None:
        self._call("DELETE", f"/tokens/{token_id}")

    def create_user(
        self,
        email: str,
        role: Role = "annotator",
        *,
        password: str | None = None,
        display_name: str | None = None,
    ) -> User:
        body = {"email": email, "role": role, "password": password, "display_name": display_name}
        return User.from_json(self._call("POST", "/users", json=body))

    def list_users(self, role: Role | None = None) -> list[User]:
        params = {"role": role} if role else {}
        return [User.from_json(u) for u in self._call("GET", "/users", params=params)]

    # -- projects ---------------------------------------------------------------------------
    def list_projects(self) -> list[Project]:
        return [Project.from_json(p) for p in self._call("GET", "/projects")]

    def get_project(self, project_id: int) -> Project:
        return Project.from_json(self._call("GET", f"/projects/{project_id}"))

    def create_project(self, name: str, **settings: Any) -> Project:
        return Project.from_json(self._call("POST", "/projects", json={"name": name, **settings}))

    def update_project(self, project_id: int, **changes: Any) -> Project:
        return Project.from_json(self._call("PATCH", f"/projects/{project_id}", json=changes))

    def add_member(self, project_id: int, user_id: int) -> None:
        self._call("PUT", f"/projects/{project_id}/members/{user_id}")

    def progress(self, project_id: int) -> dict[str, int]:
        result: dict[str, int] = self._call("GET", f"/projects/{project_id}/progress")
        return result

    # -- annotating -------------------------------------------------------------------------
    def claim_next(self, project_id: int) -> Task | None:
        """The pair you hold in this project, or a new lease; None when nothing is left for you."""
        data = self._call("POST", f"/projects/{project_id}/assignments/next")
        return None if data is None else Task.from_json(data)

    def submit(
        self, assignment_id: int, answer: Answer, *, idempotency_key: str | None = None, retries: int = 2
    ) -> Annotation:
        """Submit an answer. Network failures are retried with the same Idempotency-Key, so a
        retry can never store the answer twice (the server replays the first result)."""
        data, replayed = self._submit(assignment_id, answer, "submit", idempotency_key, retries)
        return Annotation.from_json(data, replayed=replayed)

    def submit_and_next(
        self, assignment_id: int, answer: Answer, *, idempotency_key: str | None = None, retries: int = 2
    ) -> tuple[Annotation, Task | None]:
        """Submit an answer and claim the next pair of the project in one request (retried like
        `submit`). Returns the stored annotation and the next task, None when none is left."""
        data, replayed = self._submit(assignment_id, answer, "submit-and-next", idempotency_key, retries)
        return parse_submit_and_next(data, replayed)

    def _submit(
        self, assignment_id: int, answer: Answer, action: str, idempotency_key: str | None, retries: int
    ) -> tuple[Any, bool]:
        key = idempotency_key or uuid.uuid4().hex
        for attempt in range(retries + 1):
            try:
                response = self.http.post(
                    f"{API}/assignments/{assignment_id}/{action}",
                    json=answer.to_json(),
                    headers={**self.headers, "Idempotency-Key": key},
                )
            except httpx.TransportError:
                if attempt == retries:
                    raise
                continue
            return check(response), response.headers.get("Idempotent-Replayed") == "true"
        raise AssertionError("unreachable")

    def skip(self, assignment_id: int) -> Task:
        return Task.from_json(self._call("POST", f"/assignments/{assignment_id}/skip"))

    def my_annotations(self, project_id: int | None = None) -> Iterator[Annotation]:
        after = 0
        while True:
            params: dict[str, Any] = {"after_id": after, "limit": 500}
            if project_id is not None:
                params["project_id"] = project_id
            page = self._call("GET", "/annotations", params=params)
            yield from (Annotation.from_json(a) for a in page)
            if len(page) < 500:
                return
            after = page[-1]["id"]

    # -- data -------------------------------------------------------------------------------
    def import_file(
        self,
        project_id: int,
        file: str | Path | bytes,
        kind: ImportKind,
        *,
        filename: str | None = None,
        **options: Any,
    ) -> ImportResult:
        """Upload a data file. A rejected file raises InvalidInput whose `body["import"]` holds
        the report (row numbers and reasons); nothing was imported then."""
        content = Path(file).read_bytes() if isinstance(file, str | Path) else file
        name = filename or (Path(file).name if isinstance(file, str | Path) else "upload.jsonl")
        form = {"kind": kind, **{k: str(v) for k, v in options.items() if v is not None}}
        data = self._call(
            "POST", f"/projects/{project_id}/imports", files={"file": (name, content)}, data=form
        )
        return ImportResult.from_json(data)

    def create_snapshot(
        self, project_id: int, *, round_id: int | None = None, complete_only: bool = False
    ) -> Snapshot:
        """complete_only: only pairs that got every annotation asked for (k of k)."""
        body = {"round_id": round_id, "complete_only": complete_only}
        response = self.http.post(f"{API}/projects/{project_id}/snapshots", json=body, headers=self.headers)
        return Snapshot.from_json(check(response), created=response.status_code == 201)

    def download_snapshot_file(self, snapshot_id: int, name: str, destination: str | Path) -> Path:
        target = Path(destination)
        url = f"{API}/snapshots/{snapshot_id}/files/{name}"
        with self.http.stream("GET", url, headers=self.headers) as response:
            if response.status_code >= 400:
                response.read()
                check(response)
            with open(target, "wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return target

    # -- quality and review -----------------------------------------------------------------
    def quality(self, project_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/projects/{project_id}/quality")
        return result

    def labels(self, project_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._call(
                "GET", f"/projects/{project_id}/labels", params={"offset": len(items), "limit": 1000}
            )
            items += page["items"]
            if len(items) >= page["total"] or not page["items"]:
                return items

    def votes(self, project_id: int) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            page = self._call(
                "GET", f"/projects/{project_id}/votes", params={"after_id": after, "limit": 5000}
            )
            yield from page["items"]
            if page["next_after_id"] is None:
                return
            after = page["next_after_id"]

    def update_comparison(self, comparison_id: int, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH", f"/comparisons/{comparison_id}", json=changes)
        return result

    def set_priorities(self, project_id: int, priorities: Mapping[int, float]) -> int:
        items = [{"id": cid, "priority": p} for cid, p in priorities.items()]
        return int(
            self._call("POST", f"/projects/{project_id}/comparisons/priorities", json={"items": items})[
                "updated"
            ]
        )
