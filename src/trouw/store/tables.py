"""The database tables, as SQLAlchemy Core metadata.

Times are stored as naive UTC; days (birthdays, plan and ledger days) as dates.
The migrations in `migrations/versions` create exactly these tables; a test
checks that the two never drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# A 64-bit key on PostgreSQL; on SQLite it must be INTEGER to alias the rowid.
RowId = BigInteger().with_variant(Integer(), "sqlite")

contacts = Table(
    "contacts",
    metadata,
    Column("id", String(200), primary_key=True, comment="the shop's own key"),
    Column("email", String(320), index=True),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("locale", String(20)),
    Column("timezone", String(64)),
    Column("birthday", Date),
    Column("customer_since", Date),
    Column("channel", String(10), nullable=False, server_default="email"),
    Column("street", String(200)),
    Column("postcode", String(20)),
    Column("city", String(100)),
    Column("country", String(2)),
    Column("attributes", Json, nullable=False, server_default="{}"),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # Random per row, signed into the contact's links: a later contact with the same id
    # (after `contacts forget`) is a new row with another key. NULL: made before 0005.
    Column("link_key", String(16)),
)

events = Table(
    "events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("external_id", String(200), unique=True, comment="re-imports skip known ids"),
    Column(
        "contact_id",
        String(200),
        ForeignKey("contacts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("type", String(50), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("tag", String(200)),
    Column("url", Text),
    Column("product", String(200)),
    Column("category", String(200)),
    Column("amount", Float),
    Column("score", Integer),
    Column("properties", Json, nullable=False, server_default="{}"),
    # Event aggregates are per contact and type over a time window.
    Index("ix_events_contact_type_time", "contact_id", "type", "occurred_at"),
    # Segment-wide scans ("clicked fire-safety in 90 days") start from type and time.
    Index("ix_events_type_time", "type", "occurred_at"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("email_hash", String(64), primary_key=True, comment="sha256 of the normalised email"),
    Column("reason", String(50), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

segment_snapshots = Table(
    "segment_snapshots",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("segment", String(200), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("taken_at", DateTime, nullable=False),
    Column("size", Integer, nullable=False),
    Column("entered", Integer, nullable=False),
    Column("left", Integer, nullable=False),
    Index("ix_segment_snapshots_segment_as_of", "segment", "as_of"),
)

segment_members = Table(
    "segment_members",
    metadata,
    Column(
        "snapshot_id",
        RowId,
        ForeignKey("segment_snapshots.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("contact_id", String(200), primary_key=True),
)


# On PostgreSQL a table partitioned by year, with no primary key (it would have to hold
# `day`; the ids come from the same sequence): store/plan_years.py, migration 0010.
plan = Table(
    "plan",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("contact_id", String(200), nullable=False),
    Column("day", Date, nullable=False),
    Column("campaign", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("occurrence", String(50), nullable=False),
    Column("template", String(300)),
    Column("channel", String(10), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("status", String(10), nullable=False),
    Column("reason", Text),
    Index("ix_plan_day", "day"),
    Index("ix_plan_contact_id", "contact_id"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("contact_id", String(200), nullable=False),
    Column("campaign", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("occurrence", String(50), nullable=False),
    Column("day", Date, nullable=False),
    Column("template", String(300)),
    Column("channel", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("message_id", String(300)),
    Column("reserved_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("error", Text),  # the last SMTP reply, or why it is not (yet) sent
    Column("due", Date),  # the day the send is owed from (the plan's day)
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime),  # deferred: not tried again before this
    Column("run_id", RowId),  # the send run holding a reserved or sending row
    UniqueConstraint("contact_id", "campaign", "step", "occurrence"),
    Index("ix_ledger_contact_id_day", "contact_id", "day"),
    Index("ix_ledger_day_status", "day", "status"),
    Index("ix_ledger_status_next_attempt_at", "status", "next_attempt_at"),
    # Bounce reports name the mail they are about by its Message-ID.
    Index("ix_ledger_message_id", "message_id"),
)

send_runs = Table(
    "send_runs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("outcome", String(20)),  # finished | interrupted | failed; NULL while running
    Column("summary", Json),
    Index("ix_send_runs_started_at", "started_at"),
)

plan_runs = Table(
    "plan_runs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("year", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=False),
    Column("contacts", Integer, nullable=False),
    Column("summary", Json),  # plan rows per status: planned, deferred, dropped
    Index("ix_plan_runs_year_finished_at", "year", "finished_at"),
)

# A year plan made by `trouw plan` runs on several machines at once (planning/parallel.py):
# the job and its chunks of contacts (claimed FOR UPDATE SKIP LOCKED); the chunks' rows go
# into a table of the job's own that becomes the year's partition of `plan` (plan_years.py).
plan_jobs = Table(
    "plan_jobs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("year", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("project", String(64), nullable=False),  # fingerprint of what the plan reads
    Column("started_at", DateTime, nullable=False),
    Column("state", String(10), nullable=False),  # running | done | abandoned
    Index("ix_plan_jobs_year_state", "year", "state"),
)

plan_chunks = Table(
    "plan_chunks",
    metadata,
    Column("job", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("after_id", String(200)),  # the chunk's contacts: after_id < id <= upto_id
    Column("upto_id", String(200)),
    Column("done", Boolean, nullable=False, server_default=false()),
    Column("contacts", Integer),
    Column("host", String(255)),  # the machine that planned it
    Column("statuses", Json),  # plan rows per status
)

keys = Table(
    "keys",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 of the key
    Column("hint", String(20), nullable=False),  # the key's first characters, to tell keys apart
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

processed_messages = Table(
    "processed_messages",
    metadata,
    # sha256 of the message's Message-ID (or of its bytes when it has none)
    Column("key", String(64), primary_key=True),
    Column("message_id", String(300)),
    Column("processed_at", DateTime, nullable=False),
    Column("outcome", String(20), nullable=False),  # hard, soft, complaint, ..., skipped
)

test_winners = Table(
    "test_winners",
    metadata,
    Column("campaign", String(200), primary_key=True),
    Column("step", String(200), primary_key=True),
    Column("occurrence", String(50), primary_key=True),
    Column("winner", String(300), nullable=False),  # the arm's template
    Column("pick_by", String(20), nullable=False),  # click_rate | open_rate | conversion
    Column("decided_at", DateTime, nullable=False),
    Column("p_value", Float),  # chi-square over the arms; NULL when it cannot be computed
    Column("numbers", Text, nullable=False),  # JSON: per arm sent, hits, rate, interval
)
