"""Why a contact is (not) in a segment: every condition, whether it is met, and the value seen.

Whether a condition is met comes from the compiled SQL itself (all node
predicates evaluated for that one contact in a single select), so the
explanation can never disagree with `count` or `members`. The values shown
beside them are read with small per-contact queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from trouw.errors import ContactNotFound
from trouw.segments.compile import Clock, Compiler
from trouw.segments.definition import (
    AllOf,
    AnyOf,
    Attribute,
    Catalog,
    Condition,
    DateWithin,
    Event,
    Not,
    Nps,
    Segment,
    SegmentRef,
)
from trouw.store import contacts, events

VERBS = {
    "purchase": "bought",
    "click": "clicked",
    "open": "opened",
    "add_to_cart": "added to cart",
    "survey": "answered a survey",
    "signup": "signed up",
    "unsubscribe": "unsubscribed",
    "complaint": "complained",
    "bounce": "bounced",
    "page_view": "viewed a page",
}


@dataclass(frozen=True)
class Finding:
    """One line of an explanation: a condition at some depth, met or not, and what was seen."""

    depth: int
    met: bool
    text: str


@dataclass(frozen=True)
class Explanation:
    contact_id: str
    segment: str
    member: bool
    findings: list[Finding]


def explain(
    connection: Connection, segment: Segment, catalog: Catalog, clock: Clock, contact_id: str
) -> Explanation:
    compiler = Compiler(catalog, clock, connection.dialect.name)
    nodes: list[tuple[int, Condition]] = []
    _walk(segment.where, 0, nodes, catalog)
    columns = [compiler.predicate(node).label(f"c{i}") for i, (_, node) in enumerate(nodes)]
    row = (
        connection.execute(select(contacts, *columns).where(contacts.c.id == contact_id))
        .mappings()
        .first()
    )
    if row is None:
        raise ContactNotFound(
            f"no contact with id '{contact_id}'",
            fix="check the id with `trouw contacts show ID`",
        )
    findings = []
    for i, (depth, node) in enumerate(nodes):
        met = bool(row[f"c{i}"])
        seen, wanted = _describe(connection, compiler, node, row, contact_id)
        text = seen if wanted is None else f"{seen}: {_meets(met)} {wanted}"
        findings.append(Finding(depth, met, text))
    return Explanation(contact_id, segment.name, findings[0].met, findings)


def _walk(
    condition: Condition, depth: int, out: list[tuple[int, Condition]], catalog: Catalog
) -> None:
    """Every node, depth first; a referenced segment's conditions are shown beneath it."""
    out.append((depth, condition))
    if isinstance(condition, AllOf | AnyOf):
        for item in condition.items:
            _walk(item, depth + 1, out, catalog)
    elif isinstance(condition, Not):
        _walk(condition.item, depth + 1, out, catalog)
    elif isinstance(condition, SegmentRef):
        _walk(catalog.get(condition.name).where, depth + 1, out, catalog)


def _meets(met: bool) -> str:
    return "meets" if met else "does not meet"


def _describe(
    connection: Connection,
    compiler: Compiler,
    node: Condition,
    row: Any,
    contact_id: str,
) -> tuple[str, str | None]:
    """What was seen for this condition, and what it wanted (None for all/any/not)."""
    if isinstance(node, AllOf):
        return f"all of these {len(node.items)}:", None
    if isinstance(node, AnyOf):
        return f"any of these {len(node.items)}:", None
    if isinstance(node, Not):
        return "not this:", None
    if isinstance(node, SegmentRef):
        return f"in segment {node.name}:", None
    if isinstance(node, Attribute):
        return _attribute(node, row)
    if isinstance(node, Event):
        return _event(connection, compiler, node, contact_id)
    if isinstance(node, DateWithin):
        value = row[node.column]
        last = compiler.clock.as_of + timedelta(days=node.days - 1)
        window = f"{compiler.clock.as_of} … {last}"
        return f"{node.column} {value or 'unknown'}", f"{node.key} {node.duration} ({window})"
    return _nps(connection, compiler, node, contact_id)


def _attribute(node: Attribute, row: Any) -> tuple[str, str]:
    if node.kind == "json":
        attributes = row["attributes"] or {}
        value = repr(attributes[node.name]) if node.name in attributes else "missing"
    else:
        stored = row[node.name]
        value = (
            "missing"
            if stored is None
            else repr(stored)
            if isinstance(stored, str)
            else (str(stored))
        )
    ops = " and ".join(str(op) for op in node.ops)
    return f"{node.name} is {value}", ops


def _event(
    connection: Connection, compiler: Compiler, node: Event, contact_id: str
) -> tuple[str, str]:
    filters = compiler.event_filters(node)
    seen = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(events.c.amount), 0),
            func.min(events.c.occurred_at),
            func.max(events.c.occurred_at),
        ).where(events.c.contact_id == contact_id, *filters)
    ).one()
    count, total, first, last = seen
    what = VERBS.get(node.type, f"had {node.type} events")
    for name in ("tag", "product", "category"):
        wanted = getattr(node, name)
        if wanted is not None:
            what += f" {name} {'/'.join(wanted)}"
    for prop in node.where:
        what += f" where {prop.name} " + " and ".join(str(op) for op in prop.ops)
    window = f"in {node.within}" if node.within is not None else "ever"
    clock = compiler.clock
    if node.aggregate == "count":
        value = f"{count} time{'s' if count != 1 else ''} {window}"
    elif node.aggregate == "sum":
        value = f"for {float(total):.2f} {window}"
    else:
        moment = last if node.aggregate == "days_since_last" else first
        label = "last" if node.aggregate == "days_since_last" else "first"
        if moment is None:
            value = f"never ({window}), so no {node.aggregate}"
        else:
            days = (clock.as_of - clock.day_of(moment)).days
            value = f"{label} {days} day{'s' if days != 1 else ''} ago ({window})"
    ops = " and ".join(f"{op}" for op in node.ops)
    return f"{what} {value}", ops if node.aggregate == "count" else f"{node.aggregate} {ops}"


def _nps(connection: Connection, compiler: Compiler, node: Nps, contact_id: str) -> tuple[str, str]:
    latest = connection.execute(
        select(events.c.score, events.c.occurred_at)
        .where(
            events.c.contact_id == contact_id,
            events.c.type == "survey",
            events.c.tag == "nps",
            events.c.score.is_not(None),
            events.c.occurred_at < compiler.clock.end,
        )
        .order_by(events.c.occurred_at.desc(), events.c.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return "no NPS answer", f"nps {node.klass} ({node.low}-{node.high})"
    score, moment = latest
    day = compiler.clock.day_of(moment)
    return f"latest NPS answer {score} on {day}", f"nps {node.klass} ({node.low}-{node.high})"
