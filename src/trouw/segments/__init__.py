"""Segments: the condition language of segments/NAME.yaml, compiled to one SQL select.

definition.py reads and validates the YAML into a condition tree; compile.py
turns a tree into a SQLAlchemy Core select of contact ids; query.py,
explain.py and snapshots.py run it. Functions that touch data take a
Connection and never open their own.

Only definition.py is imported with the package: the names of the other
modules are loaded when first asked for, so reading segments (`trouw check`)
does not import SQLAlchemy. (The function `explain` is imported from
trouw.segments.explain: the package's `explain` is that module.)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from trouw.segments.definition import (
    Catalog,
    Segment,
    SegmentError,
    load_catalog,
    parse_segment,
)

if TYPE_CHECKING:
    from trouw.segments.compile import Clock, chunk_members_query, members_query, segment_sql
    from trouw.segments.explain import Explanation, Finding
    from trouw.segments.query import MEMBER_COLUMNS, count_members, is_member, member_rows
    from trouw.segments.snapshots import Snapshot, keep_day_snapshots, save_snapshot

# The names that need SQLAlchemy, by the module that has them.
_LAZY = {
    "Clock": "compile",
    "chunk_members_query": "compile",
    "members_query": "compile",
    "segment_sql": "compile",
    "Explanation": "explain",
    "Finding": "explain",
    "MEMBER_COLUMNS": "query",
    "count_members": "query",
    "is_member": "query",
    "member_rows": "query",
    "Snapshot": "snapshots",
    "keep_day_snapshots": "snapshots",
    "save_snapshot": "snapshots",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "MEMBER_COLUMNS",
    "Catalog",
    "Clock",
    "Explanation",
    "Finding",
    "Segment",
    "SegmentError",
    "Snapshot",
    "chunk_members_query",
    "count_members",
    "is_member",
    "keep_day_snapshots",
    "load_catalog",
    "member_rows",
    "members_query",
    "parse_segment",
    "save_snapshot",
    "segment_sql",
]
