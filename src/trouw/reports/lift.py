"""What the mail caused: treated against held-out contacts, after the send.

Who was held out is in the ledger (experiments.py, planning/decision.py): a
send a campaign's `holdout:` or the project's `control_group` kept from a
contact ends `cancelled` with the reason "held out: ...", on the day the
others got theirs. So each comparison is between contacts the same decision
would have mailed on the same days, split by a hash alone:

- per campaign with a holdout: contacts sent any of its mails against those
  its holdout kept out;
- the program: contacts sent any mail the control group is kept from
  (promotional or lifecycle) against the control group.

Each contact is followed from the day of their first such send (or held-out
send) for `window` days, cut off at the end of as-of, and counted once:

- repurchase: a purchase in that window (share of contacts);
- revenue per contact: the sum of their purchases' amounts in it (mean,
  zero for those who bought nothing);
- churn: of the contacts who were customers at the send (a purchase in the
  12 months before), those who are none at the window's end (no purchase in
  the 12 months before it);
- NPS: of the contacts who answered an `nps` survey in the window (their
  latest answer), % promoters (9-10) - % detractors (0-6).

Methods (scipy.stats), 95% intervals for treated - held out: a difference
of proportions by Newcombe's hybrid score interval (method 10, from the two
Wilson score intervals) with Fisher's exact test for the p-value; a
difference of means (revenue; NPS as +100/0/-100 per answer) by Welch's
t-interval and test. A difference is significant when its interval leaves 0
out. Contacts are streamed once, ordered by id, with their events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, or_, select

from trouw.experiments import CAMPAIGN_HOLDOUT, CONTROL_GROUP, HELD_OUT
from trouw.reports.periods import CUSTOMER_WINDOW
from trouw.segments import Clock
from trouw.sending.ledger import CANCELLED, SENT
from trouw.store import events, ledger

WINDOW_DAYS = 90
CONFIDENCE = 0.95
PROGRAM = "program"
METHOD = (
    "treated - held out, 95% intervals: proportions by Newcombe's hybrid score interval "
    "(Wilson), p by Fisher's exact test; revenue and NPS by Welch's t-interval (scipy.stats)"
)


@dataclass(frozen=True)
class Difference:
    """One figure in both groups, and treated - held out with its interval."""

    treated: float | None
    held: float | None
    treated_n: int  # contacts the figure is over
    held_n: int
    lift: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None

    @property
    def significant(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Lift:
    """A comparison: a campaign against its holdout, or the program against the control group."""

    name: str
    held_by: str  # the reason the held-out contacts were kept out with
    treated: int
    held: int
    repurchase: Difference
    revenue: Difference
    churn: Difference
    nps: Difference

    def figures(self) -> dict[str, Difference]:
        return {
            "repurchase": self.repurchase,
            "revenue": self.revenue,
            "churn": self.churn,
            "nps": self.nps,
        }


@dataclass
class _Outcomes:
    """What one group's contacts did after the send, a value per contact."""

    bought: list[int] = field(default_factory=list)
    revenue: list[float] = field(default_factory=list)
    churned: list[int] = field(default_factory=list)  # customers at the send only
    nps: list[float] = field(default_factory=list)  # answerers only: +100, 0 or -100


def _stats() -> Any:
    """scipy.stats, imported on first use: it takes a while, and most commands never ask."""
    from scipy import stats  # type: ignore[import-untyped]

    return stats


def proportions(treated: Sequence[int], held: Sequence[int]) -> Difference:
    """Two shares of 0/1 values compared: Newcombe's hybrid score interval, Fisher's p."""
    n1, n2 = len(treated), len(held)
    a, b = sum(treated), sum(held)
    p1 = a / n1 if n1 else None
    p2 = b / n2 if n2 else None
    if p1 is None or p2 is None:
        return Difference(p1, p2, n1, n2)
    l1, u1 = _wilson(a, n1)
    l2, u2 = _wilson(b, n2)
    lift = p1 - p2
    low = lift - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = lift + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    p_value = float(_stats().fisher_exact([[a, n1 - a], [b, n2 - b]]).pvalue)
    return Difference(p1, p2, n1, n2, lift, low, high, p_value)


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    interval = _stats().binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


def means(treated: Sequence[float], held: Sequence[float]) -> Difference:
    """Two means compared by Welch's t-interval and test (unequal variances)."""
    n1, n2 = len(treated), len(held)
    m1 = sum(treated) / n1 if n1 else None
    m2 = sum(held) / n2 if n2 else None
    if m1 is None or m2 is None:
        return Difference(m1, m2, n1, n2)
    if n1 < 2 or n2 < 2 or (_constant(treated) and _constant(held)):
        return Difference(m1, m2, n1, n2, m1 - m2)  # no spread to judge the difference by
    result = _stats().ttest_ind(treated, held, equal_var=False)
    interval = result.confidence_interval(CONFIDENCE)
    return Difference(
        m1, m2, n1, n2, m1 - m2, float(interval.low), float(interval.high), float(result.pvalue)
    )


def _constant(values: Sequence[float]) -> bool:
    return all(value == values[0] for value in values)


def lift_figures(
    connection: Connection,
    *,
    first: date,
    as_of: date,
    timezone: ZoneInfo,
    window: int = WINDOW_DAYS,
) -> list[Lift]:
    """Every comparison the ledger holds from `first` to `as_of`: the program (when a control
    group kept sends back) first, then each campaign with a holdout, by name."""
    clock = Clock(as_of, timezone)
    any_held = select(ledger.c.id).where(
        ledger.c.day >= first,
        ledger.c.day <= as_of,
        ledger.c.status == CANCELLED,
        ledger.c.error.like(f"{HELD_OUT}%"),
    )
    if connection.execute(any_held.limit(1)).first() is None:
        return []  # nobody held out: nothing to compare (and the sends are not read)
    # (comparison, contact) -> [treated?, first day]
    entries = _entries(connection, first, as_of)
    if not entries:
        return []
    groups: dict[str, tuple[_Outcomes, _Outcomes]] = {}
    by_contact: dict[str, list[tuple[str, bool, date]]] = {}
    for (name, contact_id), (treated, day) in entries.items():
        by_contact.setdefault(contact_id, []).append((name, treated, day))
        groups.setdefault(name, (_Outcomes(), _Outcomes()))
    earliest = clock.start_of(min(day for _, day in entries.values()) - CUSTOMER_WINDOW)
    followed = select(ledger.c.contact_id).where(*_ledger_filter(first, as_of)).distinct()
    query = (
        select(events.c.contact_id, events.c.type, events.c.occurred_at, events.c.amount,
               events.c.tag, events.c.score)
        .where(
            events.c.contact_id.in_(followed),
            events.c.type.in_(("purchase", "survey")),
            events.c.occurred_at >= earliest,
            events.c.occurred_at < clock.end,
        )
        .order_by(events.c.contact_id, events.c.occurred_at)
    )  # fmt: skip
    current: str | None = None
    mine: list[Any] = []
    for row in connection.execution_options(yield_per=5000).execute(query):
        if row.contact_id != current:
            if current is not None and current in by_contact:
                _follow(by_contact.pop(current), mine, groups, clock, window)
            current, mine = row.contact_id, []
        mine.append(row)
    if current is not None and current in by_contact:
        _follow(by_contact.pop(current), mine, groups, clock, window)
    for rest in by_contact.values():  # no purchase or answer at all in the time looked at
        _follow(rest, [], groups, clock, window)
    found = []
    for name in sorted(groups, key=lambda n: (n != PROGRAM, n)):
        treated, held = groups[name]
        found.append(
            Lift(
                name=name,
                held_by=CONTROL_GROUP if name == PROGRAM else CAMPAIGN_HOLDOUT,
                treated=len(treated.bought),
                held=len(held.bought),
                repurchase=proportions(treated.bought, held.bought),
                revenue=means(treated.revenue, held.revenue),
                churn=proportions(treated.churned, held.churned),
                nps=means(treated.nps, held.nps),
            )
        )
    return found


def _ledger_filter(first: date, as_of: date) -> tuple[Any, ...]:
    return (
        ledger.c.day >= first,
        ledger.c.day <= as_of,
        or_(
            ledger.c.status == SENT,
            (ledger.c.status == CANCELLED) & ledger.c.error.like(f"{HELD_OUT}%"),
        ),
    )


def _entries(connection: Connection, first: date, as_of: date) -> dict[tuple[str, str], list[Any]]:
    """(comparison, contact) -> [treated, first day], from the ledger's rows grouped per
    (campaign, contact, status, reason)."""
    query = select(
        ledger.c.campaign, ledger.c.contact_id, ledger.c.status, ledger.c.error,
        func.min(ledger.c.day),
    ).where(*_ledger_filter(first, as_of)).group_by(
        ledger.c.campaign, ledger.c.contact_id, ledger.c.status, ledger.c.error
    )  # fmt: skip
    rows = connection.execute(query).all()
    with_holdout = {
        r.campaign for r in rows if r.status == CANCELLED and r.error == CAMPAIGN_HOLDOUT
    }
    controlled = {r.campaign for r in rows if r.status == CANCELLED and r.error == CONTROL_GROUP}
    found: dict[tuple[str, str], list[Any]] = {}

    def add(name: str, contact_id: str, treated: bool, day: date) -> None:
        entry = found.get((name, contact_id))
        if entry is None:
            found[(name, contact_id)] = [treated, day]
            return
        entry[0] = entry[0] and treated  # a contact held out anywhere counts as held out
        entry[1] = min(entry[1], day)

    for row in rows:
        contact_id, day = str(row.contact_id), row[4]
        if row.status == SENT:
            if row.campaign in with_holdout:
                add(row.campaign, contact_id, True, day)
            if row.campaign in controlled:
                add(PROGRAM, contact_id, True, day)
        elif row.error == CAMPAIGN_HOLDOUT:
            add(row.campaign, contact_id, False, day)
        elif row.error == CONTROL_GROUP:
            add(PROGRAM, contact_id, False, day)
    return found


def _follow(
    entries: Iterable[tuple[str, bool, date]],
    rows: Sequence[Any],
    groups: dict[str, tuple[_Outcomes, _Outcomes]],
    clock: Clock,
    window: int,
) -> None:
    """One contact's outcomes after each send they are counted for."""
    purchases = [(row.occurred_at, row.amount or 0.0) for row in rows if row.type == "purchase"]
    answers = [
        (row.occurred_at, int(row.score))
        for row in rows
        if row.type == "survey" and row.tag == "nps" and row.score is not None
        and 0 <= row.score <= 10
    ]  # fmt: skip
    after_as_of = clock.as_of + timedelta(days=1)
    for name, treated, day in entries:
        outcomes = groups[name][0 if treated else 1]
        start = clock.start_of(day)
        last = min(day + timedelta(days=window), after_as_of)  # the day after the window
        end = clock.start_of(last)
        inside = [amount for moment, amount in purchases if start <= moment < end]
        outcomes.bought.append(1 if inside else 0)
        outcomes.revenue.append(float(sum(inside)))
        if _bought_between(purchases, clock.start_of(day - CUSTOMER_WINDOW), start):
            since = clock.start_of(last - CUSTOMER_WINDOW)
            outcomes.churned.append(0 if _bought_between(purchases, since, end) else 1)
        said = [score for moment, score in answers if start <= moment < end]
        if said:
            latest = said[-1]
            outcomes.nps.append(100.0 if latest >= 9 else (-100.0 if latest <= 6 else 0.0))


def _bought_between(
    purchases: Sequence[tuple[datetime, float]], start: datetime, end: datetime
) -> bool:
    return any(start <= moment < end for moment, _ in purchases)


__all__ = ["METHOD", "PROGRAM", "Difference", "Lift", "lift_figures", "means", "proportions"]
