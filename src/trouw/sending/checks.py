"""At send time, each owed send is checked again: may it go out today?

The plan was a forecast; the ledger and today's data are the truth. For one
chunk of contacts this reads the contacts, what stops them (unsubscribe,
complaint, hard bounce, suppression) and their ledger, and decides with the
planner's own policy code (`resolve`, the ledger's counted sends as history,
no deferral: a send that does not fit today stays owed). Every owed send
ends up in one of three lists:

- `chosen`: goes out now;
- `settled`: a ledger status with its reason: `cancelled` when it is no
  longer right (the contact unsubscribed, has no address, the campaign is
  gone), `deferred` when it may still fit later (a cap binds today, this
  transport cannot carry its channel);
- skipped (in the summary only): another run or worker has it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select

from trouw.campaigns import Campaign, Step
from trouw.importing import email_hash
from trouw.planning.policy import PLANNED, Candidate, QuietDays, Rules, YearCalendar, resolve
from trouw.project import Project
from trouw.segments import Clock
from trouw.sending import ledger as book
from trouw.sending.owed import Due
from trouw.sending.summary import SendSummary
from trouw.store import contacts, events, suppressions

# How far back (and ahead) ledger rows matter for caps: a month, a week, any sane gap.
HISTORY_DAYS = 62
# Skips that are the run's own work, done by another of its workers (or a run at the same time).
MADE_MEANWHILE = "made meanwhile by another worker or run"
CLAIMED = "claimed by another worker"
TAKEN = "reserved by another run"
STOPPING = {"unsubscribe": "unsubscribed", "complaint": "complained", "bounce": "hard-bounced"}


@dataclass
class Verdicts:
    """One chunk's checks: what goes, and what the ledger records instead (status, reason)."""

    chosen: list[Due]
    settled: list[tuple[Due, str, str]]


def short(reason: str) -> str:
    """A reason as a summary line: the first line, without per-contact dates."""
    first = reason.strip().splitlines()[0] if reason.strip() else reason
    return re.sub(r" on \d{4}-\d{2}-\d{2}", "", first)


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


class SendChecks:
    """The day's checks, set up once per run and applied chunk by chunk."""

    def __init__(
        self,
        project: Project,
        as_of: date,
        campaigns: dict[str, Campaign],
        *,
        refuses: Any,  # channel -> why the transport cannot carry it, or None
        started: Any,
    ) -> None:
        self.as_of = as_of
        self.campaigns = campaigns
        self.refuses = refuses
        self.started = started
        self.clock = Clock(as_of, project.settings.tz)
        rules = Rules.from_policy(project.settings.policy)
        # Quiet days and deferral were the planner's business; today a send fits or it doesn't.
        self.rules = replace(rules, defer_days=0, quiet=QuietDays(()))
        self.calendar = YearCalendar(as_of.year, self.rules.quiet)

    def step(self, send: book.Send) -> tuple[Campaign, Step] | str:
        campaign = self.campaigns.get(send.campaign)
        if campaign is None:
            return f"campaign '{send.campaign}' no longer exists"
        for step in campaign.steps:
            if step.name == send.step:
                return campaign, step
        return f"step '{send.step}' no longer in campaign '{send.campaign}'"

    def check(self, connection: Connection, dues: Sequence[Due], summary: SendSummary) -> Verdicts:
        """Decide each of these dues (whole contacts); skips are counted in `summary`."""
        verdicts = Verdicts([], [])
        ids = sorted({d.send.contact_id for d in dues})
        rows = connection.execute(
            select(contacts).where(contacts.c.id.in_(bindparam("ids", expanding=True))),
            {"ids": ids},
        ).all()
        people = {str(row.id): row for row in rows}
        stopped, suppressed = _stops(connection, rows, self.clock)
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
            history = histories.get(contact_id)
            keep: list[Due] = []
            for due in mine:
                status = history.status.get(due.send.key[1:]) if history else None
                if status != due.state:  # the ledger moved on since the run looked
                    assert history is not None
                    if due.send.key[1:] in history.recent:
                        summary.skip([due], MADE_MEANWHILE)
                    else:
                        summary.skip([due], f"already in the ledger ({status})")
                    continue
                keep.append(due)
            if keep:
                self._contact(person, keep, stopped, suppressed, history, verdicts)
        return verdicts

    def _contact(
        self,
        person: Any,
        keep: list[Due],
        stopped: dict[str, str],
        suppressed: set[str],
        history: book.History | None,
        verdicts: Verdicts,
    ) -> None:
        contact_id = str(person.id)
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
                verdicts.settled += [(d, book.CANCELLED, problem) for d in keep]
                return
        refused = self.refuses(channel)
        if refused:
            verdicts.settled += [(d, book.DEFERRED, refused) for d in keep]
            return
        candidates: list[Candidate] = []
        by_key: dict[tuple[str, str, str], Due] = {}
        for due in keep:
            found = self.step(due.send)
            if isinstance(found, str):
                verdicts.settled.append((due, book.CANCELLED, found))
                continue
            campaign, step = found
            send = due.send
            candidates.append(
                Candidate(
                    self.as_of, send.campaign, send.step, send.occurrence, send.template or "",
                    campaign.kind, due.priority, campaign.steps.index(step),
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
            due = by_key[decision.candidate.key]
            if decision.status == PLANNED and decision.day == self.as_of:
                verdicts.chosen.append(replace(due, send=replace(due.send, channel=channel)))
            elif excluded is not None and decision.reason == excluded:
                verdicts.settled.append((due, book.CANCELLED, excluded))
            else:
                why = short(decision.reason or "does not fit today")
                verdicts.settled.append((due, book.DEFERRED, why))


__all__ = ["CLAIMED", "MADE_MEANWHILE", "TAKEN", "SendChecks", "Verdicts", "short"]
