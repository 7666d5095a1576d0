"""Durations as marketers write them: `30d`, `6w`, `3mo`, `1y`.

A bare `m` is rejected: nobody can tell minutes from months at a glance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from dateutil.relativedelta import relativedelta

_PATTERN = re.compile(r"^\s*(\d+)\s*(d|w|mo|y)\s*$")


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # "d", "w", "mo" or "y"

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def delta(self) -> relativedelta:
        if self.unit == "d":
            return relativedelta(days=self.amount)
        if self.unit == "w":
            return relativedelta(weeks=self.amount)
        if self.unit == "mo":
            return relativedelta(months=self.amount)
        return relativedelta(years=self.amount)

    def before(self, day: date) -> date:
        """The day this duration before `day` (calendar-aware for months and years)."""
        return _shifted(day, -self.amount, self.unit)

    def after(self, day: date) -> date:
        return _shifted(day, self.amount, self.unit)

    def approx_days(self) -> int:
        """Length in days, for sizing windows; exact for d and w."""
        if self.unit in ("d", "w"):
            return (self.after(date(2001, 1, 1)) - date(2001, 1, 1)).days
        return {"mo": 30, "y": 365}[self.unit] * self.amount

    def as_timedelta(self) -> timedelta:
        """Exact length; only defined for day and week durations."""
        if self.unit not in ("d", "w"):
            raise ValueError(f"{self} has no fixed length in days")
        return timedelta(days=self.amount * (7 if self.unit == "w" else 1))


@lru_cache(maxsize=65536)
def _shifted(day: date, amount: int, unit: str) -> date:
    """`day` moved by `amount` units: days and weeks exactly, months and years by the
    calendar (31 January + 1mo is 28 or 29 February). Kept: planning asks the same few
    days millions of times, and calendar arithmetic is slow."""
    if unit in ("d", "w"):
        return day + timedelta(days=amount * (7 if unit == "w" else 1))
    shift = relativedelta(months=amount) if unit == "mo" else relativedelta(years=amount)
    result: date = day + shift
    return result


def parse_duration(text: object) -> Duration:
    """Parse `30d`, `6w`, `3mo` or `1y`; raise ValueError with the fix otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as 30d, 6w, 3mo or 1y, got {text!r}")
    match = _PATTERN.match(text)
    if match is None:
        if re.match(r"^\s*\d+\s*m\s*$", text):
            raise ValueError(f"'{text}' is ambiguous (minutes or months?): write 'mo' for months")
        raise ValueError(f"expected a duration such as 30d, 6w, 3mo or 1y, got {text!r}")
    return Duration(int(match.group(1)), match.group(2))
