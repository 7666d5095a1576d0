"""Locale-aware filters for mails: dates, money, numbers and plurals, with Babel.

Each filter reads the contact's locale from the render context (`locale`), so
a template writes `{{ facts.last_purchase_date|date }}` and gets "2 april 2027"
for a Dutch contact and "2 April 2027" for an English one. English uses
British conventions (day before month), as a Dutch shop's English mail would.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import pass_context
from jinja2.runtime import Context

# The Babel locale used for a contact locale; others are passed through as they are.
BABEL_LOCALES = {"nl": "nl_NL", "en": "en_GB"}
DEFAULT_CURRENCY = "EUR"


@lru_cache(maxsize=64)
def babel_locale(name: str) -> Locale:
    """The Babel locale for `nl`, `en`, `de_DE`, ...; unknown names fall back to Dutch."""
    try:
        return Locale.parse(BABEL_LOCALES.get(name, name).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(BABEL_LOCALES["nl"])


def _locale(context: Context) -> Locale:
    return babel_locale(str(context.get("locale") or "nl"))


@pass_context
def date_filter(context: Context, value: date | datetime | str | None, style: str = "long") -> str:
    """`{{ day|date }}` -> "2 april 2027"; style short/medium/long/full or a CLDR pattern."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return format_date(value, style, locale=_locale(context))


@pass_context
def money_filter(
    context: Context, value: float | int | None, currency: str = DEFAULT_CURRENCY
) -> str:
    """`{{ 12.5|money }}` -> "€ 12,50" (nl) or "€12.50" (en)."""
    return format_currency(value or 0, currency, locale=_locale(context))


@pass_context
def number_filter(context: Context, value: float | int | None, decimals: int | None = None) -> str:
    """`{{ 1250|number }}` -> "1.250" (nl) or "1,250" (en)."""
    number = value or 0
    if decimals is not None:
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return format_decimal(number, format=pattern, locale=_locale(context))
    return format_decimal(number, locale=_locale(context))


@pass_context
def plural_filter(context: Context, count: Any, one: str, other: str) -> str:
    """`{{ n|plural("punt", "punten") }}`: the word that fits the count in the locale."""
    try:
        number = float(count)
    except (TypeError, ValueError):
        number = 0.0
    form = _locale(context).plural_form(int(number) if number.is_integer() else number)
    return one if form == "one" else other


def add_days_filter(value: date, days: int) -> date:
    """`{{ today|add_days(14)|date }}`: a day some days later (or earlier, when negative)."""
    return value + timedelta(days=int(days))


FILTERS = {
    "add_days": add_days_filter,
    "date": date_filter,
    "money": money_filter,
    "number": number_filter,
    "plural": plural_filter,
}
