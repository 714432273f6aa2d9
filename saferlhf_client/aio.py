"""Asynchronous client for the annotator's loop (claim, submit, skip), e.g. many simulated
annotators in one process."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from saferlhf_client.client import API, check, parse_submit_and_next
from saferlhf_client.models import Annotation, Answer, Project, Task
from saferlhf_client.rounds import AsyncRoundsMixin


class AsyncClient(AsyncRoundsMixin):
    def __init__(
        self, base_url: str, token: str, *, timeout: float = 30.0, http: httpx.AsyncClient | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self.headers = headers

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return check(await self.http.request(method, API + path, headers=headers, **kwargs))

    async def get_project(self, project_id: int) -> Project:
        return Project.from_json(await self._call("GET", f"/projects/{project_id}"))

    async def claim_next(self, project_id: int) -> Task | None:
        data = await self._call("POST", f"/projects/{project_id}/assignments/next")
        return None if data is None else Task.from_json(data)

    async def submit(
        self, assignment_id: int, answer: Answer, *, idempotency_key: str | None = None, retries: int = 2
    ) -> Annotation:
        data, replayed = await self._submit(assignment_id, answer, "submit", idempotency_key, retries)
        return Annotation.from_json(data, replayed=replayed)

    async def submit_and_next(
        self, assignment_id: int, answer: Answer, *, idempotency_key: str | None = None, retries: int = 2
    ) -> tuple[Annotation, Task | None]:
        """Submit and claim the next pair of the project in one request (see Client.submit_and_next)."""
        data, replayed = await self._submit(
            assignment_id, answer, "submit-and-next", idempotency_key, retries
        )
        return parse_submit_and_next(data, replayed)

    async def _submit(
        self, assignment_id: int, answer: Answer, action: str, idempotency_key: str | None, retries: int
    ) -> tuple[Any, bool]:
        key = idempotency_key or uuid.uuid4().hex
        headers = {**self.headers, "Idempotency-Key": key}
        for attempt in range(retries + 1):
            try:
                response = await self.http.post(
                    f"{API}/assignments/{assignment_id}/{action}", json=answer.to_json(), headers=headers
                )
            except httpx.TransportError:
                if attempt == retries:
                    raise
                continue
            return check(response), response.headers.get("Idempotent-Replayed") == "true"
        raise AssertionError("unreachable")

    async def skip(self, assignment_id: int) -> Task:
        return Task.from_json(await self._call("POST", f"/assignments/{assignment_id}/skip"))

    async def progress(self, project_id: int) -> dict[str, int]:
        result: dict[str, int] = await self._call("GET", f"/projects/{project_id}/progress")
        return result
