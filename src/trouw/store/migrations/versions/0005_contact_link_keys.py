"""contacts.link_key: a random value per contact row, signed into its tracked links, so that
the links of a forgotten contact record nothing for a later contact with the same id.

Contacts that exist already keep none (NULL): the links in mail sent to them carry none,
and keep working.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contacts", sa.Column("link_key", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("link_key")
