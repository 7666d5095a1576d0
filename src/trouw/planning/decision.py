"""The one decision: what a contact gets, and when, given their facts and the ledger so far.

Plan, simulate and send all decide here. The candidate finder says what the
calendar wants to send the contact as of a day (triggers, audiences, `unless`
and `only_if`, the variant: candidates.py); the policy resolves those against
the caps, the gap and quiet days, with the mails already made counting
(policy.py). The plan keeps every decision; simulate and send act on those
that fall on the day. This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date

from trouw.planning.candidates import (
    CandidateFinder,
    ChunkFacts,
    ContactRow,
    held_back,
    stop_reason,
    unreachable,
)
from trouw.planning.policy import (
    DEFERRED,
    DROPPED,
    PLANNED,
    SUPERSEDED,
    Decision,
    Rules,
    YearCalendar,
    resolve,
)


def decide(
    finder: CandidateFinder,
    rules: Rules,
    calendar: YearCalendar,
    contact: ContactRow,
    facts: ChunkFacts,
    *,
    made: Collection[tuple[str, str, str]] = (),
    sent: Sequence[tuple[date, str]] = (),
    due_by: date | None = None,
) -> list[Decision]:
    """Every send the contact is due from the finder's day on, decided.

    `made`: keys (campaign, step, occurrence) the ledger already holds, not
    decided again; `sent`: the (day, campaign) of mails that count toward the
    caps. The contact's whole remaining year is resolved, so a later
    higher-priority send keeps its room. Nothing is due before the contact
    became a customer (`customer_since`). `due_by`: a caller that acts on one
    day only asks for nothing when no send is due by then (a send is never
    decided for a day before its due day).
    """
    candidates = finder.candidates(contact, facts)
    joined = contact.customer_since
    if isinstance(joined, date) and joined > finder.as_of:
        candidates = [c for c in candidates if c.due >= joined]  # not a customer before
    if made:
        candidates = [c for c in candidates if c.key not in made]
    if not candidates:
        return []
    if due_by is not None and all(c.due > due_by for c in candidates):
        return []
    return resolve(
        candidates,
        rules,
        calendar,
        excluded=stop_reason(contact, facts),
        unreachable=unreachable(contact, facts),
        sent=sent,
        supersede=finder.superseding,
        held=held_back(contact, facts, finder.topics),
    )


def sends_on(day: date, decisions: Sequence[Decision]) -> list[Decision]:
    """The decisions that send on `day`."""
    return [d for d in decisions if d.day == day and d.status in (PLANNED, DEFERRED)]


def superseded(decision: Decision) -> bool:
    """Whether a fresher occurrence took this send's place: it ends (`cancelled`), where a
    send that found no room this time may find it on a later day."""
    return decision.status == DROPPED and (decision.reason or "").startswith(SUPERSEDED)


def ends_on(day: date, decisions: Sequence[Decision]) -> list[Decision]:
    """The sends due on `day` that a fresher occurrence superseded: ended that day."""
    return [d for d in decisions if d.day == day and superseded(d)]


__all__ = ["decide", "ends_on", "sends_on", "superseded"]
