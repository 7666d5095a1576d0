"""When a campaign goes out next, and the day a contact's mail is dated, for the preview.

The plan answers first (it knows caps, quiet days and every trigger); where the
year is not planned, the campaign's own definition does: the next day of its
schedule, or a contact's next birthday or customer anniversary. A mail is
rendered as of that day, so `today` in a template (a code "valid until
today + 14 days") reads as the contact will read it, not as of the day of the
preview.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, func, select

from trouw.campaigns import Campaign, Step
from trouw.planning.candidates import day_in_year
from trouw.planning.views import SENDS  # the plan rows that are sends: planned, deferred
from trouw.store import contacts, plan

# How far ahead a schedule is searched for its next day (a campaign may skip a year).
LOOKAHEAD_YEARS = 2
FROM_PLAN = "planned"
FROM_SCHEDULE = "scheduled"
AS_OF = "as of"

_TRIGGERS = {
    "signup": "when a contact signs up",
    "birthday": "on each contact's birthday",
    "anniversary": "on each customer's anniversary",
}


@dataclass(frozen=True)
class NextSend:
    """A campaign's next send day on or after a day: from the plan (with its number of
    mails that day), else from its schedule; `day` None when neither says."""

    day: date | None
    source: str = ""
    mails: int | None = None


@dataclass(frozen=True)
class MailDay:
    """The day a contact's mail is dated and why: planned, scheduled, birthday, ... or as of."""

    day: date
    why: str


def describe_when(campaign: Campaign) -> str:
    """When a campaign goes out, as a marketer says it: its schedule or its trigger."""
    if campaign.schedule is not None:
        schedule = campaign.schedule
        if schedule.rrule is not None:
            return describe_rrule(schedule.rrule)
        return "on " + ", ".join(day.isoformat() for day in schedule.dates)
    trigger = campaign.trigger
    if trigger is None:
        return "on demand only (no schedule or trigger)"
    if trigger.kind in _TRIGGERS:
        return _TRIGGERS[trigger.kind]
    if trigger.kind == "event":
        tagged = f" tagged {trigger.tag}" if trigger.tag else ""
        return f"after each {trigger.event} event{tagged}"
    if trigger.kind == "inactive":
        return f"{trigger.duration} after a contact's last purchase"
    return f"when a contact enters segment {trigger.segment}"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday",
             "FR": "Friday", "SA": "Saturday", "SU": "Sunday"}  # fmt: skip


def describe_rrule(text: str) -> str:
    """`FREQ=YEARLY;BYMONTH=3,10;BYMONTHDAY=15` -> "every year on 15 Mar and 15 Oct"; the
    common yearly, monthly and weekly rules in words, any other as `schedule RRULE`."""
    parts = dict(item.partition("=")[::2] for item in text.upper().split(";") if "=" in item)
    rest = set(parts) - {"FREQ", "BYMONTH", "BYMONTHDAY", "BYDAY"}
    months, monthdays, weekdays = (
        [v for v in parts.get(key, "").split(",") if v]
        for key in ("BYMONTH", "BYMONTHDAY", "BYDAY")
    )
    plain = all(v.isdigit() for v in months + monthdays) and all(v in _WEEKDAYS for v in weekdays)
    freq = parts.get("FREQ")
    if rest or not plain:
        return f"schedule {text}"
    if freq == "YEARLY" and months and len(monthdays) == 1 and not weekdays:
        days = [f"{int(monthdays[0])} {_MONTHS[int(m) - 1]}" for m in months if 1 <= int(m) <= 12]
        return "every year on " + " and ".join(days)
    if freq == "MONTHLY" and len(monthdays) == 1 and not months and not weekdays:
        return f"every month on day {int(monthdays[0])}"
    if freq == "WEEKLY" and weekdays and not months and not monthdays:
        return "every " + " and ".join(_WEEKDAYS[d] for d in weekdays)
    return f"schedule {text}"


def scheduled_day(campaign: Campaign, as_of: date) -> date | None:
    """The first day of the campaign's schedule on or after `as_of`, or None."""
    if campaign.schedule is None:
        return None
    last = date(as_of.year + LOOKAHEAD_YEARS, 12, 31)
    days = campaign.schedule.days_between(as_of, last)
    return days[0] if days else None


def next_sends(
    connection: Connection, campaigns: Iterable[Campaign], as_of: date
) -> dict[str, NextSend]:
    """Each campaign's next send day on or after `as_of`: the plan's first day with mail
    for it and how many, else its schedule's next day, else none (a trigger not planned)."""
    first = (
        select(plan.c.campaign, func.min(plan.c.day).label("day"))
        .where(plan.c.day >= as_of, plan.c.status.in_(SENDS))
        .group_by(plan.c.campaign)
        .subquery()
    )
    query = (
        select(plan.c.campaign, plan.c.day, func.count())
        .join(first, (first.c.campaign == plan.c.campaign) & (first.c.day == plan.c.day))
        .where(plan.c.status.in_(SENDS))
        .group_by(plan.c.campaign, plan.c.day)
    )
    planned = {str(name): (day, int(n)) for name, day, n in connection.execute(query)}
    found: dict[str, NextSend] = {}
    for campaign in campaigns:
        if campaign.name in planned:
            day, mails = planned[campaign.name]
            found[campaign.name] = NextSend(day, FROM_PLAN, mails)
        else:
            day = scheduled_day(campaign, as_of)
            found[campaign.name] = NextSend(day, FROM_SCHEDULE if day else "")
    return found


def mail_days(
    connection: Connection,
    campaign: Campaign,
    step: Step,
    contact_ids: Sequence[str],
    as_of: date,
) -> dict[str, MailDay]:
    """The day each contact's mail from this step is dated: its first plan row on or after
    `as_of`, else the schedule's next day, else the next birthday or anniversary, or a
    signup day still to come (plus the step's delay), else `as_of` itself."""
    ids = list(dict.fromkeys(contact_ids))
    days: dict[str, MailDay] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        query = (
            select(plan.c.contact_id, func.min(plan.c.day))
            .where(
                plan.c.contact_id.in_(chunk),
                plan.c.campaign == campaign.name,
                plan.c.step == step.name,
                plan.c.day >= as_of,
                plan.c.status.in_(SENDS),
            )
            .group_by(plan.c.contact_id)
        )
        for contact_id, day in connection.execute(query):
            days[str(contact_id)] = MailDay(day, FROM_PLAN)
    rest = [contact_id for contact_id in ids if contact_id not in days]
    scheduled = scheduled_day(campaign, as_of)
    kind = campaign.trigger.kind if campaign.trigger is not None else None
    origins: dict[str, date] = {}
    if rest and scheduled is None and kind in ("birthday", "anniversary", "signup"):
        column = contacts.c.birthday if kind == "birthday" else contacts.c.customer_since
        for start in range(0, len(rest), 900):
            query = select(contacts.c.id, column).where(
                contacts.c.id.in_(rest[start : start + 900])
            )
            origins.update({str(cid): day for cid, day in connection.execute(query) if day})
    delay = step.after.after(as_of) - as_of if step.after is not None else timedelta(0)
    for contact_id in rest:
        if scheduled is not None:
            days[contact_id] = MailDay(scheduled, FROM_SCHEDULE)
        elif contact_id in origins and kind == "signup":
            day = origins[contact_id] + delay  # a welcome journey's step, if still to come
            days[contact_id] = MailDay(day, kind) if day >= as_of else MailDay(as_of, AS_OF)
        elif contact_id in origins and kind is not None:
            day = next_yearly(origins[contact_id], as_of - delay) + delay
            days[contact_id] = MailDay(day, kind)
        else:
            days[contact_id] = MailDay(as_of, AS_OF)
    return days


def next_yearly(origin: date, as_of: date) -> date:
    """The first return of `origin`'s month and day on or after `as_of`."""
    day = day_in_year(origin, as_of.year)
    return day if day >= as_of else day_in_year(origin, as_of.year + 1)
