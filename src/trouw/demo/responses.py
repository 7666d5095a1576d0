"""The weeks after the demo's send day, generated, so its report can show an experiment.

When the day's sends include an A/B test or held-out contacts (a campaign's
`holdout:`, the control group), the demo writes what its customers do in the
RESPONSE_DAYS after, with effects it knows: the second arm of a test is
opened and clicked a little more often than the first, and contacts who got
a mail buy again BUY_LIFT (5 points) more often than those held out. The
report then finds the arms' rates and the lift from these events as it would
from a real shop's (trouw knows nothing of the effects). Deterministic for a
seed. A project without experiments gets nothing here.
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Connection, select

from trouw.campaigns import Campaign
from trouw.experiments import HELD_OUT
from trouw.sending.ledger import CANCELLED, SENT
from trouw.store import ledger

RESPONSE_DAYS = 60
BUY_BASE = 0.20  # held-out contacts buy again within RESPONSE_DAYS this often
BUY_LIFT = 0.05  # and mailed ones this much more often: the true lift
OPENS = (0.30, 0.36)  # per arm of a test (and 0.30 for mails without a test)
CLICKS = (0.05, 0.08)
COLUMNS = ("contact_id", "type", "occurred_at", "tag", "amount", "campaign", "template")


def write_responses(
    connection: Connection, campaigns: list[Campaign], day: date, path: Path, *, seed: int
) -> int:
    """Write the events of the RESPONSE_DAYS after `day` to `path` (CSV, local times);
    how many. None are written (0) when the day holds no experiment."""
    arms = {
        (c.name, arm.template): index
        for c in campaigns
        for step in c.steps
        if step.test is not None
        for index, arm in enumerate(step.test.arms)
    }
    rows = connection.execute(
        select(ledger.c.contact_id, ledger.c.campaign, ledger.c.template, ledger.c.status,
               ledger.c.channel)
        .where(
            ledger.c.day == day,
            (ledger.c.status == SENT)
            | ((ledger.c.status == CANCELLED) & ledger.c.error.like(f"{HELD_OUT}%")),
        )
        .order_by(ledger.c.contact_id, ledger.c.campaign)
    ).all()  # fmt: skip
    if not any(r.status == CANCELLED or (r.campaign, r.template) in arms for r in rows):
        return 0
    draw = random.Random(seed)

    def moment(after: int) -> str:
        when = datetime.combine(day + timedelta(days=after), time(draw.randint(8, 21)))
        return (when + timedelta(minutes=draw.randint(0, 59))).isoformat()

    events: list[tuple[object, ...]] = []
    treated: dict[str, bool] = {}
    for row in rows:
        contact_id = str(row.contact_id)
        treated[contact_id] = treated.get(contact_id, False) or row.status == SENT
        if row.status != SENT or row.channel != "email":
            continue
        arm = arms.get((row.campaign, row.template), 0)
        if draw.random() < OPENS[arm]:
            events.append((contact_id, "open", moment(draw.randint(0, 2)), "", "",
                           row.campaign, row.template))  # fmt: skip
            if draw.random() < CLICKS[arm] / OPENS[arm]:
                events.append((contact_id, "click", moment(draw.randint(0, 2)), row.campaign,
                               "", row.campaign, row.template))  # fmt: skip
    for contact_id, mailed in treated.items():
        if draw.random() < BUY_BASE + (BUY_LIFT if mailed else 0.0):
            amount = round(draw.uniform(15, 120), 2)
            events.append((contact_id, "purchase", moment(draw.randint(1, RESPONSE_DAYS - 1)),
                           "", amount, "", ""))  # fmt: skip
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(events)
    return len(events)


__all__ = ["BUY_LIFT", "RESPONSE_DAYS", "write_responses"]
