"""Segments: the condition language of segments/NAME.yaml, compiled to one SQL select.

definition.py reads and validates the YAML into a condition tree; compile.py
turns a tree into a SQLAlchemy Core select of contact ids; query.py,
explain.py and snapshots.py run it. Functions that touch data take a
Connection and never open their own.
"""

from trouw.segments.compile import Clock, members_query, segment_sql
from trouw.segments.definition import (
    Catalog,
    Segment,
    SegmentError,
    load_catalog,
    parse_segment,
)
from trouw.segments.explain import Explanation, Finding, explain
from trouw.segments.query import MEMBER_COLUMNS, count_members, is_member, member_rows
from trouw.segments.snapshots import Snapshot, keep_day_snapshots, save_snapshot

__all__ = [
    "MEMBER_COLUMNS",
    "Catalog",
    "Clock",
    "Explanation",
    "Finding",
    "Segment",
    "SegmentError",
    "Snapshot",
    "count_members",
    "explain",
    "is_member",
    "keep_day_snapshots",
    "load_catalog",
    "member_rows",
    "members_query",
    "parse_segment",
    "save_snapshot",
    "segment_sql",
]
