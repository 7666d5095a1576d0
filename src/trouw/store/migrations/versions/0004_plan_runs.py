"""The plan runs: when each year's plan was made, as of which day, and what it holds.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "plan_runs",
        sa.Column("id", RowId, nullable=False, autoincrement=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.Column("contacts", sa.Integer, nullable=False),
        sa.Column("summary", Json),
        sa.PrimaryKeyConstraint("id", name="pk_plan_runs"),
    )
    op.create_index("ix_plan_runs_year_finished_at", "plan_runs", ["year", "finished_at"])


def downgrade() -> None:
    op.drop_table("plan_runs")
