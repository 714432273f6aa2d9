"""Jinja2 environment for the pages in frontend/templates (autoescape on for every template)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from backend.services.markdown import render_markdown


def make_templates(frontend_dir: Path) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(frontend_dir / "templates"))
    env = templates.env
    env.autoescape = True  # imported prompts are untrusted; nothing bypasses escaping by accident
    env.filters["markdown"] = lambda text: Markup(render_markdown(text or ""))
    env.globals["app_name"] = "Safe RLHF"
    return templates
