"""The data store: tables, engines, transactions and migrations.

Functions that touch data take a Connection; they do not open their own.
`open_store` is the one entry point that makes an engine and brings the
schema up to date.
"""

from trouw.store.engine import (
    atomic,
    create_store_engine,
    refresh_stale_statistics,
    refresh_statistics,
)
from trouw.store.schema import open_store, upgrade_schema
from trouw.store.tables import (
    contacts,
    events,
    keys,
    ledger,
    metadata,
    plan,
    plan_runs,
    processed_messages,
    segment_members,
    segment_snapshots,
    send_runs,
    suppressions,
    test_winners,
)

__all__ = [
    "atomic",
    "contacts",
    "create_store_engine",
    "events",
    "keys",
    "ledger",
    "metadata",
    "open_store",
    "plan",
    "plan_runs",
    "processed_messages",
    "refresh_stale_statistics",
    "refresh_statistics",
    "segment_members",
    "segment_snapshots",
    "send_runs",
    "suppressions",
    "test_winners",
    "upgrade_schema",
]
