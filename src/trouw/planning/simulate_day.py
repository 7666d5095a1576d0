"""One simulated day: the shop-wide steps around it and the decisions for chunks of contacts.

`simulate` (simulate.py) runs these in one process, or splits the chunks over
worker processes (simulate_workers.py) that decide their chunks of a day while
the main process does the shop-wide steps between days. Both call the same
code here, so 1 and N workers write the same ledger.

Contacts are independent within a day, but for two shop-wide steps: the
winners of A/B tests (`begin`, from the first wave's sends and clicks) and the
segment snapshots that tell tomorrow who entered (`end`). A chunk's decisions
read only its own contacts' ledger rows (`ledger_history`), so chunks can be
decided in any order, by any process, once `begin` is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from trouw.experiments import WINNER_PENDING
from trouw.planning.candidates import CandidateFinder, ContactRow, send_channel
from trouw.planning.decision import decide_among, ends_on, open_candidates, sends_on
from trouw.planning.planner import calendar_campaigns
from trouw.planning.policy import Rules, YearCalendar
from trouw.planning.timeline import Sends
from trouw.planning.watch import Overnight, Places, Watch
from trouw.project import Project
from trouw.segments import Clock, keep_day_snapshots, load_catalog
from trouw.sending.ledger import CANCELLED, COUNTED, SENT
from trouw.sending.winners import decide_winners, share_tests
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
_CAMPAIGN, _STEP, _STATUS = (LEDGER_COLUMNS.index(c) for c in ("campaign", "step", "status"))
# How far back the ledger matters for caps: a month, a week and any sane min_gap.
HISTORY_DAYS = 62


@dataclass
class SentHistory:
    """One contact's ledger: the keys it holds and the recent sends that count for caps."""

    keys: set[tuple[str, str, str]] = field(default_factory=set)
    recent: list[tuple[date, str]] = field(default_factory=list)  # (day, campaign)

    def counted_since(self, day: date) -> list[tuple[date, str]]:
        """The recent sends from `day` on; those before it are let go (the days replayed
        only go forward)."""
        self.recent = [(d, campaign) for d, campaign in self.recent if d >= day]
        return self.recent


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


@dataclass
class Day:
    """What deciding the chunks of one day needs, made once for the day."""

    day: date
    finder: CandidateFinder
    calendar: YearCalendar
    made_at: datetime  # the simulated mails' reserved_at and sent_at: the day's start, UTC
    since: date  # sends from this day on count for the caps


class DayReplay:
    """The project's calendar read once, replayed a day at a time.

    `incremental`: after the first day, decide only the contacts with something due or
    new facts (watch.py); else every contact every day. The watch is per process: the
    one that decides a chunk must have decided it every day before."""

    def __init__(self, project: Project, *, incremental: bool = True) -> None:
        self.catalog = load_catalog(project.segments_dir)
        self.campaigns = calendar_campaigns(project, self.catalog)
        self.rules = Rules.from_policy(project.settings.policy)
        self.tz = project.settings.tz
        self.incremental = incremental
        self.watching: Watch | None = None
        # Incremental: each chunk's ledger (contact id -> history), read on the chunk's first
        # day and then kept up to date with the rows `decide` makes, which only this process
        # writes for these contacts (simulate_workers.py: a chunk stays in one worker).
        self.ledgers: dict[str, dict[str, SentHistory]] = {}
        self.writer = BulkInsert(ledger, LEDGER_COLUMNS)
        self.sends = Sends()  # what the chunks decided here sent, for the timeline
        self.tested = {(c.name, step.name) for c, step in share_tests(self.campaigns)}
        self.places = Places()  # of the chunks `overnight` asks about
        self._calendars: dict[int, YearCalendar] = {}

    def day(self, day: date) -> Day:
        """The day's finder and calendar (no I/O)."""
        clock = Clock(day, self.tz)
        calendar = self._calendars.get(day.year)
        if calendar is None:
            calendar = self._calendars[day.year] = YearCalendar(day.year, self.rules.quiet)
        finder = CandidateFinder(
            self.campaigns, self.catalog, clock, day.year, self.rules.defer_days
        )
        made_at = datetime.combine(day, datetime.min.time(), self.tz)
        return Day(
            day,
            finder,
            calendar,
            made_at.astimezone(UTC).replace(tzinfo=None),
            day - timedelta(days=HISTORY_DAYS),
        )

    def begin(self, connection: Connection, today: Day) -> None:
        """The shop-wide step before the day's decisions: the day's runs pick the winners
        of A/B tests whose first wave ran its `after` by the end of the day (simulated mails
        go out at its start)."""
        decide_winners(connection, self.campaigns, today.finder.clock.end, today.day)

    def end(self, connection: Connection, today: Day) -> None:
        """The shop-wide step after the day: today's members become the baseline for
        tomorrow's `entered` triggers."""
        keep_day_snapshots(connection, today.finder.entered, self.catalog, today.finder.clock)

    def watch(
        self,
        connection: Connection,
        today: Day,
        chunks: Sequence[Sequence[ContactRow]],
        overnight: Overnight | None = None,
    ) -> None:
        """Start the day in this process's watch of its `chunks` (a new year: all decided
        anew), with what changed `overnight` if the caller asked it already."""
        if not self.incremental:
            return
        if self.watching is None or self.watching.year != today.day.year:
            self.watching = Watch(today.day.year)
        self.watching.start_day(connection, today.finder, chunks, overnight)

    def overnight(
        self, connection: Connection, today: Day, chunks: Sequence[Sequence[ContactRow]]
    ) -> Overnight | None:
        """What changed overnight before the day, for the whole shop's `chunks`: for the
        processes that `watch` them, asked ahead (None: the day is decided anew, the first
        of a year, or every day in the plain replay)."""
        if not self.incremental or (today.day.month, today.day.day) == (1, 1):
            return None
        return Overnight.ask(connection, today.finder, chunks, self.places)

    def decide(
        self, connection: Connection, today: Day, chunk: Sequence[ContactRow]
    ) -> list[tuple[Any, ...]]:
        """The ledger rows (LEDGER_COLUMNS) the chunk's contacts get on the day: what falls
        on it is `sent`, a send a fresher occurrence superseded `cancelled`. Call `watch`
        for the day first."""
        day, finder, watching = today.day, today.finder, self.watching
        if watching is None:
            facts = finder.gather(connection, chunk)
            due: list[ContactRow] = list(chunk)
        else:
            facts = watching.gather(connection, finder, chunk)
            due = watching.due(chunk, facts, day)
        histories = self.histories(connection, today, chunk, due)
        rows: list[tuple[Any, ...]] = []
        made_at = today.made_at
        for contact in due:
            contact_id = str(contact.id)
            history = histories.get(contact_id) or SentHistory()
            kept = None if watching is None else watching.candidates(finder, contact, facts)
            candidates = open_candidates(finder, contact, facts, history.keys, kept)
            decided = None if watching is None else watching.reused(contact_id, candidates)
            if decided is None:
                decided = decide_among(
                    candidates, finder, self.rules, today.calendar, contact, facts,
                    sent=history.counted_since(today.since), due_by=day,
                )  # fmt: skip
            made: set[tuple[str, str, str]] = set()
            counted: list[tuple[date, str]] = []
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
                        if status in COUNTED:
                            counted.append((day, c.campaign))
            if made:  # the contact's ledger as the next day reads it
                history = histories.setdefault(contact_id, SentHistory())
                history.keys |= made
                history.recent.extend(counted)
            if watching is not None:
                watching.decided(chunk, finder, contact, facts, candidates, decided, made)
        return rows

    def histories(
        self,
        connection: Connection,
        today: Day,
        chunk: Sequence[ContactRow],
        due: Sequence[ContactRow],
    ) -> dict[str, SentHistory]:
        """The ledger of the chunk's `due` contacts (at least), which `decide` brings up to
        date with the rows it makes: read from the database each day in the plain replay;
        in the incremental one read on the chunk's first day and kept (`ledgers`)."""
        if self.watching is None:
            return ledger_history(connection, chunk, today.since, due) if due else {}
        key = str(chunk[0].id)
        kept = self.ledgers.get(key)
        if kept is None:
            kept = self.ledgers[key] = ledger_history(connection, chunk, today.since)
        return kept

    def keep(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Keep the `sent` ones of a chunk's rows of the day for the timeline (`sends`);
        return those a later day reads in the scratch ledger, to `write` there: every row
        in the plain replay, which reads its contacts' ledger anew each day; in the
        incremental one, which keeps it in memory, the sends of steps with an A/B test, from
        which `begin` picks the winners."""
        self.sends.add(rows)
        if not self.incremental:
            return list(rows)
        tested = self.tested
        if not tested:
            return []
        return [r for r in rows if r[_STATUS] == SENT and (r[_CAMPAIGN], r[_STEP]) in tested]

    def write(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self.writer.run(connection, rows)


__all__ = [
    "HISTORY_DAYS",
    "LEDGER_COLUMNS",
    "Day",
    "DayReplay",
    "SentHistory",
    "ledger_history",
]
