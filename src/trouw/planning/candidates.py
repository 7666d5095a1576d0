"""Candidate sends for a chunk of contacts: who a campaign wants to mail, and when.

Everything about the chunk that needs the database is asked set-based, one
statement per segment or trigger for the whole chunk (restricted to the
chunk's id range, which the primary key answers): segment members, the latest
triggering event, the last purchase, who entered a segment since its last
snapshot, and who must get nothing but service mails. The per-contact part
is arithmetic on dates in Python.

Occurrence keys name the campaign and what started the send: `birthday:2027`,
`spring-outing:2027-04-02`, `welcome:2026-12-20` (the signup day); with the
contact, campaign and step they identify a send in the plan and the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import repeat
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    select,
)

from trouw.campaigns import Campaign, Step, choose_variant
from trouw.experiments import WINNER_PENDING, in_first_wave, wait_days
from trouw.importing import email_hash
from trouw.planning.policy import SERVICE, Candidate
from trouw.planning.send_time import own_hours, project_hour
from trouw.segments import Catalog, Clock, chunk_members_query
from trouw.store import (
    contacts,
    events,
    segment_members,
    segment_snapshots,
    suppressions,
    test_winners,
)

# What the planner reads of a contact: the fields of Contact, in order.
CONTACT_COLUMNS = (
    contacts.c.id,
    contacts.c.email,
    contacts.c.channel,
    contacts.c.birthday,
    contacts.c.customer_since,
    contacts.c.timezone,
)

# Triggered runs a finder keeps to share (see CandidateFinder.runs): a few thousand start
# days times steps and templates in a shop's year; past the bound, each contact makes its own.
_TRIGGERED_RUNS = 200_000


class Contact(NamedTuple):
    """A row of CONTACT_COLUMNS as the planner keeps it: a plain tuple, whose fields read
    ten times faster than a database row's (a simulated year reads them millions of times)."""

    id: str
    email: str | None
    channel: str
    birthday: date | None
    customer_since: date | None
    timezone: str | None


# A contact read by attribute (`row.birthday`): a Contact, or a row of CONTACT_COLUMNS.
ContactRow = Any
# An event as `CandidateFinder.fold_events` takes it: contact id, type, tag, occurred_at,
# properties.
EventRow = tuple[str, str, str | None, datetime, Any]
# Events that end promotional mail for a contact. A bounce counts unless tagged soft; an
# unsubscribe tagged `topic:NAME` ends only that topic's campaigns (the preference centre).
STOPPING_EVENTS = ("unsubscribe", "complaint", "bounce")
STOPPED_BY = {"unsubscribe": "unsubscribed", "complaint": "complained", "bounce": "hard-bounced"}
SUPPRESSED = "suppressed"  # the reason of an address on the suppression list
TOPIC_TAG = "topic:"
# A `pause` event holds marketing back until the day in its `until` property (YYYY-MM-DD).
PAUSE = "pause"
# How held_back says why (decision.kept_out ends such sends on their day).
PAUSED_UNTIL = "paused until "
LEFT_TOPIC = "unsubscribed from topic "


# A chunk of contacts by id: (after, up to), after < id <= up to, None for no bound. The
# chunks of chunk_bounds cover every id, also of contacts deleted since their plan rows or
# ledger rows were made.
Bounds = tuple[str | None, str | None]


def chunk_bounds(connection: Connection, size: int) -> Iterator[Bounds]:
    """Id bounds of `size` contacts at a time, in id order (the last one open-ended)."""
    after: str | None = None
    while True:
        query = select(contacts.c.id).order_by(contacts.c.id).offset(size - 1).limit(1)
        if after is not None:
            query = query.where(contacts.c.id > after)
        upto = connection.execute(query).scalar_one_or_none()
        if upto is None:
            yield after, None
            return
        yield after, str(upto)
        after = str(upto)


def within(column: ColumnElement[str], bounds: Bounds) -> list[ColumnElement[bool]]:
    """Where `column` (a contact id) is inside `bounds`."""
    after, upto = bounds
    return [
        *([column > after] if after is not None else []),
        *([column <= upto] if upto is not None else []),
    ]


def contacts_within(connection: Connection, bounds: Bounds) -> Sequence[ContactRow]:
    """The contacts inside `bounds`, in id order."""
    query = select(*CONTACT_COLUMNS).where(*within(contacts.c.id, bounds))
    return [Contact._make(row) for row in connection.execute(query.order_by(contacts.c.id))]


def contact_chunks(connection: Connection, size: int) -> Iterator[Sequence[ContactRow]]:
    """All contacts in id order, `size` at a time (keyset pages: no open cursor, flat memory)."""
    last: str | None = None
    while True:
        query = select(*CONTACT_COLUMNS).order_by(contacts.c.id).limit(size)
        if last is not None:
            query = query.where(contacts.c.id > last)
        rows = [Contact._make(row) for row in connection.execute(query)]
        if not rows:
            return
        yield rows
        last = rows[-1].id


def day_in_year(month_day: date, year: int) -> date:
    """The same month and day in `year`; 29 February becomes 28 February in other years."""
    if month_day.month == 2 and month_day.day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return month_day.replace(year=year)


def _event_type(dialect: str) -> ColumnElement[str]:
    """`events.type` for filters next to a contact id range.

    SQLite would pick the (type, occurred_at) index and read every purchase of
    the whole shop for each chunk; `+type` keeps the type test off the index, so
    the (contact_id, type, occurred_at) index serves the chunk's range instead.
    """
    if dialect == "sqlite":
        return literal_column("+events.type", String)
    return events.c.type


@lru_cache(maxsize=512)
def zone_named(name: str | None, fallback: str) -> ZoneInfo:
    """A contact's time zone by name; the project's (`fallback`) when unknown or invalid."""
    try:
        return ZoneInfo(name) if name else ZoneInfo(fallback)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(fallback)


@dataclass
class ChunkFacts:
    """What the database says about one chunk of contacts, as of the planning day."""

    members: dict[str, set[str]] = field(default_factory=dict)  # segment -> contact ids
    stopped: dict[str, str] = field(default_factory=dict)  # contact id -> reason
    topics_left: dict[str, set[str]] = field(default_factory=dict)  # contact id -> topics
    paused: dict[str, date] = field(default_factory=dict)  # contact id -> until (latest pause)
    suppressed: set[str] = field(default_factory=set)  # contact ids whose address is suppressed
    last_purchase: dict[str, datetime] = field(default_factory=dict)
    trigger_events: dict[str, dict[str, datetime]] = field(default_factory=dict)  # by campaign
    entered: dict[str, set[str]] = field(default_factory=dict)  # by campaign
    best_hours: dict[str, int] = field(default_factory=dict)  # contact id -> own best hour


# Triggers whose contacts are looked up per chunk (ChunkFacts), not read from the contact row.
LOOKUPS = ("event", "inactive", "entered")


@dataclass(frozen=True)
class CampaignPlan:
    """What `candidates` asks of a campaign for every contact, worked out once.

    `steps` holds (index, step, fixed template): the template when the step
    sends the same one to everyone it reaches, else None (decided per contact).
    """

    campaign: Campaign
    name: str
    segment: str | None
    scheduled: bool
    steps: tuple[tuple[int, Step, str | None], ...]
    lookup: str | None  # the trigger kind when it is found in a per-chunk lookup
    lasting: bool  # started by a lasting state (Trigger.lasting): due however late

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignPlan:
        trigger = campaign.trigger
        steps = []
        for index, step in enumerate(campaign.steps):
            fixed = None
            first = step.variants[0] if step.variants else None
            if (
                step.unless is None
                and step.only_if is None
                and step.test is None  # an A/B test: each contact's arm
                and first
                and first.segment is None
            ):
                fixed = first.template
            steps.append((index, step, fixed))
        return cls(
            campaign,
            campaign.name,
            campaign.segment or None,
            campaign.schedule is not None,
            tuple(steps),
            trigger.kind if trigger is not None and trigger.kind in LOOKUPS else None,
            trigger is not None and trigger.lasting,
        )


class Run(NamedTuple):
    """One step of one run of a campaign for one contact, before the planning day:
    scheduled (`due` None: the step's shared sends, or a test's rest when the template is
    WINNER_PENDING) or started by a trigger (`due` before any catching up)."""

    plan: CampaignPlan
    step_index: int
    step: Step
    template: str
    due: date | None = None
    occurrence: str = ""
    overdue_ok: bool = False
    # A triggered run's send on its `due` day, made once: what `on_the_day` gives unless the
    # day is past (caught up) or not in the year.
    candidate: Candidate | None = None


class Runs(NamedTuple):
    """A contact's runs, and the one planning day they hold for (an entry into a segment
    starts on the day it is seen), or None: any day of the year while the facts hold."""

    runs: tuple[Run, ...]
    as_of: date | None


class CandidateFinder:
    """Turns the calendar campaigns into candidate sends for chunks of contacts."""

    def __init__(
        self,
        campaigns: Sequence[Campaign],
        catalog: Catalog,
        clock: Clock,
        year: int,
        defer_days: int,
    ) -> None:
        self.campaigns = list(campaigns)
        # Recurring campaigns whose deferred occurrence gives way to the next one.
        self.superseding = frozenset(c.name for c in self.campaigns if c.supersedes)
        self.catalog = catalog
        self.clock = clock
        self.year = year
        self.defer_days = defer_days
        self.as_of = clock.as_of
        self.project_zone = clock.tz.key
        self.segments = sorted({name for c in self.campaigns for name in c.segments()})
        # Segments an `entered` trigger watches: a snapshot a day tells who entered since.
        self.entered = sorted(
            {
                c.trigger.segment
                for c in self.campaigns
                if c.trigger is not None and c.trigger.kind == "entered" and c.trigger.segment
            }
        )
        # Scheduled days of this year and the last: a journey started in December can
        # have steps in January.
        self.scheduled: dict[str, list[date]] = {
            c.name: [*c.schedule.days_in(year - 1), *c.schedule.days_in(year)]
            for c in self.campaigns
            if c.schedule is not None
        }
        self.needs_purchases = any(
            c.trigger is not None and c.trigger.kind == "inactive" for c in self.campaigns
        )
        self.snapshot_ids: dict[str, int | None] = {}
        self.event_type: ColumnElement[str] = events.c.type
        # A send missed while no run (or plan) was made is caught up while it is valid.
        self.catch_up_from = {
            c.name: self.as_of - timedelta(days=c.validity_days(defer_days)) for c in self.campaigns
        }
        # Per campaign and step: the `after` as whole days when it has a fixed length
        # (adding an int is much cheaper than calendar arithmetic, done per contact).
        self.offsets: dict[tuple[str, int], int | None] = {
            (c.name, index): _fixed_days(step) for c in self.campaigns
            for index, step in enumerate(c.steps)
        }  # fmt: skip
        # Scheduled campaigns: the due days and occurrences are the same for everyone.
        # `late`: the keys of those caught up on the day (due before it, still valid).
        self.late: set[tuple[str, str, str]] = set()
        self.scheduled_dues: dict[tuple[str, int], list[tuple[date, str]]] = {}
        for campaign in self.campaigns:
            if campaign.schedule is None:
                continue
            for index, step in enumerate(campaign.steps):
                dues = []
                offset = self.offsets[(campaign.name, index)]
                for start in self.scheduled[campaign.name]:
                    due = self.due(campaign.name, start, step, offset, False)
                    if due is not None:
                        occurrence = f"{campaign.name}:{start}"
                        dues.append((due, occurrence))
                        if self.raw_due(start, step, offset) < self.as_of:
                            self.late.add((campaign.name, step.name, occurrence))
                self.scheduled_dues[(campaign.name, index)] = dues
        # Per scheduled step: whether a send of it is due by the planning day (`due_keys`).
        self.scheduled_due_by_day = {
            key: any(due <= self.as_of for due, _ in dues)
            for key, dues in self.scheduled_dues.items()
        }
        # Per triggered campaign: the first and last day a run may start on for a send of it
        # to be due by the planning day, when every step's `after` is whole days (the first
        # None for a lasting state, caught up at any time); `due_keys` passes over the others.
        self.due_starts: dict[str, tuple[date | None, date]] = {}
        for campaign in self.campaigns:
            offsets = [self.offsets[(campaign.name, i)] for i in range(len(campaign.steps))]
            if campaign.trigger is None or None in offsets or not offsets:
                continue
            days = [offset for offset in offsets if offset is not None]
            last = self.as_of - timedelta(days=min(days))
            first = None
            if not campaign.trigger.lasting:
                first = self.catch_up_from[campaign.name] - timedelta(days=max(days))
            self.due_starts[campaign.name] = (first, last)
        self.any_suppressed: bool | None = None
        self._yearly_starts: dict[tuple[str, date], tuple[date, ...]] = {}
        self.plans = [CampaignPlan.of(c) for c in self.campaigns]
        # Occurrence keys of yearly triggers (birthday:2026, birthday:2027), made once.
        self.year_keys = {c.name: (f"{c.name}:{year - 1}", f"{c.name}:{year}") for c in campaigns}
        self._shared: dict[tuple[str, int, str], tuple[Candidate, ...]] = {}
        self._scheduled_runs: dict[tuple[str, int, str], Run] = {}
        # A triggered run depends on its start, not on whose it is: the contacts with the same
        # birthday, last purchase day or event day share one (at most _TRIGGERED_RUNS).
        self._triggered_runs: dict[tuple[str, int, str, date, str, bool], Run] = {}
        self.topics = {c.name: c.topic for c in self.campaigns if c.topic}
        # Tests with a `share:`: the rest gets the winner (sending/winners.py), read once.
        self.share_tests = any(
            step.test is not None and step.test.share is not None
            for c in self.campaigns
            if c.schedule is not None
            for step in c.steps
        )
        self.winners: dict[tuple[str, str, str], str] | None = None
        # `send_time: best` (send_time.py): the contacts' own hours per chunk, the shop's once.
        self.best_hour_campaigns = frozenset(
            c.name for c in self.campaigns if c.send_time == "best"
        )
        self.project_hour: int | None = None
        self._project_hour_known = False
        # Campaigns holding out a share of their audience (`holdout:`): (name, share) pairs.
        self.holdouts = tuple((c.name, c.holdout) for c in self.campaigns if c.holdout)

    # -- the set-based part: one statement per segment / trigger per chunk

    def gather(self, connection: Connection, chunk: Sequence[ContactRow]) -> ChunkFacts:
        facts = ChunkFacts()
        self.gather_dated(connection, chunk, facts)
        self.gather_from_events(connection, chunk, facts)
        return facts

    def gather_dated(
        self,
        connection: Connection,
        chunk: Sequence[ContactRow],
        facts: ChunkFacts,
        known: Collection[str] = (),
    ) -> None:
        """The facts that change as days pass: segment members and entries, best hours.
        `known`: segments whose members the caller already put in `facts`."""
        first, last = str(chunk[0].id), str(chunk[-1].id)
        dialect = connection.dialect.name
        if self.share_tests and self.winners is None:
            self.winners = winners_of(connection)
        if self.best_hour_campaigns:
            if not self._project_hour_known:
                self.project_hour = project_hour(connection, self.clock.tz, self.clock.end)
                self._project_hour_known = True
            zones = {str(r.id): zone_named(r.timezone, self.project_zone) for r in chunk}
            facts.best_hours = own_hours(connection, zones, self.clock.end)
        for name in self.segments:
            if name in known:
                continue
            segment = self.catalog.get(name)
            query = chunk_members_query(segment, self.catalog, self.clock, dialect, first, last)
            facts.members[name] = set(map(str, connection.execute(query).scalars().all()))
        for campaign in self.campaigns:
            trigger = campaign.trigger
            if trigger is not None and trigger.kind == "entered":
                assert trigger.segment is not None
                facts.entered[campaign.name] = self._entered(
                    connection, trigger.segment, facts, first, last
                )

    def gather_from_events(
        self,
        connection: Connection,
        chunk: Sequence[ContactRow],
        facts: ChunkFacts,
    ) -> None:
        """The facts read from the contacts' events up to the day (of the `event_types`) and
        the suppression list: they change only when such an event comes in (`fold_events`)."""
        first, last = str(chunk[0].id), str(chunk[-1].id)
        dialect = connection.dialect.name
        end = self.clock.end
        event_range = and_(
            events.c.contact_id >= first, events.c.contact_id <= last, events.c.occurred_at < end
        )
        self.event_type = _event_type(dialect)
        stopping = (
            select(events.c.contact_id, events.c.type, events.c.tag)
            .where(event_range, self.event_type.in_(STOPPING_EVENTS))
            .order_by(events.c.contact_id, events.c.occurred_at, events.c.id)
        )
        for contact_id, kind, tag in connection.execute(stopping):
            _stopping(facts, str(contact_id), kind, tag)
        self._pauses(connection, event_range, facts)
        self._suppressed(connection, chunk, facts)
        if self.needs_purchases:
            facts.last_purchase = self._latest(connection, event_range, "purchase", None)
        for campaign in self.campaigns:
            trigger = campaign.trigger
            if trigger is None:
                continue
            if trigger.kind == "event":
                assert trigger.event is not None
                facts.trigger_events[campaign.name] = self._latest(
                    connection, event_range, trigger.event, trigger.tag
                )
            elif trigger.kind == "signup":  # for contacts without customer_since
                facts.trigger_events[campaign.name] = self._latest(
                    connection, event_range, "signup", None
                )

    def fold_events(self, facts: ChunkFacts, rows: Iterable[EventRow]) -> None:
        """Bring the facts `gather_from_events` read up to date with the events that came
        after them: `rows` (contact id, type, tag, occurred_at, properties), of the
        `event_types`, in the order they occurred. The same facts as gathering them again."""
        triggers = [
            (campaign.name, "signup" if trigger.kind == "signup" else trigger.event, trigger.tag)
            for campaign in self.campaigns
            if (trigger := campaign.trigger) is not None and trigger.kind in ("event", "signup")
        ]
        for contact_id, kind, tag, moment, properties in rows:
            if kind in STOPPING_EVENTS:
                _stopping(facts, contact_id, kind, tag)
            elif kind == PAUSE:
                _pausing(facts, contact_id, properties)
            if kind == "purchase" and self.needs_purchases:
                _later(facts.last_purchase, contact_id, moment)
            for name, event, wanted in triggers:
                if kind == event and (wanted is None or tag == wanted):
                    _later(facts.trigger_events.setdefault(name, {}), contact_id, moment)

    def event_types(self) -> frozenset[str]:
        """The event types `gather_from_events` reads."""
        found = {*STOPPING_EVENTS, PAUSE}
        if self.needs_purchases:
            found.add("purchase")
        for campaign in self.campaigns:
            trigger = campaign.trigger
            if trigger is not None and trigger.kind == "event" and trigger.event is not None:
                found.add(trigger.event)
            elif trigger is not None and trigger.kind == "signup":
                found.add("signup")
        return frozenset(found)

    def _latest(
        self, connection: Connection, event_range: ColumnElement[bool], kind: str, tag: str | None
    ) -> dict[str, datetime]:
        query = select(events.c.contact_id, func.max(events.c.occurred_at)).where(
            event_range,
            self.event_type == kind,
        )
        if tag is not None:
            query = query.where(events.c.tag == tag)
        rows = connection.execute(query.group_by(events.c.contact_id)).all()
        return {str(contact_id): moment for contact_id, moment in rows if moment is not None}

    def _entered(
        self, connection: Connection, segment: str, facts: ChunkFacts, first: str, last: str
    ) -> set[str]:
        """Members now that were not in the segment's latest snapshot before the planning day.

        Without an earlier snapshot nobody counts as entered: the first snapshot
        is the baseline, not a wave of newcomers.
        """
        if segment not in self.snapshot_ids:
            self.snapshot_ids[segment] = connection.execute(
                select(segment_snapshots.c.id)
                .where(
                    segment_snapshots.c.segment == segment,
                    segment_snapshots.c.as_of < self.as_of,
                )
                .order_by(segment_snapshots.c.as_of.desc(), segment_snapshots.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        snapshot_id = self.snapshot_ids[segment]
        if snapshot_id is None:
            return set()
        before = {
            str(row[0])
            for row in connection.execute(
                select(segment_members.c.contact_id).where(
                    segment_members.c.snapshot_id == snapshot_id,
                    segment_members.c.contact_id >= first,
                    segment_members.c.contact_id <= last,
                )
            )
        }
        return facts.members[segment] - before

    def _pauses(
        self, connection: Connection, event_range: ColumnElement[bool], facts: ChunkFacts
    ) -> None:
        """The `until` of each contact's latest pause (a later choice replaces an earlier one)."""
        query = (
            select(events.c.contact_id, events.c.properties)
            .where(event_range, self.event_type == PAUSE)
            .order_by(events.c.contact_id, events.c.occurred_at, events.c.id)
        )
        for contact_id, properties in connection.execute(query):
            _pausing(facts, str(contact_id), properties)

    def _suppressed(
        self, connection: Connection, chunk: Sequence[ContactRow], facts: ChunkFacts
    ) -> None:
        if self.any_suppressed is None:  # asked once per plan: usually there are none
            self.any_suppressed = bool(
                connection.execute(select(exists().select_from(suppressions))).scalar()
            )
        if not self.any_suppressed:
            return
        by_hash = {email_hash(str(row.email)): str(row.id) for row in chunk if row.email}
        hashes = list(by_hash)
        query = select(suppressions.c.email_hash).where(
            suppressions.c.email_hash.in_(bindparam("hashes", expanding=True))
        )
        for start in range(0, len(hashes), 500):
            for (found,) in connection.execute(query, {"hashes": hashes[start : start + 500]}):
                facts.stopped.setdefault(by_hash[found], SUPPRESSED)
                facts.suppressed.add(by_hash[found])

    # -- the per-contact part: date arithmetic

    def local_day(self, moment: datetime, zone_name: str | None) -> date:
        return (
            moment.replace(tzinfo=UTC).astimezone(zone_named(zone_name, self.project_zone)).date()
        )

    def starts(
        self, campaign: Campaign, contact: ContactRow, facts: ChunkFacts
    ) -> list[tuple[date, str, bool]]:
        """(start day, occurrence key, overdue-is-fine) of each run of the campaign."""
        name = campaign.name
        if campaign.schedule is not None:
            return [(day, f"{name}:{day}", False) for day in self.scheduled[name]]
        trigger = campaign.trigger
        assert trigger is not None
        days = self.start_days(campaign, contact, facts)
        # A lasting state (inactivity) is due however late: once for this spell of it.
        return list(zip(days, self.occurrences(campaign, days), repeat(trigger.lasting)))

    def occurrences(self, campaign: Campaign, days: Sequence[date]) -> list[str]:
        """The occurrence keys of a triggered campaign's runs that start on `days`: by the
        year for a yearly trigger (birthday:2027), else by the start day."""
        name = campaign.name
        assert campaign.trigger is not None
        if campaign.trigger.kind in ("birthday", "anniversary"):  # once a year
            keys = self.year_keys[name]
            return [keys[day.year - self.year + 1] for day in days]
        return [f"{name}:{day}" for day in days]

    def start_days(
        self, campaign: Campaign, contact: ContactRow, facts: ChunkFacts
    ) -> Sequence[date]:
        """The days a triggered campaign's runs start on for the contact (this year's and
        last year's for a yearly one), as `starts` keys them."""
        name = campaign.name
        trigger = campaign.trigger
        assert trigger is not None
        kind = trigger.kind
        if kind in ("birthday", "anniversary"):
            origin = contact.birthday if kind == "birthday" else contact.customer_since
            if not isinstance(origin, date):
                return ()
            # A send run asks this of every contact every day: the days are worked out once
            # per date (a shop's contacts share a few tens of thousands of them).
            found = self._yearly_starts.get((kind, origin))
            if found is None:
                found = self._yearly_starts[(kind, origin)] = self._yearly(kind, origin)
            return found
        if kind == "signup":
            # The day they became a customer, or, when the shop did not say, the day of their
            # `signup` event (one pushed to POST /api/events as it happened).
            since = contact.customer_since
            if isinstance(since, date):
                return [since]
            moment = facts.trigger_events[name].get(str(contact.id))
            return [] if moment is None else [self.local_day(moment, contact.timezone)]
        if kind == "event":
            moment = facts.trigger_events[name].get(str(contact.id))
            return [] if moment is None else [self.local_day(moment, contact.timezone)]
        if kind == "inactive":
            moment = facts.last_purchase.get(str(contact.id))
            if moment is None:
                return []  # never bought: nothing to win back
            assert trigger.duration is not None
            return [trigger.duration.after(self.local_day(moment, contact.timezone))]
        if kind == "entered":
            return [self.as_of] if str(contact.id) in facts.entered[name] else []
        raise AssertionError(f"unknown trigger {kind}")

    def _yearly(self, kind: str, origin: date) -> tuple[date, ...]:
        year = self.year
        if kind == "birthday":
            return (day_in_year(origin, year - 1), day_in_year(origin, year))
        found = []  # an anniversary needs a full year as a customer
        if year - 1 > origin.year:
            found.append(day_in_year(origin, year - 1))
        if year > origin.year:
            found.append(day_in_year(origin, year))
        return tuple(found)

    def due(
        self, campaign: str, start: date, step: Step, offset: int | None, overdue_ok: bool
    ) -> date | None:
        """The day a step is due for a run started on `start`; None if not in the year."""
        due = self.raw_due(start, step, offset)
        if due < self.as_of:
            # Missed while the plan was not running: catch up on the planning day if it
            # is recent enough (or always, for a lasting state such as inactivity).
            if not overdue_ok and due < self.catch_up_from[campaign]:
                return None
            due = self.as_of
        return due if due.year == self.year else None

    @staticmethod
    def raw_due(start: date, step: Step, offset: int | None) -> date:
        """The day a step of a run started on `start` is due, before any catching up."""
        if offset is not None:
            return start + timedelta(days=offset)
        return step.after.after(start) if step.after is not None else start

    def candidates(self, contact: ContactRow, facts: ChunkFacts) -> list[Candidate]:
        """Every send the calendar wants to make to this contact, due in the year."""
        return self.on_the_day(self.runs(contact, facts))

    def runs(self, contact: ContactRow, facts: ChunkFacts) -> Runs:
        """What the calendar wants to send this contact as their facts say, before the
        planning day is applied (`on_the_day`): a simulation keeps them from day to day
        while the facts stay the same (planning/watch.py).

        Runs once per contact, so the per-campaign work is done in `plans` up
        front: scheduled sends are built once per (step, template) and shared by
        every contact, triggered ones once per (step, template, start) and shared
        by the contacts with that start (runs and candidates are immutable tuples).
        """
        contact_id = str(contact.id)
        members = facts.members
        shared = self._triggered_runs
        found: list[Run] = []
        today_only = False
        for plan in self.plans:
            campaign = plan.campaign
            if plan.segment is not None and contact_id not in members[plan.segment]:
                continue
            if plan.scheduled:
                for index, step, fixed in plan.steps:
                    template = fixed or self._template(campaign, step, contact_id, members)
                    if template is None:
                        continue
                    test = step.test
                    if (
                        test is not None
                        and test.share is not None
                        and not in_first_wave(contact_id, plan.name, step.name, test.share)
                    ):  # the rest of a test: the winner, later
                        template = WINNER_PENDING
                    key = (plan.name, index, template)
                    run = self._scheduled_runs.get(key)
                    if run is None:  # one per step and template, shared by every contact
                        run = self._scheduled_runs[key] = Run(plan, index, step, template)
                    found.append(run)
                continue
            # Most contacts have no such event, purchase or entry: skip them before `starts`.
            lookup = plan.lookup
            if lookup == "event" and contact_id not in facts.trigger_events[plan.name]:
                continue
            if lookup == "inactive" and contact_id not in facts.last_purchase:
                continue
            if lookup == "entered" and contact_id not in facts.entered[plan.name]:
                continue
            starts = self.starts(campaign, contact, facts)
            if not starts:
                continue
            today_only = today_only or lookup == "entered"  # an entry starts on the day
            name = plan.name
            for index, step, fixed in plan.steps:
                template = fixed or self._template(campaign, step, contact_id, members)
                if template is None:
                    continue
                for start, occurrence, overdue_ok in starts:
                    started = (name, index, template, start, occurrence, overdue_ok)
                    run = shared.get(started)
                    if run is None:
                        due = self.raw_due(start, step, self.offsets[(name, index)])
                        candidate = Candidate(due, name, step.name, occurrence, template,
                                              campaign.kind, campaign.priority, index)  # fmt: skip
                        run = Run(plan, index, step, template, due, occurrence, overdue_ok,
                                  candidate)  # fmt: skip
                        if len(shared) < _TRIGGERED_RUNS:
                            shared[started] = run
                    found.append(run)
        return Runs(tuple(found), self.as_of if today_only else None)

    def due_keys(self, contact: ContactRow, facts: ChunkFacts) -> list[tuple[str, str, str]]:
        """The keys (campaign, step, occurrence) of the contact's `candidates` due on or
        before the planning day, without making them (`decision.anything_due`: whether
        one of them is not made yet). A send run asks this of every contact every day, and
        the answer is mostly none: a scheduled step is due on a few days of the year, a
        trigger's send on one. The same walk as `runs` and `on_the_day`, except that a step
        with no send due by the day is passed over before the contact's template is chosen
        (tests/planning/test_any_due.py compares both over random shops and days)."""
        contact_id = str(contact.id)
        members = facts.members
        found: list[tuple[str, str, str]] = []
        for plan in self.plans:
            campaign = plan.campaign
            if plan.segment is not None and contact_id not in members[plan.segment]:
                continue
            name = plan.name
            if plan.scheduled:
                for index, step, fixed in plan.steps:
                    share = step.test.share if step.test is not None else None
                    due = self.scheduled_due_by_day[(name, index)]
                    if not due and share is None:
                        continue
                    template = fixed or self._template(campaign, step, contact_id, members)
                    if template is None:
                        continue
                    if share is not None and not in_first_wave(contact_id, name, step.name, share):
                        rest = self._rest_of_test(plan, index, step)
                        found += [c.key for c in rest if c.due <= self.as_of]
                    elif due:
                        found += [
                            (name, step.name, occurrence)
                            for day, occurrence in self.scheduled_dues[(name, index)]
                            if day <= self.as_of
                        ]
                continue
            lookup = plan.lookup
            if lookup == "event" and contact_id not in facts.trigger_events[name]:
                continue
            if lookup == "inactive" and contact_id not in facts.last_purchase:
                continue
            if lookup == "entered" and contact_id not in facts.entered[name]:
                continue
            days = self.start_days(campaign, contact, facts)
            if not days:
                continue
            window = self.due_starts.get(name)
            if window is not None:
                first, last = window
                for day in days:
                    if day <= last and (first is None or day >= first):
                        break
                else:
                    continue  # none of them starts a send due by the day
            for index, step, fixed in plan.steps:
                offset = self.offsets[(name, index)]
                due_by_day = [
                    day
                    for day in days
                    if self._due_by_day(name, self.raw_due(day, step, offset), plan.lasting)
                ]
                if (
                    due_by_day
                    and (fixed or self._template(campaign, step, contact_id, members)) is not None
                ):
                    found += [
                        (name, step.name, occurrence)
                        for occurrence in self.occurrences(campaign, due_by_day)
                    ]
        return found

    def _due_by_day(self, campaign: str, due: date, overdue_ok: bool) -> bool:
        """Whether a triggered send due on `due` is a candidate due by the planning day
        (`on_the_day`: one missed is caught up on the day while still valid)."""
        if due > self.as_of:
            return False
        if due < self.as_of and not overdue_ok and due < self.catch_up_from[campaign]:
            return False
        return self.as_of.year == self.year

    def on_the_day(
        self,
        runs: Runs,
        late: set[tuple[str, str, str]] | None = None,
        alive: list[Run] | None = None,
    ) -> list[Candidate]:
        """The candidates of `runs` as of the planning day: a send missed while the plan
        was not running is caught up on the day if recent enough (or always, for a lasting
        state: inactivity); what is not due in the year is left out. `late` gets the keys
        of the triggered ones caught up (the scheduled ones are in `self.late`). `alive`
        gets the runs that may give a candidate on a later day too: not those past catching
        up, nor those due after the year (the later days of a simulation leave them out
        again, and the watch keeps only these: planning/watch.py)."""
        found: list[Candidate] = []
        as_of = self.as_of
        year = self.year
        for run in runs.runs:
            plan, index, step = run.plan, run.step_index, run.step
            due = run.due
            if due is None:  # scheduled: the same for everyone it reaches
                if run.template == WINNER_PENDING:
                    found.extend(self._rest_of_test(plan, index, step))
                else:
                    found.extend(self._scheduled_candidates(plan, index, step, run.template))
                if alive is not None:
                    alive.append(run)
                continue
            candidate = run.candidate
            if due < as_of:
                if not run.overdue_ok and due < self.catch_up_from[plan.name]:
                    continue
                due = as_of
                if late is not None:
                    late.add((plan.name, step.name, run.occurrence))
                candidate = None
            if due.year != year:
                if due.year < year and alive is not None:  # planned ahead: caught up in it
                    alive.append(run)
                continue
            if alive is not None:
                alive.append(run)
            if candidate is None:
                campaign = plan.campaign
                candidate = Candidate(due, plan.name, step.name, run.occurrence, run.template,
                                      campaign.kind, campaign.priority, index)  # fmt: skip
            found.append(candidate)
        return found

    def _scheduled_candidates(
        self, plan: CampaignPlan, index: int, step: Step, template: str
    ) -> tuple[Candidate, ...]:
        """The sends of one scheduled step with one template: the same for every contact."""
        key = (plan.name, index, template)
        built = self._shared.get(key)
        if built is None:
            campaign = plan.campaign
            built = self._shared[key] = tuple(
                Candidate(
                    due, plan.name, step.name, occurrence, template, campaign.kind,
                    campaign.priority, index,
                )
                for due, occurrence in self.scheduled_dues[(plan.name, index)]
            )  # fmt: skip
        return built

    def _rest_of_test(self, plan: CampaignPlan, index: int, step: Step) -> tuple[Candidate, ...]:
        """The sends of a test's rest: `after` (whole days) past each scheduled day, with the
        winner once a send run picked it, else WINNER_PENDING (the send waits for it)."""
        key = (plan.name, index, WINNER_PENDING)
        built = self._shared.get(key)
        if built is None:
            assert step.test is not None
            campaign, wait = plan.campaign, timedelta(days=wait_days(step.test.after_hours))
            offset = self.offsets[(plan.name, index)]
            winners = self.winners or {}
            found = []
            for start in self.scheduled[plan.name]:
                occurrence = f"{plan.name}:{start}"
                due = self.due(plan.name, start + wait, step, offset, False)
                if due is None:
                    continue
                if self.raw_due(start + wait, step, offset) < self.as_of:
                    self.late.add((plan.name, step.name, occurrence))
                template = winners.get((plan.name, step.name, occurrence), WINNER_PENDING)
                found.append(
                    Candidate(due, plan.name, step.name, occurrence, template, campaign.kind,
                              campaign.priority, index)
                )  # fmt: skip
            built = self._shared[key] = tuple(found)
        return built

    @staticmethod
    def _template(
        campaign: Campaign, step: Step, contact_id: str, members: dict[str, set[str]]
    ) -> str | None:
        """The step's template for this contact, or None when the step skips them."""
        return choose_variant(campaign, step, contact_id, members).template


def _fixed_days(step: Step) -> int | None:
    if step.after is None:
        return 0
    if step.after.unit in ("d", "w"):
        return step.after.as_timedelta().days
    return None


def winners_of(connection: Connection) -> dict[tuple[str, str, str], str]:
    """The decided A/B tests: (campaign, step, occurrence) -> the winning arm's template."""
    query = select(
        test_winners.c.campaign, test_winners.c.step, test_winners.c.occurrence,
        test_winners.c.winner,
    )  # fmt: skip
    return {(str(r[0]), str(r[1]), str(r[2])): str(r[3]) for r in connection.execute(query)}


def stop_reason(contact: ContactRow, facts: ChunkFacts) -> str | None:
    """Why this contact gets nothing but service mails, or None."""
    channel = contact.channel
    if channel == "none":
        return "channel none: service mails only"
    reason = facts.stopped.get(str(contact.id))
    if reason:
        return reason
    if channel == "email" and not contact.email:
        return "no email address"
    return None


def _stopping(facts: ChunkFacts, contact_id: str, kind: str, tag: str | None) -> None:
    """A stopping event (STOPPING_EVENTS): the first that stops the contact gives the reason,
    before the suppression list (a soft bounce stops nothing); an unsubscribe from a topic
    leaves only that topic."""
    if kind == "bounce" and tag == "soft":
        return
    if kind == "unsubscribe" and tag and tag.startswith(TOPIC_TAG):
        facts.topics_left.setdefault(contact_id, set()).add(tag[len(TOPIC_TAG) :])
        return
    if facts.stopped.get(contact_id, SUPPRESSED) == SUPPRESSED:
        facts.stopped[contact_id] = STOPPED_BY[kind]


def _pausing(facts: ChunkFacts, contact_id: str, properties: Any) -> None:
    """A pause event: it replaces any earlier one (one without a valid `until` ends it)."""
    until = pause_until(properties)
    if until is not None:
        facts.paused[contact_id] = until
    else:
        facts.paused.pop(contact_id, None)


def _later(latest: dict[str, datetime], contact_id: str, moment: datetime) -> None:
    known = latest.get(contact_id)
    if known is None or moment > known:
        latest[contact_id] = moment


def pause_until(properties: Any) -> date | None:
    """The day a pause event ends (its `until` property), or None when it names no valid day."""
    if isinstance(properties, str):  # JSON text, as some drivers hand it over
        try:
            properties = json.loads(properties)
        except ValueError:
            return None
    value = properties.get("until") if isinstance(properties, dict) else None
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def held_back(
    contact: ContactRow, facts: ChunkFacts, topics: Mapping[str, str]
) -> Callable[[str, date], str | None] | None:
    """Why a marketing send of a campaign on a day is held back for this contact, or None when
    nothing is: a topic they unsubscribed from, a pause not yet over. `topics`: campaign ->
    topic. None for the (many) contacts with neither, so the policy's loop pays nothing.

    Service mails are never held back: the policy asks only for the others.
    """
    contact_id = str(contact.id)
    left = facts.topics_left.get(contact_id)
    until = facts.paused.get(contact_id)
    if not left and until is None:
        return None

    def reason(campaign: str, day: date) -> str | None:
        if until is not None and day < until:
            return f"{PAUSED_UNTIL}{until}"
        topic = topics.get(campaign)
        if left and topic in left:
            return f"{LEFT_TOPIC}{topic}"
        return None

    return reason


def unreachable(contact: ContactRow, facts: ChunkFacts) -> str | None:
    """Why no mail at all, service mail included, can reach this contact, or None: their
    e-mail address is suppressed (it bounced hard, or its owner was forgotten)."""
    if send_channel(contact) == "email" and str(contact.id) in facts.suppressed:
        return "address suppressed"
    return None


def send_channel(contact: ContactRow) -> str:
    """Email or post; a service mail to a `none` contact goes by email if there is one."""
    if contact.channel in ("email", "post"):
        return str(contact.channel)
    return "email" if contact.email else "post"


__all__ = [
    "SERVICE",
    "Bounds",
    "CandidateFinder",
    "ChunkFacts",
    "Contact",
    "EventRow",
    "Run",
    "Runs",
    "chunk_bounds",
    "contact_chunks",
    "contacts_within",
    "day_in_year",
    "held_back",
    "pause_until",
    "unreachable",
    "winners_of",
    "within",
    "zone_named",
]
