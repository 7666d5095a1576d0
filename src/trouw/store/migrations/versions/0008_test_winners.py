"""test_winners: the arm an A/B test with a `share:` picked for the rest of its audience, with
the numbers it was picked by, decided once by a send run (sending/winners.py).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "test_winners",
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("occurrence", sa.String(50), nullable=False),
        sa.Column("winner", sa.String(300), nullable=False),
        sa.Column("pick_by", sa.String(20), nullable=False),
        sa.Column("decided_at", sa.DateTime, nullable=False),
        sa.Column("p_value", sa.Float),
        sa.Column("numbers", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("campaign", "step", "occurrence", name="pk_test_winners"),
    )


def downgrade() -> None:
    op.drop_table("test_winners")
