"""How an import file writes dates and numbers: one rule for contacts and events alike.

Dates: ISO 8601 (1990-02-01) always reads. A date written as numbers in another order,
01-02-1990, reads only with `--date-format` (DD-MM-YYYY, MM/DD/YYYY, DD.MM.YYYY: the
order of DD, MM and YYYY and one separator; a day or month may have one digit). Without
it such a date is refused, never guessed: 01-02 is 1 February or January 2.

Numbers: 12 and 12.50 read as numbers. 4.500 is 4.5 with a decimal point and 4500 with
a thousands dot (Excel in the Netherlands), and 4,5 has a decimal comma: these read only
when the file says which, with `--decimal-comma` (4,5 = 4.5; 4.500 = 4500) or
`--decimal-point` (4.500 = 4.5). Without it an extra column keeps such a value as text
and the import says so; `amount` and `score`, which must be numbers, refuse the row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

DecimalMark = Literal[".", ","]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMERIC_DATE = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})$")
_NUMERIC_MOMENT = re.compile(r"^(\d{1,2}[-/.]\d{1,2}[-/.]\d{4})(?:[ T]\S+)?$")
_TIME = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
_NOTATION = re.compile(r"^(DD|MM|YYYY)([-/.])(DD|MM|YYYY)\2(DD|MM|YYYY)$")
_TOKEN = {"DD": r"(\d{1,2})", "MM": r"(\d{1,2})", "YYYY": r"(\d{4})"}

_INTEGER = re.compile(r"^-?(?:0|[1-9]\d*)$")
_POINT = re.compile(r"^-?(?:0|[1-9]\d*)\.\d+$")  # 12.50
_GROUPED = re.compile(r"^-?[1-9]\d{0,2}(?:\.\d{3})+$")  # 4.500, 1.234.567: thousands dots?
_COMMA = re.compile(r"^-?(?:0|[1-9]\d*|[1-9]\d{0,2}(?:\.\d{3})+),\d+$")  # 4,5  1.234,56


@dataclass(frozen=True)
class DateFormat:
    """A `--date-format` such as DD-MM-YYYY, compiled."""

    notation: str
    order: tuple[str, ...]
    day: re.Pattern[str]
    moment: re.Pattern[str]

    @classmethod
    def parse(cls, notation: str) -> DateFormat:
        """Raises ValueError with the fix when `notation` is not a date format."""
        found = _NOTATION.match(notation.strip().upper())
        if found is None or {found[1], found[3], found[4]} != {"DD", "MM", "YYYY"}:
            raise ValueError(
                f"'{notation}' is not a date format: give the order of DD, MM and YYYY with "
                "one separator (- / or .), such as DD-MM-YYYY, MM/DD/YYYY or DD.MM.YYYY"
            )
        order = (found[1], found[3], found[4])
        body = re.escape(found[2]).join(_TOKEN[token] for token in order)
        return cls(
            "".join((order[0], found[2], order[1], found[2], order[2])),
            order,
            re.compile(f"^{body}$"),
            re.compile(f"^{body}{_TIME}$"),
        )

    def make(self, found: re.Match[str]) -> date:
        parts = dict(zip(self.order, (int(found[n]) for n in (1, 2, 3)), strict=True))
        return date(parts["YYYY"], parts["MM"], parts["DD"])


def read_date(text: str, fmt: DateFormat | None = None) -> date:
    """The date `text` gives; raises ValueError with the reason and the fix."""
    if _ISO_DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a real date") from None
    found = fmt.day.match(text) if fmt is not None else None
    if fmt is not None and found is not None:
        try:
            return fmt.make(found)
        except ValueError:
            raise ValueError(f"'{text}' is not a real date (read as {fmt.notation})") from None
    if fmt is not None:
        raise ValueError(f"'{text}' is not a date in the form {fmt.notation} or YYYY-MM-DD")
    numeric = _NUMERIC_DATE.match(text)
    if numeric is None:
        raise ValueError(f"'{text}' is not a date in the form YYYY-MM-DD")
    sep = numeric[2]
    day_first, month_first = f"DD{sep}MM{sep}YYYY", f"MM{sep}DD{sep}YYYY"
    if int(numeric[1]) > 12:
        return _refuse(text, f"is day-first: import with --date-format {day_first}")
    if int(numeric[3]) > 12:
        return _refuse(text, f"is month-first: import with --date-format {month_first}")
    return _refuse(
        text,
        "could be day-first or month-first: say which with --date-format "
        f"{day_first} (or {month_first})",
    )


def _refuse(text: str, why: str) -> date:
    raise ValueError(f"'{text}' {why}")


def read_moment(text: str, fmt: DateFormat | None = None) -> datetime:
    """A time in ISO 8601, or (with `fmt`) a date in that format with an optional HH:MM[:SS];
    naive when it gives no offset. Raises ValueError with the reason and the fix."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    found = fmt.moment.match(text) if fmt is not None else None
    if fmt is not None and found is not None:
        day = read_date(text[: found.end(3)], fmt)
        hour, minute, second = (int(found[n] or 0) for n in (4, 5, 6))
        try:
            return datetime(day.year, day.month, day.day, hour, minute, second)
        except ValueError:
            raise ValueError(f"'{text}' is not a real time of day") from None
    numeric = _NUMERIC_MOMENT.match(text)
    if numeric is not None and fmt is None:
        try:
            read_date(numeric[1])  # raises: which --date-format it needs
        except ValueError as exc:
            raise ValueError(str(exc).replace(numeric[1], text, 1)) from None
    expected = "an ISO 8601 time (2027-04-02T10:30:00+02:00)"
    if fmt is not None:
        expected += f" or {fmt.notation} with an optional HH:MM"
    raise ValueError(f"'{text}' is not {expected}")


def read_number(text: str, mark: DecimalMark | None = None) -> int | float | None:
    """The number `text` writes, or None when it is none (under this decimal mark)."""
    if _INTEGER.match(text):
        return int(text)
    if mark == ",":
        if _GROUPED.match(text):
            return int(text.replace(".", ""))
        if _COMMA.match(text):
            return float(text.replace(".", "").replace(",", "."))
    elif _POINT.match(text) and (mark == "." or not _GROUPED.match(text)):
        return float(text)
    return None


def number_doubt(text: str, mark: DecimalMark | None = None) -> str | None:
    """Why `text`, which `read_number` did not read, looks like a number in another
    notation, with the option that reads it; None when it is plainly text."""
    if mark is None and _GROUPED.match(text):
        if text.count(".") > 1:
            return f"'{text}' has thousands dots: import with --decimal-comma"
        return (
            f"'{text}' could be {float(text):g} or {text.replace('.', '')}: import with "
            "--decimal-comma (a dot groups thousands, a comma is the decimal mark) "
            "or --decimal-point"
        )
    if mark != "," and _COMMA.match(text):
        return f"'{text}' has a decimal comma: import with --decimal-comma, or write it with a dot"
    if mark == "," and _POINT.match(text):
        return f"'{text}' has a decimal point, and --decimal-comma was given: write it with a comma"
    return None


@dataclass
class Notation:
    """The dates and numbers of one file (`trouw import` options), and the values of extra
    columns that looked like numbers in another notation and were kept as text."""

    date_format: DateFormat | None = None
    decimal_mark: DecimalMark | None = None
    doubts: dict[str, tuple[int, str]] = field(default_factory=dict)  # column: (rows, why)

    def doubt(self, column: str, why: str) -> None:
        count, first = self.doubts.get(column, (0, why))
        self.doubts[column] = (count + 1, first)
