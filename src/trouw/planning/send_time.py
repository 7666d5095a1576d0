"""`send_time: best`: each contact's mail at the hour they most often open or click.

The hour is the contact's own (the local hour, in their time zone, of most
of their opens and clicks in the last year; the earliest such hour on a tie),
else the project's (the same over every contact's opens and clicks, in the
project's zone), moved into the send window when it falls
outside (the window's nearest hour). No history at all: no hour, the mail
goes at the run's hour. The counts are gathered per chunk with the other
facts (candidates.py); the plan shows the hour, and a send run holds a mail
back until its hour has come in the contact's zone (hourly runs send it in
its hour; a later run that day still sends it, late rather than never).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from trouw.planning.policy import SendWindow
from trouw.store import events

if TYPE_CHECKING:  # candidates.py gathers the hours with this module's functions
    from trouw.planning.candidates import CandidateFinder, ChunkFacts

RESPONSES = ("open", "click")
HISTORY = timedelta(days=365)


def best_of(hours: Iterable[int]) -> int | None:
    """The hour seen most often; the earliest of those on a tie; None without any."""
    counts = Counter(hours)
    if not counts:
        return None
    return min(counts, key=lambda hour: (-counts[hour], hour))


def own_hours(
    connection: Connection, zones: Mapping[str, ZoneInfo], end: datetime
) -> dict[str, int]:
    """Each contact's best hour in their own zone (`zones`: a chunk's contacts), for those
    with opens or clicks in the year before `end` (one statement for the chunk's id range)."""
    if not zones:
        return {}
    query = select(events.c.contact_id, events.c.occurred_at).where(
        events.c.contact_id >= min(zones),
        events.c.contact_id <= max(zones),
        events.c.type.in_(RESPONSES),
        events.c.occurred_at >= end - HISTORY,
        events.c.occurred_at < end,
    )
    seen: dict[str, list[int]] = {}
    for contact_id, moment in connection.execute(query):
        zone = zones.get(str(contact_id))
        if zone is not None:
            seen.setdefault(str(contact_id), []).append(
                moment.replace(tzinfo=UTC).astimezone(zone).hour
            )
    return {key: hour for key, hours in seen.items() if (hour := best_of(hours)) is not None}


def project_hour(connection: Connection, zone: ZoneInfo, end: datetime) -> int | None:
    """The project's best hour (in `zone`) over every contact's opens and clicks of the year
    before `end`: the database counts them per UTC hour of each day (at most 8,784 rows),
    each turned into the local hour with that day's offset."""
    if connection.dialect.name == "sqlite":
        slot: Any = func.strftime("%Y-%m-%d %H:00:00", events.c.occurred_at)
    else:
        slot = func.date_trunc("hour", events.c.occurred_at)
    query = (
        select(slot, func.count())
        .where(
            events.c.type.in_(RESPONSES),
            events.c.occurred_at >= end - HISTORY,
            events.c.occurred_at < end,
        )
        .group_by(slot)
    )
    counts: Counter[int] = Counter()
    for moment, count in connection.execute(query):
        if moment is None:
            continue
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        counts[moment.replace(tzinfo=UTC).astimezone(zone).hour] += int(count)
    return best_of(counts.elements())


def in_window(hour: int, window: SendWindow | None) -> int:
    """`hour`, or the send window's nearest hour when it falls outside (the earlier on a tie)."""
    if window is None:
        return hour
    allowed = [h for h in range(24) if _allows(window, h)]
    if not allowed or hour in allowed:
        return hour
    return min(allowed, key=lambda h: (min((h - hour) % 24, (hour - h) % 24), h))


def _allows(window: SendWindow, hour: int) -> bool:
    at = time(hour)
    if window.start < window.end:
        return window.start <= at < window.end
    return at >= window.start or at < window.end


def send_hour(
    finder: CandidateFinder,
    facts: ChunkFacts,
    contact: Any,
    campaign: str,
    window: SendWindow | None,
) -> int | None:
    """The hour (contact's zone) a campaign's mail goes to this contact, or None when the
    campaign has no `send_time: best` or nobody ever opened or clicked."""
    if campaign not in finder.best_hour_campaigns:
        return None
    hour = facts.best_hours.get(str(contact.id), finder.project_hour)
    return None if hour is None else in_window(hour, window)


def describe(hour: int, own: bool) -> str:
    """For the plan: the chosen hour and where it comes from."""
    source = "their most frequent open/click hour" if own else "the shop's most frequent hour"
    return f"at {hour:02d}:00 ({source})"


__all__ = ["best_of", "describe", "in_window", "own_hours", "project_hour", "send_hour"]
