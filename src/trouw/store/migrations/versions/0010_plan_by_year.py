"""On PostgreSQL `plan` is partitioned by year (the range of `day`), and a plan made together
is written into a table of its own that becomes the year's partition (planning/parallel.py):
no staging table any more, whose rows the last run had to copy into `plan` one by one.

The year partitions are made by the plans (`plan_y2027`); `plan_default` takes rows of a year
that has none (a plan made on one machine, rows written by hand). The partitioned table has
no primary key (it would have to hold `day`): no reader goes by the plan's ids, which come
from the same sequence as before. The rows of an existing plan move into their years'
partitions (copied once, while the upgrade holds the tables). SQLite keeps its one `plan`
table; plan_staging goes on both. Each chunk of a job keeps its rows per status
(`plan_chunks.statuses`): the plan run's summary, without counting the rows again.

Revision ID: 0010
Revises: 0009
"""

from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
COLUMNS = "contact_id, day, campaign, step, occurrence, template, channel, priority, status, reason"


def upgrade() -> None:
    op.drop_table("plan_staging")
    op.add_column("plan_chunks", sa.Column("statuses", Json))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Jobs under way staged their rows in the table just dropped: they start afresh.
    op.execute("DELETE FROM plan_chunks")
    op.execute("UPDATE plan_jobs SET state = 'abandoned' WHERE state = 'running'")
    op.execute("ALTER TABLE plan RENAME TO plan_unpartitioned")
    op.execute("ALTER INDEX ix_plan_day RENAME TO ix_plan_day_unpartitioned")
    op.execute("ALTER INDEX ix_plan_contact_id RENAME TO ix_plan_contact_id_unpartitioned")
    op.execute(
        """
        CREATE TABLE plan (
            id BIGINT NOT NULL DEFAULT nextval('plan_id_seq'),
            contact_id VARCHAR(200) NOT NULL,
            day DATE NOT NULL,
            campaign VARCHAR(200) NOT NULL,
            step VARCHAR(200) NOT NULL,
            occurrence VARCHAR(50) NOT NULL,
            template VARCHAR(300),
            channel VARCHAR(10) NOT NULL,
            priority INTEGER NOT NULL,
            status VARCHAR(10) NOT NULL,
            reason TEXT
        ) PARTITION BY RANGE (day)
        """
    )
    op.execute("ALTER SEQUENCE plan_id_seq OWNED BY plan.id")
    op.execute("CREATE TABLE plan_default PARTITION OF plan DEFAULT")
    years = bind.execute(
        sa.text("SELECT DISTINCT CAST(extract(year FROM day) AS integer) FROM plan_unpartitioned")
    ).scalars()
    for year in sorted(years):
        op.execute(
            f"CREATE TABLE plan_y{year} PARTITION OF plan "
            f"FOR VALUES FROM ('{date(year, 1, 1)}') TO ('{date(year + 1, 1, 1)}')"
        )
    op.execute(f"INSERT INTO plan (id, {COLUMNS}) SELECT id, {COLUMNS} FROM plan_unpartitioned")
    op.execute("DROP TABLE plan_unpartitioned")
    op.execute("CREATE INDEX ix_plan_day ON plan (day)")
    op.execute("CREATE INDEX ix_plan_contact_id ON plan (contact_id)")
    op.execute("ANALYZE plan")


def downgrade() -> None:
    op.drop_column("plan_chunks", "statuses")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Jobs under way wrote their rows into tables of their own: they start afresh.
        op.execute("DELETE FROM plan_chunks")
        op.execute("UPDATE plan_jobs SET state = 'abandoned' WHERE state = 'running'")
        tables = bind.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE starts_with(tablename, 'plan_job_')")
        ).scalars()
        for table in list(tables):
            op.execute(f'DROP TABLE "{table}"')
        op.execute("ALTER TABLE plan RENAME TO plan_partitioned")
        op.execute("ALTER INDEX ix_plan_day RENAME TO ix_plan_day_partitioned")
        op.execute("ALTER INDEX ix_plan_contact_id RENAME TO ix_plan_contact_id_partitioned")
        op.execute(
            "CREATE TABLE plan (LIKE plan_partitioned INCLUDING DEFAULTS, "
            "CONSTRAINT pk_plan PRIMARY KEY (id))"
        )
        op.execute("ALTER SEQUENCE plan_id_seq OWNED BY plan.id")
        op.execute(f"INSERT INTO plan (id, {COLUMNS}) SELECT id, {COLUMNS} FROM plan_partitioned")
        op.execute("DROP TABLE plan_partitioned")  # and its partitions
        op.execute("CREATE INDEX ix_plan_day ON plan (day)")
        op.execute("CREATE INDEX ix_plan_contact_id ON plan (contact_id)")
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
        prefixes=["UNLOGGED"] if bind.dialect.name == "postgresql" else [],
    )
