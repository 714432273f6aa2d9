"""docker-compose.yml cannot run here (no Docker engine), so its contract is checked as data:
the services README promises, and settings that exist in backend.config.Settings."""

from __future__ import annotations

import re

import yaml

from backend.config import Settings
from backend.domain import task_names
from tests.conftest import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services() -> None:
    assert set(COMPOSE["services"]) == {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu"}


def test_postgres_has_a_healthcheck_and_a_volume() -> None:
    pg = COMPOSE["services"]["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in pg["volumes"])


def test_redis_keeps_an_append_only_file() -> None:
    command = COMPOSE["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_migrate_is_one_shot_and_gates_the_app() -> None:
    assert COMPOSE["services"]["migrate"]["restart"] == "no"
    assert "migrate" in COMPOSE["services"]["migrate"]["command"]
    for name in ("api", "worker-cpu", "worker-gpu"):
        assert (
            COMPOSE["services"][name]["depends_on"]["migrate"]["condition"]
            == "service_completed_successfully"
        )


def test_gpu_worker_reserves_nvidia_devices_and_consumes_only_the_gpu_queue() -> None:
    gpu = COMPOSE["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    command = gpu["command"]
    assert command[command.index("--queues") + 1] == task_names.GPU_QUEUE
    assert command[command.index("--concurrency") + 1] == "1"
    cpu = COMPOSE["services"]["worker-cpu"]["command"]
    assert cpu[cpu.index("--queues") + 1] == task_names.DEFAULT_QUEUE


def test_every_environment_variable_is_a_real_setting() -> None:
    env = COMPOSE["x-app-env"]
    known = {name.upper() for name in Settings.model_fields} | {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}
    assert set(env) <= known, f"unknown settings in compose: {set(env) - known}"
    assert env["ENVIRONMENT"] == "production"
    assert re.search(r"\$\{SECRET_KEY:\?", env["SECRET_KEY"]), (
        "production must refuse to start without SECRET_KEY"
    )


def test_production_refuses_the_development_secret() -> None:
    import pytest

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Settings(environment="production").check_production_ready()
    Settings(environment="production", secret_key="x" * 40).check_production_ready()
