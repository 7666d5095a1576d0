"""A dry run of a period, day by day: who would get what, and how much mail per inbox.

Run on a scratch copy of the data (scratch.py), never on the real database.
For each day, contacts go in chunks as the planner's (read once: they do not
change during the replay); the planner's candidate finder (candidates.py)
answers, as of that day, what every campaign wants to send, and the planner's
policy (policy.py `resolve`, through decision.py) decides, for the contacts
with a send due that day or facts that changed since the day before (watch.py:
the others would get nothing that day), with the mails already "made" counting
toward the caps and the gap, as they would at send time (the ledger, not the
plan, is the truth): the scratch copy's ledger from before the period, and the
sends simulated since, which each process keeps for the contacts it decides
(simulate_day.py `DayReplay`). What falls on the day is `sent` (and a send a
fresher occurrence superseded, `cancelled`, as the send run ends it), so the
next day sees it: caps, journeys, clicks, win-backs and segment entries (a
snapshot per day) interact as they would in reality. Only the sends a
shop-wide step reads are written to the scratch ledger (those of A/B tests,
whose winners a day's start picks from the first wave), or all of them in the
plain replay, which reads each day's ledger anew.

Events after the day are ignored (the Clock); a contact gets nothing before
their `customer_since` (decision.py).

A day's decisions and the shop-wide steps around it are in simulate_day.py;
with `workers` > 1 the chunks are decided in worker processes, the days in
lockstep (simulate_workers.py), with the same result. The files it writes are
timeline.py's, from the sends kept in memory, a chunk at a time (by the workers
side by side, when there are).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from trouw.planning.candidates import ContactRow, contact_chunks
from trouw.planning.collector import rarer_collections
from trouw.planning.planner import CHUNK_SIZE, count_contacts
from trouw.planning.scratch import scratch_url
from trouw.planning.simulate_day import DayReplay, SentHistory, ledger_history
from trouw.planning.simulate_workers import Crew
from trouw.planning.timeline import (
    Pressure,
    Tally,
    pressures,
    write_pressure,
    write_weeks,
)
from trouw.project import Project

TIMELINE = "timeline.csv"


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

    Writes the timeline of its sends (timeline.csv), sends per week and campaign
    (weeks.csv) and the pressure figures (pressure.csv) into `out_dir`, and into
    that connection's ledger the sends a later day reads there (DayReplay.keep).
    `progress` is called after each day. `incremental=False` decides every contact
    every day (the plain replay, which the incremental one must equal send for send:
    tests/planning/test_simulate_incremental.py).

    `workers` > 1 splits the contacts' chunks over that many processes
    (simulate_workers.py), which open the scratch copy themselves: the days are then
    committed one by one, so `connection` must not be in a transaction (a fresh
    `scratch.connect()`). 1 replays in this process, in `connection`'s transaction
    (begun here if none is). Both write the same ledger rows and files.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    replay = DayReplay(project, incremental=incremental)
    if workers > 1 and connection.in_transaction():
        raise ValueError(
            "simulate with workers commits day by day: give a connection outside a transaction"
        )
    with connection.begin() if not connection.in_transaction() else nullcontext():
        summary = SimulationSummary(start, end, contacts=count_contacts(connection))
    # More workers than chunks would have nothing to do.
    workers = min(workers, max(1, math.ceil(summary.contacts / chunk_size)))
    out_dir.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        tally = _replay_in_workers(
            connection, project, replay, start, end, chunk_size, workers, progress, out_dir
        )
    else:
        with connection.begin() if not connection.in_transaction() else nullcontext():
            # The contacts do not change during the replay: read once, in the planner's chunks.
            chunks = list(contact_chunks(connection, chunk_size))
            _replay_here(connection, replay, start, end, chunks, progress)
            tally = replay.sends.write_timeline(chunks, out_dir / TIMELINE)
    _write_files(summary, tally, out_dir)
    return summary


def _replay_here(
    connection: Connection,
    replay: DayReplay,
    start: date,
    end: date,
    chunks: Sequence[Sequence[ContactRow]],
    progress: Callable[[date], Any] | None,
) -> None:
    """Every day in this process and `connection`'s transaction."""
    day = start
    with rarer_collections():
        while day <= end:
            today = replay.day(day)
            replay.begin(connection, today)
            replay.watch(connection, today, chunks)
            for chunk in chunks:
                replay.write(connection, replay.keep(replay.decide(connection, today, chunk)))
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
    out_dir: Path,
) -> Tally:
    """Every day in lockstep: the shop-wide steps here, each committed before the workers
    (or the next day) read them, and what changes overnight asked a day ahead; the chunks
    in the workers, which then write their timeline side by side."""
    url = scratch_url(connection.engine)
    with connection.begin():
        chunks = list(contact_chunks(connection, chunk_size))  # to ask what changes overnight
    with (
        Crew(
            url,
            project,
            workers=workers,
            chunk_size=chunk_size,
            incremental=replay.incremental,
            chunks=chunks,
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
        return crew.write_timeline(out_dir / TIMELINE, len(chunks))


def _write_files(summary: SimulationSummary, tally: Tally, out_dir: Path) -> None:
    """The summary's figures from the timeline's `tally`, and weeks.csv and pressure.csv."""
    for (monday, campaign), count in tally.sends.items():
        summary.sends += count
        summary.per_campaign[campaign] += count
        summary.per_week.setdefault(monday, Counter())[campaign] += count
    summary.pressure = pressures(tally, summary.contacts, summary.start, summary.end)
    weeks_path, pressure_path = out_dir / "weeks.csv", out_dir / "pressure.csv"
    write_pressure(pressure_path, summary.contacts, summary.pressure)
    write_weeks(weeks_path, summary.per_week)
    summary.files = [out_dir / TIMELINE, weeks_path, pressure_path]


__all__ = [
    "Pressure",
    "SentHistory",
    "SimulationSummary",
    "ledger_history",
    "simulate_period",
]
