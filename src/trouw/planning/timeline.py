"""What a simulation writes: its sends contact by contact (timeline.csv), the sends per week
and campaign (weeks.csv) and the mails per inbox per week and month (pressure.csv).

The sends are kept in memory by the process that decides them (`Sends`), and the timeline
is written a chunk of contacts at a time (the planner's chunks, in id order), each contact's
sends in the file's order, counted as they are written (`Tally`). One process writes the
chunks one after the other into the file (`Sends.write_timeline`); with workers
(simulate_workers.py) each writes its own chunks into part files side by side, and the main
process joins the parts in chunk order (`join_parts`), so the file is the same. The counts
are sums over contacts, so the workers' tallies add up.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from trouw.planning.candidates import ContactRow
from trouw.planning.policy import week_of as monday_of
from trouw.sending.ledger import SENT

TIMELINE_COLUMNS = ("contact_id", "day", "campaign", "step", "occurrence", "template", "channel")


@dataclass
class Tally:
    """What the written sends add up to: contact-periods by their number of mails, and sends
    per (Monday, campaign)."""

    weekly: Counter[int] = field(default_factory=Counter)  # mails in a week -> contact-weeks
    monthly: Counter[int] = field(default_factory=Counter)
    sends: Counter[tuple[date, str]] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.weekly.update(other.weekly)
        self.monthly.update(other.monthly)
        self.sends.update(other.sends)


class Sends:
    """The simulated sends of the contacts one process decides, kept as the days go by
    (`add`), written to the timeline a chunk at a time at the end (`write_chunk`).

    Kept here rather than read back from the scratch ledger, which then only needs the rows
    a later day reads (simulate_day.py `DayReplay.keep`): without writing every send there
    and reading them back, a simulated year of 100,000 contacts (2 workers, 464,357 sends,
    about 55 MB kept here) took 15-25% less time (nine alternated pairs, e.g. 27.8 s
    against 34.2 s)."""

    def __init__(self) -> None:
        # contact id -> its sends (day, campaign, step, occurrence, template, channel)
        self.by_contact: dict[str, list[tuple[date, str, str, str, str, str]]] = {}

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Keep the `sent` ones of a day's ledger rows (simulate_day.py LEDGER_COLUMNS)."""
        by_contact = self.by_contact
        for contact_id, campaign, step, occurrence, day, template, channel, status, *_ in rows:
            if status == SENT:
                sends = by_contact.get(contact_id)
                if sends is None:
                    sends = by_contact[contact_id] = []
                sends.append((day, campaign, step, occurrence, template, channel))

    def write_chunk(self, chunk: Sequence[ContactRow], writer: Any) -> Tally:
        """Write the sends of the chunk's contacts to the csv `writer`, by contact in the
        chunk's order (the database's id order), then day, down to the occurrence (the same
        for any order they came in), and count them."""
        tally = Tally()
        weekly, monthly, sends = tally.weekly, tally.monthly, tally.sends
        days: dict[date, tuple[str, date, tuple[int, int]]] = {}  # day -> text, Monday, month
        by_contact = self.by_contact
        for row in chunk:
            contact_id = str(row.id)
            kept = by_contact.get(contact_id)
            if kept is None:
                continue
            weeks: Counter[date] = Counter()
            months: Counter[tuple[int, int]] = Counter()
            for day, campaign, *rest in sorted(kept):
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
        return tally

    def write_timeline(self, chunks: Iterable[Sequence[ContactRow]], path: Path) -> Tally:
        """timeline.csv of all `chunks`, in this process."""
        tally = Tally()
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(TIMELINE_COLUMNS)
            for chunk in chunks:
                tally.add(self.write_chunk(chunk, writer))
        return tally

    def write_part(self, chunk: Sequence[ContactRow], number: int, folder: Path) -> Tally:
        """The timeline of chunk `number` alone, without the header, into its part file."""
        with part_path(folder, number).open("w", encoding="utf-8", newline="") as handle:
            return self.write_chunk(chunk, csv.writer(handle, lineterminator="\n"))


def part_path(folder: Path, number: int) -> Path:
    """Where a worker writes the timeline of chunk `number` (counted from 0)."""
    return folder / f"part-{number:06d}.csv"


def join_parts(folder: Path, count: int, path: Path) -> None:
    """timeline.csv from the part files of `count` chunks, in chunk order."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerow(TIMELINE_COLUMNS)
        for number in range(count):
            with part_path(folder, number).open(encoding="utf-8", newline="") as part:
                shutil.copyfileobj(part, handle, 1 << 20)


@dataclass(frozen=True)
class Pressure:
    """Mails per contact per period (week or month) over every contact and period."""

    period: str
    periods: int
    max: int
    p99: int
    mean: float


def pressures(tally: Tally, contacts: int, start: date, end: date) -> list[Pressure]:
    """The week's and the month's pressure over `contacts` from `start` to `end`."""
    weeks = (monday_of(end) - monday_of(start)).days // 7 + 1
    months = (end.year - start.year) * 12 + (end.month - start.month) + 1
    return [
        _pressure("week", weeks, tally.weekly, contacts),
        _pressure("month", months, tally.monthly, contacts),
    ]


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


def write_pressure(path: Path, contacts: int, figures: Sequence[Pressure]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("period", "periods", "contacts", "max", "p99", "mean"))
        for figure in figures:
            writer.writerow(
                (figure.period, figure.periods, contacts, figure.max, figure.p99,
                 f"{figure.mean:.4f}")
            )  # fmt: skip


def write_weeks(path: Path, per_week: Mapping[date, Counter[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("week", "campaign", "sends"))
        for monday in sorted(per_week):
            for campaign, count in sorted(per_week[monday].items()):
                writer.writerow((monday.isoformat(), campaign, count))


__all__ = [
    "TIMELINE_COLUMNS",
    "Pressure",
    "Sends",
    "Tally",
    "join_parts",
    "part_path",
    "pressures",
    "write_pressure",
    "write_weeks",
]
