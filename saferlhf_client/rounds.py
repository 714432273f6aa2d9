"""Rounds and red-team prompts, as methods of Client and AsyncClient (mixed in).

A round is one turn of the Safe RLHF loop (generate -> collect -> reward and cost models ->
policy -> evaluate); its settings are pre-filled from the project's per-round presets. Admins
drive rounds; annotators and admins write red-team prompts, which admins review.

    presets = api.round_presets(project_id)
    created = api.create_round(project_id, presets | {"collection_target_pairs": 200})
    final = api.wait_for_round(created["id"], timeout=3600)
    table = api.round_report(project_id)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import httpx

from saferlhf_client.errors import error_for

API = "/api/v1"
# A round in one of these states moves no further without an admin.
ROUND_FINAL_STATES = frozenset({"completed", "failed", "cancelled"})
ReviewDecision = Literal["accept", "reject"]


class _Transport(Protocol):
    http: httpx.Client
    headers: dict[str, str]

    def _call(self, method: str, path: str, **kwargs: Any) -> Any: ...


class _AsyncTransport(Protocol):
    http: httpx.AsyncClient
    headers: dict[str, str]

    def _call(self, method: str, path: str, **kwargs: Any) -> Awaitable[Any]: ...


def _create_body(settings: dict[str, Any] | None, launch: bool) -> dict[str, Any]:
    return {"settings": settings or {}, "launch": launch}


def _red_team_body(prompt: str, harm_category: str) -> dict[str, Any]:
    return {"prompt": prompt, "harm_category": harm_category}


def _text_or_raise(response: httpx.Response) -> str:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:500], "code": "error"}
        raise error_for(response.status_code, body if isinstance(body, dict) else {"detail": str(body)})
    return response.text


def _action(result: Any) -> dict[str, Any]:
    """The round as an action left it."""
    answer: dict[str, Any] = result
    return answer


def _timed_out(round_id: int, state: str, timeout: float) -> TimeoutError:
    return TimeoutError(f"round {round_id} is still {state} after {timeout:g}s")


class RoundsMixin:
    """Rounds and red-team prompts for the synchronous Client."""

    def round_presets(self: _Transport, project_id: int) -> dict[str, Any]:
        """The settings the next round of the project starts from (editable, then create_round)."""
        result: dict[str, Any] = self._call("GET", f"/projects/{project_id}/rounds/presets")
        return result

    def list_rounds(self: _Transport, project_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/projects/{project_id}/rounds")
        return result

    def create_round(
        self: _Transport, project_id: int, settings: dict[str, Any] | None = None, *, launch: bool = True
    ) -> dict[str, Any]:
        """Create a round (launched at once unless launch=False). Invalid settings raise
        InvalidInput whose `body["errors"]` maps each field to its message."""
        body = _create_body(settings, launch)
        result: dict[str, Any] = self._call("POST", f"/projects/{project_id}/rounds", json=body)
        return result

    def get_round(self: _Transport, round_id: int) -> dict[str, Any]:
        """The round: state, stage, settings, its jobs with progress and its models."""
        result: dict[str, Any] = self._call("GET", f"/rounds/{round_id}")
        return result

    def launch_round(self: _Transport, round_id: int) -> dict[str, Any]:
        return _action(self._call("POST", f"/rounds/{round_id}/launch"))

    def cancel_round(self: _Transport, round_id: int) -> dict[str, Any]:
        """Cancel the round and stop its running jobs."""
        return _action(self._call("POST", f"/rounds/{round_id}/cancel"))

    def retry_round(self: _Transport, round_id: int) -> dict[str, Any]:
        """Re-run only the stage that failed; what succeeded is kept."""
        return _action(self._call("POST", f"/rounds/{round_id}/retry"))

    def close_collection(self: _Transport, round_id: int) -> dict[str, Any]:
        """End annotation now and start training on the data collected so far."""
        return _action(self._call("POST", f"/rounds/{round_id}/close-collection"))

    def round_report(self: _Transport, project_id: int) -> list[dict[str, Any]]:
        """One row per round: model accuracies, mean reward/cost, unsafe ratio, λ, arena win
        rates, agreement and (toy world) the judges' true helpfulness and unsafe rate."""
        result: list[dict[str, Any]] = self._call("GET", f"/projects/{project_id}/rounds/report")
        return result

    def round_report_csv(self: _Transport, project_id: int) -> str:
        url = f"{API}/projects/{project_id}/rounds/report.csv"
        return _text_or_raise(self.http.get(url, headers=self.headers))

    def wait_for_round(
        self: _Transport,
        round_id: int,
        *,
        states: frozenset[str] = ROUND_FINAL_STATES,
        timeout: float | None = None,
        poll_s: float = 2.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the round is in one of `states` (by default completed, failed or cancelled).
        TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current: dict[str, Any] = self._call("GET", f"/rounds/{round_id}")
            if on_update is not None:
                on_update(current)
            if current["state"] in states:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise _timed_out(round_id, current["state"], timeout or 0.0)
            time.sleep(poll_s)

    # -- red team ---------------------------------------------------------------------------
    def submit_red_team_prompt(
        self: _Transport, project_id: int, prompt: str, harm_category: str
    ) -> dict[str, Any]:
        """Propose an adversarial prompt aimed at a harm category (a key of the project's
        taxonomy). A prompt already in the project is refused as a duplicate (Conflict)."""
        result: dict[str, Any] = self._call(
            "POST", f"/projects/{project_id}/red-team-prompts", json=_red_team_body(prompt, harm_category)
        )
        return result

    def red_team_prompts(self: _Transport, project_id: int, **filters: Any) -> Any:
        """Your red-team prompts (admins: filter by e.g. review_state='pending') with the counts
        of accepted ones and of those used in a round."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self._call("GET", f"/projects/{project_id}/red-team-prompts", params=params)

    def review_red_team_prompt(self: _Transport, prompt_id: int, decision: ReviewDecision) -> dict[str, Any]:
        """Accept (it enters the next launched round) or reject a red-team prompt."""
        result: dict[str, Any] = self._call(
            "POST", f"/red-team-prompts/{prompt_id}/review", json={"decision": decision}
        )
        return result


class AsyncRoundsMixin:
    """The same methods for AsyncClient (awaitable)."""

    async def round_presets(self: _AsyncTransport, project_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/projects/{project_id}/rounds/presets")
        return result

    async def list_rounds(self: _AsyncTransport, project_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"/projects/{project_id}/rounds")
        return result

    async def create_round(
        self: _AsyncTransport,
        project_id: int,
        settings: dict[str, Any] | None = None,
        *,
        launch: bool = True,
    ) -> dict[str, Any]:
        body = _create_body(settings, launch)
        result: dict[str, Any] = await self._call("POST", f"/projects/{project_id}/rounds", json=body)
        return result

    async def get_round(self: _AsyncTransport, round_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/rounds/{round_id}")
        return result

    async def launch_round(self: _AsyncTransport, round_id: int) -> dict[str, Any]:
        return _action(await self._call("POST", f"/rounds/{round_id}/launch"))

    async def cancel_round(self: _AsyncTransport, round_id: int) -> dict[str, Any]:
        return _action(await self._call("POST", f"/rounds/{round_id}/cancel"))

    async def retry_round(self: _AsyncTransport, round_id: int) -> dict[str, Any]:
        return _action(await self._call("POST", f"/rounds/{round_id}/retry"))

    async def close_collection(self: _AsyncTransport, round_id: int) -> dict[str, Any]:
        return _action(await self._call("POST", f"/rounds/{round_id}/close-collection"))

    async def round_report(self: _AsyncTransport, project_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"/projects/{project_id}/rounds/report")
        return result

    async def round_report_csv(self: _AsyncTransport, project_id: int) -> str:
        url = f"{API}/projects/{project_id}/rounds/report.csv"
        return _text_or_raise(await self.http.get(url, headers=self.headers))

    async def wait_for_round(
        self: _AsyncTransport,
        round_id: int,
        *,
        states: frozenset[str] = ROUND_FINAL_STATES,
        timeout: float | None = None,
        poll_s: float = 2.0,
    ) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current: dict[str, Any] = await self._call("GET", f"/rounds/{round_id}")
            if current["state"] in states:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise _timed_out(round_id, current["state"], timeout or 0.0)
            await asyncio.sleep(poll_s)

    async def submit_red_team_prompt(
        self: _AsyncTransport, project_id: int, prompt: str, harm_category: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", f"/projects/{project_id}/red-team-prompts", json=_red_team_body(prompt, harm_category)
        )
        return result

    async def red_team_prompts(self: _AsyncTransport, project_id: int, **filters: Any) -> Any:
        params = {k: v for k, v in filters.items() if v is not None}
        return await self._call("GET", f"/projects/{project_id}/red-team-prompts", params=params)

    async def review_red_team_prompt(
        self: _AsyncTransport, prompt_id: int, decision: ReviewDecision
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", f"/red-team-prompts/{prompt_id}/review", json={"decision": decision}
        )
        return result
