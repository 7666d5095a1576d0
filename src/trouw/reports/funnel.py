"""Campaign funnels: per channel, campaign and variant, from planned via sent and opened to bounced.

E-mail and letters are apart: a campaign that reached some contacts by post
has a letter funnel beside its e-mail one. A letter is never opened, clicked
or bounced: tracking events belong to e-mails only. A variant is a template
(`ledger.template`, `plan.template`). The counts:

- planned: plan rows of the year with status planned or deferred (the whole
  year, also the days after as-of).
- sent, failed: ledger rows with that status and a `day` in the year up to
  as-of; tried = sent + failed.
- opened, clicked, unsubscribed: unique contacts; clicks: every click. A
  click proves an open (images may be blocked), so a clicker counts as an
  opener. Only opens and clicks that name their campaign
  (`properties.campaign`, as the tracking server records them) count: other
  opens and clicks came from elsewhere.
- opened_mails, clicked_mails, unsubscribed_mails: delivered mails with
  such an event (an event without a send counts for the contacts, not the
  mails; a mail that bounced counts as bounced only).
- bounced: sent mails followed by a bounce event (not tagged `soft`), plus
  failed sends refused as hard bounces (RCPT TO answered 550-553).
- delivered: sent minus the sent mails that bounced afterwards.

The rates (`Funnel.rates`, fractions 0-1, None without a denominator):
delivered / tried, opened_mails / delivered, clicked_mails / delivered,
clicked_mails / opened_mails (click-to-open), unsubscribed_mails / delivered
and bounced / tried. Per mail, not per contact: a newsletter sent twelve
times to a contact is twelve chances to open.

An event belongs to a send: the ledger row `properties.ledger_id` when
given, else the contact's latest sent e-mail (of `properties.campaign`, when
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

from sqlalchemy import ColumnElement, Connection, Select, Subquery, and_, case, func, or_, select

from trouw.planning import DEFERRED, PLANNED
from trouw.reports.periods import Period
from trouw.segments import Clock
from trouw.sending.ledger import FAILED, SENT
from trouw.store import events, ledger, plan

OPEN, CLICK, UNSUBSCRIBE, BOUNCE = "open", "click", "unsubscribe", "bounce"
EMAIL, LETTER = "email", "post"  # ledger and plan channels
# What the SMTP transport writes for a final refusal of the recipient (a hard bounce).
HARD_BOUNCE_ERRORS = tuple(f"RCPT TO: {code}%" for code in range(550, 554))
# The funnel's rates, in funnel order: the names in JSON, CSV and on the page.
RATES = ("delivered", "open", "click", "click_to_open", "unsubscribe", "bounce")


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Funnel:
    """The counts of one campaign, or of one of its variants, on one channel."""

    channel: str = EMAIL
    planned: int = 0
    sent: int = 0
    failed: int = 0
    opened: int = 0  # unique contacts who opened or clicked
    clicked: int = 0  # unique contacts
    clicks: int = 0  # every click
    unsubscribed: int = 0  # unique contacts
    opened_mails: int = 0  # sent mails opened or clicked
    clicked_mails: int = 0
    unsubscribed_mails: int = 0
    bounced_after_send: int = 0  # sent mails with a later bounce event
    hard_bounce_failures: int = 0  # failed sends refused as hard bounces

    @property
    def tried(self) -> int:
        return self.sent + self.failed

    @property
    def bounced(self) -> int:
        return self.bounced_after_send + self.hard_bounce_failures

    @property
    def delivered(self) -> int:
        return max(0, self.sent - self.bounced_after_send)

    @property
    def click_to_open(self) -> float | None:
        return _share(self.clicked_mails, self.opened_mails)

    def rates(self) -> dict[str, float | None]:
        """The funnel as rates (see the module's docstring), keyed as RATES; none for letters."""
        if self.channel == LETTER:
            return dict.fromkeys(RATES)
        return {
            "delivered": _share(self.delivered, self.tried),
            "open": _share(self.opened_mails, self.delivered),
            "click": _share(self.clicked_mails, self.delivered),
            "click_to_open": self.click_to_open,
            "unsubscribe": _share(self.unsubscribed_mails, self.delivered),
            "bounce": _share(self.bounced, self.tried),
        }

    def counts(self) -> dict[str, Any]:
        """The numbers in report order, the click-to-open rate last."""
        return {
            "planned": self.planned,
            "sent": self.sent,
            "failed": self.failed,
            "delivered": self.delivered,
            "opened": self.opened,
            "clicked": self.clicked,
            "clicks": self.clicks,
            "unsubscribed": self.unsubscribed,
            "opened_mails": self.opened_mails,
            "clicked_mails": self.clicked_mails,
            "unsubscribed_mails": self.unsubscribed_mails,
            "bounced": self.bounced,
            "click_to_open": self.click_to_open,
        }


@dataclass
class CampaignFunnel:
    """A campaign's totals on one channel and its variants (by template; None when unknown)."""

    campaign: str
    channel: str = EMAIL
    total: Funnel = field(default_factory=Funnel)
    variants: dict[str | None, Funnel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.total.channel = self.channel

    @property
    def letters(self) -> bool:
        return self.channel == LETTER

    def variant(self, template: str | None) -> Funnel:
        return self.variants.setdefault(template, Funnel(self.channel))

    def sorted_variants(self) -> list[tuple[str | None, Funnel]]:
        """By template name; the unknown template last."""
        return sorted(self.variants.items(), key=lambda item: (item[0] is None, item[0] or ""))


def campaign_funnels(connection: Connection, year: Period, clock: Clock) -> list[CampaignFunnel]:
    """Every campaign with plan rows, sends or attributed events in the `year` period.

    E-mail funnels first, then letters; by campaign name within each.
    """
    first, last = year.first, year.last
    found: dict[tuple[str, str], CampaignFunnel] = {}

    def campaign(name: str, channel: str) -> CampaignFunnel:
        channel = LETTER if channel == LETTER else EMAIL
        return found.setdefault((channel, name), CampaignFunnel(name, channel))

    planned = connection.execute(
        select(plan.c.channel, plan.c.campaign, plan.c.template, func.count())
        .where(
            plan.c.status.in_((PLANNED, DEFERRED)),
            plan.c.day >= first,
            plan.c.day <= date(first.year, 12, 31),  # the whole year's plan
        )
        .group_by(plan.c.channel, plan.c.campaign, plan.c.template)
    )
    for channel, name, template, count in planned:
        planned_campaign = campaign(name, channel)
        planned_campaign.variant(template).planned += int(count)
        planned_campaign.total.planned += int(count)

    hard = or_(*(ledger.c.error.like(pattern) for pattern in HARD_BOUNCE_ERRORS))
    sends = connection.execute(
        select(
            ledger.c.channel,
            ledger.c.campaign,
            ledger.c.template,
            _count_where(ledger.c.status == SENT),
            _count_where(ledger.c.status == FAILED),
            _count_where(and_(ledger.c.status == FAILED, hard)),
        )
        .where(ledger.c.day >= first, ledger.c.day <= last, ledger.c.status.in_((SENT, FAILED)))
        .group_by(ledger.c.channel, ledger.c.campaign, ledger.c.template)
    )
    for channel, name, template, sent, failed, hard_failures in sends:
        sending = campaign(name, channel)
        for funnel in (sending.variant(template), sending.total):
            funnel.sent += int(sent or 0)
            funnel.failed += int(failed or 0)
            if channel != LETTER:  # a letter box refuses nothing as a bounce
                funnel.hard_bounce_failures += int(hard_failures or 0)

    first_send = connection.execute(
        select(func.min(ledger.c.day)).where(
            ledger.c.day >= first, ledger.c.day <= last, ledger.c.channel != LETTER
        )
    ).scalar()
    if first_send is not None:
        # SQLite hands back the day as text when it comes out of an aggregate.
        since = first_send if isinstance(first_send, date) else date.fromisoformat(first_send)
        touches = _attributed_events(year, since, clock)
        # Unique contacts and mails of a campaign are not the sum over its variants:
        # count per variant, then again per campaign.
        for name, template, *numbers in connection.execute(_responses(touches, "variant")):
            _add(campaign(name, EMAIL).variant(template), numbers)
        for name, *numbers in connection.execute(_responses(touches, None)):
            _add(campaign(name, EMAIL).total, numbers)
    return [found[key] for key in sorted(found, key=lambda key: (key[0] == LETTER, key[1]))]


def _responses(touches: Subquery, variant: str | None) -> Select[Any]:
    """Per campaign (and `variant` column): unique contacts, mails and clicks of each response.

    First one row per send (or, for events without a send, per contact) with
    a flag per kind of response, then the counts: a mail that bounced counts
    as bounced, not as opened, clicked or unsubscribed, so no rate over the
    delivered mails passes 100%.
    """
    kind = touches.c.type
    keys = [touches.c.campaign, *([touches.c[variant]] if variant else [])]

    def flag(*kinds: str) -> ColumnElement[int]:
        return func.max(case((kind.in_(kinds), 1), else_=0))

    per_send = (
        select(
            *keys,
            touches.c.send_id,
            touches.c.contact_id,
            flag(OPEN, CLICK).label("opened"),
            flag(CLICK).label("clicked"),
            _count_where(kind == CLICK).label("clicks"),
            flag(UNSUBSCRIBE).label("unsubscribed"),
            flag(BOUNCE).label("bounced"),
        )
        .group_by(*keys, touches.c.send_id, touches.c.contact_id)
        .subquery("per_send")
    )
    row = per_send.c
    delivered = row.bounced == 0

    def contacts(flagged: ColumnElement[int]) -> ColumnElement[int]:
        return func.count(case((flagged == 1, row.contact_id)).distinct())

    def mails(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.count(case((condition, row.send_id)).distinct())

    groups = [row[key.name] for key in keys]
    return select(
        *groups,
        contacts(row.opened),
        contacts(row.clicked),
        func.sum(row.clicks),
        contacts(row.unsubscribed),
        mails(and_(row.opened == 1, delivered)),
        mails(and_(row.clicked == 1, delivered)),
        mails(and_(row.unsubscribed == 1, delivered)),
        mails(row.bounced == 1),
    ).group_by(*groups)


def _add(funnel: Funnel, numbers: list[Any]) -> None:
    (
        funnel.opened,
        funnel.clicked,
        funnel.clicks,
        funnel.unsubscribed,
        funnel.opened_mails,
        funnel.clicked_mails,
        funnel.unsubscribed_mails,
        funnel.bounced_after_send,
    ) = (int(n or 0) for n in numbers)


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
            ledger.c.channel != LETTER,  # a letter is never opened, clicked or bounced
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
            or_(send.c.id.is_(None), send.c.channel != LETTER),
            or_(
                and_(send.c.day >= first, send.c.day <= last),
                and_(send.c.id.is_(None), raw.c.occurred_at < year_end),
            ),
        )
        .subquery("touches")
    )
