"""`send_day`: the day's due sends, checked again, reserved, rendered, delivered, confirmed.

The plan says what was meant for the day; the ledger says what has been
made. Each chunk of contacts is decided in one short write transaction
(SQLite: BEGIN IMMEDIATE, so two runs queue up): read the contacts, their
stops and their ledger, decide with the planner's own policy code (`resolve`,
with the ledger's counted sends as history and no deferral: a send that no
longer fits today is skipped with the reason), and reserve. The reservation
commits before any mail leaves. Rendering happens after, outside the lock (a
mail that cannot be rendered is released and skipped), and the courier
(courier.py) delivers the chunk in the background while the next chunk is
decided and rendered. Delivery goes in batches of SEND_BATCH: one small
transaction confirms the batch before and marks the next `sending`,
committed before its first mail leaves. A run that dies leaves `reserved`
rows (certainly not sent: the next run makes them again) and at most one
batch of `sending` rows, which the next run marks `unknown`: never sent again
unless asked (`retry_unknown`). A run that is interrupted (Ctrl-C) or loses
its transport finishes the batch in flight and releases the rest.

On PostgreSQL each chunk transaction first claims its contacts with
`FOR NO KEY UPDATE SKIP LOCKED`, so several workers (processes, machines)
share one day: a worker skips the contacts another is deciding, and the
ledger's unique key stops any send being made twice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select

from trouw.campaigns import Campaign, Step, load_campaigns
from trouw.importing import email_hash, suppress_addresses
from trouw.planning.policy import PLANNED, Candidate, QuietDays, Rules, YearCalendar, resolve
from trouw.project import Project
from trouw.segments import Clock, load_catalog
from trouw.sending import ledger as book
from trouw.sending.courier import Courier, Parcel
from trouw.sending.letters import letter_html
from trouw.sending.transports import (
    RELEASED,
    Outcome,
    Outgoing,
    Transport,
    TransportDown,
    deliver_batch,
)
from trouw.sending.triggered import triggered_sends
from trouw.store import atomic, contacts, events, plan, suppressions
from trouw.templates.campaign_mails import CampaignMails
from trouw.templates.environment import MailTemplates

CHUNK_CONTACTS = 500
# Mails marked `sending` in one go: the most a killed run can leave `unknown`.
SEND_BATCH = 40
# How far back (and ahead) ledger rows matter for caps: a month, a week, any sane gap.
HISTORY_DAYS = 62
# Skips that are the run's own work, done by another of its workers (or a run at the same time).
MADE_MEANWHILE = "made meanwhile by another worker or run"
CLAIMED = "claimed by another worker"
TAKEN = "reserved by another run"
STOPPING = {"unsubscribe": "unsubscribed", "complaint": "complained", "bounce": "hard-bounced"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class SendSummary:
    """What a run did: sent, skipped with reasons, failed, and what is left unknown."""

    day: date
    dry_run: bool = False
    due: int = 0
    triggered: int = 0  # of `due`: triggered since the plan was made
    sent: int = 0
    would_send: int = 0
    failed: int = 0
    unknown: int = 0  # lost during DATA in this run
    released: int = 0  # temporary failures left for the next run
    stale: int = 0  # reservations of dead runs, now unknown
    stale_released: int = 0  # reservations of dead runs that never left, made again
    unknown_waiting: int = 0  # the day's unknown rows not retried
    suppressed: int = 0  # addresses suppressed after a hard bounce
    limited: bool = False
    skips: dict[book.Key, str] = field(default_factory=dict)  # why each unsent due was skipped
    failures: list[tuple[book.Key, str]] = field(default_factory=list)

    def skip(self, dues: Iterable[Due], reason: str) -> None:
        for due in dues:
            self.skips[due.send.key] = reason

    @property
    def skipped(self) -> Counter[str]:
        """How many were skipped for each reason (two workers meeting one send count it once)."""
        return Counter(self.skips.values())


@dataclass(frozen=True)
class Due:
    send: book.Send
    priority: int
    retry: bool = False  # an `unknown` row reclaimed by --retry-unknown


def safe_name(*parts: str) -> str:
    return "-".join(_UNSAFE.sub("_", part).strip("_") or "_" for part in parts)


def sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "trouw.invalid"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def due_sends(
    connection: Connection,
    day: date,
    *,
    retry_unknown: bool,
    triggered: Sequence[tuple[book.Send, int]] = (),
) -> list[Due]:
    """The plan's planned and deferred sends of `day`, the `triggered` sends the plan
    lacks (with priority), and the day's unknown rows if asked."""
    query = (
        select(
            plan.c.contact_id,
            plan.c.campaign,
            plan.c.step,
            plan.c.occurrence,
            plan.c.day,
            plan.c.template,
            plan.c.channel,
            plan.c.priority,
        )
        .where(plan.c.day == day, plan.c.status.in_(("planned", "deferred")))
        .order_by(plan.c.contact_id, plan.c.campaign, plan.c.step, plan.c.occurrence)
    )
    found = {
        (row[0], row[1], row[2], row[3]): Due(book.Send(*row[:7]), int(row[7]))
        for row in connection.execute(query)
    }
    for send, priority in triggered:
        found.setdefault(send.key, Due(send, priority))
    if retry_unknown:
        for send in book.unknown_sends(connection, day):
            old = found.get(send.key)
            found[send.key] = Due(send, old.priority if old else 0, retry=True)
    return sorted(found.values(), key=lambda d: d.send.key)


def _stops(
    connection: Connection, rows: Sequence[Any], clock: Clock
) -> tuple[dict[str, str], set[str]]:
    """Why contacts get nothing but service mail (by id), and the suppressed addresses."""
    ids = [str(row.id) for row in rows]
    stopped: dict[str, str] = {}
    query = select(events.c.contact_id, events.c.type, events.c.tag).where(
        events.c.contact_id.in_(bindparam("ids", expanding=True)),
        events.c.type.in_(tuple(STOPPING)),
        events.c.occurred_at < clock.end,
    )
    for contact_id, kind, tag in connection.execute(query, {"ids": ids}):
        if kind == "bounce" and tag == "soft":
            continue
        stopped.setdefault(str(contact_id), STOPPING[kind])
    by_hash = {email_hash(str(row.email)): str(row.email) for row in rows if row.email}
    suppressed: set[str] = set()
    if by_hash:
        query2 = select(suppressions.c.email_hash).where(
            suppressions.c.email_hash.in_(bindparam("hashes", expanding=True))
        )
        for (found,) in connection.execute(query2, {"hashes": list(by_hash)}):
            suppressed.add(by_hash[found].lower())
    return stopped, suppressed


class DaySender:
    """One run of one day: the per-run setup shared by every chunk."""

    def __init__(
        self,
        engine: Engine,
        project: Project,
        as_of: date,
        transport: Transport | None,
        *,
        dry_run: bool,
        retry_unknown: bool,
        started: datetime,
    ) -> None:
        self.engine = engine
        self.started = started
        self.project = project
        self.as_of = as_of
        self.transport = transport
        self.dry_run = dry_run
        self.retry_unknown = retry_unknown
        self.clock = Clock(as_of, project.settings.tz)
        self.catalog = load_catalog(project.segments_dir)
        self.templates = MailTemplates(project.templates_dir)
        self.campaigns = {c.name: c for c in load_campaigns(project.campaigns_dir)}
        rules = Rules.from_policy(project.settings.policy)
        # Quiet days and deferral were the planner's business; today a send fits or it doesn't.
        self.rules = replace(rules, defer_days=0, quiet=QuietDays(()))
        self.calendar = YearCalendar(as_of.year, self.rules.quiet)
        self.sender = project.settings.sender.from_address
        self.envelope_sender = parseaddr(self.sender)[1]
        self.domain = sender_domain(self.sender)
        self.list_ids = {
            name: f"{name} <{safe_name(name)}.{self.domain}>" for name in self.campaigns
        }

    def _step(self, send: book.Send) -> tuple[Campaign, Step] | str:
        campaign = self.campaigns.get(send.campaign)
        if campaign is None:
            return f"campaign '{send.campaign}' no longer exists"
        for step in campaign.steps:
            if step.name == send.step:
                return campaign, step
        return f"step '{send.step}' no longer in campaign '{send.campaign}'"

    def eligible(
        self, connection: Connection, dues: Sequence[Due], summary: SendSummary
    ) -> list[Due]:
        """The dues that may go out today, their send's channel set; skips are counted."""
        ids = sorted({d.send.contact_id for d in dues})
        rows = connection.execute(
            select(contacts).where(contacts.c.id.in_(bindparam("ids", expanding=True))),
            {"ids": ids},
        ).all()
        people = {str(row.id): row for row in rows}
        stopped, suppressed = _stops(connection, rows, self.clock)
        since = self.as_of - timedelta(days=HISTORY_DAYS)
        until = self.as_of + timedelta(days=HISTORY_DAYS)
        histories = book.histories(
            connection, ids, since=since, until=until, run_started=self.started
        )
        by_contact: dict[str, list[Due]] = {}
        for due in dues:
            by_contact.setdefault(due.send.contact_id, []).append(due)
        chosen: list[Due] = []
        for contact_id, mine in by_contact.items():
            person = people.get(contact_id)
            if person is None:
                summary.skip(mine, "contact no longer exists")
                continue
            history = histories.get(contact_id)
            keep: list[Due] = []
            for due in mine:
                status = history.status.get(due.send.key[1:]) if history else None
                if status is not None and not (due.retry and status == book.UNKNOWN):
                    assert history is not None
                    if due.send.key[1:] in history.recent:
                        summary.skip([due], MADE_MEANWHILE)
                    else:
                        summary.skip([due], f"already in the ledger ({status})")
                    continue
                keep.append(due)
            if not keep:
                continue
            channel = person.channel if person.channel in ("email", "post") else None
            channel = channel or ("email" if person.email else "post")
            excluded: str | None = None
            if person.channel == "none":
                excluded = "channel none: service mails only"
            elif contact_id in stopped:
                excluded = stopped[contact_id]
            if channel == "email":
                problem = None
                if not person.email:
                    problem = "no email address"
                elif str(person.email).lower() in suppressed:
                    problem = "address suppressed"
                if problem:
                    summary.skip(keep, problem)
                    continue
            refused = self.transport.refuses(channel) if self.transport else None
            if refused:
                summary.skip(keep, refused)
                continue
            candidates: list[Candidate] = []
            by_key: dict[tuple[str, str, str], Due] = {}
            for due in keep:
                found = self._step(due.send)
                if isinstance(found, str):
                    summary.skip([due], found)
                    continue
                campaign, step = found
                send = due.send
                candidates.append(
                    Candidate(
                        self.as_of, send.campaign, send.step, send.occurrence,
                        send.template or "", campaign.kind, due.priority,
                        campaign.steps.index(step),
                    )
                )  # fmt: skip
                by_key[send.key[1:]] = due
            retried = {key for key, due in by_key.items() if due.retry}
            counted = [
                (day, campaign)
                for key, (day, campaign) in (history.counted.items() if history else ())
                if key not in retried
            ]
            for decision in resolve(
                candidates, self.rules, self.calendar, excluded=excluded, sent=counted
            ):
                if decision.status == PLANNED and decision.day == self.as_of:
                    due = by_key[decision.candidate.key]
                    chosen.append(replace(due, send=replace(due.send, channel=channel)))
                else:
                    why = _short(decision.reason or "does not fit today")
                    summary.skip([by_key[decision.candidate.key]], why)
        return chosen

    def prepare(
        self, connection: Connection, chosen: Sequence[Due], summary: SendSummary
    ) -> list[tuple[Due, Outgoing]]:
        """Render the chosen sends; a mail that cannot be rendered is skipped with the reason."""
        mails = CampaignMails(
            self.project, connection, self.as_of, templates=self.templates, catalog=self.catalog
        )
        groups: dict[tuple[str, str], list[Due]] = {}
        for due in chosen:
            groups.setdefault((due.send.campaign, due.send.step), []).append(due)
        prepared: list[tuple[Due, Outgoing]] = []
        for (campaign_name, step_name), items in groups.items():
            found = self._step(items[0].send)
            assert not isinstance(found, str)
            campaign, step = found
            rendered = {
                r.contact_id: r
                for r in mails.render_for(campaign, step, [d.send.contact_id for d in items])
            }
            for due in items:
                result = rendered.get(due.send.contact_id)
                if result is None or result.mail is None:
                    why = result.error if result is not None else None
                    reason = result.notes[0] if result and result.notes else None
                    summary.skip([due], _short(str(why) if why else reason or "nothing to render"))
                    continue
                if result.notes:
                    summary.skip([due], _short(result.notes[0]))
                    continue
                try:
                    message = mails.message(
                        result,
                        message_id=book.message_id(due.send.key, self.domain),
                        headers={"List-Id": self.list_ids[campaign_name]},
                    )
                except ValueError as exc:  # e.g. a header with CR/LF from data
                    summary.skip([due], _short(f"cannot build the message: {exc}"))
                    continue
                send = replace(due.send, template=result.mail.template)
                letter = None
                if send.channel == "post":
                    letter = letter_html(
                        subject=result.mail.subject,
                        html=result.mail.html,
                        contact=result.contact,
                        sender=self.project.settings.sender.postal_address or self.sender,
                        day=self.as_of,
                    )
                name = safe_name(
                    self.as_of.isoformat(), campaign_name, step_name, send.contact_id,
                    book.message_id(send.key, self.domain)[1:9],
                )  # fmt: skip
                recipient = str(result.contact.get("email") or "") or None
                outgoing = Outgoing(send, message, self.envelope_sender, recipient, name, letter)
                prepared.append((replace(due, send=send), outgoing))
        return prepared

    def deliver(
        self,
        prepared: Sequence[tuple[Due, Outgoing]],
        summary: SendSummary,
        *,
        token: datetime,
        batch_size: int = SEND_BATCH,
        unmade: Sequence[book.Key] = (),
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """Deliver the run `token`'s reserved mails batch by batch, confirming as it goes.

        Each batch is marked `sending` (committed, together with the previous
        batch's confirmations) before its first mail leaves; what a failing
        transport leaves undelivered is released for a later run, and so are
        the `unmade` reservations (mails that could not be rendered: skipped)
        and, once `stopping()` says so, the batches not started.
        """
        assert self.transport is not None
        confirmations: list[book.Confirmation] = []
        released: list[book.Key] = list(unmade)
        bounced: list[str] = []

        def record(connection: Connection) -> None:
            book.confirm(connection, confirmations, token=token)
            book.release(connection, released, token=token)
            summary.suppressed += suppress_addresses(connection, bounced, "hard-bounce")
            confirmations.clear()
            released.clear()
            bounced.clear()

        index = 0
        try:
            while index < len(prepared):
                if stopping():
                    released.extend(d.send.key for d, _ in prepared[index:])
                    break
                batch = prepared[index : index + batch_size]
                index += len(batch)
                with atomic(self.engine) as connection:
                    record(connection)
                    owned = set(
                        book.start_sending(connection, [d.send.key for d, _ in batch], token=token)
                    )
                lost = [d for d, _ in batch if d.send.key not in owned]
                summary.skip(lost, "reservation taken over by another run")
                mine = [(d, o) for d, o in batch if d.send.key in owned]
                down: TransportDown | None = None
                outcomes = deliver_batch(self.transport, [o for _, o in mine])
                for (due, outgoing), outcome in zip(mine, outcomes, strict=True):
                    if isinstance(outcome, TransportDown):  # not tried: certainly not sent
                        released.append(due.send.key)
                        down = down or outcome
                        continue
                    self._outcome(due, outgoing, outcome, summary, confirmations, released, bounced)
                if down is not None:
                    released.extend(d.send.key for d, _ in prepared[index:])
                    raise down
        finally:
            with atomic(self.engine) as connection:
                record(connection)

    @staticmethod
    def _outcome(
        due: Due,
        outgoing: Outgoing,
        outcome: Outcome,
        summary: SendSummary,
        confirmations: list[book.Confirmation],
        released: list[book.Key],
        bounced: list[str],
    ) -> None:
        key = due.send.key
        if outcome.status == RELEASED:
            released.append(key)
            summary.released += 1
            return
        sent_at = _now() if outcome.status == book.SENT else None
        confirmations.append(
            book.Confirmation(key, outcome.status, sent_at, outcome.error, due.send.template)
        )
        if outcome.status == book.SENT:
            summary.sent += 1
        elif outcome.status == book.UNKNOWN:
            summary.unknown += 1
            summary.failures.append((key, outcome.error or "unknown"))
        else:
            summary.failed += 1
            summary.failures.append((key, outcome.error or "failed"))
            if outcome.hard_bounce and outgoing.recipient:
                bounced.append(outgoing.recipient)


def _short(reason: str) -> str:
    """A reason as a summary line: the first line, without per-contact dates."""
    first = reason.strip().splitlines()[0] if reason.strip() else reason
    return re.sub(r" on \d{4}-\d{2}-\d{2}", "", first)


def _chunks(dues: Sequence[Due], chunk_contacts: int) -> list[Sequence[Due]]:
    """The dues cut into chunks of whole contacts: one contact's sends are decided together."""
    chunks: list[Sequence[Due]] = []
    start = 0
    while start < len(dues):
        end = start
        contacts_seen: set[str] = set()
        while end < len(dues):
            contact_id = dues[end].send.contact_id
            if contact_id not in contacts_seen and len(contacts_seen) >= chunk_contacts:
                break
            contacts_seen.add(contact_id)
            end += 1
        chunks.append(dues[start:end])
        start = end
    return chunks


def send_day(
    engine: Engine,
    project: Project,
    as_of: date,
    transport: Transport | None,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    retry_unknown: bool = False,
    stale_after: timedelta = book.STALE_AFTER,
    chunk_contacts: int = CHUNK_CONTACTS,
    send_batch: int = SEND_BATCH,
    worker: tuple[int, int] = (0, 1),
    progress: Callable[[int, int], Any] | None = None,
    started: datetime | None = None,
) -> SendSummary:
    """Send the day's due mails through `transport` (None for a dry run, which reserves nothing).

    `progress(done, total)` is called after each chunk. `worker=(i, n)`: the
    i-th of n workers of one run starts at the i-th n-th of the day's chunks
    (and wraps around), so workers meet each other's work as late as possible.
    `started`: when the run began (its workers share it), to tell ledger rows
    made meanwhile from those of earlier runs. Raises TransportDown (after
    confirming what was delivered and releasing what was not) when the
    transport fails altogether.
    """
    if transport is None and not dry_run:
        raise ValueError("a transport is needed unless dry_run")
    run = DaySender(
        engine, project, as_of, transport,
        dry_run=dry_run, retry_unknown=retry_unknown, started=started or _now(),
    )  # fmt: skip
    summary = SendSummary(as_of, dry_run=dry_run)
    if not dry_run:
        with atomic(engine) as connection:
            summary.stale_released, summary.stale = book.mark_stale(
                connection, before=_now() - stale_after
            )
    with engine.connect() as connection:
        triggered = triggered_sends(connection, project, as_of)
        dues = due_sends(
            connection, as_of, retry_unknown=retry_unknown and not dry_run, triggered=triggered
        )
    summary.due = len(dues)
    summary.triggered = len(triggered)
    chunks = _chunks(dues, chunk_contacts)
    first = len(chunks) * worker[0] // max(worker[1], 1)
    chunks = chunks[first:] + chunks[:first]
    remaining = limit
    done = 0

    def deliver(parcel: Parcel, stopping: Callable[[], bool]) -> None:
        run.deliver(
            parcel.prepared, summary, token=parcel.token, batch_size=send_batch,
            unmade=parcel.unmade, stopping=stopping,
        )  # fmt: skip
        if progress is not None:
            progress(parcel.contacts_done, len(dues))

    def release(parcel: Parcel) -> None:
        keys = [d.send.key for d, _ in parcel.prepared] + list(parcel.unmade)
        with atomic(engine) as connection:
            book.release(connection, keys, token=parcel.token)

    courier = None if dry_run else Courier(deliver, release)
    unsent: Parcel | None = None  # reserved, not yet with the courier: released on error
    try:
        for chunk in chunks:
            if remaining is not None and remaining <= 0:
                summary.limited = True
                summary.skip(chunk, "over --limit")
                continue
            with atomic(engine, write=not dry_run) as connection:
                if not dry_run:
                    claimed = book.claim_contacts(
                        connection, sorted({d.send.contact_id for d in chunk})
                    )
                    held = [d for d in chunk if d.send.contact_id not in claimed]
                    if held:
                        summary.skip(held, CLAIMED)
                        chunk = [d for d in chunk if d.send.contact_id in claimed]
                chosen = run.eligible(connection, chunk, summary) if chunk else []
                if remaining is not None and len(chosen) > remaining:
                    summary.limited = True
                    summary.skip(chosen[remaining:], "over --limit")
                    chosen = chosen[:remaining]
                if courier is None:  # a dry run: render, count, reserve nothing
                    prepared = run.prepare(connection, chosen, summary)
                    summary.would_send += len(prepared)
                    if remaining is not None:
                        remaining -= len(prepared)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, len(dues))
                    continue
                token = _now()
                fresh = [d.send for d in chosen if not d.retry]
                retried = [d.send for d in chosen if d.retry]
                mine = {
                    s.key
                    for s in book.reserve(connection, fresh, domain=run.domain, now=token)
                    + book.reclaim_unknown(connection, retried, now=token)
                }
            # Committed: from here on the ledger owns these sends. Rendering happens outside
            # the write transaction, so other runs and workers decide and confirm meanwhile,
            # and while the courier delivers the previous chunk.
            summary.skip([d for d in chosen if d.send.key not in mine], TAKEN)
            reserved = [d for d in chosen if d.send.key in mine]
            unsent = Parcel((), token, [d.send.key for d in reserved], done)
            with engine.connect() as connection:
                prepared = run.prepare(connection, reserved, summary)
            if remaining is not None:
                remaining -= len(prepared)
            made = {d.send.key for d, _ in prepared}
            unmade = [d.send.key for d in reserved if d.send.key not in made]
            done += len(chunk)
            courier.send(Parcel(prepared, token, unmade, done))
            unsent = None
        if courier is not None:
            courier.close()
    except BaseException:  # Ctrl-C or an error: finish the batch in flight, release the rest
        if unsent is not None:
            release(unsent)
        if courier is not None:
            courier.close(abandon=True)  # raises the courier's error, if it had one
        raise
    if not retry_unknown:
        with engine.connect() as connection:
            summary.unknown_waiting = book.count_unknown(connection, as_of)
    return summary


__all__ = ["MADE_MEANWHILE", "SEND_BATCH", "SendSummary", "due_sends", "send_day"]
