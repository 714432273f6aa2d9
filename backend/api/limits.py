"""Request body limits, enforced while the body streams in (docs/design/reliability.md C10).

A declared Content-Length over the limit is answered 413 at once, without reading the body; a
body that turns out larger (chunked uploads) is cut off at the limit. Dataset uploads get the
import limit from the settings, every other request a small one. Errors have the API's usual
shape {"detail", "code"}.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATH = re.compile(r"^/(api/v1|admin)/projects/\d+/imports$")
MODEL_UPLOAD_PATH = "/api/v1/models"  # a model directory as one archive: its own, larger limit


def _too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit // 1024} KiB"


class BodyLimit:
    def __init__(
        self, app: ASGIApp, *, default_limit: int, upload_limit: int, model_limit: int | None = None
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.upload_limit = upload_limit
        self.model_limit = model_limit or upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.upload_limit if UPLOAD_PATH.match(path) else self.default_limit
        if path == MODEL_UPLOAD_PATH and scope.get("method") == "POST":
            limit = self.model_limit
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI passes HTTPExceptions raised while reading the body through to
                    # the app's handlers, which render the usual error shape.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, limited_receive, send)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = json.dumps({"detail": _too_large(limit), "code": "payload_too_large"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
