"""The submitted form of a page, parsed by a dependency, so that page handlers can be plain `def`.

Reading the body is the only part of a form route that must be async. Once a dependency has parsed
it, the handler itself is a sync route: FastAPI runs it in its threadpool, so its database calls
never block the event loop (an `async def` handler that touches the sync Session would).

    @router.post("/admin/things")
    def create_thing(request: Request, form: PageForm, db: DbDep, principal: Admin) -> Response:
        name = form_text(form, "name")

Starlette caches the parsed form on the request, so the CSRF check (which reads `csrf_token` from
the same form) and this dependency parse the body once. Uploaded files stay open until the
response is sent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData, UploadFile


async def page_form(request: Request) -> FormData:
    """The request's form (url-encoded or multipart); an empty form for any other body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return FormData()
    return await request.form()


PageForm = Annotated[FormData, Depends(page_form)]


def form_text(form: FormData, name: str, default: str = "") -> str:
    """A text field's value; a missing field, or a file sent under that name, reads as `default`."""
    value = form.get(name)
    return value if isinstance(value, str) else default


def form_file(form: FormData, name: str) -> UploadFile | None:
    """An uploaded file, or None when the field is missing or is not a file."""
    value = form.get(name)
    return value if isinstance(value, UploadFile) else None
