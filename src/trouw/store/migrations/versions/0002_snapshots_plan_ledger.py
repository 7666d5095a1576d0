"""Segment snapshots, the year plan and the send ledger.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "segment_snapshots",
        sa.Column("id", RowId, nullable=False, autoincrement=True),
        sa.Column("segment", sa.String(200), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("taken_at", sa.DateTime, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("entered", sa.Integer, nullable=False),
        sa.Column("left", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segment_snapshots"),
    )
    op.create_index("ix_segment_snapshots_segment_as_of", "segment_snapshots", ["segment", "as_of"])
    op.create_table(
        "segment_members",
        sa.Column("snapshot_id", RowId, nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "contact_id", name="pk_segment_members"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["segment_snapshots.id"],
            name="fk_segment_members_snapshot_id",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "plan",
        sa.Column("id", RowId, nullable=False, autoincrement=True),
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
        sa.PrimaryKeyConstraint("id", name="pk_plan"),
    )
    op.create_index("ix_plan_day", "plan", ["day"])
    op.create_index("ix_plan_contact_id", "plan", ["contact_id"])
    op.create_table(
        "ledger",
        sa.Column("id", RowId, nullable=False, autoincrement=True),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("occurrence", sa.String(50), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("template", sa.String(300)),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("message_id", sa.String(300)),
        sa.Column("reserved_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.UniqueConstraint(
            "contact_id",
            "campaign",
            "step",
            "occurrence",
            name="uq_ledger_contact_id_campaign_step_occurrence",
        ),
    )
    op.create_index("ix_ledger_contact_id_day", "ledger", ["contact_id", "day"])
    op.create_index("ix_ledger_day_status", "ledger", ["day", "status"])


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_table("plan")
    op.drop_table("segment_members")
    op.drop_table("segment_snapshots")
