"""Jinja2 environment for the pages in frontend/templates (autoescape on for every template)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from backend.services.markdown import render_markdown

AXIS_NAMES = {"a_is_safe": "A safety", "b_is_safe": "B safety"}


def axis_names(axes: Iterable[str]) -> str:
    """Disagreement axes for people: "helpfulness, A safety" rather than "helpfulness, a_is_safe"."""
    return ", ".join(AXIS_NAMES.get(axis, axis) for axis in axes)


def make_templates(frontend_dir: Path) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(frontend_dir / "templates"))
    env = templates.env
    env.autoescape = True  # imported prompts are untrusted; nothing bypasses escaping by accident
    env.filters["markdown"] = lambda text: Markup(render_markdown(text or ""))
    env.filters["axis_names"] = axis_names
    env.globals["app_name"] = "Safe RLHF"
    return templates
