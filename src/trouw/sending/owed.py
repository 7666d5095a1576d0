"""What a send run owes: every send due up to its day and not yet settled.

A send the plan (or a trigger) makes due is owed from its day on, until the
ledger holds it in a final state. So a run for day D works

- the plan's sends dated D or earlier (within the look-back) that have no
  ledger row: today's, and those a killed or skipped run never reached;
- the ledger's `deferred` rows whose next try has come (a 4xx, a cap that
  bound, a mail released by a run that stopped or died);
- the sends today's decision makes that the plan lacks or dates later
  (`SendChecks.decided`: a click since, a purchase that moved a
  win-back, a new member of an audience, room a cancel freed);
- with `--retry-unknown`, D's `unknown` rows.

Each send may go out until its validity ends (`valid_for` on the campaign,
`service` mails longer, else the policy's `defer_for`); past it, it is
`expired` with the reason, never sent late. Except a send a lasting state
starts (a win-back): it is owed while the customer stays inactive, as the
decision catches it up at any time, and today's decision cancels it once a
purchase ends the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
)

from trouw.campaigns import Campaign
from trouw.durations import parse_duration
from trouw.planning.candidates import Bounds, within
from trouw.project import Policy
from trouw.sending import ledger as book
from trouw.store import ledger, plan

# Plan days further back than the longest validity are still looked at for this long, so a
# send no run reached in time ends `expired` in the ledger instead of nowhere.
GRACE_DAYS = 31


@dataclass(frozen=True)
class Due:
    """An owed send for this run: `state` is its ledger row's status (None: no row yet)."""

    send: book.Send
    priority: int
    state: str | None = None  # None, `deferred`, or `unknown` when the operator asks a retry
    attempts: int = 0
    error: str | None = None  # the last reply or reason, for an expiry's reason

    @property
    def retry(self) -> bool:
        return self.state == book.UNKNOWN


@dataclass
class Owed:
    """The run's work: `dues` to decide, `expired` to write (with the reason)."""

    dues: list[Due] = field(default_factory=list)
    expired: list[tuple[Due, str]] = field(default_factory=list)
    unplanned: int = 0  # of `dues`: decided today, not owed by the plan (yet)

    def earlier(self, day: date) -> dict[date, int]:
        """How many of the dues are owed from days before `day`, per day."""
        counts: dict[date, int] = {}
        for due in self.dues:
            owed_from = due.send.owed_from
            if owed_from < day:
                counts[owed_from] = counts.get(owed_from, 0) + 1
        return dict(sorted(counts.items()))


def validity_days(campaign: Campaign | None, policy: Policy) -> int:
    """Days after its due day a send of `campaign` may still go out (Campaign.validity_days;
    without a campaign, the policy's `defer_for`)."""
    default = parse_duration(policy.defer_for).approx_days()
    return default if campaign is None else campaign.validity_days(default)


def owed_sends(
    connection: Connection,
    day: date,
    *,
    campaigns: dict[str, Campaign],
    policy: Policy,
    now: datetime,
    retry_unknown: bool = False,
    decided: Sequence[tuple[book.Send, int]] = (),
    retries_only: bool = False,
    contacts: Bounds = (None, None),
) -> Owed:
    """Everything owed up to and including `day`, and what of it has expired.

    `retries_only`: just the deferred rows tried before whose next try has come
    (a run's second pass over its 4xx answers). `contacts`: only the sends of
    the contacts with ids in these bounds (after, up to; None: no bound), a
    chunk of them, whether or not the contacts still exist.
    """
    validity, default_validity, look_back = _validities(campaigns, policy)
    found: dict[book.Key, Due] = {}
    unplanned = 0
    if not retries_only:
        query = select(
            plan.c.contact_id,
            plan.c.campaign,
            plan.c.step,
            plan.c.occurrence,
            plan.c.day,
            plan.c.template,
            plan.c.channel,
            plan.c.priority,
        ).where(
            *_planned_unsent(day, look_back, _plan_day(connection, contacts)),
            *within(plan.c.contact_id, contacts),
        )
        for row in connection.execute(query):
            send = book.Send(row[0], row[1], row[2], row[3], day, row[5], row[6], due=row[4])
            found[send.key] = Due(send, int(row[7]))
        planned = len(found)
        for send, priority in decided:
            found.setdefault(send.key, Due(send, priority))
        unplanned = len(found) - planned
    retries = select(
        ledger.c.contact_id,
        ledger.c.campaign,
        ledger.c.step,
        ledger.c.occurrence,
        ledger.c.due,
        ledger.c.day,
        ledger.c.template,
        ledger.c.channel,
        ledger.c.status,
        ledger.c.attempts,
        ledger.c.error,
    ).where(
        _retried(day, now, retry_unknown=retry_unknown, retries_only=retries_only),
        *within(ledger.c.contact_id, contacts),
    )
    for kept in connection.execute(retries):
        send = book.Send(
            kept.contact_id, kept.campaign, kept.step, kept.occurrence, day, kept.template,
            kept.channel, due=kept.due or kept.day,
        )  # fmt: skip
        campaign = campaigns.get(send.campaign)
        old = found.get(send.key)
        priority = old.priority if old else (campaign.priority if campaign else 0)
        found[send.key] = Due(send, priority, str(kept.status), int(kept.attempts), kept.error)
    owed = Owed(unplanned=unplanned)
    lasting = _lasting(campaigns)
    for key in sorted(found):
        due = found[key]
        days = validity.get(due.send.campaign, default_validity)
        last = due.send.owed_from + timedelta(days=days)
        if last < day and not due.retry and due.send.campaign not in lasting:
            owed.expired.append((due, _expiry(due, days, last)))
        else:
            owed.dues.append(due)
    return owed


def _validities(campaigns: dict[str, Campaign], policy: Policy) -> tuple[dict[str, int], int, int]:
    """Each campaign's validity in days, the default one, and how far back to look."""
    validity = {name: validity_days(c, policy) for name, c in campaigns.items()}
    default_validity = validity_days(None, policy)
    return validity, default_validity, max([default_validity, *validity.values()]) + GRACE_DAYS


def _lasting(campaigns: dict[str, Campaign]) -> frozenset[str]:
    """The campaigns whose sends a lasting state starts (Trigger.lasting: a win-back): owed
    for as long as the state holds, which today's decision tells (it cancels them once a
    purchase ends it), so they never expire, as the decision catches them up at any time."""
    return frozenset(name for name, c in campaigns.items() if c.trigger and c.trigger.lasting)


def _plan_day(connection: Connection, contacts: Bounds) -> ColumnElement[date]:
    """`plan.day` for the filters of a chunk's owed sends.

    SQLite would pick the day index and read the whole look-back (every plan
    row of two months) for each chunk; `+day` keeps the day test off the index,
    so the contact id index serves the chunk's range. (PostgreSQL goes by its
    statistics: a plan made together is analyzed when it is written, plan_years.py.)
    """
    if connection.dialect.name == "sqlite" and contacts != (None, None):
        return literal_column("+plan.day", Date)
    return plan.c.day


def _planned_unsent(
    day: date, look_back: int, plan_day: ColumnElement[date] = plan.c.day
) -> list[ColumnElement[bool]]:
    """The plan's sends owed up to `day` (within the look-back) that have no ledger row yet."""
    in_ledger = exists().where(
        ledger.c.contact_id == plan.c.contact_id,
        ledger.c.campaign == plan.c.campaign,
        ledger.c.step == plan.c.step,
        ledger.c.occurrence == plan.c.occurrence,
    )
    return [
        plan_day <= day,
        plan_day >= day - timedelta(days=look_back),
        plan.c.status.in_(("planned", "deferred")),
        ~in_ledger,
    ]


def _retried(
    day: date, now: datetime, *, retry_unknown: bool, retries_only: bool
) -> ColumnElement[bool]:
    """The ledger rows a run works again: `deferred` ones whose next try has come (with
    `retries_only`, only those tried before) and, when the operator asks, D's `unknown`."""
    waiting: ColumnElement[bool] = or_(
        ledger.c.next_attempt_at.is_(None), ledger.c.next_attempt_at <= now
    )
    if retries_only:
        waiting = and_(ledger.c.next_attempt_at.is_not(None), ledger.c.next_attempt_at <= now)
    states = [and_(ledger.c.status == book.DEFERRED, waiting)]
    if retry_unknown and not retries_only:
        states.append(and_(ledger.c.status == book.UNKNOWN, ledger.c.day == day))
    return and_(or_(*states), ledger.c.due <= day)


@dataclass
class OwedCount:
    """How much a run for the day would work, counted by the database (for `trouw status`).

    The plan's unsent sends and the ledger's retries, as `owed_sends` finds them;
    not the sends only the run's own decision of the day adds. `waiting` counts
    them by the day a run last handled them (a plan send no run reached: its
    plan day), so a monitor can tell mail that no run has touched for days.
    """

    owed: int = 0  # a run would work these
    expiring: int = 0  # past their validity: a run records them `expired`
    since: date | None = None  # the earliest day the `owed` are owed from
    waiting: dict[date, int] = field(default_factory=dict)  # last handled -> owed + expiring


def count_owed(
    connection: Connection,
    day: date,
    *,
    campaigns: dict[str, Campaign],
    policy: Policy,
    now: datetime,
) -> OwedCount:
    """`owed_sends` counted: two grouped queries, no row per send."""
    validity, default_validity, look_back = _validities(campaigns, policy)
    unsent = (
        select(plan.c.campaign, plan.c.day, plan.c.day, func.count())
        .where(*_planned_unsent(day, look_back))
        .group_by(plan.c.campaign, plan.c.day)
    )
    retried = (
        select(ledger.c.campaign, func.coalesce(ledger.c.due, ledger.c.day), ledger.c.day,
               func.count())
        .where(_retried(day, now, retry_unknown=False, retries_only=False))
        .group_by(ledger.c.campaign, ledger.c.due, ledger.c.day)
    )  # fmt: skip
    counted = OwedCount()
    lasting = _lasting(campaigns)
    for query in (unsent, retried):
        for campaign, owed_from, handled, n in connection.execute(query):
            days = validity.get(campaign, default_validity)
            if owed_from + timedelta(days=days) < day and campaign not in lasting:
                counted.expiring += n
            else:
                counted.owed += n
                counted.since = min(owed_from, counted.since or owed_from)
            counted.waiting[handled] = counted.waiting.get(handled, 0) + n
    counted.waiting = dict(sorted(counted.waiting.items()))
    return counted


def _expiry(due: Due, days: int, last: date) -> str:
    why = f"valid_for {days}d ran out on {last}"
    if due.error:
        return f"{why}; last: {due.error}"
    return f"{why}; no run reached it in time"


__all__ = [
    "GRACE_DAYS",
    "Due",
    "Owed",
    "OwedCount",
    "count_owed",
    "owed_sends",
    "validity_days",
]
