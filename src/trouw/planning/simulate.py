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

A day's decisions and the shop-wide steps around it are in simulate_day.py;
with `workers` > 1 the chunks are decided in worker processes, the days in
lockstep (simulate_workers.py), with the same result.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from trouw.planning.candidates import contact_chunks
from trouw.planning.collector import rarer_collections
from trouw.planning.planner import CHUNK_SIZE, count_contacts
from trouw.planning.policy import week_of as monday_of
from trouw.planning.scratch import scratch_url
from trouw.planning.simulate_day import DayReplay, SentHistory, ledger_history
from trouw.planning.simulate_workers import Crew
from trouw.project import Project
from trouw.sending.ledger import SENT
from trouw.store import ledger

TIMELINE_COLUMNS = ("contact_id", "day", "campaign", "step", "occurrence", "template", "channel")


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
    workers: int = 1,
) -> SimulationSummary:
    """Replay `start` … `end` day by day on `connection`, which must be a scratch copy.

    Writes its sends into that connection's ledger, then the timeline
    (timeline.csv), sends per week and campaign (weeks.csv) and the pressure
    figures (pressure.csv) into `out_dir`. `progress` is called after each day.
    `incremental=False` decides every contact every day (the plain replay, which
    the incremental one must equal row for row: tests/planning/test_simulate_incremental.py).

    `workers` > 1 splits the contacts' chunks over that many processes
    (simulate_workers.py), which open the scratch copy themselves: the days are then
    committed one by one, so `connection` must not be in a transaction (a fresh
    `scratch.connect()`). 1 replays in this process, in `connection`'s transaction
    (begun here if none is). Both write the same ledger and files.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    replay = DayReplay(project, incremental=incremental)
    if workers > 1 and connection.in_transaction():
        raise ValueError(
            "simulate with workers commits day by day: give a connection outside a transaction"
        )
    with connection.begin() if not connection.in_transaction() else nullcontext():
        # Rows the simulation writes have ids above the ledger's highest before it.
        first_id = int(
            connection.execute(select(func.coalesce(func.max(ledger.c.id), 0))).scalar_one()
        )
        summary = SimulationSummary(start, end, contacts=count_contacts(connection))
    # More workers than chunks would have nothing to do.
    workers = min(workers, max(1, math.ceil(summary.contacts / chunk_size)))
    if workers > 1:
        _replay_in_workers(connection, project, replay, start, end, chunk_size, workers, progress)
        with connection.begin():
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_timeline(connection, summary, first_id, out_dir)
        return summary
    with connection.begin() if not connection.in_transaction() else nullcontext():
        _replay_here(connection, replay, start, end, chunk_size, progress)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_timeline(connection, summary, first_id, out_dir)
    return summary


def _replay_here(
    connection: Connection,
    replay: DayReplay,
    start: date,
    end: date,
    chunk_size: int,
    progress: Callable[[date], Any] | None,
) -> None:
    """Every day in this process and `connection`'s transaction."""
    # The contacts do not change during the replay: read once, in the planner's chunks.
    chunks = list(contact_chunks(connection, chunk_size))
    day = start
    with rarer_collections():
        while day <= end:
            today = replay.day(day)
            replay.begin(connection, today)
            replay.watch(connection, today, chunks)
            for chunk in chunks:
                replay.write(connection, replay.decide(connection, today, chunk))
            replay.end(connection, today)
            if progress is not None:
                progress(day)
            day += timedelta(days=1)


def _replay_in_workers(
    connection: Connection,
    project: Project,
    replay: DayReplay,
    start: date,
    end: date,
    chunk_size: int,
    workers: int,
    progress: Callable[[date], Any] | None,
) -> None:
    """Every day in lockstep: the shop-wide steps here, each committed before the workers
    (or the next day) read them, and what changes overnight asked a day ahead; the chunks
    in the workers."""
    url = scratch_url(connection.engine)
    with connection.begin():
        chunks = list(contact_chunks(connection, chunk_size))  # to ask what changes overnight
    with (
        Crew(
            url, project, workers=workers, chunk_size=chunk_size, incremental=replay.incremental
        ) as crew,
        rarer_collections(),
    ):
        today, overnight = replay.day(start), None
        while today.day <= end:
            with connection.begin():
                replay.begin(connection, today)
            crew.start_day(today.day, overnight)
            tomorrow, overnight = replay.day(today.day + timedelta(days=1)), None
            if tomorrow.day <= end:  # asked while the workers decide the day
                with connection.begin():
                    overnight = replay.overnight(connection, tomorrow, chunks)
            crew.finish_day()
            with connection.begin():
                replay.end(connection, today)
            if progress is not None:
                progress(today.day)
            today = tomorrow


def _write_timeline(
    connection: Connection, summary: SimulationSummary, first_id: int, out_dir: Path
) -> None:
    """Stream the simulated sends, contact by contact: the timeline, the counts, the pressure."""
    query = (
        select(*(ledger.c[name] for name in TIMELINE_COLUMNS))
        .where(ledger.c.id > first_id, ledger.c.status == SENT)
        # Down to the occurrence: the same for any order the rows were written in (workers).
        .order_by(
            ledger.c.contact_id, ledger.c.day, ledger.c.campaign, ledger.c.step, ledger.c.occurrence
        )
    )
    weekly: Counter[int] = Counter()  # mails in a contact's week -> how many contact-weeks
    monthly: Counter[int] = Counter()
    current: str | None = None
    weeks: Counter[date] = Counter()
    months: Counter[tuple[int, int]] = Counter()
    sends: Counter[tuple[date, str]] = Counter()  # (Monday, campaign) -> sends
    days: dict[date, tuple[str, date, tuple[int, int]]] = {}  # day -> its text, Monday, month
    timeline_path = out_dir / "timeline.csv"
    with timeline_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TIMELINE_COLUMNS)
        for contact_id, day, campaign, *rest in connection.execution_options(
            yield_per=5000
        ).execute(query):
            if contact_id != current:
                weekly.update(weeks.values())
                monthly.update(months.values())
                weeks.clear()
                months.clear()
                current = contact_id
            known = days.get(day)
            if known is None:
                known = days[day] = (day.isoformat(), monday_of(day), (day.year, day.month))
            text, monday, month = known
            weeks[monday] += 1
            months[month] += 1
            sends[(monday, campaign)] += 1
            writer.writerow((contact_id, text, campaign, *rest))
        weekly.update(weeks.values())
        monthly.update(months.values())
    for (monday, campaign), count in sends.items():
        summary.sends += count
        summary.per_campaign[campaign] += count
        summary.per_week.setdefault(monday, Counter())[campaign] += count
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
