"""Contacts, their events, and suppressions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(200), nullable=False, comment="the shop's own key"),
        sa.Column("email", sa.String(320)),
        sa.Column("first_name", sa.String(200)),
        sa.Column("last_name", sa.String(200)),
        sa.Column("locale", sa.String(20)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("birthday", sa.Date),
        sa.Column("customer_since", sa.Date),
        sa.Column("channel", sa.String(10), nullable=False, server_default="email"),
        sa.Column("street", sa.String(200)),
        sa.Column("postcode", sa.String(20)),
        sa.Column("city", sa.String(100)),
        sa.Column("country", sa.String(2)),
        sa.Column("attributes", Json, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
    )
    op.create_index("ix_contacts_email", "contacts", ["email"])
    op.create_table(
        "events",
        sa.Column("id", RowId, nullable=False, autoincrement=True),
        sa.Column("external_id", sa.String(200), comment="re-imports skip known ids"),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("tag", sa.String(200)),
        sa.Column("url", sa.Text),
        sa.Column("product", sa.String(200)),
        sa.Column("category", sa.String(200)),
        sa.Column("amount", sa.Float),
        sa.Column("score", sa.Integer),
        sa.Column("properties", Json, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("external_id", name="uq_events_external_id"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_events_contact_id", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_events_contact_type_time", "events", ["contact_id", "type", "occurred_at"])
    op.create_index("ix_events_type_time", "events", ["type", "occurred_at"])
    op.create_table(
        "suppressions",
        sa.Column(
            "email_hash", sa.String(64), nullable=False, comment="sha256 of the normalised email"
        ),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("email_hash", name="pk_suppressions"),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("events")
    op.drop_table("contacts")
