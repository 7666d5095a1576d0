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


def _locale_name(context: Context) -> str:
    return str(context.get("locale") or "nl")


def _locale(context: Context) -> Locale:
    return babel_locale(_locale_name(context))


# Babel takes 5-15 µs per date or amount, and a run formats the same few dates (today,
# a deadline, purchase days) and amounts for thousands of contacts: those are cached per
# locale. Only plain values are (int, float, date), with their type in the key for numbers
# so that 1 and 1.0 are never mixed up; anything else goes to Babel as it is.
_CACHE_SIZE = 4096
_NUMBERS = frozenset({int, float})


@lru_cache(maxsize=_CACHE_SIZE)
def _format_date(value: date, style: str, locale: str) -> str:
    return format_date(value, style, locale=babel_locale(locale))


@lru_cache(maxsize=_CACHE_SIZE)
def _format_currency(kind: str, value: Any, currency: str, locale: str) -> str:
    return format_currency(value, currency, locale=babel_locale(locale))


@lru_cache(maxsize=_CACHE_SIZE)
def _format_decimal(kind: str, value: Any, pattern: str | None, locale: str) -> str:
    return format_decimal(value, format=pattern, locale=babel_locale(locale))


@pass_context
def date_filter(context: Context, value: date | datetime | str | None, style: str = "long") -> str:
    """`{{ day|date }}` -> "2 april 2027"; style short/medium/long/full or a CLDR pattern."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if type(value) is datetime:
        value = value.date()  # as Babel does; equal datetimes can fall on different days
    if type(value) is date and type(style) is str:
        return _format_date(value, style, _locale_name(context))
    return format_date(value, style, locale=_locale(context))


@pass_context
def money_filter(
    context: Context, value: float | int | None, currency: str = DEFAULT_CURRENCY
) -> str:
    """`{{ 12.5|money }}` -> "€ 12,50" (nl) or "€12.50" (en)."""
    amount = value or 0
    kind = type(amount)
    if kind in _NUMBERS and type(currency) is str:
        return _format_currency(kind.__name__, amount, currency, _locale_name(context))
    return format_currency(amount, currency, locale=_locale(context))


@pass_context
def number_filter(context: Context, value: float | int | None, decimals: int | None = None) -> str:
    """`{{ 1250|number }}` -> "1.250" (nl) or "1,250" (en)."""
    number = value or 0
    pattern = None
    if decimals is not None:
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    kind = type(number)
    if kind in _NUMBERS:
        return _format_decimal(kind.__name__, number, pattern, _locale_name(context))
    return format_decimal(number, format=pattern, locale=_locale(context))


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
