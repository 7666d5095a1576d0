"""processed_messages: the mailbox messages `trouw bounces fetch` has acted on, recorded in the
transaction of their effects, so that no message is processed twice; and an index on
ledger.message_id, by which a bounce report finds the mail it is about.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_messages",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(300)),
        sa.Column("processed_at", sa.DateTime, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_processed_messages"),
    )
    op.create_index("ix_ledger_message_id", "ledger", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_message_id", "ledger")
    op.drop_table("processed_messages")
