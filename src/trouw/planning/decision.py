"""The one decision: what a contact gets, and when, given their facts and the ledger so far.

Plan, simulate and send all decide here. The candidate finder says what the
calendar wants to send the contact as of a day (triggers, audiences, `unless`
and `only_if`, the variant: candidates.py); the policy resolves those against
the caps, the gap and quiet days, with the mails already made counting
(policy.py). The plan keeps every decision; simulate and send act on those
that fall on the day. This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import date

from trouw.experiments import (
    CAMPAIGN_HOLDOUT,
    CONTROL_GROUP,
    HELD_OUT,
    held_out_of,
    in_control_group,
)
from trouw.planning.candidates import (
    LEFT_TOPIC,
    PAUSED_UNTIL,
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
    Candidate,
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
    candidates = open_candidates(finder, contact, facts, made)
    return decide_among(
        candidates, finder, rules, calendar, contact, facts, sent=sent, due_by=due_by
    )


def open_candidates(
    finder: CandidateFinder,
    contact: ContactRow,
    facts: ChunkFacts,
    made: Collection[tuple[str, str, str]] = (),
    found: list[Candidate] | None = None,
) -> list[Candidate]:
    """The candidates `decide` resolves: the finder's (or `found`, the same kept by the
    caller: watch.py), less those due before the contact became a customer and those the
    ledger already holds (`made`)."""
    candidates = finder.candidates(contact, facts) if found is None else found
    joined = contact.customer_since
    if isinstance(joined, date) and joined > finder.as_of:
        candidates = [c for c in candidates if c.due >= joined]  # not a customer before
    if made:
        candidates = [c for c in candidates if c.key not in made]
    return candidates


def anything_due(
    finder: CandidateFinder,
    contact: ContactRow,
    facts: ChunkFacts,
    made: Collection[tuple[str, str, str]] = (),
) -> bool:
    """Whether `open_candidates` (with the same `made`) holds a send due by the finder's
    day."""
    return still_due(due_keys(finder, contact, facts), made)


def still_due(
    keys: Collection[tuple[str, str, str]], made: Collection[tuple[str, str, str]]
) -> bool:
    """Whether one of the `due_keys` is not `made` yet (the ledger's keys)."""
    return any(key not in made for key in keys)


def due_keys(
    finder: CandidateFinder, contact: ContactRow, facts: ChunkFacts
) -> list[tuple[str, str, str]]:
    """The keys of the sends due by the finder's day that `open_candidates` holds unless
    they are `made` (`CandidateFinder.due_keys`): nothing is due before the contact became
    a customer."""
    joined = contact.customer_since
    if isinstance(joined, date) and joined > finder.as_of:
        return []
    return finder.due_keys(contact, facts)


def decide_among(
    candidates: Sequence[Candidate],
    finder: CandidateFinder,
    rules: Rules,
    calendar: YearCalendar,
    contact: ContactRow,
    facts: ChunkFacts,
    *,
    sent: Sequence[tuple[date, str]] = (),
    due_by: date | None = None,
) -> list[Decision]:
    """`decide` on candidates already found by `open_candidates` (a caller that also
    looks at them, as simulate does to know when the contact is next due)."""
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
        held=holding(finder, rules, contact, facts),
    )


def stop_reasons(contact: ContactRow, facts: ChunkFacts) -> frozenset[str]:
    """The reasons `resolve` drops a send for with nothing but the contact's facts to go on:
    why they get nothing (unreachable) or nothing but service mails (stop_reason)."""
    return frozenset(
        reason for reason in (stop_reason(contact, facts), unreachable(contact, facts)) if reason
    )


def holding(
    finder: CandidateFinder, rules: Rules, contact: ContactRow, facts: ChunkFacts
) -> Callable[[str, date], str | None] | None:
    """Why a marketing send of a campaign on a day is held back for this contact, or None:
    a topic they left or a pause (candidates.held_back) first, as they would get nothing
    anyway; then the project's control group of the day's year (`[policy] control_group`:
    no promotional or lifecycle mail) and the campaign's own `holdout:` (experiments.py).
    None when nothing can hold a send back (for most contacts), so the policy's loop pays
    nothing."""
    chosen = held_back(contact, facts, finder.topics)
    control = rules.control_group
    contact_id = str(contact.id)
    out = held_out_of(contact_id, finder.holdouts)
    # The control group of the finder's year: every day `resolve` places a send on is in it.
    controlled = control is not None and in_control_group(contact_id, finder.year, control)
    if not controlled and not out:
        return chosen

    def reason(campaign: str, day: date) -> str | None:
        why = chosen(campaign, day) if chosen is not None else None
        if why is not None:
            return why
        if controlled:
            return CONTROL_GROUP
        return CAMPAIGN_HOLDOUT if campaign in out else None

    return reason


def sends_on(day: date, decisions: Sequence[Decision]) -> list[Decision]:
    """The decisions that send on `day`."""
    return [d for d in decisions if d.day == day and d.status in (PLANNED, DEFERRED)]


def superseded(decision: Decision) -> bool:
    """Whether a fresher occurrence took this send's place: it ends (`cancelled`), where a
    send that found no room this time may find it on a later day."""
    return decision.status == DROPPED and (decision.reason or "").startswith(SUPERSEDED)


def kept_out(decision: Decision) -> bool:
    """Whether this send is held back from the contact on its day: a holdout or the control
    group (recorded, so the report compares them: reports/lift.py), a pause or a topic they
    left. It ends that day (`cancelled`, with the reason) in send and simulate alike, whether
    or not a plan made it owed before: it does not come back when a pause is over."""
    return decision.status == DROPPED and (decision.reason or "").startswith(
        (HELD_OUT, PAUSED_UNTIL, LEFT_TOPIC)
    )


def ends_on(day: date, decisions: Sequence[Decision]) -> list[Decision]:
    """The sends due on `day` that end that day: a fresher occurrence superseded them, or they
    are held back (kept_out)."""
    return [d for d in decisions if d.day == day and (superseded(d) or kept_out(d))]


__all__ = [
    "anything_due",
    "decide",
    "decide_among",
    "due_keys",
    "ends_on",
    "holding",
    "kept_out",
    "open_candidates",
    "sends_on",
    "still_due",
    "stop_reasons",
    "superseded",
]
