"""`trouw calendar YEAR`: the year plan as a month-grid heatmap, an HTML page or an ICS feed."""

from __future__ import annotations

import calendar as months
from datetime import date, timedelta
from pathlib import Path

import click
from rich.columns import Columns
from rich.markup import escape
from rich.table import Table

from trouw.cli.output import console
from trouw.cli.params import Env, pass_env
from trouw.errors import WorkFailed
from trouw.planning import DEFERRED, DROPPED, PLANNED
from trouw.planning.runs import year_planned
from trouw.planning.views import YearView, calendar_html, calendar_ics, year_view

# Background per pressure level (share of the busiest day): none, light ... dark.
LEVELS = ("", "on #fde0dd", "on #fa9fb5", "on #f768a1", "on #c51b8a")


def _level(sends: int, busiest: int) -> int:
    if not sends or not busiest:
        return 0
    return min(4, 1 + (4 * sends - 1) // busiest)


def _month_grid(view: YearView, month: int) -> Table:
    grid = Table(
        title=months.month_name[month],
        title_justify="left",
        box=None,
        padding=(0, 0),
        pad_edge=False,
    )
    for name in ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"):
        grid.add_column(name, justify="right", width=3)
    busiest = view.busiest_day
    cells: list[str] = [""] * date(view.year, month, 1).weekday()
    day = date(view.year, month, 1)
    while day.month == month:
        style = LEVELS[_level(view.sends_on(day), busiest)]
        cells.append(f"[{style}]{day.day:>3}[/]" if style else f"{day.day:>3}")
        day += timedelta(days=1)
    while len(cells) % 7:
        cells.append("")
    for start in range(0, len(cells), 7):
        grid.add_row(*cells[start : start + 7])
    return grid


@click.command("calendar")
@click.argument("year", type=int)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained calendar page with per-day counts and pressure.",
)
@click.option(
    "--ics",
    "ics_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an RFC 5545 calendar of campaign days, to subscribe to.",
)
@pass_env
def calendar_command(env: Env, year: int, html_path: Path | None, ics_path: Path | None) -> None:
    """Show the planned sends of YEAR per day as a heatmap, and the busiest campaigns.

    Reads the plan written by `trouw plan YEAR`.

    \b
    Example:
      trouw calendar 2027 --html calendar.html --ics campaigns.ics
    """
    with env.engine.connect() as connection:
        if not year_planned(connection, year):
            raise WorkFailed(f"there is no plan for {year}: run `trouw plan {year}` first")
        view = year_view(connection, year)
    name = env.project.settings.name
    console.print(Columns([_month_grid(view, month) for month in range(1, 13)], padding=(1, 3)))
    legend = " ".join(f"[{style}]   [/]" for style in LEVELS[1:])
    console.print(f"sends per day: {legend} up to {view.busiest_day} on the busiest day")
    table = Table(title=f"busiest campaigns {year}", title_justify="left")
    table.add_column("campaign")
    for column in (PLANNED, DEFERRED, DROPPED, "busiest day"):
        table.add_column(column, justify="right")
    for campaign, _sends in view.busiest_campaigns():
        counts = view.per_campaign[campaign]
        days = [(c[campaign], d) for d, c in view.per_day.items() if c[campaign]]
        top = max(days, default=None)
        table.add_row(
            escape(campaign),
            str(counts[PLANNED]),
            str(counts[DEFERRED]),
            str(counts[DROPPED]),
            f"{top[1]} ({top[0]})" if top else "",
        )
    console.print(table)
    if html_path is not None:
        html_path.write_text(calendar_html(view, name=name), encoding="utf-8")
        console.print(f"wrote {html_path}")
    if ics_path is not None:
        ics_path.write_bytes(calendar_ics(view, name=name))
        console.print(f"wrote {ics_path}")
