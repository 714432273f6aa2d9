"""Training jobs, as methods of Client (mixed in): submit, read, list, cancel, retry, wait.

Inputs are named by id (snapshot_id, base_model_id, reward_model_id, cost_model_id, ...), never by
a path: the worker that runs the job resolves them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class _Transport(Protocol):
    def _call(self, method: str, path: str, **kwargs: Any) -> Any: ...


class JobsMixin:
    def submit_job(
        self: _Transport,
        kind: str,
        config: dict[str, Any],
        *,
        inputs: dict[str, int] | None = None,
        project_id: int | None = None,
        round_id: int | None = None,
        gpus: int = 1,
        nodes: int = 1,
        max_attempts: int = 3,
    ) -> dict[str, Any]:
        """Queue a stage run. An identical job (kind, config, input content) that already succeeded
        is returned instead of a new one. A config the stage refuses raises InvalidInput with
        the message `python -m training` would print."""
        body = {
            "kind": kind,
            "config": config,
            "inputs": inputs or {},
            "project_id": project_id,
            "round_id": round_id,
            "gpus": gpus,
            "nodes": nodes,
            "max_attempts": max_attempts,
        }
        result: dict[str, Any] = self._call("POST", "/jobs", json=body)
        return result

    def get_job(self: _Transport, job_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/jobs/{job_id}")
        return result

    def list_jobs(
        self: _Transport,
        *,
        project_id: int | None = None,
        state: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        params = {"project_id": project_id, "state": state, "kind": kind, "limit": limit}
        result: list[dict[str, Any]] = self._call(
            "GET", "/jobs", params={k: v for k, v in params.items() if v is not None}
        )
        return result

    def cancel_job(self: _Transport, job_id: int) -> dict[str, Any]:
        """A queued job is cancelled at once; a running one is stopped by its worker."""
        result: dict[str, Any] = self._call("POST", f"/jobs/{job_id}/cancel")
        return result

    def retry_job(self: _Transport, job_id: int) -> dict[str, Any]:
        """Queue a failed or cancelled job again; it resumes from its last checkpoint."""
        result: dict[str, Any] = self._call("POST", f"/jobs/{job_id}/retry")
        return result

    def job_log(self: _Transport, job_id: int, lines: int = 200) -> str:
        result: dict[str, Any] = self._call("GET", f"/jobs/{job_id}/log", params={"lines": lines})
        return str(result["log_tail"])

    def wait_for_job(
        self: _Transport,
        job_id: int,
        *,
        timeout: float | None = None,
        poll_s: float = 2.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is succeeded, failed or cancelled; the final job. `on_update` sees
        every poll (a progress bar). TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self._call("GET", f"/jobs/{job_id}")
            if on_update is not None:
                on_update(job)
            if job["state"] in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']} after {timeout:g}s")
            time.sleep(poll_s)
