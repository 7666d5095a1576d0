"""`send_day`: everything owed up to the day, checked again, reserved, delivered, settled.

The protocol that must never send a mail twice, and never lose one:

1. The run registers and takes its lock (runs.py); the rows that dead runs
   held are taken over at once (`reserved`: owed again; `sending`:
   `unknown`), those of live runs are left alone.
2. Chunk of contacts by chunk (in id order; each worker of the run takes
   every n-th), what is owed (owed.py): the plan's sends up to the day
   without a ledger row, deferred rows whose next try has come, what today's
   decision sends that the plan lacks (each contact decided once, with the
   chunk's facts: checks.py). Sends past their validity are written `expired`.
3. Then, in one short write transaction (SQLite: BEGIN IMMEDIATE;
   PostgreSQL: the chunk's contacts claimed with SKIP LOCKED): check each
   send again against the ledger as it is now (checks.py), record the
   cancelled and the not-yet, and reserve the rest. The reservation commits
   before any mail leaves.
4. Rendering happens after, outside the lock (a mail that cannot be
   rendered goes back to the queue with the error), and the courier
   (courier.py) delivers the chunk in the background while the next chunk
   is decided. Each SMTP connection marks its mail `sending`, committed,
   just before it leaves, together with the outcome of its previous mail.
5. A 4xx defers the mail with a next-try time and the reply; when the run
   has worked everything, it tries the deferred mails whose time has come
   once more.

Ctrl-C, SIGTERM or a lost transport finish the mails on the wire, record
them and give the rest back to the queue: nothing stays `reserved` or
`sending`. A killed run leaves at most one `sending` mail per connection.
"""

from __future__ import annotations

import re
import signal
import sys
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Connection, Engine

from trouw.bounces.verp import return_path
from trouw.campaigns import load_campaigns
from trouw.importing import suppress_addresses
from trouw.planning.candidates import Bounds, chunk_bounds
from trouw.planning.collector import rarer_collections
from trouw.planning.runs import year_planned
from trouw.project import Project
from trouw.segments import keep_day_snapshots, load_catalog
from trouw.sending import ledger as book
from trouw.sending import runs
from trouw.sending.checks import CLAIMED, TAKEN, Gathered, SendChecks, short
from trouw.sending.courier import Courier, Keeper, Parcel
from trouw.sending.letters import letter_html
from trouw.sending.owed import Due, owed_sends
from trouw.sending.summary import SendSummary
from trouw.sending.transports import (
    NOT_OURS,
    RELEASED,
    Outcome,
    Outgoing,
    Transport,
    TransportDown,
    deliver_batch,
)
from trouw.sending.winners import decide_winners
from trouw.store import atomic, ledger, refresh_stale_statistics
from trouw.store.writelock import WriteLock
from trouw.templates.campaign_mails import CampaignMails
from trouw.templates.environment import MailTemplates
from trouw.templates.links import keep_signing_key, signing_key

CHUNK_CONTACTS = 500
# Contacts decided at once, per chunk of contacts written: the chunk's facts are gathered with
# a few statements for all of them (as the plan's chunks are), whether or not they are owed
# anything today; their dues are then checked and reserved CHUNK_CONTACTS at a time.
DECIDED_PER_WRITTEN = 10
# Mails handed to the connections between two records of their outcomes (the outcomes of
# the others are recorded with each connection's next mark anyway). At the end of a batch
# every connection waits for the slowest one and for the record's commit, so a batch is a
# whole parcel (a chunk's mails, a few hundred) rather than a few dozen: with 40, the
# connections stood idle for about a mail's time in twelve. A stopping run still stops
# before each mail (transports.deliver_batch).
SEND_BATCH = 1000
# How often a run goes back over the mails a 4xx deferred, once it has worked the rest.
RETRY_PASSES = 2
# Seconds a thread holds the GIL while others wait for it (Python's default: 0.005). A run's
# SMTP connections, their marks' commits and the courier are threads that mostly wait on a
# socket and then work a few microseconds, beside the main thread that decides and renders
# without pause: each time a reply arrived, a connection waited up to 5 ms for its turn.
# 0.5 ms: 164 -> 146 s for 47,481 mails over 8 days of 200,000 contacts, 2 workers
# (scripts/bench_pg.py; 0.2 ms was no faster). At 1,000,000 contacts, where the main
# thread waits for the connections most of the time, none seen: 331 s without it, 344
# and 432 s with it (runs there vary more than that).
SWITCH_INTERVAL_S = 0.0005
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Stopped(KeyboardInterrupt):
    """A signal asked the run to stop (SIGTERM as Ctrl-C): finish the wire, give back the rest."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def __reduce__(self) -> tuple[type[Stopped], tuple[int]]:
        # A worker process stopped inside a task sends it back pickled: rebuilt from the
        # number, not from the name its args hold (Stopped("SIGTERM") raised ValueError).
        return (Stopped, (self.signum,))


def safe_name(*parts: str) -> str:
    return "-".join(_UNSAFE.sub("_", part).strip("_") or "_" for part in parts)


def sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "trouw.invalid"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class DaySender:
    """One run of one day: the per-run setup shared by every chunk."""

    def __init__(
        self,
        engine: Engine,
        project: Project,
        as_of: date,
        transport: Transport | None,
        *,
        run_id: int,
        started: datetime,
        retry_backoff: Sequence[timedelta],
        now: datetime,
    ) -> None:
        self.engine = engine
        self.project = project
        self.as_of = as_of
        self.transport = transport
        self.run_id = run_id
        self.retry_backoff = tuple(retry_backoff)
        # SQLite: the run's writers (chunks, each connection's marks) queue on a file lock
        # instead of sleeping on the busy timeout; another database has row locks.
        self.lock = WriteLock(engine)
        self.catalog = load_catalog(project.segments_dir)
        self.templates = MailTemplates(project.templates_dir)
        self.campaigns = {c.name: c for c in load_campaigns(project.campaigns_dir)}
        self.checks = SendChecks(
            project,
            as_of,
            self.campaigns,
            self.catalog,
            refuses=transport.refuses if transport else lambda channel: None,
            started=started,
            now=now,
        )
        self.sender = project.settings.sender.from_address
        self.envelope_sender = parseaddr(self.sender)[1]
        self.return_path = project.settings.sender.return_path  # VERP: bounces/verp.py
        self.domain = sender_domain(self.sender)
        self.list_ids = {
            name: f"{name} <{safe_name(name)}.{self.domain}>" for name in self.campaigns
        }

    @contextmanager
    def write(self, *, write: bool = True) -> Iterator[Connection]:
        """One write transaction, its turn taken on the machine's write lock (SQLite)."""
        if not write:
            with atomic(self.engine, write=False) as connection:
                yield connection
            return
        with self.lock, atomic(self.engine) as connection:
            yield connection

    def settle(self, connection: Connection, settled: Sequence[tuple[Due, str, str]]) -> None:
        book.settle(
            connection,
            [(due.send, due.state, status, reason) for due, status, reason in settled],
            domain=self.domain,
            now=_now(),
        )

    def prepare(
        self, connection: Connection, chosen: Sequence[Due]
    ) -> tuple[list[tuple[Due, Outgoing]], list[tuple[Due, str, str]]]:
        """Render the chosen sends: the mails, and those not made, with the ledger status
        and why: `cancelled` when the mail would not be sent to this contact (no longer in
        the audience, no variant fits), `deferred` when it failed to render."""
        mails = CampaignMails(
            self.project, connection, self.as_of, templates=self.templates, catalog=self.catalog
        )
        groups: dict[tuple[str, str], list[Due]] = {}
        for due in chosen:
            groups.setdefault((due.send.campaign, due.send.step), []).append(due)
        prepared: list[tuple[Due, Outgoing]] = []
        unmade: list[tuple[Due, str, str]] = []
        for (campaign_name, step_name), items in groups.items():
            found = self.checks.step(items[0].send)
            assert not isinstance(found, str)
            campaign, step = found
            # The rest of an A/B test gets the winner the decision put in the send, not the
            # arm the contact's hash alone would choose.
            winner = step.test is not None and step.test.share is not None
            rendered = {
                r.contact_id: r
                for r in mails.render_for(
                    campaign,
                    step,
                    [d.send.contact_id for d in items],
                    templates={d.send.contact_id: str(d.send.template) for d in items}
                    if winner
                    else None,
                    channels={d.send.contact_id: d.send.channel for d in items},
                )
            }
            for due in items:
                result = rendered.get(due.send.contact_id)
                if result is not None and result.notes:
                    unmade.append((due, book.CANCELLED, short(result.notes[0])))
                    continue
                if result is None or result.mail is None:
                    why = result.error if result is not None else None
                    unmade.append((due, book.DEFERRED, short(str(why or "nothing to render"))))
                    continue
                message_id = book.message_id(due.send.key, self.domain)
                try:
                    message = mails.message(
                        result,
                        message_id=message_id,
                        headers={"List-Id": self.list_ids[campaign_name]},
                    )
                except ValueError as exc:  # e.g. a header with CR/LF from data
                    problem = short(f"cannot build the message: {exc}")
                    unmade.append((due, book.DEFERRED, problem))
                    continue
                send = replace(due.send, template=result.mail.template)
                letter = None
                if send.channel == "post":
                    letter = letter_html(
                        subject=result.mail.subject,
                        html=result.mail.html,
                        contact=result.contact,
                        settings=self.project.settings,
                        day=self.as_of,
                    )
                name = safe_name(
                    self.as_of.isoformat(), campaign_name, step_name, send.contact_id,
                    message_id[1:9],
                )  # fmt: skip
                recipient = str(result.contact.get("email") or "") or None
                sender = self.envelope_sender
                if self.return_path:
                    sender = return_path(self.return_path, message_id, mails.signing_key.secret)
                outgoing = Outgoing(send, message, sender, recipient, name, letter, due.attempts)
                prepared.append((replace(due, send=send), outgoing))
        return prepared, unmade

    def confirmation(self, item: Outgoing, outcome: Outcome) -> book.Confirmation:
        """What the ledger records for a mail's outcome."""
        key, template = item.send.key, item.send.template
        if outcome.status == book.SENT:
            return book.Confirmation(key, book.SENT, sent_at=_now(), template=template)
        if outcome.status == book.DEFERRED:
            retry_at = _now() + book.backoff(item.attempts + 1, self.retry_backoff)
            return book.Confirmation(
                key, book.DEFERRED, error=outcome.error, template=template, retry_at=retry_at
            )
        if outcome.status == RELEASED:
            return book.Confirmation(key, book.DEFERRED, error=outcome.error, attempted=False)
        return book.Confirmation(key, outcome.status, error=outcome.error, template=template)

    def deliver(
        self,
        parcel: Parcel,
        keeper: Keeper,
        summary: SendSummary,
        *,
        batch_size: int,
        stopping: Callable[[], bool],
    ) -> None:
        """Deliver one parcel batch by batch, recording outcomes after each batch.

        The `unmade` mails are recorded with the first batch. What a failing
        transport leaves undelivered goes back to the queue, and so do, once
        `stopping()` says so, the mails not started.
        """
        assert self.transport is not None
        unmade = list(parcel.unmade)
        released: list[tuple[book.Key, str]] = []
        bounced: list[str] = []

        def record() -> None:
            with self.write() as connection:
                book.confirm(connection, [*unmade, *keeper.take_held()], run_id=self.run_id)
                book.release(connection, released, run_id=self.run_id)
                summary.suppressed += suppress_addresses(connection, bounced, "hard-bounce")
            unmade.clear()
            released.clear()
            bounced.clear()

        prepared = parcel.prepared
        index = 0
        try:
            while index < len(prepared):
                if stopping():
                    break
                batch = prepared[index : index + batch_size]
                index += len(batch)
                down: TransportDown | None = None
                results = deliver_batch(self.transport, [o for _, o in batch], keeper, stopping)
                for (due, outgoing), result in zip(batch, results, strict=True):
                    if isinstance(result, TransportDown):
                        released.append((due.send.key, f"not sent: {result}"))
                        down = down or result
                    elif result is NOT_OURS:
                        summary.skip([due], "reservation taken over by another run")
                    elif result.status == RELEASED:
                        released.append((due.send.key, result.error or "not sent"))
                        summary.released += 1
                    else:
                        self._count(due, outgoing, result, summary, bounced)
                record()
                if down is not None:
                    raise down
        finally:
            rest = [(d.send.key, "not sent: the run stopped first") for d, _ in prepared[index:]]
            summary.released += len(rest)
            released.extend(rest)
            record()

    @staticmethod
    def _count(
        due: Due, outgoing: Outgoing, outcome: Outcome, summary: SendSummary, bounced: list[str]
    ) -> None:
        key = due.send.key
        if outcome.status == book.SENT:
            summary.sent += 1
        elif outcome.status == book.DEFERRED:
            summary.deferred += 1
        elif outcome.status == book.UNKNOWN:
            summary.unknown += 1
            summary.failures.append((key, outcome.error or "unknown"))
        else:
            summary.failed += 1
            summary.failures.append((key, outcome.error or "failed"))
            if outcome.hard_bounce and outgoing.recipient:
                bounced.append(outgoing.recipient)


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
    chunk_contacts: int = CHUNK_CONTACTS,
    decide_contacts: int | None = None,
    send_batch: int = SEND_BATCH,
    retry_backoff: Sequence[timedelta] = book.RETRY_BACKOFF,
    worker: tuple[int, int] = (0, 1),
    progress: Callable[[int, int], Any] | None = None,
    started: datetime | None = None,
    now: datetime | None = None,
) -> SendSummary:
    """Work everything owed up to `as_of` through `transport` (None for a dry run, which
    writes nothing).

    `progress(done, total)` is called after each chunk (dues worked, dues found so
    far). The contacts are decided `decide_contacts` at a time (by default
    DECIDED_PER_WRITTEN times `chunk_contacts`), their dues reserved
    `chunk_contacts` at a time. `worker=(i, n)`: the i-th of n workers of one
    run decides every n-th chunk of contacts, from the i-th on, and works only
    those contacts' sends: a worker that claimed a contact another one decided
    would not know what the decision owes them.
    `started`: when the run began (its workers share it), to tell ledger rows
    made meanwhile from those of earlier runs. `now` (naive UTC, default the
    real time): the moment each contact's send window is judged at. A stop (Ctrl-C, SIGTERM as
    `Stopped`) ends the run cleanly: the summary says `interrupted`. Raises
    TransportDown (after recording what was delivered and giving back what
    was not) when the transport fails altogether.
    """
    if transport is None and not dry_run:
        raise ValueError("a transport is needed unless dry_run")
    summary = SendSummary(as_of, dry_run=dry_run)
    started = started or _now()
    now = now or _now()
    if dry_run:
        run = DaySender(
            engine, project, as_of, None,
            run_id=0, started=started, retry_backoff=retry_backoff, now=now,
        )  # fmt: skip
        _work(run, summary, limit=limit, dry_run=True, retry_unknown=False,
              chunk_contacts=chunk_contacts, decide_contacts=decide_contacts,
              send_batch=send_batch, worker=worker, progress=progress)  # fmt: skip
        return summary
    with runs.SendRun(engine, as_of) as lock:
        run = DaySender(
            engine, project, as_of, transport,
            run_id=lock.id, started=started, retry_backoff=retry_backoff, now=now,
        )  # fmt: skip
        outcome = "failed"
        try:
            _work(run, summary, limit=limit, dry_run=False, retry_unknown=retry_unknown,
                  chunk_contacts=chunk_contacts, decide_contacts=decide_contacts,
                  send_batch=send_batch, worker=worker, progress=progress)  # fmt: skip
            outcome = "finished"
        except KeyboardInterrupt as stop:
            summary.interrupted = str(stop) if isinstance(stop, Stopped) else "SIGINT"
            outcome = "interrupted"
        finally:
            lock.finish(outcome, summary.record())
    if not retry_unknown:
        with engine.connect() as connection:
            summary.unknown_waiting = book.count_unknown(connection, as_of)
    return summary


@rarer_collections()  # the day's candidates, decisions and mails are rarely cyclic
def _work(
    run: DaySender,
    summary: SendSummary,
    *,
    limit: int | None,
    dry_run: bool,
    retry_unknown: bool,
    chunk_contacts: int,
    decide_contacts: int | None,
    send_batch: int,
    worker: tuple[int, int],
    progress: Callable[[int, int], Any] | None,
) -> None:
    engine, as_of = run.engine, run.as_of
    now = _now()
    # Each chunk reads its contacts' ledger rows: by their index only if the planner knows
    # how many rows the ledger holds (PostgreSQL).
    refresh_stale_statistics(engine, ledger)
    if not dry_run:
        with run.write() as connection:
            key = signing_key(connection)
            keep_signing_key(connection, key)  # from now on every machine must use it
            summary.signed_with = str(key)
            # The day's members of the segments an `entered` trigger watches: tomorrow's
            # baseline, as simulate keeps it.
            finder = run.checks.finder
            keep_day_snapshots(connection, finder.entered, run.catalog, finder.clock)
            # A/B tests whose first wave has run its `after`: the winner, for the rest.
            picked = decide_winners(connection, finder.campaigns, run.checks.now, as_of)
            summary.winners = [winner.describe() for winner in picked]
            found = book.take_over(connection, runs.alive)
            summary.taken_over, summary.stale = found.released, found.unknown
            info = runs.run_info(connection, found.held or {})
            summary.held = [
                (info[i], n)
                for i, n in (found.held or {}).items()
                if i in info and info[i].started_at < run.checks.started  # not this run's
            ]
    with engine.connect() as connection:
        summary.unplanned = not year_planned(connection, as_of.year)
        size = decide_contacts or chunk_contacts * DECIDED_PER_WRITTEN
        bounds = list(chunk_bounds(connection, size))
    index, workers = worker
    uppers = [str(upto) for _, upto in bounds[:-1]]

    def mine(due: Due) -> bool:  # the worker that decided a contact works their sends
        return bisect_left(uppers, due.send.contact_id) % workers == index

    remaining = [limit]
    done = [0]
    owed = _owed(run, summary, bounds[index::workers], chunk_contacts, now=now,
                 retry_unknown=retry_unknown, dry_run=dry_run)  # fmt: skip
    _pass(run, summary, owed, remaining, done, dry_run=dry_run, send_batch=send_batch,
          progress=progress)  # fmt: skip
    for _attempt in range(RETRY_PASSES):  # again over what a 4xx deferred, once its time came
        if summary.deferred == 0 or summary.limited:
            break
        with engine.connect() as connection:
            again = owed_sends(
                connection, as_of, campaigns=run.campaigns,
                policy=run.project.settings.policy, now=_now(), retries_only=True,
            )  # fmt: skip
        dues = [due for due in again.dues if mine(due)]
        if not dues:
            break
        chunks = _chunks(dues, chunk_contacts)
        first = len(chunks) * index // workers  # workers meet each other's work late
        _pass(run, summary, _gathered(run, chunks[first:] + chunks[:first]), remaining, done,
              dry_run=dry_run, send_batch=send_batch, progress=progress)  # fmt: skip


def _owed(
    run: DaySender,
    summary: SendSummary,
    bounds: Sequence[Bounds],
    chunk_contacts: int,
    *,
    now: datetime,
    retry_unknown: bool,
    dry_run: bool,
) -> Iterator[tuple[Sequence[Due], Gathered]]:
    """What is owed, chunk of contacts by chunk, with the chunk's facts: each contact is
    decided once, as of the day (SendChecks.decided), beside what the plan and the ledger
    owe them (owed.py). The expired are recorded here; the dues are the pass's, in chunks
    of `chunk_contacts` contacts."""
    as_of = run.as_of
    for chunk in bounds:
        with run.engine.connect() as reader:  # the day's facts, before the write lock
            gathered = run.checks.gather_within(reader, chunk)
            owed = owed_sends(
                reader, as_of, campaigns=run.campaigns, policy=run.project.settings.policy,
                now=now, retry_unknown=retry_unknown, decided=run.checks.decided(reader, gathered),
                contacts=chunk,
            )  # fmt: skip
        summary.due += len(owed.dues)
        summary.triggered += owed.unplanned
        for day, count in owed.earlier(as_of).items():
            summary.earlier[day] = summary.earlier.get(day, 0) + count
        summary.earlier = dict(sorted(summary.earlier.items()))
        for due, _ in owed.expired:
            summary.expired[due.send.campaign] += 1
        if owed.expired and not dry_run:
            with run.write() as connection:
                run.settle(connection, [(due, book.EXPIRED, why) for due, why in owed.expired])
        for dues in _chunks(owed.dues, chunk_contacts):
            yield dues, gathered


def _gathered(
    run: DaySender, chunks: Sequence[Sequence[Due]]
) -> Iterator[tuple[Sequence[Due], Gathered]]:
    """Each chunk of dues with its contacts' facts of the day."""
    for chunk in chunks:
        with run.engine.connect() as reader:  # before the write lock
            gathered = run.checks.gather(reader, chunk)
        yield chunk, gathered


@contextmanager
def _threads_take_turns_often() -> Iterator[None]:
    """SWITCH_INTERVAL_S while the run's threads deliver (the setting is the process's:
    restored after)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@_threads_take_turns_often()
def _pass(
    run: DaySender,
    summary: SendSummary,
    chunks: Iterable[tuple[Sequence[Due], Gathered]],
    remaining: list[int | None],
    done: list[int],
    *,
    dry_run: bool,
    send_batch: int,
    progress: Callable[[int, int], Any] | None,
) -> None:
    """One pass over the chunks of dues (whole contacts), the courier delivering behind."""
    engine = run.engine

    def deliver(parcel: Parcel, stopping: Callable[[], bool]) -> None:
        run.deliver(parcel, keeper, summary, batch_size=send_batch, stopping=stopping)
        if progress is not None:
            progress(parcel.contacts_done, summary.due)

    def release(parcel: Parcel) -> None:
        keys = [(d.send.key, "not sent: the run stopped first") for d, _ in parcel.prepared]
        summary.released += len(parcel.prepared)
        with run.write() as connection:
            book.confirm(connection, parcel.unmade, run_id=run.run_id)
            book.release(connection, keys, run_id=run.run_id)

    keeper = Keeper(engine, run.lock, run.run_id, run.confirmation)
    courier = None if dry_run else Courier(deliver, release)
    unsent: Parcel | None = None  # reserved, not yet with the courier: released on error
    try:
        for chunk, gathered in chunks:
            if remaining[0] is not None and remaining[0] <= 0:
                # The rest stays owed to the next run, undecided: a try of a few mails on
                # a big shop does not wait for every contact to be decided.
                summary.limited = True
                break
            with run.write(write=not dry_run) as connection:
                if not dry_run:
                    claimed = book.claim_contacts(
                        connection, sorted({d.send.contact_id for d in chunk})
                    )
                    held = [d for d in chunk if d.send.contact_id not in claimed]
                    if held:
                        summary.skip(held, CLAIMED)
                        chunk = [d for d in chunk if d.send.contact_id in claimed]
                verdicts = run.checks.check(connection, chunk, gathered, summary)
                chosen = verdicts.chosen
                for due, status, reason in verdicts.settled:
                    summary.settle(due, status, short(reason))
                if remaining[0] is not None and len(chosen) > remaining[0]:
                    summary.limited = True
                    summary.skip(chosen[remaining[0] :], "over --limit")
                    chosen = chosen[: remaining[0]]
                if courier is None:  # a dry run: render, count, write nothing
                    prepared, _ = run.prepare(connection, chosen)
                    summary.would_send += len(prepared)
                    if remaining[0] is not None:
                        remaining[0] -= len(prepared)
                    done[0] += len(chunk)
                    if progress is not None:
                        progress(done[0], summary.due)
                    continue
                run.settle(connection, verdicts.settled)
                mine = _reserve(connection, run, chosen)
            # Committed: from here on the ledger owns these sends. Rendering happens outside
            # the write transaction, so other runs and workers decide and confirm meanwhile,
            # and while the courier delivers the previous chunk.
            summary.skip([d for d in chosen if d.send.key not in mine], TAKEN)
            reserved = [d for d in chosen if d.send.key in mine]
            summary.retried += [
                (d.send.key, book.message_id(d.send.key, run.domain)) for d in reserved if d.retry
            ]
            unsent = Parcel([(d, None) for d in reserved], (), done[0])
            with engine.connect() as connection:
                prepared, unmade = run.prepare(connection, reserved)
            for due, status, why in unmade:
                summary.settle(due, status, why)
            if remaining[0] is not None:
                remaining[0] -= len(prepared)
            done[0] += len(chunk)
            settled = [
                book.Confirmation(d.send.key, status, error=why, attempted=False)
                for d, status, why in unmade
            ]
            courier.send(Parcel(prepared, settled, done[0]))
            unsent = None
        if courier is not None:
            courier.close()
    except BaseException:  # a stop or an error: finish the batch in flight, release the rest
        if unsent is not None:
            release(unsent)
        if courier is not None:
            courier.close(abandon=True)  # raises the courier's error, if it had one
        raise
    finally:
        keeper.close()


def _reserve(connection: Connection, run: DaySender, chosen: Sequence[Due]) -> set[book.Key]:
    """Reserve the chosen sends for the run: new rows, and the queue's rows taken back."""
    now = _now()
    mine: set[book.Key] = set()
    fresh = [d.send for d in chosen if d.state is None]
    mine.update(
        s.key
        for s in book.reserve(connection, fresh, domain=run.domain, now=now, run_id=run.run_id)
    )
    for state in (book.DEFERRED, book.UNKNOWN):
        sends = [d.send for d in chosen if d.state == state]
        for start in range(0, len(sends), 500):
            part = sends[start : start + 500]
            taken = book.reclaim(connection, part, status=state, now=now, run_id=run.run_id)
            mine.update(s.key for s in taken)
    return mine


__all__ = ["CHUNK_CONTACTS", "SEND_BATCH", "SendSummary", "Stopped", "send_day"]
