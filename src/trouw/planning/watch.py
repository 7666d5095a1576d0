"""Which contacts a day of `simulate` must decide: those with something due, or new facts.

Deciding every contact every day costs a plan a day. But when nothing the
database says about a contact changed since the day before (their ChunkFacts:
segments, stops, pauses, purchases, triggering events, entries, best hours),
their candidates stay the same sends on the same due days, except those whose
due day passed: these come back as due today (caught up) or not at all. So a
contact with nothing due today and no new facts gets nothing today, and
`decide(due_by=day)` would say so. The watch keeps, per chunk, yesterday's
facts and each contact's next due day (`next_due`), and hands out the
contacts due or changed. A new year starts over (other scheduled days).

Yesterday's facts are also where today's start: the facts from events are
brought up to date with the day's events (the contacts who have any, of whom
those whose facts changed count as changed: a click without a trigger's tag
changes nothing), and a segment's members asked again only for the contacts
who may have joined or left it overnight (segments/moving.py), which is few
of the shop on most days. Both are asked once a day for all chunks
(`Overnight`), not chunk by chunk; with workers, by the main process for all
of them. A contact woken only by a send due, with the same candidates as when
last decided, gets those decisions again (`reused`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, case, select

from trouw.planning.candidates import (
    PAUSE,
    CandidateFinder,
    ChunkFacts,
    ContactRow,
    EventRow,
    Run,
    Runs,
)
from trouw.planning.decision import stop_reasons
from trouw.planning.policy import DEFERRED, DROPPED, PLANNED, Candidate, Decision
from trouw.segments import Clock, members_query
from trouw.segments.moving import overnight
from trouw.store import contacts, events
from trouw.store.among import among

# ChunkFacts fields by shape; `changed` covers them all (a new field must be added here:
# tests/planning/test_simulate_incremental.py checks).
ID_SETS_BY_NAME = ("members", "entered")  # name -> set of contact ids
VALUES_BY_ID = ("stopped", "paused", "last_purchase", "best_hours")  # contact id -> value
SETS_BY_ID = ("topics_left",)  # contact id -> set
ID_SETS = ("suppressed",)
VALUES_BY_NAME_AND_ID = ("trigger_events",)  # name -> contact id -> value
FACT_FIELDS = frozenset(
    (*ID_SETS_BY_NAME, *VALUES_BY_ID, *SETS_BY_ID, *ID_SETS, *VALUES_BY_NAME_AND_ID)
)


def _changed_values(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Keys whose value differs, or that only one side has."""
    if before == after:
        return set()
    missing = object()
    return {
        key
        for key in before.keys() | after.keys()
        if before.get(key, missing) != after.get(key, missing)
    }


def changed(
    before: ChunkFacts, after: ChunkFacts, known: Collection[str] | None = None
) -> set[str]:
    """The contact ids whose facts differ between two gatherings of the same chunk.
    `known`: when `after` took over `before`'s facts from events and segments' members
    (Watch.gather, `taken_over`), the contacts whose facts differ there: they are all
    counted as changed, and only the dated facts `before` kept are compared."""
    found: set[str] = set()
    if known is not None:
        found.update(known)
        before, after = _dated(before), _dated(after, before.members.keys())
    for name in ID_SETS_BY_NAME:
        old: dict[str, set[str]] = getattr(before, name)
        new: dict[str, set[str]] = getattr(after, name)
        for key in old.keys() | new.keys():
            found |= old.get(key, set()) ^ new.get(key, set())
    for name in (*VALUES_BY_ID, *SETS_BY_ID):
        found |= _changed_values(getattr(before, name), getattr(after, name))
    for name in ID_SETS:
        found |= getattr(before, name) ^ getattr(after, name)
    for name in VALUES_BY_NAME_AND_ID:
        old_values: dict[str, dict[str, Any]] = getattr(before, name)
        new_values: dict[str, dict[str, Any]] = getattr(after, name)
        for key in old_values.keys() | new_values.keys():
            found |= _changed_values(old_values.get(key, {}), new_values.get(key, {}))
    return found


def next_due(
    candidates: Sequence[Candidate],
    made: Collection[tuple[str, str, str]],
    contact: ContactRow,
    day: date,
    decided: Sequence[Decision] = (),
    late: Collection[tuple[str, str, str]] = (),
    validity: Mapping[str, int] | None = None,
    stops: Collection[str] = (),
) -> date | None:
    """The first day after `day` on which the contact may have a send due, facts unchanged.

    `candidates`: the contact's open candidates as of `day` (decision.open_candidates);
    `made`: the keys `day` wrote; `decided`: the day's decisions on them. A candidate due
    later is due on its day. One due on `day` for the first time (not `late`: caught up
    from an earlier day) that the decision put on a later day goes on that day, or ends
    the day after the last it may be caught up (`validity`: campaign -> days) if sooner:
    until then, and until the next candidate's due day, the same candidates in the same
    order meet the same ledger, so every day decides the same (and sends nothing). One
    dropped because the contact gets nothing of its kind (its reason is one of `stops`:
    decision.stop_reasons) is dropped again every day their facts hold. Any
    other candidate due by `day` (caught up, dropped for want of room, waiting for a
    winner) may go tomorrow. A contact not yet a customer may have sends caught up on the
    day they become one. None: nothing, unless their facts change.
    """
    placed: dict[tuple[str, str, str], Decision] | None = None  # made once one is due by `day`
    tomorrow = day + timedelta(days=1)
    first: date | None = None
    for candidate in candidates:
        when = candidate.due
        if first is not None and when >= first:
            continue  # changes nothing
        key = candidate.key
        if key in made:
            continue
        if when <= day:
            when = tomorrow
            if placed is None:
                placed = {decision.candidate.key: decision for decision in decided}
            decision = placed.get(key)
            if decision is not None and decision.status == DROPPED and decision.reason in stops:
                continue
            if (
                validity is not None
                and key not in late
                and decision is not None
                and decision.status in (PLANNED, DEFERRED)
                and decision.day > day
            ):
                ends = day + timedelta(days=validity[candidate.campaign] + 1)
                when = min(decision.day, ends)
        if first is None or when < first:
            first = when
    joined = contact.customer_since
    if isinstance(joined, date) and joined > day and (first is None or joined < first):
        first = joined
    if first is not None and first <= day:
        first = tomorrow
    return first


# The facts `CandidateFinder.gather_from_events` fills: they change only with new events.
FROM_EVENTS = ("stopped", "topics_left", "paused", "suppressed", "last_purchase", "trigger_events")


def from_events_of(facts: ChunkFacts, contact_id: str) -> tuple[Any, ...]:
    """One contact's facts from events (FROM_EVENTS), to compare before and after new ones."""
    found: list[Any] = []
    for name in FROM_EVENTS:
        value = getattr(facts, name)
        if name in ID_SETS:
            found.append(contact_id in value)
        elif name in VALUES_BY_NAME_AND_ID:
            found.append(
                sorted((key, ids[contact_id]) for key, ids in value.items() if contact_id in ids)
            )
        else:  # VALUES_BY_ID, SETS_BY_ID: a set is copied, as later events may add to it
            one = value.get(contact_id)
            found.append(frozenset(one) if isinstance(one, set) else one)
    return tuple(found)


def _dated(facts: ChunkFacts, segments: Collection[str] | None = None) -> ChunkFacts:
    """The facts without those from events (and with only these `segments`' members)."""
    members = facts.members
    if segments is not None:
        members = {name: members[name] for name in segments if name in members}
    return ChunkFacts(members=members, entered=facts.entered, best_hours=facts.best_hours)


def taken_over(before: ChunkFacts) -> ChunkFacts:
    """New facts holding `before`'s facts from events, which are taken over, not copied (a
    chunk's are large, the day's changes few): `before` keeps only its dated facts, which
    `changed` compares (Watch.gather takes over segments' members the same way)."""
    facts = ChunkFacts()
    for name in FROM_EVENTS:
        old = getattr(before, name)
        setattr(facts, name, old)
        setattr(before, name, type(old)())
    return facts


class Places:
    """Chunks' contact ids and their places in them, worked out once per chunk."""

    def __init__(self) -> None:
        self.found: dict[str, dict[str, int]] = {}

    def __call__(self, chunk: Sequence[ContactRow]) -> dict[str, int]:
        key = str(chunk[0].id)
        found = self.found.get(key)
        if found is None:
            found = self.found[key] = {str(row.id): i for i, row in enumerate(chunk)}
        return found


@dataclass
class Overnight:
    """What changed for the whole shop from the end of the day before to the end of `day`, as
    `Watch.gather` needs it to bring a chunk's facts up to date: the day's events the finder
    reads (`events`: contact id -> theirs, in time order), and per segment those who may
    have joined or left it (segments/moving.py; None: anyone may have); then, for the chunks
    brought up to date rather than gathered whole (at most half of their contacts changed),
    their contacts with new events (`ahead`) and each segment's members among their
    contacts who may have moved (`asked`), in a few statements for all chunks rather than a
    few per chunk.

    It reads only events and contacts, which a replay does not change: asked once a day for
    all chunks (`ask`), also ahead of the day and in another process than the one that
    decides them (simulate_workers.py)."""

    day: date
    events: dict[str, list[EventRow]] = field(default_factory=dict)
    moved: dict[str, set[str] | None] = field(default_factory=dict)
    ahead: dict[str, set[str]] = field(default_factory=dict)
    asked: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def ask(
        cls,
        connection: Connection,
        finder: CandidateFinder,
        chunks: Sequence[Sequence[ContactRow]],
        places: Places,
    ) -> Overnight:
        """What changed overnight up to the finder's day, for `chunks`."""
        day = finder.clock.as_of
        query = (
            select(
                events.c.contact_id, events.c.type, events.c.tag, events.c.occurred_at,
                case((events.c.type == PAUSE, events.c.properties)),  # the only ones read
            )
            .where(
                events.c.type.in_(sorted(finder.event_types())),
                events.c.occurred_at >= Clock(day - timedelta(days=1), finder.clock.tz).end,
                events.c.occurred_at < finder.clock.end,
            )
            .order_by(events.c.occurred_at, events.c.id)
        )  # fmt: skip
        found = cls(day)
        for contact_id, *rest in connection.execute(query):
            found.events.setdefault(str(contact_id), []).append((str(contact_id), *rest))
        dialect = connection.dialect.name
        for name in finder.segments:
            moving = overnight(
                finder.catalog.get(name), finder.catalog, day, finder.clock.tz, dialect
            )
            found.moved[name] = (
                None if moving is None else set(map(str, connection.execute(moving).scalars()))
            )
        found._ask_ahead(connection, finder, chunks, places)
        return found

    def part(self, ids: Collection[str]) -> Overnight:
        """What of this concerns the contacts `ids` alone (a worker's chunks'): all that
        `Watch.gather` reads for their chunks, and no more to pass to that worker."""
        return Overnight(
            self.day,
            events={i: rows for i, rows in self.events.items() if i in ids},
            moved={
                name: None if moved is None else {i for i in moved if i in ids}
                for name, moved in self.moved.items()
            },
            ahead={key: found for key, found in self.ahead.items() if key in ids},
            asked={name: {i for i in found if i in ids} for name, found in self.asked.items()},
        )

    def _ask_ahead(
        self,
        connection: Connection,
        finder: CandidateFinder,
        chunks: Sequence[Sequence[ContactRow]],
        places: Places,
    ) -> None:
        moving = {name: moved for name, moved in self.moved.items() if moved}
        asking: dict[str, set[str]] = {name: set() for name in moving}
        for chunk in chunks:
            in_chunk = places(chunk)
            ids = in_chunk.keys() & self.events.keys()
            if len(ids) > len(chunk) // 2:
                continue  # gathered whole
            self.ahead[str(chunk[0].id)] = ids
            for name, moved in moving.items():
                again = in_chunk.keys() & moved
                if len(again) <= len(chunk) // 2:
                    asking[name] |= again
        dialect, catalog = connection.dialect.name, finder.catalog
        for name, ids in asking.items():
            if not ids:  # every chunk it moved in is gathered whole
                self.asked[name] = set()
                continue
            query = members_query(catalog.get(name), catalog, finder.clock, dialect)
            found = connection.execute(query.where(among(contacts.c.id, dialect)), {"ids": ids})
            self.asked[name] = set(map(str, found.scalars()))


@dataclass
class Watch:
    """Per chunk (by its first contact id): the facts of the day before and the next due
    days of its contacts, for one year; the day before (`watched`), and what changed since
    (`overnight`)."""

    year: int
    facts: dict[str, ChunkFacts] = field(default_factory=dict)
    wake: dict[str, dict[str, date]] = field(default_factory=dict)
    watched: date | None = None
    overnight: Overnight | None = None  # None: today does not follow `watched`
    # (chunk, day) -> contacts whose next due day it was when set (wake says if it still is)
    waking: dict[tuple[str, date], set[str]] = field(default_factory=dict)
    places: Places = field(default_factory=Places)
    # chunk -> the contacts whose facts changed where they were taken over today
    known: dict[str, set[str]] = field(default_factory=dict)
    # contact id -> their runs (CandidateFinder.runs), kept while their facts hold
    runs: dict[str, Runs] = field(default_factory=dict)
    # contact id -> their open candidates and the decisions on them when last decided, less
    # the sends that day made, kept while their facts hold (`reused`)
    last: dict[str, tuple[Sequence[Candidate], Sequence[Decision]]] = field(default_factory=dict)
    # the keys of the contact `candidates` was last asked about that are caught up today
    late: set[tuple[str, str, str]] = field(default_factory=set)
    validity: dict[str, int] = field(default_factory=dict)  # campaign -> days, of the day

    def start_day(
        self,
        connection: Connection,
        finder: CandidateFinder,
        chunks: Sequence[Sequence[ContactRow]],
        overnight: Overnight | None = None,
    ) -> None:
        """Start the finder's day for `chunks` (this process's): when it follows the day
        watched, with what changed `overnight` (asked here when not given)."""
        day = finder.clock.as_of
        self.validity = {name: (day - since).days for name, since in finder.catch_up_from.items()}
        self.overnight = None
        if self.watched == day - timedelta(days=1):
            if overnight is None or overnight.day != day:
                overnight = Overnight.ask(connection, finder, chunks, self.places)
            self.overnight = overnight
        self.watched = day

    def gather(
        self, connection: Connection, finder: CandidateFinder, chunk: Sequence[ContactRow]
    ) -> ChunkFacts:
        """The chunk's facts as of the finder's day: `finder.gather`'s, with those from events
        brought up to date with the day's events, and segment members asked again only for
        those who may have joined or left (the rest are the day before's): both asked ahead
        (Overnight)."""
        key = str(chunk[0].id)
        before = self.facts.get(key)
        self.known.pop(key, None)
        overnight = self.overnight
        ids = None if overnight is None else overnight.ahead.get(key)
        if before is None or overnight is None or ids is None:
            return finder.gather(connection, chunk)
        in_chunk = self.places(chunk)
        facts = taken_over(before)
        were = {i: from_events_of(facts, i) for i in ids}
        finder.fold_events(facts, (row for i in ids for row in overnight.events[i]))
        # A click with another tag than a trigger's, a second stop: new events, the same facts.
        known = self.known[key] = {i for i in ids if from_events_of(facts, i) != were[i]}
        for name, moved in overnight.moved.items():
            if moved is None:
                continue  # asked for the whole chunk below
            again = in_chunk.keys() & moved
            if len(again) > len(chunk) // 2:
                continue
            # Taken over, as `taken_over` takes the facts from events: only `again` may flip.
            members = before.members.pop(name)
            flipped = (members & again) ^ (overnight.asked.get(name, set()) & again)
            members ^= flipped
            facts.members[name] = members
            known |= flipped
        finder.gather_dated(connection, chunk, facts, known=set(facts.members))
        return facts

    def due(self, chunk: Sequence[ContactRow], facts: ChunkFacts, day: date) -> list[ContactRow]:
        """The chunk's contacts to decide on `day`, in chunk order: all on the first day, then
        those whose facts changed and those due (`next_day`). Remembers `facts`."""
        key = str(chunk[0].id)
        before = self.facts.get(key)
        self.facts[key] = facts
        if before is None:
            return list(chunk)
        wake = self.wake.setdefault(key, {})
        woken = {
            contact_id
            for contact_id in self.waking.pop((key, day), ())
            if wake.get(contact_id) == day
        }
        places = self.places(chunk)
        new = changed(before, facts, self.known.get(key))
        for contact_id in new:
            self.runs.pop(contact_id, None)
            self.last.pop(contact_id, None)
        order = sorted(places[i] for i in woken | new if i in places)
        return [chunk[place] for place in order]

    def candidates(
        self, finder: CandidateFinder, contact: ContactRow, facts: ChunkFacts
    ) -> list[Candidate]:
        """`finder.candidates`, from the contact's runs of the day before when their facts
        are the same (a contact `due` hands out as changed has none kept), less those that
        can give no candidate any more this year."""
        contact_id = str(contact.id)
        runs = self.runs.get(contact_id)
        if runs is None:
            runs = finder.runs(contact, facts)
        self.late = set()
        alive: list[Run] = []
        found = finder.on_the_day(runs, self.late, alive)
        if runs.as_of is None:  # kept without the runs the later days leave out too
            if len(alive) < len(runs.runs):
                runs = Runs(tuple(alive), None)
            self.runs[contact_id] = runs
        return found

    def decided(
        self,
        chunk: Sequence[ContactRow],
        finder: CandidateFinder,
        contact: ContactRow,
        facts: ChunkFacts,
        candidates: Sequence[Candidate],
        decided: Sequence[Decision],
        made: Collection[tuple[str, str, str]],
    ) -> None:
        """Wake the contact `candidates` was last asked about on their `next_due` day, and
        keep what was decided for `reused`."""
        day = finder.as_of
        contact_id = str(contact.id)
        late = self.late | finder.late if finder.late else self.late
        dropped = any(decision.status == DROPPED for decision in decided)
        stops = stop_reasons(contact, facts) if dropped else frozenset()
        when = next_due(candidates, made, contact, day, decided, late, self.validity, stops)
        self.next_day(chunk, contact_id, when)
        if when is None or (candidates and not decided):  # none due by the day: not resolved
            self.last.pop(contact_id, None)
        elif made:
            self.last[contact_id] = (
                [c for c in candidates if c.key not in made],
                [d for d in decided if d.candidate.key not in made],
            )
        else:
            self.last[contact_id] = (candidates, decided)

    def reused(self, contact_id: str, candidates: Sequence[Candidate]) -> Sequence[Decision] | None:
        """The decisions on the contact's `candidates` of the day if they are those of the
        day the contact was last decided, less the sends it made; else None (decide).

        Their facts are the same (a contact whose facts change is decided anew), and so
        are their candidates: none was caught up since (its due day would now be today's),
        so each is due on the day or later. Their ledger differs only by the sends that day
        made, now counted as sent before, and by sends that have aged out of the caps'
        reach (HISTORY_DAYS, far before any of these due days). `resolve` placed the sends
        made that day beside the others, each where the caps and the gap allowed it with
        the others there, so with them made first every other send still fits where it was
        placed and nowhere sooner: the same decisions, in the same order
        (tests/planning/test_simulate_incremental.py compares with deciding anew)."""
        last = self.last.get(contact_id)
        if last is None or last[0] != candidates:
            return None
        return last[1]

    def next_day(self, chunk: Sequence[ContactRow], contact_id: str, when: date | None) -> None:
        """Decide the contact again on `when` (None: only if their facts change)."""
        key = str(chunk[0].id)
        wake = self.wake.setdefault(key, {})
        if when is None:
            wake.pop(contact_id, None)
            return
        wake[contact_id] = when
        self.waking.setdefault((key, when), set()).add(contact_id)


__all__ = [
    "FACT_FIELDS",
    "FROM_EVENTS",
    "Overnight",
    "Places",
    "Watch",
    "changed",
    "next_due",
    "taken_over",
]
