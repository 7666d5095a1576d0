"""`trouw report`: campaign results, inbox pressure and loyalty figures of a year."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from trouw.cli.output import console, errors
from trouw.cli.params import Env, as_of_option, format_option, pass_env
from trouw.reports import Report, build_report, report_dict, report_html, write_csv
from trouw.reports.export import NO_VARIANT
from trouw.reports.figures import SegmentSize, default_period
from trouw.reports.formatting import count, decimal, percent, signed
from trouw.reports.funnel import CampaignFunnel, Funnel

# The counts and the rates do not fit one 80-column table: a table each.
SEND_COLUMNS = ("planned", "sent", "failed", "delivered", "bounced")
RATE_COLUMNS = ("delivered", "open", "click", "CTOR", "unsub", "bounce")
LETTER_COLUMNS = ("planned", "sent", "failed")


def _send_cells(funnel: Funnel) -> list[str]:
    numbers = (funnel.planned, funnel.sent, funnel.failed, funnel.delivered, funnel.bounced)
    return [count(n) for n in numbers]


def _rate_cells(funnel: Funnel) -> list[str]:
    return [percent(rate) for rate in funnel.rates().values()]


def _letter_cells(funnel: Funnel) -> list[str]:
    return [count(n) for n in (funnel.planned, funnel.sent, funnel.failed)]


def _campaign_table(
    campaigns: list[CampaignFunnel],
    title: str,
    columns: tuple[str, ...],
    cells: Callable[[Funnel], list[str]],
) -> Table:
    """A campaign's row (its totals) and under it its variants, indented."""
    table = Table(title=title, title_justify="left")
    table.add_column("campaign / variant", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right")
    for campaign in campaigns:
        variants = campaign.sorted_variants()
        several = len(variants) > 1  # one template needs no line of its own
        table.add_row(
            f"[bold]{escape(campaign.campaign)}[/bold]",
            *cells(campaign.total),
            end_section=not several,
        )
        for index, (template, funnel) in enumerate(variants if several else []):
            table.add_row(
                f"  {escape(template or NO_VARIANT)}",
                *cells(funnel),
                end_section=index == len(variants) - 1,
            )
    return table


def _campaign_tables(report: Report) -> list[Table]:
    year = report.year.label
    tables = []
    if report.mail_campaigns:
        sends = _campaign_table(
            report.mail_campaigns, f"e-mail campaigns {year}", SEND_COLUMNS, _send_cells
        )
        sends.caption = "mails; bounced: bounced after sending, or refused as a hard bounce"
        tables.append(sends)
        tried = [campaign for campaign in report.mail_campaigns if campaign.total.tried]
        if tried:  # a campaign with nothing sent yet has no rates
            rates = _campaign_table(tried, f"e-mail rates {year}", RATE_COLUMNS, _rate_cells)
            rates.caption = (
                "delivered, bounce: of the mails tried (sent + failed); open, click, unsub: "
                "of the delivered mails; CTOR: clicked / opened mails"
            )
            tables.append(rates)
    if report.letter_campaigns:
        letters = _campaign_table(
            report.letter_campaigns, f"letters {year}", LETTER_COLUMNS, _letter_cells
        )
        letters.caption = "letters are written to the letters folder: never opened or clicked"
        tables.append(letters)
    return tables


def _pressure_table(report: Report) -> Table:
    table = Table(title="mails per contact (sent, by ledger day)", title_justify="left")
    for column in ("per", "cap", "max", "p99", "mean", "mailed", "over cap"):
        table.add_column(column, justify="left" if column == "per" else "right")
    for pressure in (report.weekly, report.monthly):
        over = f"[red]{count(pressure.over_cap)}[/red]" if pressure.over_cap else "0"
        table.add_row(
            pressure.period,
            str(pressure.cap),
            str(pressure.max),
            str(pressure.p99),
            decimal(pressure.mean, 2),
            count(pressure.contact_periods),
            over,
        )
    table.caption = "over the contacts mailed in the week (Mon-Sun) or month"
    return table


def _loyalty_table(report: Report) -> Table:
    figures = report.loyalty
    table = Table(title=f"loyalty {figures.period.label}", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("from")
    table.add_row(
        "churn rate",
        percent(figures.churn_rate),
        f"{count(figures.lost)} of {count(figures.customers_at_start)} customers lost",
    )
    table.add_row(
        "repurchase rate",
        percent(figures.repurchase_rate),
        f"{count(figures.repeat_buyers)} of {count(figures.buyers)} buyers bought 2+ times",
    )
    table.add_row(
        "upsell rate",
        percent(figures.upsell_rate),
        f"{count(figures.upsold)} of {count(figures.returning_buyers)} returning buyers, "
        "a new category",
    )
    table.add_row(
        "NPS",
        signed(figures.nps),
        f"{count(figures.promoters)} promoters, {count(figures.detractors)} detractors "
        f"of {count(figures.nps_answers)} answers; average {decimal(figures.average_recommend)}",
    )
    table.add_row(
        "CSAT",
        percent(figures.csat),
        f"{count(figures.satisfied)} of {count(figures.csat_answers)} answers 4 or 5",
    )
    table.add_row(
        "loyalty score",
        decimal(figures.loyalty_score),
        "0-10: mean of average recommend, 10 * repurchase, 10 * upsell",
    )
    return table


def _months_table(report: Report) -> Table:
    table = Table(title="loyalty per month", title_justify="left")
    for column in ("month", "churn", "repurchase", "upsell", "NPS", "CSAT", "score"):
        table.add_column(column, justify="left" if column == "month" else "right")
    for month in report.loyalty_months:
        table.add_row(
            month.period.label,
            percent(month.churn_rate),
            percent(month.repurchase_rate),
            percent(month.upsell_rate),
            signed(month.nps),
            percent(month.csat),
            decimal(month.loyalty_score),
        )
    return table


def _segments_table(report: Report) -> Table:
    table = Table(title="segments (latest snapshot)", title_justify="left")
    for column in ("segment", "as of", "size", "entered", "left", "snapshots"):
        table.add_column(column, justify="left" if column in ("segment", "as of") else "right")
    latest: dict[str, SegmentSize] = {}
    snapshots: Counter[str] = Counter()
    for size in report.segments:  # in day order: the last one is the latest
        latest[size.segment] = size
        snapshots[size.segment] += 1
    for name, size in sorted(latest.items()):
        table.add_row(
            escape(name),
            size.as_of.isoformat(),
            count(size.size),
            count(size.entered),
            count(size.left),
            str(snapshots[name]),
        )
    return table


def _print_tables(report: Report) -> None:
    console.print(
        f"[bold]{escape(report.name)}[/bold]: report on {report.year.label} "
        f"({report.year.first} to {report.year.last}, as of {report.as_of})"
    )
    note = report.nothing_sent()
    if note:
        console.print(note)
    for table in _campaign_tables(report):
        console.print(table)
    if report.weekly.contact_periods:
        console.print(_pressure_table(report))
    if report.loyalty.has_data:
        console.print(_loyalty_table(report))
        console.print(_months_table(report))
    else:
        console.print(
            f"no purchases or survey answers bear on {report.year.label}: no loyalty figures"
        )
    if report.segments:
        console.print(_segments_table(report))


@click.command("report")
@click.option(
    "--year",
    type=int,
    metavar="YYYY",
    help="The year to report on (default: the year of the latest sent mail up to --as-of).",
)
@as_of_option
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as one self-contained HTML page with charts.",
)
@format_option("table", "csv", "json", default="table")
@pass_env
def report_command(
    env: Env, year: int | None, as_of: date | None, html_path: Path | None, fmt: str
) -> None:
    """Report on a year: campaign funnels, mails per inbox, loyalty figures.

    Per e-mail campaign and variant: planned, sent, failed, delivered and
    bounced mails, and the delivered, open, click, click-to-open, unsubscribe
    and bounce rates; letters apart (planned, sent, failed). Mails per
    contact per week and month (max, p99, mean) beside the caps in
    trouw.toml. Churn, repurchase and upsell rates, NPS, CSAT and the loyalty
    score, for the year and per month. Experiments: each A/B arm's rates
    with 95% intervals, the winners picked, and the lift of treated over
    held-out contacts (campaign holdouts, the control group) with intervals.
    --format csv writes one long table (section,name,variant,period,metric,
    value; without the experiments); json one object per section.

    Without --year: the year of the latest sent mail. Without --as-of: today,
    or the latest send day when the ledger runs ahead of today (as after
    `trouw demo`, which sends a day of the coming year).

    \b
    Example:
      trouw report --html report.html
      trouw report --year 2026 --format csv > report-2026.csv
    """
    settings = env.project.settings
    with env.engine.connect() as connection:
        year, day, chosen = default_period(connection, today=env.today(), year=year, as_of=as_of)
        report = build_report(
            connection,
            name=settings.name,
            year=year,
            as_of=day,
            timezone=settings.tz,
            caps=settings.policy,
        )
        # Imported here: scipy, for the intervals, takes a while to import.
        from trouw.cli.report_experiments import print_experiments
        from trouw.reports.experiments import experiments_dict, report_experiments

        experiments = report_experiments(connection, report, env.project)
    if chosen:
        (console if fmt == "table" else errors).print(chosen)
    if fmt == "json":
        data = report_dict(report)
        if experiments:
            data["experiments"] = experiments_dict(experiments)
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    elif fmt == "csv":
        write_csv(report, sys.stdout)
    else:
        _print_tables(report)
        if experiments:
            print_experiments(experiments)
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(report_html(report, experiments), encoding="utf-8")
        # With csv or json on stdout, the note goes to stderr so the data stays clean.
        (console if fmt == "table" else errors).print(f"wrote {html_path}")
    note = report.nothing_sent()
    if note and fmt != "table":
        errors.print(note)
