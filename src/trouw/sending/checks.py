"""At send time, each owed send is decided again, with today's data: may it go out today?

The plan was a forecast; the ledger and today's data are the truth. For one
chunk of contacts the planner's own decision (planning/decision.py) is taken
again as of the run's day: the candidate finder says what the calendar wants
to send each contact today (a purchase since ends a win-back, an `unless`
segment is evaluated today, the variant is chosen today), and the policy
resolves it with the ledger's sends counting toward the caps, the gap and
quiet days. Every owed send ends up in one of three lists:

- `chosen`: decided for today: it goes out, with the decided variant;
- `settled`: a ledger status with its reason: `cancelled` when it is no
  longer right (the contact unsubscribed, left the audience, the trigger no
  longer holds, the campaign is gone), `deferred` when it may still go later
  (a cap binds today, a quiet day, this transport cannot carry its channel);
- skipped (in the summary only): another run or worker has it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select

from trouw.campaigns import Campaign, Step, choose_variant
from trouw.experiments import WINNER_PENDING
from trouw.planning.candidates import (
    CONTACT_COLUMNS,
    SERVICE,
    Bounds,
    CandidateFinder,
    ChunkFacts,
    ContactRow,
    contacts_within,
    send_channel,
    stop_reason,
    unreachable,
    zone_named,
)
from trouw.planning.decision import (
    decide,
    decide_among,
    due_keys,
    ends_on,
    holding,
    open_candidates,
    sends_on,
    still_due,
    superseded,
)
from trouw.planning.planner import calendar_campaigns
from trouw.planning.policy import (
    DROPPED,
    Decision,
    Rules,
    SendWindow,
    YearCalendar,
)
from trouw.planning.send_time import send_hour
from trouw.project import Project
from trouw.segments import Catalog, Clock
from trouw.sending import ledger as book
from trouw.sending.owed import Due
from trouw.sending.summary import SendSummary
from trouw.store import contacts

# How far back (and ahead) ledger rows matter for caps: a month, a week, any sane gap.
HISTORY_DAYS = 62
# Skips that are the run's own work, done by another of its workers (or a run at the same time).
MADE_MEANWHILE = "made meanwhile by another worker or run"
CLAIMED = "claimed by another worker"
TAKEN = "reserved by another run"
WAITING_FOR_WINNER = "waiting for the A/B test's winner"
# Ledger statuses that leave a send open to today's decision: still owed.
OPEN = (book.DEFERRED,)


@dataclass
class Verdicts:
    """One chunk's checks: what goes, and what the ledger records instead (status, reason)."""

    chosen: list[Due]
    settled: list[tuple[Due, str, str]]
    waiting: list[Due]  # outside the contact's send window: owed to a later run
    # before the contact's send hour (`send_time: best`): owed to a later run, with why
    later: list[tuple[Due, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Gathered:
    """One chunk's contacts (by id) and facts, as of the day; `decided`: the decisions made
    for them before the write lock, with the ledger they were made with (a contact whose
    ledger is still the same under the lock is not decided again)."""

    people: dict[str, ContactRow]
    facts: ChunkFacts
    decided: dict[str, tuple[book.History, list[Decision]]] = field(default_factory=dict)


def short(reason: str) -> str:
    """A reason as a summary line: the first line, without per-contact dates."""
    first = reason.strip().splitlines()[0] if reason.strip() else reason
    return re.sub(r" on \d{4}-\d{2}-\d{2}", "", first)


class SendChecks:
    """The day's decision, set up once per run and taken chunk by chunk."""

    def __init__(
        self,
        project: Project,
        as_of: date,
        campaigns: dict[str, Campaign],
        catalog: Catalog,
        *,
        refuses: Any,  # channel -> why the transport cannot carry it, or None
        started: datetime,
        now: datetime,
    ) -> None:
        self.as_of = as_of
        self.now = now  # naive UTC: the moment the send window is judged at
        self.campaigns = campaigns
        self.refuses = refuses
        self.started = started
        self.rules = Rules.from_policy(project.settings.policy)
        self.calendar = YearCalendar(as_of.year, self.rules.quiet)
        window = project.settings.policy.send_window
        self.window = SendWindow(window) if window else None
        self.zone = project.settings.timezone
        self.finder = CandidateFinder(
            calendar_campaigns(project, catalog), catalog, Clock(as_of, project.settings.tz),
            as_of.year, self.rules.defer_days,
        )  # fmt: skip

    def step(self, send: book.Send) -> tuple[Campaign, Step] | str:
        campaign = self.campaigns.get(send.campaign)
        if campaign is None:
            return f"campaign '{send.campaign}' no longer exists"
        for step in campaign.steps:
            if step.name == send.step:
                return campaign, step
        return f"step '{send.step}' no longer in campaign '{send.campaign}'"

    def decided(self, connection: Connection, gathered: Gathered) -> list[tuple[book.Send, int]]:
        """The sends today's decision makes for these contacts (a chunk of them, with their
        facts) that the ledger does not hold yet, with priority.

        The plan was a forecast: since it was made, a click started a follow-up, a
        purchase moved a win-back, a contact entered an audience or a cap freed
        room. So each contact is decided as of the day, as `simulate` does, and
        what falls on the day is owed whether or not the plan holds it: to be
        sent, or ended because a fresher occurrence superseded it.
        """
        found: list[tuple[book.Send, int]] = []
        # The ledger's keys only take candidates away (`made`), so a contact with no send
        # the calendar wants by today gets nothing today whatever their ledger holds: only
        # the others' ledgers are read (on most days, a few of the shop). Of those, most
        # have had what is due already (yesterday's send, caught up until it expires, a
        # lapsed buyer's win-back every day): when the ledger holds every key due by today,
        # they are passed over, seen from those keys' campaigns alone, before their whole
        # ledger is read and their candidates are made.
        facts = gathered.facts
        due: dict[str, list[tuple[str, str, str]]] = {}
        for contact_id, person in gathered.people.items():
            if keys := due_keys(self.finder, person, facts):
                due[contact_id] = keys
        keyed = book.statuses(
            connection, list(due), {key[0] for keys in due.values() for key in keys}
        )
        for contact_id, status in keyed.items():
            if not still_due(due[contact_id], {k for k, s in status.items() if s not in OPEN}):
                del due[contact_id]
        histories = book.histories(
            connection,
            list(due),
            since=self.as_of - timedelta(days=HISTORY_DAYS),
            until=self.as_of + timedelta(days=HISTORY_DAYS),
        )
        for contact_id, keys in due.items():
            person = gathered.people[contact_id]
            history = histories.get(contact_id) or book.History({}, {}, set())
            status = history.status
            made = {k for k, s in status.items() if s not in OPEN}
            if not still_due(keys, made):
                continue  # nothing due by today (decide's due_by): nothing to owe or keep
            candidates = open_candidates(self.finder, person, facts, made)
            decisions = decide_among(
                candidates, self.finder, self.rules, self.calendar, person, facts,
                sent=list(history.counted.values()),
            )  # fmt: skip
            gathered.decided[contact_id] = (history, decisions)
            channel = send_channel(person)
            for decision in [*sends_on(self.as_of, decisions), *ends_on(self.as_of, decisions)]:
                c = decision.candidate
                if c.key in status:
                    continue  # in the ledger: owed from there, if still open
                send = book.Send(
                    contact_id, c.campaign, c.step, c.occurrence, self.as_of, c.template, channel
                )
                found.append((send, c.priority))
        return found

    def gather_within(self, connection: Connection, bounds: Bounds) -> Gathered:
        """The contacts inside `bounds` (a chunk, candidates.chunk_bounds) and their facts,
        as of the day."""
        rows = contacts_within(connection, bounds)
        facts = self.finder.gather(connection, rows) if rows else ChunkFacts()
        return Gathered({str(row.id): row for row in rows}, facts)

    def gather(self, connection: Connection, dues: Sequence[Due]) -> Gathered:
        """What the day's data says of these dues' contacts (read before the write lock is
        taken: segments and events are the day's, whatever other runs do meanwhile): for
        the sends a run works again, picked from the whole ledger."""
        ids = sorted({d.send.contact_id for d in dues})
        rows = connection.execute(
            select(*CONTACT_COLUMNS)
            .where(contacts.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(contacts.c.id),
            {"ids": ids},
        ).all()
        facts = self.finder.gather(connection, rows) if rows else ChunkFacts()
        return Gathered({str(row.id): row for row in rows}, facts)

    def check(
        self, connection: Connection, dues: Sequence[Due], gathered: Gathered, summary: SendSummary
    ) -> Verdicts:
        """Decide each of these dues (whole contacts) against the ledger as `connection` sees
        it; skips are counted in `summary`."""
        verdicts = Verdicts([], [], [])
        ids = sorted({d.send.contact_id for d in dues})
        people, facts = gathered.people, gathered.facts
        histories = book.histories(
            connection,
            ids,
            since=self.as_of - timedelta(days=HISTORY_DAYS),
            until=self.as_of + timedelta(days=HISTORY_DAYS),
            run_started=self.started,
        )
        by_contact: dict[str, list[Due]] = {}
        for due in dues:
            by_contact.setdefault(due.send.contact_id, []).append(due)
        for contact_id, mine in by_contact.items():
            person = people.get(contact_id)
            if person is None:
                verdicts.settled += [(d, book.CANCELLED, "contact no longer exists") for d in mine]
                continue
            history = histories.get(contact_id) or book.History({}, {}, set())
            keep: list[Due] = []
            for due in mine:
                status = history.status.get(due.send.key[1:])
                if status != due.state:  # the ledger moved on since the run looked
                    if due.send.key[1:] in history.recent:
                        summary.skip([due], MADE_MEANWHILE)
                    else:
                        summary.skip([due], f"already in the ledger ({status})")
                    continue
                keep.append(due)
            if keep:
                kept = gathered.decided.get(contact_id)
                self._contact(person, facts, keep, history, verdicts, kept)
        for due, why in verdicts.later:
            if due.state is None and due.send.due is None:
                verdicts.settled.append((due, book.DEFERRED, why))
            else:
                summary.skip([due], why)
        if verdicts.waiting:
            # A send only today's decision owes (no plan row, no ledger row) waits in the
            # ledger, so that it ends `expired` with the reason if no run reaches it inside
            # the window in time; the others are owed from the plan or the ledger already.
            why = f"waiting for the send window {self.window}"
            owed_elsewhere = []
            for due in verdicts.waiting:
                if due.state is None and due.send.due is None:
                    verdicts.settled.append((due, book.DEFERRED, why))
                else:
                    owed_elsewhere.append(due)
            summary.skip(owed_elsewhere, why)
        return verdicts

    def _contact(
        self,
        person: ContactRow,
        facts: ChunkFacts,
        keep: list[Due],
        history: book.History,
        verdicts: Verdicts,
        kept: tuple[book.History, list[Decision]] | None = None,
    ) -> None:
        if self.window is not None and not self.window.allows(
            self.now, zone_named(person.timezone, self.zone)
        ):
            verdicts.waiting += keep
            return
        channel = send_channel(person)
        refused = self.refuses(channel)  # decided first: an unsubscribe still cancels
        retried = {d.send.key[1:] for d in keep if d.retry}
        if (
            kept is not None
            and not retried
            and kept[0].status == history.status
            and kept[0].counted == history.counted
        ):
            made_now = kept[1]  # decided with the same ledger before the lock
        else:
            made = {k for k, s in history.status.items() if s not in OPEN and k not in retried}
            sent = [when for key, when in history.counted.items() if key not in retried]
            made_now = decide(
                self.finder, self.rules, self.calendar, person, facts, made=made, sent=sent
            )
        decisions = {d.candidate.key: d for d in made_now}
        excluded = stop_reason(person, facts)
        blocked = unreachable(person, facts)
        held = holding(self.finder, self.rules, person, facts)  # a topic left, a pause, a holdout
        for due in keep:
            found = self.step(due.send)
            if isinstance(found, str):
                verdicts.settled.append((due, book.CANCELLED, found))
                continue
            decision = decisions.get(due.send.key[1:])
            if decision is None:
                why = self._why_not(*found, person, facts, excluded)
                verdicts.settled.append((due, book.CANCELLED, why))
            elif decision.status == DROPPED:
                reason = decision.reason or ""
                cancel = (
                    reason in (excluded, blocked)
                    or superseded(decision)
                    or (
                        held is not None
                        and reason == held(decision.candidate.campaign, decision.day)
                    )
                )
                status = book.CANCELLED if cancel else book.DEFERRED
                verdicts.settled.append((due, status, decision.reason or "dropped"))
            elif decision.day == self.as_of and decision.candidate.template == WINNER_PENDING:
                verdicts.settled.append((due, book.DEFERRED, WAITING_FOR_WINNER))
            elif (
                decision.day == self.as_of
                and (due.send.due is None or due.send.due >= self.as_of)  # owed since today
                and (hour := send_hour(self.finder, facts, person, due.send.campaign, self.window))
                is not None
                and self._local_hour(person) < hour
            ):  # `send_time: best`: not before the contact's hour today (a later run that day
                # sends it; one owed from an earlier day goes at once, late rather than never)
                verdicts.later.append((due, f"waiting for its send hour {hour:02d}:00"))
            elif decision.day == self.as_of and refused:
                verdicts.settled.append((due, book.DEFERRED, refused))
            elif decision.day == self.as_of:
                send = replace(due.send, channel=channel, template=decision.candidate.template)
                verdicts.chosen.append(replace(due, send=send))
            else:
                verdicts.settled.append((due, book.DEFERRED, _later(decision)))

    def _local_hour(self, person: ContactRow) -> int:
        zone = zone_named(person.timezone, self.zone)
        return self.now.replace(tzinfo=UTC).astimezone(zone).hour

    def _why_not(
        self,
        campaign: Campaign,
        step: Step,
        person: ContactRow,
        facts: ChunkFacts,
        excluded: str | None,
    ) -> str:
        """Why today's decision has no such send for the contact."""
        if excluded and campaign.kind != SERVICE:
            return excluded
        choice = choose_variant(campaign, step, str(person.id), facts.members)
        if not choice.in_audience:
            return f"not in the campaign's audience '{campaign.segment}'"
        if choice.why_not:
            return choice.why_not
        started_by = f"its trigger ({campaign.trigger})" if campaign.trigger else "its schedule"
        return f"{started_by} no longer holds on {self.as_of}"


def _later(decision: Decision) -> str:
    """Why a send decided for a later day waits."""
    why = f"decided for {decision.day}"
    return f"{why}: {decision.reason}" if decision.reason else why


__all__ = [
    "CLAIMED",
    "MADE_MEANWHILE",
    "TAKEN",
    "Gathered",
    "SendChecks",
    "Verdicts",
    "short",
]
