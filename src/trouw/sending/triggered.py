"""Triggered sends that became due after the plan was made.

The plan is made ahead (`trouw plan YEAR`), but a click on a fire-safety link
today makes its follow-up due within days, long before the next plan, and a
new customer's welcome cannot wait for it either. So each send run plans
again, with the planner's own code, the contacts that have a recent trigger
event (triggers `event` and `signup`), and takes the sends dated today that
the plan does not hold at all. What the plan holds (on any day) stays the
plan's business; the ledger and the send-time checks apply to both alike.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Connection, and_, bindparam, or_, select

from trouw.planning.candidates import CONTACT_COLUMNS
from trouw.planning.planner import ChunkPlanner, calendar_campaigns
from trouw.project import Project
from trouw.segments import Clock, load_catalog
from trouw.sending.ledger import Key, Send
from trouw.store import contacts, events, plan

# How far back a trigger event still starts a journey at send time: journeys whose
# steps come later than this after their trigger are left to the plan.
LOOKBACK_DAYS = 90
_CHUNK = 500


def triggered_sends(
    connection: Connection, project: Project, as_of: date
) -> list[tuple[Send, int]]:
    """Sends due on `as_of` from recent trigger events that the plan lacks, with priority."""
    catalog = load_catalog(project.segments_dir)
    campaigns = [
        c
        for c in calendar_campaigns(project, catalog)
        if c.trigger is not None and c.trigger.kind in ("event", "signup")
    ]
    if not campaigns:
        return []
    conditions = []
    for campaign in campaigns:
        trigger = campaign.trigger
        assert trigger is not None
        if trigger.kind == "signup":
            conditions.append(events.c.type == "signup")
        else:
            condition = events.c.type == trigger.event
            if trigger.tag is not None:
                condition = and_(condition, events.c.tag == trigger.tag)
            conditions.append(condition)
    clock = Clock(as_of, project.settings.tz)
    since = clock.end - timedelta(days=LOOKBACK_DAYS + 1)
    ids = sorted(
        str(contact_id)
        for contact_id in connection.execute(
            select(events.c.contact_id)
            .where(
                or_(*conditions), events.c.occurred_at >= since, events.c.occurred_at < clock.end
            )
            .distinct()
        ).scalars()
    )
    if not ids:
        return []
    names = {c.name for c in campaigns}
    planner = ChunkPlanner(project, year=as_of.year, as_of=as_of)
    found: list[tuple[Send, int]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk_ids = ids[start : start + _CHUNK]
        chunk = connection.execute(
            select(*CONTACT_COLUMNS)
            .where(contacts.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(contacts.c.id),
            {"ids": chunk_ids},
        ).all()
        known = _plan_keys(connection, chunk_ids, names)
        for row in planner.rows(connection, chunk):
            contact_id, day, campaign, step, occurrence, template, channel, priority, status = row[
                :9
            ]
            key = (contact_id, campaign, step, occurrence)
            if day == as_of and status == "planned" and campaign in names and key not in known:
                send = Send(contact_id, campaign, step, occurrence, day, template, channel)
                found.append((send, int(priority)))
    return found


def _plan_keys(connection: Connection, contact_ids: list[str], names: set[str]) -> set[Key]:
    query = select(plan.c.contact_id, plan.c.campaign, plan.c.step, plan.c.occurrence).where(
        plan.c.contact_id.in_(bindparam("ids", expanding=True)),
        plan.c.campaign.in_(bindparam("names", expanding=True)),
    )
    rows = connection.execute(query, {"ids": contact_ids, "names": sorted(names)})
    return {(str(a), str(b), str(c), str(d)) for a, b, c, d in rows}


__all__ = ["LOOKBACK_DAYS", "triggered_sends"]
