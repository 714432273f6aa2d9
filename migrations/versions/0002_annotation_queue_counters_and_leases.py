"""annotation queue counters and leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 22:49:43.820263

- comparison.active_count: live leases, kept beside submitted_count so that the claim query
  checks `submitted + active < overlap_target` on the locked row without counting assignments.
- assignment.project_id (denormalised) and a partial unique index: one live lease per annotator
  and project.
- The claim index now leads with (project_id, is_gold), since gold and ordinary comparisons are
  claimed from separate pools.
- adjudication.a_severity / b_severity, so adjudicated labels carry severities like votes do.

Existing rows are backfilled before NOT NULL constraints apply.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "adjudication", sa.Column("a_severity", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "adjudication", sa.Column("b_severity", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_adjudication_a_severity_range"), "adjudication", "a_severity BETWEEN 0 AND 3"
    )
    op.create_check_constraint(
        op.f("ck_adjudication_b_severity_range"), "adjudication", "b_severity BETWEEN 0 AND 3"
    )

    op.add_column("assignment", sa.Column("project_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE assignment SET project_id = comparison.project_id "
        "FROM comparison WHERE comparison.id = assignment.comparison_id"
    )
    op.alter_column("assignment", "project_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_assignment_project_id_project"),
        "assignment",
        "project",
        ["project_id"],
        ["id"],
        ondelete="CASCADE",
    )
    # Older data may hold several live leases of one annotator in a project: keep the newest.
    op.execute(
        "UPDATE assignment SET state = 'expired', finished_at = now() WHERE state = 'active' AND id NOT IN "
        "(SELECT max(id) FROM assignment WHERE state = 'active' GROUP BY annotator_id, project_id)"
    )
    op.create_index(
        "uq_assignment_one_active_per_project",
        "assignment",
        ["annotator_id", "project_id"],
        unique=True,
        postgresql_where=sa.text("state = 'active'"),
    )

    op.add_column("comparison", sa.Column("active_count", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE comparison SET active_count = live.n FROM "
        "(SELECT comparison_id, count(*) AS n FROM assignment WHERE state = 'active' GROUP BY comparison_id) live "
        "WHERE live.comparison_id = comparison.id"
    )
    op.create_check_constraint(op.f("ck_comparison_active_nonnegative"), "comparison", "active_count >= 0")
    op.drop_index("ix_comparison_claim", table_name="comparison", postgresql_where=sa.text("status = 'open'"))
    op.create_index(
        "ix_comparison_claim_pool",
        "comparison",
        ["project_id", "is_gold", sa.literal_column("priority DESC"), "id"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_comparison_claim_pool", table_name="comparison", postgresql_where=sa.text("status = 'open'")
    )
    op.create_index(
        "ix_comparison_claim",
        "comparison",
        ["project_id", sa.literal_column("priority DESC"), "id"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_constraint(op.f("ck_comparison_active_nonnegative"), "comparison", type_="check")
    op.drop_column("comparison", "active_count")
    op.drop_index(
        "uq_assignment_one_active_per_project",
        table_name="assignment",
        postgresql_where=sa.text("state = 'active'"),
    )
    op.drop_constraint(op.f("fk_assignment_project_id_project"), "assignment", type_="foreignkey")
    op.drop_column("assignment", "project_id")
    op.drop_constraint(op.f("ck_adjudication_b_severity_range"), "adjudication", type_="check")
    op.drop_constraint(op.f("ck_adjudication_a_severity_range"), "adjudication", type_="check")
    op.drop_column("adjudication", "b_severity")
    op.drop_column("adjudication", "a_severity")
