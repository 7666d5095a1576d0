"""The contact-pressure rules of `[policy]` and the per-contact conflict resolution.

This module does no I/O: `resolve` takes one contact's candidate sends and
returns a decision for each, so property tests can drive it directly.

Decisions, in order, deterministic for the same input:

1. A send due on a quiet day (a weekday name or a public holiday) moves to the
   next allowed day. That is not a deferral: the calendar simply has no such day.
2. `service` mails are placed first, ignoring the caps, but they count toward them.
3. The others are placed by priority (highest first; then by day, campaign,
   step, occurrence). A send goes on its day when the week (Monday to Sunday),
   the calendar month and the minimum gap allow it; else on the first later
   day within `defer_for` that does (status `deferred`); else it is `dropped`
   with the reason that bound. Because every placed send is checked against
   every send placed before it, in both directions, the caps hold whatever
   the processing order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo

import holidays

from trouw.durations import parse_duration
from trouw.project import WEEKDAYS, Policy

SUPERSEDED = "superseded by the next occurrence"
PLANNED = "planned"
DEFERRED = "deferred"
DROPPED = "dropped"
SERVICE = "service"


class QuietDays:
    """Days without sends: weekday names and `holidays:CC` public holidays."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self.weekdays = frozenset(
            WEEKDAYS.index(entry.lower()) for entry in self.entries if entry.lower() in WEEKDAYS
        )
        self.countries = tuple(
            entry.split(":", 1)[1] for entry in self.entries if entry.startswith("holidays:")
        )
        self._holidays: dict[int, dict[date, str]] = {}

    def holidays_in(self, year: int) -> dict[date, str]:
        """The public holidays of every configured country in `year`, by day."""
        if year not in self._holidays:
            found: dict[date, str] = {}
            for country in self.countries:
                for day, name in holidays.country_holidays(country, years=year).items():
                    found.setdefault(day, f"{name} ({country})")
            self._holidays[year] = found
        return self._holidays[year]

    def reason(self, day: date) -> str | None:
        """Why `day` is quiet (the weekday or the holiday's name), or None if it is not."""
        if day.weekday() in self.weekdays:
            return WEEKDAYS[day.weekday()]
        return self.holidays_in(day.year).get(day)

    def is_quiet(self, day: date) -> bool:
        return day.weekday() in self.weekdays or day in self.holidays_in(day.year)


@dataclass(frozen=True)
class Rules:
    """`[policy]` in the units the planner counts in."""

    max_per_week: int = 2
    max_per_month: int = 6
    min_gap_days: int = 2
    defer_days: int = 7
    quiet: QuietDays = field(default_factory=lambda: QuietDays(("sunday",)))
    control_group: float | None = None  # the share held out of all but service mail, per year

    @classmethod
    def from_policy(cls, policy: Policy) -> Rules:
        return cls(
            max_per_week=policy.max_per_week,
            max_per_month=policy.max_per_month,
            min_gap_days=parse_duration(policy.min_gap).approx_days(),
            defer_days=parse_duration(policy.defer_for).approx_days(),
            quiet=QuietDays(policy.quiet_days),
            control_group=policy.control_group,
        )


class Candidate(NamedTuple):
    """A send a campaign wants to make to one contact, before the policy decides.

    A named tuple rather than a dataclass: the planner makes millions of them.
    """

    due: date
    campaign: str
    step: str
    occurrence: str
    template: str
    kind: str
    priority: int
    step_index: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.campaign, self.step, self.occurrence)


class Decision(NamedTuple):
    candidate: Candidate
    day: date
    status: str  # planned | deferred | dropped
    reason: str | None


class YearCalendar:
    """Per-year lookups shared by every contact: next allowed day, month of a day.

    Days are handled as ordinals: the resolution loop runs for every contact,
    and integer arithmetic keeps it cheap.
    """

    def __init__(self, year: int, quiet: QuietDays) -> None:
        self.year = year
        self.quiet = quiet
        self.first = date(year, 1, 1).toordinal()
        self.last = date(year, 12, 31).toordinal()
        # next_allowed[i]: the first allowed ordinal >= first + i, or 0 if none in the year.
        self.next_allowed: list[int] = []
        following = 0
        for ordinal in range(self.last, self.first - 1, -1):
            if not quiet.is_quiet(date.fromordinal(ordinal)):
                following = ordinal
            self.next_allowed.append(following)
        self.next_allowed.reverse()
        self.month = [date.fromordinal(o).month for o in range(self.first, self.last + 1)]

    def allowed_from(self, day: date) -> int:
        """The ordinal of the first allowed day on or after `day` in the year; 0 if none."""
        ordinal = day.toordinal()
        if ordinal < self.first:
            ordinal = self.first
        if ordinal > self.last:
            return 0
        return self.next_allowed[ordinal - self.first]


def _order(candidate: Candidate) -> tuple[int, int, date, str, int, str]:
    # Service first; then priority, day, campaign, step and occurrence: a total order.
    return (
        0 if candidate.kind == SERVICE else 1,
        -candidate.priority,
        candidate.due,
        candidate.campaign,
        candidate.step_index,
        candidate.occurrence,
    )


def resolve(
    candidates: Sequence[Candidate],
    rules: Rules,
    calendar: YearCalendar,
    *,
    excluded: str | None = None,
    unreachable: str | None = None,
    sent: Sequence[tuple[date, str]] = (),
    supersede: Collection[str] = (),
    held: Callable[[str, date], str | None] | None = None,
) -> list[Decision]:
    """Decide day and status of each of one contact's candidates.

    `unreachable` is why the contact gets nothing at all, service mails included
    (the address is suppressed); `excluded` is why the contact gets nothing but
    service mails (unsubscribed, channel none, ...); each None when it does not
    apply. `held(campaign, day)` says why one marketing send is held back (a
    topic the contact left, a pause until a later day), or None. Candidates must
    be due in the calendar's year; a (campaign, step, occurrence) given twice is
    decided once. `sent` holds the
    (day, campaign) of mails already made (the ledger): they are not decided
    again, but they count toward the week, the month and the gap, as at send time.

    Campaigns in `supersede` (recurring ones where the fresher wins): an
    occurrence that would be deferred into the week or month of the same
    step's next occurrence is dropped as superseded instead, so it never takes
    the room of the fresher one.
    """
    seen: set[tuple[str, str, str]] = set()
    decisions: list[Decision] = []
    placed: list[int] = []  # ordinals of sends placed so far
    per_week: dict[int, int] = {}
    per_month: dict[int, int] = {}
    placed_by: dict[int, str] = {}
    gap = rules.min_gap_days
    first = calendar.first
    months = calendar.month
    for day, campaign in sent:
        ordinal = day.toordinal()
        placed.append(ordinal)
        placed_by.setdefault(ordinal, campaign)
        week = (ordinal - 1) // 7
        per_week[week] = per_week.get(week, 0) + 1
        if first <= ordinal <= calendar.last:  # months are counted within the year
            month = months[ordinal - first]
            per_month[month] = per_month.get(month, 0) + 1
    next_allowed = calendar.next_allowed
    last = calendar.last
    following = _next_occurrences(candidates, supersede) if supersede else {}
    max_week, max_month, defer = rules.max_per_week, rules.max_per_month, rules.defer_days
    for candidate in sorted(candidates, key=_order):
        key = candidate[1:4]  # (campaign, step, occurrence), as Candidate.key
        if key in seen:
            continue
        seen.add(key)
        due = candidate.due
        due_ordinal = due.toordinal()
        # calendar.allowed_from, inlined: this loop runs for every send of every contact.
        if due_ordinal > last:
            start = 0
        else:
            start = next_allowed[due_ordinal - first if due_ordinal >= first else 0]
        if not start:
            decisions.append(
                Decision(candidate, due, DROPPED, f"no allowed day left in {calendar.year}")
            )
            continue
        shifted = None
        if start != due_ordinal:
            why = calendar.quiet.reason(due) or "quiet day"
            shifted = f"moved from {due} ({why})"
        service = candidate.kind == SERVICE
        stop = unreachable or (None if service else excluded)
        if not stop and held is not None and not service:
            stop = held(candidate.campaign, date.fromordinal(start))
        if stop:
            decisions.append(Decision(candidate, date.fromordinal(start), DROPPED, stop))
            continue
        chosen = 0
        first_problem: str | None = None
        if service:
            chosen = start
        else:
            limit = min(start + defer, last)
            ordinal = start
            while ordinal <= limit:
                if next_allowed[ordinal - first] != ordinal:
                    ordinal += 1
                    continue
                problem = None
                if per_week.get((ordinal - 1) // 7, 0) >= max_week:
                    problem = f"max_per_week {max_week} reached"
                elif per_month.get(months[ordinal - first], 0) >= max_month:
                    problem = f"max_per_month {max_month} reached"
                elif gap:
                    for other in placed:
                        if -gap < ordinal - other < gap:
                            problem = (
                                f"within min_gap {gap}d of {placed_by[other]} "
                                f"on {date.fromordinal(other)}"
                            )
                            break
                if problem is None:
                    chosen = ordinal
                    break
                if first_problem is None:
                    first_problem = problem
                ordinal += 1
        if not chosen:
            reason = f"{first_problem}; no room within defer_for {defer}d"
            if shifted:
                reason = f"{shifted}; {reason}"
            decisions.append(Decision(candidate, date.fromordinal(start), DROPPED, reason))
            continue
        if chosen != start and candidate[1:4] in following:
            upcoming = following[candidate[1:4]]
            if (chosen - 1) // 7 == (upcoming - 1) // 7 or (
                months[chosen - first] == months[upcoming - first]
                if first <= upcoming <= last
                else False
            ):
                reason = f"{SUPERSEDED} on {date.fromordinal(upcoming)}: {first_problem}"
                decisions.append(Decision(candidate, date.fromordinal(start), DROPPED, reason))
                continue
        placed.append(chosen)
        if chosen not in placed_by:
            placed_by[chosen] = candidate.campaign
        week = (chosen - 1) // 7  # ordinal 1 is a Monday: weeks run Monday to Sunday
        per_week[week] = per_week.get(week, 0) + 1
        month = months[chosen - first]
        per_month[month] = per_month.get(month, 0) + 1
        if chosen == start:
            if shifted is None:
                decisions.append(Decision(candidate, due, PLANNED, None))
            else:
                decisions.append(Decision(candidate, date.fromordinal(chosen), PLANNED, shifted))
        else:
            moved = f"moved from {date.fromordinal(start)}: {first_problem}"
            decisions.append(
                Decision(
                    candidate,
                    date.fromordinal(chosen),
                    DEFERRED,
                    f"{shifted}; {moved}" if shifted else moved,
                )
            )
    return decisions


class SendWindow:
    """`send_window = "09:00-17:00"`: the hours a contact may get mail, in their own zone.

    A window that ends before it starts runs over midnight ("20:00-08:00").
    """

    def __init__(self, text: str) -> None:
        start, end = text.split("-")
        self.text = text
        self.start = time.fromisoformat(start)
        self.end = time.fromisoformat(end)

    def allows(self, moment: datetime, zone: ZoneInfo) -> bool:
        """Whether `moment` (naive UTC) falls inside the window in `zone`."""
        local = moment.replace(tzinfo=UTC).astimezone(zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return self.text


def _next_occurrences(
    candidates: Sequence[Candidate], supersede: Collection[str]
) -> dict[tuple[str, str, str], int]:
    """For each candidate of a superseding campaign: the ordinal of its step's next due."""
    dues: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for c in candidates:
        if c.campaign in supersede:
            dues.setdefault((c.campaign, c.step), []).append((c.due.toordinal(), c.occurrence))
    following: dict[tuple[str, str, str], int] = {}
    for (campaign, step), found in dues.items():
        found.sort()
        for (_, occurrence), (upcoming, _) in pairwise(found):
            following[(campaign, step, occurrence)] = upcoming
    return following


def week_of(day: date) -> date:
    """The Monday that starts `day`'s week."""
    return day - timedelta(days=day.weekday())
