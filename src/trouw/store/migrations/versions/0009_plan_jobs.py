"""plan_jobs, plan_chunks, plan_staging: a year plan made by `trouw plan` runs on several
machines at once (planning/parallel.py). A job is one plan of one year; its chunks are
claimed with SELECT … FOR UPDATE SKIP LOCKED; each chunk's rows go to plan_staging in the
transaction that marks it done, and the run that finds every chunk done moves the rows into
`plan` in one transaction. plan_staging is UNLOGGED on PostgreSQL: a crash loses only
unfinished jobs' rows.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("chunk_size", sa.Integer, nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plan_jobs"),
    )
    op.create_index("ix_plan_jobs_year_state", "plan_jobs", ["year", "state"])
    op.create_table(
        "plan_chunks",
        sa.Column("job", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("after_id", sa.String(200)),
        sa.Column("upto_id", sa.String(200)),
        sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("contacts", sa.Integer),
        sa.Column("host", sa.String(255)),
        sa.PrimaryKeyConstraint("job", "seq", name="pk_plan_chunks"),
    )
    op.create_table(
        "plan_staging",
        sa.Column("job", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("occurrence", sa.String(50), nullable=False),
        sa.Column("template", sa.String(300)),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text),
        prefixes=["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else [],
    )


def downgrade() -> None:
    op.drop_table("plan_staging")
    op.drop_table("plan_chunks")
    op.drop_index("ix_plan_jobs_year_state", table_name="plan_jobs")
    op.drop_table("plan_jobs")
