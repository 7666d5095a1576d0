"""The report as data: one JSON object with a key per section, or one long CSV table.

The CSV has one number per row, `section,name,variant,period,metric,value`,
so every section fits the same header and a spreadsheet pivot brings any of
them back into a grid:

- `campaigns`: the e-mail funnels. name = campaign, variant = template (""
  for the campaign's total, "(none)" when the template is unknown), period =
  the year; the counts, then the rates as `delivered_rate`, `open_rate`,
  `click_rate`, `click_to_open_rate`, `unsubscribe_rate`, `bounce_rate`.
- `letters`: the same for letters (planned, sent, failed; no rates: a
  letter is never opened, clicked or bounced).
- `flooding`: period = `week` or `month`: cap, max, p99, mean,
  contact_periods, over_cap. `weeks` / `months`: period = "2027-W09" /
  "2027-03": sends, contacts, max, p99, mean.
- `loyalty`: period = the year or a month ("2027-03"): the figures (rates as
  fractions 0-1, nps -100 … 100, scores 0-10) and the counts behind them.
- `segments`: name = segment, period = the snapshot's as-of day: size,
  entered, left.

An unknown value (a rate without a denominator) is an empty cell, and null in JSON.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

from trouw.reports.figures import Report
from trouw.reports.flooding import Pressure
from trouw.reports.funnel import LETTER, CampaignFunnel, Funnel
from trouw.reports.loyalty import Loyalty

CSV_COLUMNS = ("section", "name", "variant", "period", "metric", "value")
NO_VARIANT = "(none)"


def _number(value: float | int | None) -> float | int | None:
    """Floats rounded to 6 decimals: enough for rates, free of binary noise."""
    if isinstance(value, float):
        return round(value, 6)
    return value


def _pressure(pressure: Pressure) -> dict[str, Any]:
    return {
        "cap": pressure.cap,
        "max": pressure.max,
        "p99": pressure.p99,
        "mean": _number(pressure.mean),
        "contact_periods": pressure.contact_periods,
        "over_cap": pressure.over_cap,
        "periods": [
            {
                "period": load.label,
                "start": load.start.isoformat(),
                "sends": load.sends,
                "contacts": load.contacts,
                "max": load.max,
                "p99": load.p99,
                "mean": _number(load.mean),
            }
            for load in pressure.per_period
        ],
    }


def _loyalty(figures: Loyalty) -> dict[str, Any]:
    return {
        "period": figures.period.label,
        "first_day": figures.period.first.isoformat(),
        "last_day": figures.period.last.isoformat(),
        **{name: _number(value) for name, value in figures.figures().items()},
        "counts": figures.counts(),
    }


def _funnel(funnel: Funnel) -> dict[str, Any]:
    counts = {k: _number(v) for k, v in funnel.counts().items()}
    return {**counts, "rates": {k: _number(v) for k, v in funnel.rates().items()}}


def _campaign(campaign: CampaignFunnel) -> dict[str, Any]:
    return {
        "campaign": campaign.campaign,
        **_funnel(campaign.total),
        "variants": [
            {"variant": template, **_funnel(funnel)}
            for template, funnel in campaign.sorted_variants()
        ],
    }


def _funnel_rows(funnel: Funnel) -> Iterator[tuple[str, Any]]:
    yield from funnel.counts().items()
    if funnel.channel != LETTER:
        for name, value in funnel.rates().items():
            yield f"{name}_rate", value


def report_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "report": {
            "project": report.name,
            "year": int(report.year.label),
            "first_day": report.year.first.isoformat(),
            "last_day": report.year.last.isoformat(),
            "as_of": report.as_of.isoformat(),
            "nothing_sent": report.nothing_sent(),
        },
        "campaigns": [_campaign(campaign) for campaign in report.mail_campaigns],
        "letters": [_campaign(campaign) for campaign in report.letter_campaigns],
        "flooding": {"week": _pressure(report.weekly), "month": _pressure(report.monthly)},
        "loyalty": {
            "year": _loyalty(report.loyalty),
            "months": [_loyalty(month) for month in report.loyalty_months],
        },
        "segments": [
            {
                "segment": size.segment,
                "as_of": size.as_of.isoformat(),
                "size": size.size,
                "entered": size.entered,
                "left": size.left,
            }
            for size in report.segments
        ],
    }


def csv_rows(report: Report) -> Iterator[tuple[Any, ...]]:
    """The rows of the long CSV table, without the header."""
    year = report.year.label
    for campaign in report.campaigns:
        section = "letters" if campaign.letters else "campaigns"
        for metric, value in _funnel_rows(campaign.total):
            yield (section, campaign.campaign, "", year, metric, _number(value))
        for template, funnel in campaign.sorted_variants():
            variant = template or NO_VARIANT
            for metric, value in _funnel_rows(funnel):
                yield (section, campaign.campaign, variant, year, metric, _number(value))
    for pressure, section in ((report.weekly, "weeks"), (report.monthly, "months")):
        summary = _pressure(pressure)
        for metric in ("cap", "max", "p99", "mean", "contact_periods", "over_cap"):
            yield ("flooding", "", "", pressure.period, metric, summary[metric])
        for load in summary["periods"]:
            for metric in ("sends", "contacts", "max", "p99", "mean"):
                yield (section, "", "", load["period"], metric, load[metric])
    for figures in (report.loyalty, *report.loyalty_months):
        values = _loyalty(figures)
        counts = values.pop("counts")
        for metric in (*figures.figures(), *counts):
            value = values[metric] if metric in values else counts[metric]
            yield ("loyalty", "", "", figures.period.label, metric, value)
    for size in report.segments:
        day = size.as_of.isoformat()
        for metric in ("size", "entered", "left"):
            yield ("segments", size.segment, "", day, metric, getattr(size, metric))


def write_csv(report: Report, out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in csv_rows(report):
        writer.writerow(["" if value is None else value for value in row])
