"""A dry run of a period, day by day: who would get what, and how much mail per inbox.

Run on a scratch copy of the data (scratch.py), never on the real database.
For each day, contacts go in chunks as the planner's (read once: they do not
change during the replay); the planner's candidate finder (candidates.py)
answers, as of that day, what every campaign wants to send, and the planner's
policy (policy.py `resolve`, through decision.py) decides, for the contacts
with a send due that day or facts that changed since the day before (watch.py:
the others would get nothing that day), with the mails already "made" in the
scratch ledger counting toward the caps and the gap, as they would at send
time (the ledger, not the plan, is the truth). What falls on the day is
written to the scratch ledger with status `sent` (and a send a fresher
occurrence superseded, `cancelled`, as the send run ends it), so the next day
sees it: caps, journeys, clicks, win-backs and segment entries (a snapshot per
day) interact as they would in reality.

Events after the day are ignored (the Clock); a contact gets nothing before
their `customer_since` (decision.py).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from trouw.experiments import WINNER_PENDING
from trouw.planning.candidates import (
    CandidateFinder,
    ContactRow,
    contact_chunks,
    send_channel,
)
from trouw.planning.decision import decide_among, ends_on, open_candidates, sends_on
from trouw.planning.planner import CHUNK_SIZE, calendar_campaigns, count_contacts
from trouw.planning.policy import Rules, YearCalendar
from trouw.planning.policy import week_of as monday_of
from trouw.planning.watch import Watch, next_due
from trouw.project import Project
from trouw.segments import Clock, keep_day_snapshots, load_catalog
from trouw.sending.ledger import CANCELLED, COUNTED, SENT
from trouw.sending.winners import decide_winners
from trouw.store import ledger
from trouw.store.bulk import BulkInsert

LEDGER_COLUMNS = (
    "contact_id",
    "campaign",
    "step",
    "occurrence",
    "day",
    "template",
    "channel",
    "status",
    "message_id",
    "reserved_at",
    "sent_at",
    "due",
    "attempts",
)
TIMELINE_COLUMNS = ("contact_id", "day", "campaign", "step", "occurrence", "template", "channel")
# How far back the ledger matters for caps: a month, a week and any sane min_gap.
HISTORY_DAYS = 62


@dataclass(frozen=True)
class Pressure:
    """Mails per contact per period (week or month) over every contact and period."""

    period: str
    periods: int
    max: int
    p99: int
    mean: float


@dataclass
class SimulationSummary:
    """What a simulated period sent: per week and campaign, and the inbox pressure."""

    start: date
    end: date
    contacts: int = 0
    sends: int = 0
    per_week: dict[date, Counter[str]] = field(default_factory=dict)  # Monday -> campaign
    per_campaign: Counter[str] = field(default_factory=Counter)
    pressure: list[Pressure] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


@dataclass
class SentHistory:
    """One contact's ledger: the keys it holds and the recent sends that count for caps."""

    keys: set[tuple[str, str, str]] = field(default_factory=set)
    recent: list[tuple[date, str]] = field(default_factory=list)  # (day, campaign)


def ledger_history(
    connection: Connection,
    chunk: Sequence[ContactRow],
    since: date,
    only: Sequence[ContactRow] | None = None,
) -> dict[str, SentHistory]:
    """The ledger of a chunk of contacts: every key, and the sends counted since `since`.
    `only`: of these contacts of the chunk (when few)."""
    first, last = str(chunk[0].id), str(chunk[-1].id)
    query = select(
        ledger.c.contact_id,
        ledger.c.campaign,
        ledger.c.step,
        ledger.c.occurrence,
        ledger.c.day,
        ledger.c.status,
    ).where(ledger.c.contact_id >= first, ledger.c.contact_id <= last)
    if only is not None and len(only) < len(chunk) // 4:
        query = query.where(ledger.c.contact_id.in_([str(row.id) for row in only]))
    found: dict[str, SentHistory] = {}
    for contact_id, campaign, step, occurrence, day, status in connection.execute(query):
        history = found.get(contact_id)
        if history is None:
            history = found[contact_id] = SentHistory()
        history.keys.add((campaign, step, occurrence))
        if status in COUNTED and day >= since:
            history.recent.append((day, campaign))
    return found


def simulate_period(
    connection: Connection,
    project: Project,
    *,
    start: date,
    end: date,
    out_dir: Path,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[date], Any] | None = None,
    incremental: bool = True,
) -> SimulationSummary:
    """Replay `start` … `end` day by day on `connection`, which must be a scratch copy.

    Writes its sends into that connection's ledger, then the timeline
    (timeline.csv), sends per week and campaign (weeks.csv) and the pressure
    figures (pressure.csv) into `out_dir`. `progress` is called after each day.
    `incremental=False` decides every contact every day (the plain replay, which
    the incremental one must equal row for row: tests/planning/test_simulate_incremental.py).
    """
    catalog = load_catalog(project.segments_dir)
    campaigns = calendar_campaigns(project, catalog)
    rules = Rules.from_policy(project.settings.policy)
    tz = project.settings.tz
    # Rows the simulation writes have ids above the ledger's highest before it.
    first_id = int(connection.execute(select(func.coalesce(func.max(ledger.c.id), 0))).scalar_one())
    writer = BulkInsert(ledger, LEDGER_COLUMNS)
    calendars: dict[int, YearCalendar] = {}
    summary = SimulationSummary(start, end, contacts=count_contacts(connection))
    # Incremental: a contact is decided on a day only when something may be due for them
    # or their facts changed since the day before (watch.py); else the whole shop every day.
    watching = Watch(start.year) if incremental else None
    # The contacts do not change during the replay: read once, in the planner's chunks.
    chunks = list(contact_chunks(connection, chunk_size))
    day = start
    while day <= end:
        clock = Clock(day, tz)
        if day.year not in calendars:
            calendars[day.year] = YearCalendar(day.year, rules.quiet)
        calendar = calendars[day.year]
        finder = CandidateFinder(campaigns, catalog, clock, day.year, rules.defer_days)
        made_at = (
            datetime.combine(day, datetime.min.time(), tz).astimezone(UTC).replace(tzinfo=None)
        )
        # The day's runs pick the winners of A/B tests whose first wave ran its `after` by
        # the end of the day (simulated mails go out at its start).
        decide_winners(connection, campaigns, clock.end, day)
        since = day - timedelta(days=HISTORY_DAYS)
        if watching is not None and watching.year != day.year:
            watching = Watch(day.year)  # a new year: other campaigns' days, all decided anew
        if watching is not None:
            watching.start_day(connection, finder)
        for chunk in chunks:
            if watching is None:
                facts = finder.gather(connection, chunk)
            else:
                facts = watching.gather(connection, finder, chunk)
            rows: list[tuple[Any, ...]] = []
            due = list(chunk) if watching is None else watching.due(chunk, facts, day)
            histories = ledger_history(connection, chunk, since, due) if due else {}
            for contact in due:
                contact_id = str(contact.id)
                history = histories.get(contact_id) or SentHistory()
                candidates = open_candidates(finder, contact, facts, history.keys)
                decided = decide_among(
                    candidates, finder, rules, calendar, contact, facts,
                    sent=history.recent, due_by=day,
                )  # fmt: skip
                made: set[tuple[str, str, str]] = set()
                if decided:
                    channel = send_channel(contact)
                    for status, decisions in ((SENT, sends_on(day, decided)),
                                              (CANCELLED, ends_on(day, decided))):  # fmt: skip
                        for decision in decisions:
                            c = decision.candidate
                            if c.template == WINNER_PENDING:
                                continue  # the send waits for the winner, as at send time
                            made.add(c.key)
                            rows.append(
                                (contact_id, c.campaign, c.step, c.occurrence, day, c.template,
                                 channel, status, None, made_at, made_at, day, 0)
                            )  # fmt: skip
                if watching is not None:
                    watching.next_day(chunk, contact_id, next_due(candidates, made, contact, day))
            writer.run(connection, rows)
        # Today's members become the baseline for tomorrow's `entered` triggers.
        keep_day_snapshots(connection, finder.entered, catalog, clock)
        if progress is not None:
            progress(day)
        day += timedelta(days=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_timeline(connection, summary, first_id, out_dir)
    return summary


def _write_timeline(
    connection: Connection, summary: SimulationSummary, first_id: int, out_dir: Path
) -> None:
    """Stream the simulated sends, contact by contact: the timeline, the counts, the pressure."""
    query = (
        select(*(ledger.c[name] for name in TIMELINE_COLUMNS))
        .where(ledger.c.id > first_id, ledger.c.status == SENT)
        .order_by(ledger.c.contact_id, ledger.c.day, ledger.c.campaign, ledger.c.step)
    )
    weekly: Counter[int] = Counter()  # mails in a contact's week -> how many contact-weeks
    monthly: Counter[int] = Counter()
    current: str | None = None
    weeks: Counter[date] = Counter()
    months: Counter[tuple[int, int]] = Counter()
    timeline_path = out_dir / "timeline.csv"
    with timeline_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TIMELINE_COLUMNS)
        for row in connection.execution_options(yield_per=5000).execute(query):
            contact_id, day = row[0], row[1]
            if contact_id != current:
                weekly.update(weeks.values())
                monthly.update(months.values())
                weeks.clear()
                months.clear()
                current = contact_id
            weeks[monday_of(day)] += 1
            months[(day.year, day.month)] += 1
            summary.sends += 1
            summary.per_campaign[row[2]] += 1
            summary.per_week.setdefault(monday_of(day), Counter())[row[2]] += 1
            writer.writerow([day.isoformat() if i == 1 else v for i, v in enumerate(row)])
        weekly.update(weeks.values())
        monthly.update(months.values())
    week_count = (monday_of(summary.end) - monday_of(summary.start)).days // 7 + 1
    month_count = (
        (summary.end.year - summary.start.year) * 12 + (summary.end.month - summary.start.month) + 1
    )
    summary.pressure = [
        _pressure("week", week_count, weekly, summary.contacts),
        _pressure("month", month_count, monthly, summary.contacts),
    ]
    pressure_path = out_dir / "pressure.csv"
    with pressure_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("period", "periods", "contacts", "max", "p99", "mean"))
        for figure in summary.pressure:
            writer.writerow(
                (figure.period, figure.periods, summary.contacts, figure.max, figure.p99,
                 f"{figure.mean:.4f}")
            )  # fmt: skip
    weeks_path = out_dir / "weeks.csv"
    with weeks_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("week", "campaign", "sends"))
        for monday in sorted(summary.per_week):
            for campaign, count in sorted(summary.per_week[monday].items()):
                writer.writerow((monday.isoformat(), campaign, count))
    summary.files = [timeline_path, weeks_path, pressure_path]


def _pressure(period: str, periods: int, counts: Counter[int], contacts: int) -> Pressure:
    """Max, 99th percentile and mean of mails per (contact, period), zeros included.

    `counts` maps a number of mails to how many (contact, period) pairs got it;
    pairs that got nothing are every other contact and period.
    """
    population = contacts * periods
    histogram = Counter(counts)
    histogram[0] += max(0, population - sum(counts.values()))
    total = sum(histogram.values())
    if not total:
        return Pressure(period, periods, 0, 0, 0.0)
    rank = math.ceil(0.99 * total)  # nearest-rank percentile
    seen, p99 = 0, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            p99 = value
            break
    mails = sum(value * n for value, n in histogram.items())
    return Pressure(period, periods, max(histogram), p99, mails / total)


__all__ = [
    "Pressure",
    "SentHistory",
    "SimulationSummary",
    "ledger_history",
    "simulate_period",
]
