"""A small shop built by hand for the report tests, and the figures worked out on paper.

Six customers, a spring campaign with two variants, a welcome journey and a
newsletter; 2027 is reported as of 2028-01-15 (a finished year). Times are
local Amsterdam times, stored as naive UTC like every event.

Purchases (category):
  c1  2026-03-10 garden, 2027-02-05 garden, 2027-05-20 kitchen
  c2  2026-06-01 tools                          (nothing in 2027: lost)
  c3  2025-11-01 living, 2027-03-03 living      (no customer on 1 Jan: > 12 months)
  c4  2027-04-04 garden, 2027-04-20 bbq         (new in 2027)
  c5  2026-12-31 23:30 kitchen, 2027-07-07 (no category)
  c6  2026-01-01 garden, 2027-01-01 00:30 tools (00:30 local is still 2026 in UTC)

2027: customers on 1 Jan c1 c2 c5 c6 (4), lost c2 -> churn 1/4.
Buyers c1 c3 c4 c5 c6 (5), twice c1 c4 -> repurchase 2/5.
Returning buyers c1 c3 c5 c6 (4), a new category c1 (kitchen) c6 (tools) -> upsell 2/4.
NPS answers 10 9 7 3 0 8 9 (2026's 2, 2028's 10 and a score of 42 left out):
promoters 3, detractors 2 of 7 -> NPS 100/7; average recommend 46/7.
CSAT 5 4 3 1 4 -> 3 of 5 satisfied.
Loyalty score (46/7 + 4 + 5) / 3.

June 2027: customers on 1 June (a purchase since 2026-06-01) c1 c2 c3 c4 c5 c6;
c2's only purchase turned 12 months old in June -> churn 1/6.
April 2027: only c4 bought, twice, never before -> repurchase 1, upsell unknown.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from trouw.store import atomic, contacts, events, ledger, plan, segment_snapshots

ZONE = ZoneInfo("Europe/Amsterdam")
YEAR = 2027
AS_OF = date(2028, 1, 15)
NOW = datetime(2028, 1, 15, 12, 0)


def local(day: str, hour: int = 12, minute: int = 0) -> datetime:
    """A local Amsterdam time as the naive UTC the events table stores."""
    moment = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=ZONE)
    moment = moment.replace(hour=hour, minute=minute)
    return moment.astimezone(UTC).replace(tzinfo=None)


def _contact(contact_id: str) -> dict[str, Any]:
    return {
        "id": contact_id,
        "email": f"{contact_id}@shop.example",
        "channel": "email",
        "attributes": {},
        "created_at": NOW,
        "updated_at": NOW,
    }


def _event(contact_id: str, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "contact_id": contact_id,
        "type": kind,
        "occurred_at": at,
        "tag": None,
        "url": None,
        "product": None,
        "category": None,
        "amount": None,
        "score": None,
        "properties": {},
    }
    row.update(fields)
    return row


def _purchase(contact_id: str, day: str, category: str | None, hour: int = 12) -> dict[str, Any]:
    return _event(contact_id, "purchase", local(day, hour), category=category, amount=10.0)


def _survey(contact_id: str, day: str, tag: str, score: int) -> dict[str, Any]:
    return _event(contact_id, "survey", local(day), tag=tag, score=score)


PURCHASES = [
    _purchase("c1", "2026-03-10", "garden"),
    _purchase("c1", "2027-02-05", "garden"),
    _purchase("c1", "2027-05-20", "kitchen"),
    _purchase("c2", "2026-06-01", "tools"),
    _purchase("c3", "2025-11-01", "living"),
    _purchase("c3", "2027-03-03", "living"),
    _purchase("c4", "2027-04-04", "garden"),
    _purchase("c4", "2027-04-20", "bbq"),
    _event("c5", "purchase", local("2026-12-31", 23, 30), category="kitchen"),
    _purchase("c5", "2027-07-07", None),
    _purchase("c6", "2026-01-01", "garden"),
    _event("c6", "purchase", local("2027-01-01", 0, 30), category="tools"),
]

SURVEYS = [
    _survey("c1", "2027-03-01", "nps", 10),
    _survey("c2", "2027-03-02", "nps", 9),
    _survey("c3", "2027-03-03", "nps", 7),
    _survey("c4", "2027-05-04", "nps", 3),
    _survey("c5", "2027-06-05", "nps", 0),
    _survey("c1", "2027-08-06", "nps", 8),
    _survey("c6", "2027-09-07", "nps", 9),
    _survey("c2", "2026-12-01", "nps", 2),  # last year
    _survey("c3", "2028-01-05", "nps", 10),  # next year
    _survey("c4", "2027-05-05", "nps", 42),  # off the scale
    _survey("c1", "2027-02-10", "csat", 5),
    _survey("c2", "2027-02-11", "csat", 4),
    _survey("c3", "2027-04-12", "csat", 3),
    _survey("c4", "2027-04-13", "csat", 1),
    _survey("c5", "2027-07-14", "csat", 4),
]


def _plan(contact_id: str, day: str, campaign: str, template: str, status: str) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "day": date.fromisoformat(day),
        "campaign": campaign,
        "step": "main",
        "occurrence": f"{campaign}:{day}",
        "template": template,
        "channel": "email",
        "priority": 50,
        "status": status,
        "reason": None,
    }


PLAN = [
    _plan("c1", "2027-04-02", "spring", "spring/family", "planned"),
    _plan("c2", "2027-04-02", "spring", "spring/family", "deferred"),
    _plan("c5", "2027-04-02", "spring", "spring/family", "planned"),
    _plan("c3", "2027-04-02", "spring", "spring/single", "planned"),
    _plan("c4", "2027-04-02", "spring", "spring/single", "dropped"),
    _plan("c4", "2027-04-05", "welcome", "welcome/thanks", "planned"),
    _plan("c6", "2027-01-01", "welcome", "welcome/thanks", "planned"),
    _plan("c1", "2028-04-02", "spring", "spring/family", "planned"),  # next year
]


def _send(
    contact_id: str,
    day: str,
    campaign: str,
    template: str,
    status: str = "sent",
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "campaign": campaign,
        "step": "main",
        "occurrence": f"{campaign}:{day}",
        "day": date.fromisoformat(day),
        "template": template,
        "channel": "email",
        "status": status,
        "message_id": None,
        "reserved_at": NOW,
        "sent_at": NOW if status == "sent" else None,
        "error": error,
    }


LEDGER = [
    _send("c1", "2027-04-02", "spring", "spring/family"),
    _send("c2", "2027-04-02", "spring", "spring/family"),
    _send("c5", "2027-04-02", "spring", "spring/family", "failed", "RCPT TO: 550 no such user"),
    _send("c3", "2027-04-02", "spring", "spring/single"),
    _send("c6", "2027-04-02", "spring", "spring/single", "failed", "DATA: 554 rejected"),
    _send("c4", "2027-04-05", "welcome", "welcome/thanks"),
    _send("c6", "2027-01-01", "welcome", "welcome/thanks"),
    _send("c1", "2026-12-01", "welcome", "welcome/thanks"),  # last year
    _send("c5", "2027-05-01", "welcome", "welcome/thanks", "unknown"),
    _send("c1", "2027-04-01", "news", "news/april"),
    _send("c1", "2027-04-03", "news", "news/easter"),
    _send("c6", "2026-12-29", "news", "news/year-end"),  # the week of 1 January 2027
]


def _tracked(contact_id: str, kind: str, at: datetime, **properties: Any) -> dict[str, Any]:
    return _event(contact_id, kind, at, properties=properties)


def _funnel_events(c2_spring_send: int) -> list[dict[str, Any]]:
    return [
        _tracked(
            "c1", "open", local("2027-04-02", 10), campaign="spring", template="spring/family"
        ),
        _tracked("c1", "open", local("2027-04-03", 9), campaign="spring", template="spring/family"),
        _tracked("c1", "click", local("2027-04-02", 10, 5), campaign="spring"),
        _tracked("c1", "click", local("2027-04-04", 8), campaign="spring"),
        _tracked(
            "c2", "open", local("2027-04-02", 15), campaign="spring", ledger_id=c2_spring_send
        ),
        _tracked("c3", "open", local("2027-04-02", 16), campaign="spring"),
        _tracked("c3", "click", local("2027-04-02", 16, 1), campaign="spring"),
        _event("c3", "unsubscribe", local("2027-04-10")),  # imported: goes to the last mail
        _event("c2", "bounce", local("2027-04-03"), tag="hard"),
        _event("c1", "bounce", local("2027-04-05"), tag="soft"),  # a full mailbox
        _tracked("c4", "open", local("2027-04-06"), campaign="welcome"),
        _event("c4", "click", local("2027-04-06"), tag="newsletter"),  # not from trouw
        _tracked("c1", "open", local("2027-01-10"), campaign="welcome"),  # 2026's welcome
        _tracked("c6", "open", local("2027-01-02"), campaign="welcome", template="welcome/thanks"),
        _tracked("c6", "click", local("2028-01-20"), campaign="welcome"),  # after as-of
        _event("c5", "unsubscribe", local("2027-03-01")),  # before any mail: no campaign
    ]


SNAPSHOTS = [
    ("families", "2027-03-01", 10, 10, 0),
    ("families", "2027-06-01", 11, 2, 1),
    ("families", "2027-06-01", 12, 3, 1),  # taken again that day: this one counts
    ("singles", "2027-03-01", 5, 5, 0),
    ("singles", "2026-06-01", 4, 4, 0),  # last year
]


def build_shop(engine: Engine) -> None:
    """Fill an empty database with the shop above."""
    with atomic(engine) as connection:
        connection.execute(insert(contacts), [_contact(f"c{n}") for n in range(1, 7)])
        connection.execute(insert(events), PURCHASES + SURVEYS)
        connection.execute(insert(plan), PLAN)
        ids = {}
        for row in LEDGER:
            key = connection.execute(insert(ledger).values(row)).inserted_primary_key
            assert key is not None
            ids[(row["contact_id"], row["campaign"], row["day"])] = int(key[0])
        c2_spring = ids[("c2", "spring", date(2027, 4, 2))]
        connection.execute(insert(events), _funnel_events(c2_spring))
        connection.execute(
            insert(segment_snapshots),
            [
                {
                    "segment": segment,
                    "as_of": date.fromisoformat(day),
                    "taken_at": NOW,
                    "size": size,
                    "entered": entered,
                    "left": left,
                }
                for segment, day, size, entered, left in SNAPSHOTS
            ],
        )


def add_letters(engine: Engine) -> None:
    """c7 wants post: spring's family letter and a welcome letter, and events that name them.

    Nothing of it may reach the e-mail figures: an open that names the letter
    by its ledger id and an imported unsubscribe (c7 got no e-mail to pin it to).
    """
    with atomic(engine) as connection:
        connection.execute(insert(contacts), [{**_contact("c7"), "channel": "post"}])
        letter = {**_plan("c7", "2027-04-02", "spring", "spring/family", "planned")}
        connection.execute(insert(plan), [{**letter, "channel": "post"}])
        ids = []
        for day, campaign, template in (
            ("2027-04-02", "spring", "spring/family"),
            ("2027-04-06", "welcome", "welcome/thanks"),
        ):
            row = {**_send("c7", day, campaign, template), "channel": "post"}
            key = connection.execute(insert(ledger).values(row)).inserted_primary_key
            assert key is not None
            ids.append(int(key[0]))
        connection.execute(
            insert(events),
            [
                _tracked("c7", "open", local("2027-04-03"), campaign="spring", ledger_id=ids[0]),
                _event("c7", "unsubscribe", local("2027-04-11")),
            ],
        )
