"""Settings shared by the web process and the worker, read from the environment once."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-insecure-secret-change-me"
# GB and GiB are both 2**30 bytes: GPU memory is quoted so ("an 80GB GPU"), and the memory planner
# of training/planning reads sizes the same way.
SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_memory_size(text: str) -> int:
    """'80GB', '24GiB', '80 G', '85899345920' (bytes) -> bytes; ValueError with a one-line reason."""
    match = SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"unreadable memory size {text!r}; write e.g. 80GB, 24GiB or a byte count")
    number, unit = match.groups()
    value = int(float(number) * SIZE_UNITS[unit.upper()])
    if value < 2**20:  # "80" is 80 bytes: certainly a forgotten unit
        raise ValueError(f"memory size {text!r} is under 1 MiB; did you forget the unit (e.g. {number}GB)?")
    return value


class Settings(BaseSettings):
    """Every setting can be given as an environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", description="production refuses insecure defaults such as the dev secret key"
    )
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:55432/saferlhf",
        description="SQLAlchemy URL of the PostgreSQL database (the embedded dev server by default)",
    )
    redis_url: str = Field("redis://127.0.0.1:56379/0", description="Celery broker (Redis or Valkey)")
    secret_key: str = Field(DEV_SECRET, description="signs CSRF tokens; must be set in production")
    artifacts_dir: Path = Field(
        REPO_ROOT / ".dev" / "artifacts", description="root of dataset snapshots, checkpoints and models"
    )
    frontend_dir: Path = Field(REPO_ROOT / "frontend", description="templates/ and static/ of the web UI")
    base_url: str = Field("http://127.0.0.1:8000", description="public URL, used in links and cookies")
    session_idle_minutes: int = Field(30 * 4, description="a session ends after this long without a request")
    session_absolute_hours: int = Field(
        12, description="a session ends this long after login, whatever happens"
    )
    db_pool_size: int = Field(10, description="connections kept per process")
    db_max_overflow: int = Field(20, description="extra connections a process may open under load")
    db_statement_timeout_ms: int = Field(30_000, description="Postgres statement_timeout for web requests")
    broker_visibility_timeout_s: int = Field(
        3600, description="Redis redelivery timeout for unacked short tasks; training uses DB leases instead"
    )
    job_lease_seconds: int = Field(
        90, description="a training job's lease; the worker renews it by heartbeat"
    )
    job_heartbeat_seconds: float = Field(30, description="how often a running job renews its lease")
    job_self_stop_seconds: float = Field(
        60,
        description="a worker that could not renew its lease for this long stops its training process; "
        "shorter than JOB_LEASE_SECONDS, so it has stopped before the reaper hands the job on",
    )
    job_kill_grace_seconds: float = Field(
        10, description="after SIGTERM, a training process group gets this long before SIGKILL"
    )
    job_reaper_interval_s: float = Field(30, description="how often the beat runs the lease reaper")
    job_republish_after_s: float = Field(
        300, description="a queued job whose message was published longer ago than this is published again"
    )
    job_queue: str = Field("gpu", description="Celery queue that new training jobs are published to")
    round_advance_interval_s: float = Field(
        5, description="how often the beat advances active rounds (closes collection, recovers a lost hook)"
    )
    job_hostfile: Path | None = Field(
        None, description="DeepSpeed hostfile ('host slots=N' lines) for jobs that span several nodes"
    )
    worker_gpu_memory: int | None = Field(
        None,
        description="memory of one GPU of this worker's jobs, e.g. 80GB, 24GiB or a byte count; the worker "
        "refuses a job whose model states cannot fit it before starting any process. Unset: the smallest "
        "visible GPU's memory (no check on a worker without GPUs). Set it below the real size to leave "
        "headroom, or to declare the GPUs of the other nodes of a multi-node job",
    )
    job_ingest_interval_s: float = Field(
        2, description="how often a running job's events.jsonl is read into the database"
    )
    import_max_bytes: int = Field(200 * 1024 * 1024, description="largest dataset file accepted for import")
    model_upload_max_bytes: int = Field(
        4 * 1024**3, description="largest model archive (tar.gz or zip) accepted over REST, unpacked"
    )
    login_max_attempts: int = Field(
        10, description="failed logins allowed per account and per IP in the window"
    )
    login_window_seconds: int = Field(15 * 60, description="window of the login rate limit")

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        # Users paste plain postgres:// URLs; SQLAlchemy needs the psycopg (v3) driver named.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("worker_gpu_memory", mode="before")
    @classmethod
    def _memory_size(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_memory_size(value) if value.strip() else None
        return value

    @model_validator(mode="after")
    def _self_stop_before_reap(self) -> Settings:
        # The worker must have stopped its process before the reaper gives the job to another one.
        if self.job_self_stop_seconds >= self.job_lease_seconds:
            raise ValueError(
                f"JOB_SELF_STOP_SECONDS ({self.job_self_stop_seconds:g}) must be shorter than "
                f"JOB_LEASE_SECONDS ({self.job_lease_seconds})"
            )
        return self

    @property
    def cookie_secure(self) -> bool:
        return self.base_url.startswith("https://")

    def check_production_ready(self) -> None:
        """Refuse to serve production with a guessable secret (Label Studio CVE-2023-43791)."""
        if self.environment == "production" and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise RuntimeError(
                "SECRET_KEY must be set to a random value of at least 32 characters in production "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
