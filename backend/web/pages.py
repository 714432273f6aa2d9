"""Helpers shared by the server-rendered pages: rendering with the user and CSRF token, redirects
after a successful form (303), and the short notices those redirects carry.

A notice is chosen from a fixed table by key, so a crafted `?notice=` can never put text of its
own on a page.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from backend.edge.deps import Principal

NOTICES = {
    "project_created": "Project created.",
    "settings_saved": "Settings saved.",
    "member_added": "Member added.",
    "member_removed": "Member removed.",
    "snapshot_created": "Snapshot exported.",
    "snapshot_exists": "Nothing changed since the last export; that snapshot is shown.",
    "user_created": "User created.",
    "user_saved": "User saved.",
    "token_revoked": "Token revoked. It stops working on the next request.",
    "adjudicated": "Adjudication saved.",
    "adjudicated_next": "Adjudication saved; here is the next open disagreement.",
    "review_done": "Adjudication saved. No open disagreements are left in this project.",
    "comparison_saved": "Comparison updated.",
    "skipped": "Pair skipped; it went back to the pool.",
    "submitted": "Saved.",
    "lease_lost": "Your lease on that pair ran out and it went to someone else; here is the next one.",
    "job_cancelled": "Cancel requested. A running job stops within the grace period.",
    "job_not_cancellable": "That job has already finished; nothing was cancelled.",
    "job_retried": "Job queued again; it resumes from its last complete checkpoint.",
    "job_not_retryable": "Only a failed or cancelled job can be retried; nothing changed.",
    "round_launched": "Round launched; its jobs are queued. This page follows them live.",
    "round_saved": "Round saved as a draft; launch it when ready.",
    "collection_closed": "Collection closed; the reward and cost models train on the data so far.",
    "round_retried": "Round retried: only what failed runs again.",
    "round_cancelled": "Round cancelled; its running jobs stop within the grace period.",
    "red_team_submitted": "Prompt sent for review. Accepted prompts enter the next round.",
    "red_team_accepted": "Prompt accepted; it enters the next launched round.",
    "red_team_rejected": "Prompt rejected.",
    "red_team_in_round": "That prompt is already part of a round; its review can no longer change.",
    "red_team_bad_decision": "Choose accept or reject; nothing changed.",
}


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    notice_key = request.query_params.get("notice", "")
    base = {
        "user": principal.user if principal else None,
        "csrf": principal.session_record.csrf_token if principal and principal.session_record else "",
        "notice": NOTICES.get(notice_key),
        "path": request.url.path,
    }
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, {**base, **(context or {})}, status_code=status
    )
    return response


def see_other(url: str, notice: str | None = None) -> RedirectResponse:
    if notice is not None:
        url = f"{url}{'&' if '?' in url else '?'}notice={notice}"
    return RedirectResponse(url, status_code=303)
