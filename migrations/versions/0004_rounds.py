"""rounds: the round lifecycle, its products and report, red-team intake

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:10:00.000000

- round_state gains `generating` and `policy`, in lifecycle order (draft, generating, collecting,
  training, policy, evaluating, completed, failed, cancelled). The type is rebuilt rather than
  extended with ADD VALUE so the order is the lifecycle's and the downgrade is symmetric.
- round: report (JSONB), policy_id / reward_model_id / cost_model_id (what the round produced),
  failed_stage, launched_by_id, collection_closed_at.
- prompt: author_id, review_state, reviewed_by_id, reviewed_at (red-team intake and review).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_STATES = (
    "draft",
    "generating",
    "collecting",
    "training",
    "policy",
    "evaluating",
    "completed",
    "failed",
    "cancelled",
)
OLD_STATES = ("draft", "collecting", "training", "evaluating", "completed", "failed", "cancelled")

ROUND_MODEL_KEYS = ("policy_id", "reward_model_id", "cost_model_id")
PROMPT_USER_KEYS = ("author_id", "reviewed_by_id")


def _rebuild_round_state(values: Sequence[str], cast: str) -> None:
    op.execute("ALTER TABLE round ALTER COLUMN state DROP DEFAULT")
    op.execute("ALTER TYPE round_state RENAME TO round_state_old")
    sa.Enum(*values, name="round_state").create(op.get_bind())
    op.execute(f"ALTER TABLE round ALTER COLUMN state TYPE round_state USING ({cast})::round_state")
    op.execute("ALTER TABLE round ALTER COLUMN state SET DEFAULT 'draft'")
    op.execute("DROP TYPE round_state_old")


def upgrade() -> None:
    _rebuild_round_state(NEW_STATES, "state::text")
    op.add_column(
        "round",
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    for key in ROUND_MODEL_KEYS:
        op.add_column("round", sa.Column(key, sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_round_{key}_model_artifact"),
            "round",
            "model_artifact",
            [key],
            ["id"],
            ondelete="SET NULL",
        )
    op.add_column("round", sa.Column("failed_stage", sa.String(length=30), nullable=True))
    op.add_column("round", sa.Column("launched_by_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_round_launched_by_id_user"), "round", "user", ["launched_by_id"], ["id"], ondelete="SET NULL"
    )
    op.add_column("round", sa.Column("collection_closed_at", sa.DateTime(timezone=True), nullable=True))

    op.add_column("prompt", sa.Column("author_id", sa.Integer(), nullable=True))
    op.add_column("prompt", sa.Column("review_state", sa.String(length=20), nullable=True))
    op.add_column("prompt", sa.Column("reviewed_by_id", sa.Integer(), nullable=True))
    op.add_column("prompt", sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    for key in PROMPT_USER_KEYS:
        op.create_foreign_key(
            op.f(f"fk_prompt_{key}_user"), "prompt", "user", [key], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    for key in PROMPT_USER_KEYS:
        op.drop_constraint(op.f(f"fk_prompt_{key}_user"), "prompt", type_="foreignkey")
    for column in ("reviewed_at", "reviewed_by_id", "review_state", "author_id"):
        op.drop_column("prompt", column)
    op.drop_constraint(op.f("fk_round_launched_by_id_user"), "round", type_="foreignkey")
    for key in ROUND_MODEL_KEYS:
        op.drop_constraint(op.f(f"fk_round_{key}_model_artifact"), "round", type_="foreignkey")
    for column in ("collection_closed_at", "launched_by_id", "failed_stage", *ROUND_MODEL_KEYS, "report"):
        op.drop_column("round", column)
    # The two new stages fold back into their nearest old neighbours.
    _rebuild_round_state(
        OLD_STATES,
        "CASE state::text WHEN 'generating' THEN 'draft' WHEN 'policy' THEN 'training' ELSE state::text END",
    )
