"""A small typed client of the Safe RLHF platform API. It depends on httpx only (never on the
server's code), so simulated annotators and scripts can use it anywhere.

    from saferlhf_client import SAFE, Answer, Client, unsafe

    with Client("http://127.0.0.1:8000", token="srlhf_...") as api:
        while (task := api.claim_next(project_id)) is not None:
            api.submit(task.assignment_id, Answer(SAFE, unsafe("violence"), "left", "left"))
"""

from saferlhf_client.aio import AsyncClient
from saferlhf_client.client import Client
from saferlhf_client.errors import ApiError, AuthError, Conflict, InvalidInput, NotFound
from saferlhf_client.models import (
    SAFE,
    Annotation,
    Answer,
    ImportResult,
    Project,
    ResponseLabel,
    Snapshot,
    Task,
    Token,
    User,
    unsafe,
)

__all__ = [
    "SAFE",
    "Annotation",
    "Answer",
    "ApiError",
    "AsyncClient",
    "AuthError",
    "Client",
    "Conflict",
    "ImportResult",
    "InvalidInput",
    "NotFound",
    "Project",
    "ResponseLabel",
    "Snapshot",
    "Task",
    "Token",
    "User",
    "unsafe",
]
