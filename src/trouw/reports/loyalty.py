"""Loyalty figures from the shop's own data: purchase and survey events.

Every figure is computed for a period [start, end) of local days (the year up
to as-of, or one of its months):

- customer: a contact with a purchase in the 12 months before a moment.
- churn rate = lost / customers at the start. Lost: a customer at the start
  who is no customer at the end (no purchase in the 12 months before the end).
  For a whole year that is exactly "no purchase during the year"; for a month
  it is the customers whose last purchase turned 12 months old in it.
- repurchase rate = buyers with 2 or more purchases in the period / buyers
  with at least 1.
- upsell rate = returning buyers (a purchase in the period and one before
  it) who bought in the period a category they had never bought before the
  period / returning buyers. Purchases without a category count as purchases
  but never as a new category.
- NPS = % promoters (9-10) - % detractors (0-6) over the survey answers tagged
  `nps` with a score 0-10 in the period, every answer counted; -100 … 100.
- average recommend score: the mean of those NPS answers, 0-10.
- CSAT = share of the survey answers tagged `csat` with a score 1-5 that are
  4 or 5.
- loyalty score (0-10) = the mean of the average recommend score, 10 times
  the repurchase rate and 10 times the upsell rate; none while any of the
  three is unknown (no answers, no buyers).

A rate whose denominator is zero is None ("no data"), never 0.

The database computes all periods at once, in three statements: purchases
grouped per contact, with a column per time span that matters (a customer at
the start, at the end, purchases in the period); first purchases per
(contact, category), grouped per contact into "bought before the period and
a new category in it"; and the year's survey answers summed per period. So
the purchases are read once for all thirteen periods, not once per period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select

from trouw.reports.periods import Bounds, Period
from trouw.store import events

PURCHASE = "purchase"
SURVEY = "survey"
NPS_TAG = "nps"
CSAT_TAG = "csat"


@dataclass(frozen=True)
class Loyalty:
    """The counts behind the loyalty figures of one period, and the figures."""

    period: Period
    customers_at_start: int = 0
    lost: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    returning_buyers: int = 0
    upsold: int = 0
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0
    recommend_total: int = 0  # the sum of the NPS scores
    csat_answers: int = 0
    satisfied: int = 0

    @property
    def has_data(self) -> bool:
        """Whether any purchase or survey answer bears on this period."""
        return bool(self.customers_at_start or self.buyers or self.nps_answers or self.csat_answers)

    @property
    def churn_rate(self) -> float | None:
        return _share(self.lost, self.customers_at_start)

    @property
    def repurchase_rate(self) -> float | None:
        return _share(self.repeat_buyers, self.buyers)

    @property
    def upsell_rate(self) -> float | None:
        return _share(self.upsold, self.returning_buyers)

    @property
    def nps(self) -> float | None:
        if not self.nps_answers:
            return None
        return 100.0 * (self.promoters - self.detractors) / self.nps_answers

    @property
    def average_recommend(self) -> float | None:
        return _share(self.recommend_total, self.nps_answers)

    @property
    def csat(self) -> float | None:
        return _share(self.satisfied, self.csat_answers)

    @property
    def loyalty_score(self) -> float | None:
        recommend, repurchase, upsell = (
            self.average_recommend,
            self.repurchase_rate,
            self.upsell_rate,
        )
        if recommend is None or repurchase is None or upsell is None:
            return None
        return (recommend + 10 * repurchase + 10 * upsell) / 3

    def figures(self) -> dict[str, float | None]:
        """The six figures and the average recommend score, by name."""
        return {
            "churn_rate": self.churn_rate,
            "repurchase_rate": self.repurchase_rate,
            "upsell_rate": self.upsell_rate,
            "nps": self.nps,
            "average_recommend": self.average_recommend,
            "csat": self.csat,
            "loyalty_score": self.loyalty_score,
        }

    def counts(self) -> dict[str, int]:
        return {
            "customers_at_start": self.customers_at_start,
            "lost": self.lost,
            "buyers": self.buyers,
            "repeat_buyers": self.repeat_buyers,
            "returning_buyers": self.returning_buyers,
            "upsold": self.upsold,
            "nps_answers": self.nps_answers,
            "promoters": self.promoters,
            "detractors": self.detractors,
            "csat_answers": self.csat_answers,
            "satisfied": self.satisfied,
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def loyalty_figures(connection: Connection, windows: Sequence[Bounds]) -> list[Loyalty]:
    """The loyalty figures of every period, in order; `windows` are their UTC bounds."""
    if not windows:
        return []
    purchases = _purchase_counts(connection, windows)
    upsold = _upsold_counts(connection, windows)
    surveys = _survey_counts(connection, windows)
    return [
        Loyalty(window.period, **bought, upsold=new, **answered)
        for window, bought, new, answered in zip(windows, purchases, upsold, surveys, strict=True)
    ]


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _purchase_counts(connection: Connection, windows: Sequence[Bounds]) -> list[dict[str, int]]:
    """Customers, lost customers, buyers, repeat and returning buyers per period.

    One pass over the purchases' times, grouped per contact: a column per
    time span, then a sum per period.
    """
    at = events.c.occurred_at
    # The time spans that matter, each counted once: they repeat across periods (a
    # month's "customer at the end" span is the next month's "customer at the start").
    spans: dict[tuple[datetime, datetime], str] = {}

    def span(start: datetime, end: datetime) -> str:
        return spans.setdefault((start, end), f"w{len(spans)}")

    keys = [
        (span(w.customers_at_start, w.start), span(w.customers_at_end, w.end), span(w.start, w.end))
        for w in windows
    ]
    per_contact = (
        select(
            func.min(at).label("first"),
            *(
                func.sum(_flag(and_(at >= start, at < end))).label(name)
                for (start, end), name in spans.items()
            ),
        )
        .where(events.c.type == PURCHASE, at < max(w.end for w in windows))
        .group_by(events.c.contact_id)
        .subquery("per_contact")
    )
    p = per_contact.c
    conditions = []
    for w, (at_start, at_end, inside) in zip(windows, keys, strict=True):
        customer, bought = p[at_start] > 0, p[inside] > 0
        conditions += [
            customer,
            and_(customer, p[at_end] == 0),
            bought,
            p[inside] >= 2,
            and_(bought, p.first < w.start),
        ]
    row = connection.execute(select(*(func.sum(_flag(one)) for one in conditions))).one()
    names = ("customers_at_start", "lost", "buyers", "repeat_buyers", "returning_buyers")
    return [
        {name: int(row[5 * k + i] or 0) for i, name in enumerate(names)}
        for k in range(len(windows))
    ]


def _upsold_counts(connection: Connection, windows: Sequence[Bounds]) -> list[int]:
    """Per period: buyers from before it who bought a category for the first time in it."""
    at = events.c.occurred_at
    firsts = (
        select(events.c.contact_id, events.c.category, func.min(at).label("first"))
        .where(events.c.type == PURCHASE, at < max(w.end for w in windows))
        .group_by(events.c.contact_id, events.c.category)
        .subquery("firsts")
    )
    f = firsts.c
    flags = []
    for k, w in enumerate(windows):
        new_category = and_(f.category.is_not(None), f.first >= w.start, f.first < w.end)
        returning_with_a_new_category = and_(
            func.min(f.first) < w.start, func.max(_flag(new_category)) == 1
        )
        flags.append(_flag(returning_with_a_new_category).label(f"u{k}"))
    per_contact = select(*flags).group_by(f.contact_id).subquery("per_contact")
    row = connection.execute(select(*(func.sum(column) for column in per_contact.c))).one()
    return [int(value or 0) for value in row]


def _survey_counts(connection: Connection, windows: Sequence[Bounds]) -> list[dict[str, int]]:
    """NPS and CSAT answer counts per period (answers outside their scale are ignored)."""
    at = events.c.occurred_at
    tag = func.lower(events.c.tag)
    score = events.c.score
    nps = and_(tag == NPS_TAG, score >= 0, score <= 10)
    csat = and_(tag == CSAT_TAG, score >= 1, score <= 5)
    names = ("nps_answers", "promoters", "detractors", "recommend_total", "csat_answers",
             "satisfied")  # fmt: skip
    columns = []
    for w in windows:
        inside = and_(at >= w.start, at < w.end)
        columns += [
            func.sum(_flag(and_(inside, nps))),
            func.sum(_flag(and_(inside, nps, score >= 9))),
            func.sum(_flag(and_(inside, nps, score <= 6))),
            func.sum(case((and_(inside, nps), score), else_=0)),
            func.sum(_flag(and_(inside, csat))),
            func.sum(_flag(and_(inside, csat, score >= 4))),
        ]
    row = connection.execute(
        select(*columns).where(
            events.c.type == SURVEY,
            at >= min(w.start for w in windows),
            at < max(w.end for w in windows),
            or_(nps, csat),
        )
    ).one()
    return [
        {name: int(row[6 * k + i] or 0) for i, name in enumerate(names)}
        for k in range(len(windows))
    ]
