"""How the report's numbers read, the same in the terminal and on the HTML page."""

from __future__ import annotations

UNKNOWN = "\u2013"  # an en dash: a rate without a denominator, no data (not 0)


def percent(value: float | None) -> str:
    """A fraction 0-1 as "25.0%"."""
    return UNKNOWN if value is None else f"{100 * value:.1f}%"


def decimal(value: float | None, digits: int = 1) -> str:
    return UNKNOWN if value is None else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    """NPS: "+14.3", "-100.0", "0.0"."""
    if value is None:
        return UNKNOWN
    return f"{value:+.1f}" if round(value, 1) else "0.0"


def count(value: int) -> str:
    return f"{value:,}"
