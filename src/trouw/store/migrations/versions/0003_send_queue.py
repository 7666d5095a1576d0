"""The ledger as a durable send queue (owed-from day, attempts, next try, owning run), the
send runs, and the project's keys (the secret that signs links, made here).

Revision ID: 0003
Revises: 0002
"""

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("ledger", sa.Column("due", sa.Date))
    op.add_column("ledger", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("ledger", sa.Column("next_attempt_at", sa.DateTime))
    op.add_column("ledger", sa.Column("run_id", RowId))
    op.execute("UPDATE ledger SET due = day")
    op.create_index("ix_ledger_status_next_attempt_at", "ledger", ["status", "next_attempt_at"])
    op.create_table(
        "send_runs",
        sa.Column("id", RowId, nullable=False, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("outcome", sa.String(20)),
        sa.Column("summary", Json),
        sa.PrimaryKeyConstraint("id", name="pk_send_runs"),
    )
    op.create_index("ix_send_runs_started_at", "send_runs", ["started_at"])
    keys = op.create_table(
        "keys",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_keys"),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(keys, [{"name": "links", "value": secrets.token_urlsafe(32), "created_at": now}])


def downgrade() -> None:
    op.drop_table("keys")
    op.drop_table("send_runs")
    op.drop_index("ix_ledger_status_next_attempt_at", "ledger")
    for column in ("run_id", "next_attempt_at", "attempts", "due"):
        op.drop_column("ledger", column)
