"""training jobs on workers

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:30:00.000000

- job_kind values become the stage names (ppo-lag, reward-shaping); `export` is dropped: it is no
  stage and no row ever used it. Postgres cannot drop an enum value, so the type is rebuilt.
- training_job: inputs (role -> opaque id), gpus, nodes, live progress (current_step,
  total_steps, eta_s, log_tail), the ingest cursor (ingest_seq), the job directory key, who
  submitted it, when its message was last published and when it was cancelled.
- metric: (job_id, name, step) unique instead of a plain index, so ingestion upserts.
- model_artifact: snapshot_sha256, size_bytes, files, and a unique storage_key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_KINDS = ("sft", "reward", "cost", "ppo", "ppo-lag", "reward-shaping", "dpo", "generate", "evaluate")
OLD_KINDS = (
    "sft",
    "reward",
    "cost",
    "ppo",
    "ppo_lag",
    "reward_shaping",
    "dpo",
    "generate",
    "evaluate",
    "export",
)


def _rebuild_job_kind(values: Sequence[str], cast: str) -> None:
    op.execute("ALTER TYPE job_kind RENAME TO job_kind_old")
    sa.Enum(*values, name="job_kind").create(op.get_bind())
    op.execute(f"ALTER TABLE training_job ALTER COLUMN kind TYPE job_kind USING ({cast})::job_kind")
    op.execute("DROP TYPE job_kind_old")


def upgrade() -> None:
    op.execute("DELETE FROM training_job WHERE kind = 'export'")
    _rebuild_job_kind(NEW_KINDS, "replace(kind::text, '_', '-')")
    add = [
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("gpus", sa.Integer(), server_default="1", nullable=False),
        sa.Column("nodes", sa.Integer(), server_default="1", nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("ingest_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("output_key", sa.String(length=300), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
    ]
    for column in add:
        op.add_column("training_job", column)
    op.create_foreign_key(
        op.f("fk_training_job_created_by_id_user"),
        "training_job",
        "user",
        ["created_by_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_index("ix_metric_job_name_step", table_name="metric")
    op.create_unique_constraint(op.f("uq_metric_job_id_name_step"), "metric", ["job_id", "name", "step"])
    op.add_column("model_artifact", sa.Column("snapshot_sha256", sa.String(length=64), nullable=True))
    op.add_column(
        "model_artifact", sa.Column("size_bytes", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "model_artifact",
        sa.Column("files", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
    )
    op.create_unique_constraint(op.f("uq_model_artifact_storage_key"), "model_artifact", ["storage_key"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_model_artifact_storage_key"), "model_artifact", type_="unique")
    for column in ("files", "size_bytes", "snapshot_sha256"):
        op.drop_column("model_artifact", column)
    op.drop_constraint(op.f("uq_metric_job_id_name_step"), "metric", type_="unique")
    op.create_index("ix_metric_job_name_step", "metric", ["job_id", "name", "step"], unique=False)
    op.drop_constraint(op.f("fk_training_job_created_by_id_user"), "training_job", type_="foreignkey")
    for column in (
        "cancelled_at",
        "published_at",
        "created_by_id",
        "output_key",
        "ingest_seq",
        "log_tail",
        "eta_s",
        "total_steps",
        "current_step",
        "nodes",
        "gpus",
        "inputs",
    ):
        op.drop_column("training_job", column)
    _rebuild_job_kind(OLD_KINDS, "replace(kind::text, '-', '_')")
