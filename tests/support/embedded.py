"""Throwaway embedded servers for tests that need one of their own (stop it, kill it, ...)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from tests.conftest import REPO_ROOT


def load_devservices() -> ModuleType:
    """scripts/devservices.py is a standalone script (stdlib only), not a package module."""
    if "devservices" in sys.modules:
        return sys.modules["devservices"]
    spec = importlib.util.spec_from_file_location("devservices", REPO_ROOT / "scripts" / "devservices.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["devservices"] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def services_dir() -> Iterator[Path]:
    """A state directory that user `nobody` can reach (Postgres runs as nobody under root), so the
    data stays inside it, and everything is stopped and deleted afterwards."""
    root = Path(tempfile.gettempdir()) / f"saferlhf-test-services-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    try:
        yield root
    finally:
        ds = load_devservices()
        for state in [root, *root.iterdir()]:
            if state.is_dir():
                ds.pg_down(state)
                ds.redis_down(state)
        shutil.rmtree(root, ignore_errors=True)
