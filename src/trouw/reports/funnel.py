"""Campaign funnels: per campaign and variant, from planned via sent and opened to bounced.

A variant is a template (`ledger.template`, `plan.template`). The counts:

- planned: plan rows of the year with status planned or deferred (the whole
  year, also the days after as-of).
- sent, failed: ledger rows with that status and a `day` in the year up to
  as-of.
- opened, clicked: unique contacts with an open or click event of the
  campaign; clicks: every click. Only events that name their campaign
  (`properties.campaign`, as the tracking server records them) count: other
  opens and clicks came from elsewhere.
- unsubscribed: unique contacts with an unsubscribe event of the campaign.
- bounced: sent mails followed by a bounce event (not tagged `soft`), plus
  failed sends refused as hard bounces (RCPT TO answered 550-553).
- delivered: sent minus the sent mails that bounced afterwards.
- click-to-open rate: unique clickers / unique openers.

An event belongs to a send: the ledger row `properties.ledger_id` when
given, else the contact's latest sent row (of `properties.campaign`, when
given) whose day is on or before the event's (UTC) day. Its campaign and
variant are `properties.campaign` / `properties.template` when present, else
the send's. It counts for the year of its send; an event without a send, for
the year it happened in. Unsubscribe and bounce events imported without a
campaign thus go to the mail the contact got last. Events are read from the
year's first ledger day on: nothing earlier can belong to the year's sends,
and a year without sends reads none (the demo's years of imported opens and
clicks cost nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Connection, Subquery, and_, case, func, or_, select

from trouw.planning import DEFERRED, PLANNED
from trouw.reports.periods import Period
from trouw.segments import Clock
from trouw.sending.ledger import FAILED, SENT
from trouw.store import events, ledger, plan

OPEN, CLICK, UNSUBSCRIBE, BOUNCE = "open", "click", "unsubscribe", "bounce"
# What the SMTP transport writes for a final refusal of the recipient (a hard bounce).
HARD_BOUNCE_ERRORS = tuple(f"RCPT TO: {code}%" for code in range(550, 554))


@dataclass
class Funnel:
    """The counts of one campaign, or of one of its variants."""

    planned: int = 0
    sent: int = 0
    failed: int = 0
    opened: int = 0  # unique contacts
    clicked: int = 0  # unique contacts
    clicks: int = 0  # every click
    unsubscribed: int = 0  # unique contacts
    bounced_after_send: int = 0  # sent mails with a later bounce event
    hard_bounce_failures: int = 0  # failed sends refused as hard bounces

    @property
    def bounced(self) -> int:
        return self.bounced_after_send + self.hard_bounce_failures

    @property
    def delivered(self) -> int:
        return max(0, self.sent - self.bounced_after_send)

    @property
    def click_to_open(self) -> float | None:
        return self.clicked / self.opened if self.opened else None

    def counts(self) -> dict[str, Any]:
        """The numbers in report order, the rate last."""
        return {
            "planned": self.planned,
            "sent": self.sent,
            "failed": self.failed,
            "delivered": self.delivered,
            "opened": self.opened,
            "clicked": self.clicked,
            "clicks": self.clicks,
            "unsubscribed": self.unsubscribed,
            "bounced": self.bounced,
            "click_to_open": self.click_to_open,
        }


@dataclass
class CampaignFunnel:
    """A campaign's totals and its variants (by template; None when unknown)."""

    campaign: str
    total: Funnel = field(default_factory=Funnel)
    variants: dict[str | None, Funnel] = field(default_factory=dict)

    def variant(self, template: str | None) -> Funnel:
        return self.variants.setdefault(template, Funnel())

    def sorted_variants(self) -> list[tuple[str | None, Funnel]]:
        """By template name; the unknown template last."""
        return sorted(self.variants.items(), key=lambda item: (item[0] is None, item[0] or ""))


def campaign_funnels(connection: Connection, year: Period, clock: Clock) -> list[CampaignFunnel]:
    """Every campaign with plan rows, sends or attributed events in the `year` period."""
    first, last = year.first, year.last
    found: dict[str, CampaignFunnel] = {}

    def campaign(name: str) -> CampaignFunnel:
        return found.setdefault(name, CampaignFunnel(name))

    planned = connection.execute(
        select(plan.c.campaign, plan.c.template, func.count())
        .where(
            plan.c.status.in_((PLANNED, DEFERRED)),
            plan.c.day >= first,
            plan.c.day <= date(first.year, 12, 31),  # the whole year's plan
        )
        .group_by(plan.c.campaign, plan.c.template)
    )
    for name, template, count in planned:
        campaign(name).variant(template).planned += int(count)
        campaign(name).total.planned += int(count)

    hard = or_(*(ledger.c.error.like(pattern) for pattern in HARD_BOUNCE_ERRORS))
    sends = connection.execute(
        select(
            ledger.c.campaign,
            ledger.c.template,
            _count_where(ledger.c.status == SENT),
            _count_where(ledger.c.status == FAILED),
            _count_where(and_(ledger.c.status == FAILED, hard)),
        )
        .where(ledger.c.day >= first, ledger.c.day <= last, ledger.c.status.in_((SENT, FAILED)))
        .group_by(ledger.c.campaign, ledger.c.template)
    )
    for name, template, sent, failed, hard_failures in sends:
        for funnel in (campaign(name).variant(template), campaign(name).total):
            funnel.sent += int(sent or 0)
            funnel.failed += int(failed or 0)
            funnel.hard_bounce_failures += int(hard_failures or 0)

    first_send = connection.execute(
        select(func.min(ledger.c.day)).where(ledger.c.day >= first, ledger.c.day <= last)
    ).scalar()
    if first_send is None:
        return [found[name] for name in sorted(found)]
    # SQLite hands back the day as text when it comes out of an aggregate.
    since = first_send if isinstance(first_send, date) else date.fromisoformat(first_send)
    touches = _attributed_events(year, since, clock)
    by_variant = select(
        touches.c.campaign,
        touches.c.variant,
        touches.c.type,
        func.count(),
        func.count(touches.c.contact_id.distinct()),
        func.count(touches.c.send_id.distinct()),
    ).group_by(touches.c.campaign, touches.c.variant, touches.c.type)
    for name, template, kind, total, contacts, sends_hit in connection.execute(by_variant):
        _add(campaign(name).variant(template), kind, total, contacts, sends_hit)
    # Unique contacts of a campaign are not the sum over its variants: count them again.
    by_campaign = select(
        touches.c.campaign,
        touches.c.type,
        func.count(),
        func.count(touches.c.contact_id.distinct()),
        func.count(touches.c.send_id.distinct()),
    ).group_by(touches.c.campaign, touches.c.type)
    for name, kind, total, contacts, sends_hit in connection.execute(by_campaign):
        _add(campaign(name).total, kind, total, contacts, sends_hit)
    return [found[name] for name in sorted(found)]


def _add(funnel: Funnel, kind: str, total: int, contacts: int, sends_hit: int) -> None:
    if kind == OPEN:
        funnel.opened += int(contacts)
    elif kind == CLICK:
        funnel.clicked += int(contacts)
        funnel.clicks += int(total)
    elif kind == UNSUBSCRIBE:
        funnel.unsubscribed += int(contacts)
    elif kind == BOUNCE:
        funnel.bounced_after_send += int(sends_hit)


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _attributed_events(year: Period, since: date, clock: Clock) -> Subquery:
    """Opens, clicks, unsubscribes and bounces, with the campaign, variant and send of each."""
    first, last = year.first, year.last
    # No event before the first send can belong to the year's sends; none after as-of counts.
    events_from = clock.start_of(since)
    year_end = clock.start_of(date(first.year + 1, 1, 1))
    properties = events.c.properties
    named_campaign = properties["campaign"].as_string()
    named_template = properties["template"].as_string()
    named_send = properties["ledger_id"].as_integer()
    # The contact's latest sent mail (of the named campaign) on or before the event's day.
    # `day <= occurred_at` compares a date with a timestamp: on SQLite as ISO text, on
    # PostgreSQL as the date's midnight; both mean "sent on the event's UTC day or earlier".
    latest_send = (
        select(ledger.c.id)
        .where(
            ledger.c.contact_id == events.c.contact_id,
            ledger.c.status == SENT,
            ledger.c.day <= events.c.occurred_at,
            or_(named_campaign.is_(None), ledger.c.campaign == named_campaign),
        )
        .order_by(ledger.c.day.desc(), ledger.c.id.desc())
        .limit(1)
        .correlate(events)
        .scalar_subquery()
    )
    raw = (
        select(
            events.c.contact_id,
            events.c.type,
            events.c.occurred_at,
            named_campaign.label("campaign"),
            named_template.label("template"),
            func.coalesce(named_send, latest_send).label("send_id"),
        )
        .where(
            events.c.type.in_((OPEN, CLICK, UNSUBSCRIBE, BOUNCE)),
            events.c.occurred_at >= events_from,
            events.c.occurred_at < clock.end,
            # Opens and clicks from outside trouw's tracking say nothing about a campaign.
            or_(events.c.type.in_((UNSUBSCRIBE, BOUNCE)), named_campaign.is_not(None)),
            # A soft bounce is a full mailbox today, not an address gone (as `send` sees it).
            or_(events.c.type != BOUNCE, events.c.tag.is_(None), events.c.tag != "soft"),
        )
        .subquery("raw")
    )
    send = ledger.alias("send")
    return (
        select(
            func.coalesce(raw.c.campaign, send.c.campaign).label("campaign"),
            func.coalesce(raw.c.template, send.c.template).label("variant"),
            raw.c.type,
            raw.c.contact_id,
            send.c.id.label("send_id"),
        )
        .select_from(raw.outerjoin(send, send.c.id == raw.c.send_id))
        .where(
            func.coalesce(raw.c.campaign, send.c.campaign).is_not(None),
            or_(
                and_(send.c.day >= first, send.c.day <= last),
                and_(send.c.id.is_(None), raw.c.occurred_at < year_end),
            ),
        )
        .subquery("touches")
    )
