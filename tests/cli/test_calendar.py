"""`trouw calendar YEAR` in the terminal: readable on dark and light terminals, a log scale."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest
from rich.color import Color
from rich.console import Console

from tests.conftest import Cli
from tests.planning.calendar_shop import planned_shop
from trouw.cli.calendar import HOLIDAY, LEVELS, QUIET, _month_grid
from trouw.planning.calendar_data import CalendarPage
from trouw.planning.views import LogScale, YearView


def _luminance(color: str) -> float:
    triplet = Color.parse(color).get_truecolor()

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(v) for v in triplet)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _contrast(one: str, other: str) -> float:
    light, dark = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("style", LEVELS[1:])
def test_each_level_brings_its_own_foreground_and_background(style: str) -> None:
    """The terminal's own colours are never relied on: the digits read the same on a dark and
    a light terminal, with at least the WCAG AA contrast of 4.5 to 1."""
    found = re.fullmatch(r"(#[0-9a-f]{6}) on (#[0-9a-f]{6})", style)
    assert found, style
    assert _contrast(found.group(1), found.group(2)) >= 4.5


def test_quiet_days_use_no_colour_of_their_own() -> None:
    # Dim (and underlined for a holiday) text in the terminal's own foreground reads on both.
    assert QUIET == "dim" and HOLIDAY == "dim underline"


def test_a_month_grid_colours_busy_days_by_the_log_scale_on_any_terminal() -> None:
    view = YearView(2027, 1000)
    busy = {date(2027, 4, 2): 389, date(2027, 4, 5): 3, date(2027, 4, 6): 15, date(2027, 4, 7): 60}
    for day, sends in busy.items():
        view.per_day[day] = Counter({"spring": sends})
    page = CalendarPage(
        "Shop",
        view,
        [],
        quiet={date(2027, 4, 4): "sunday", date(2027, 4, 27): "King's Day (NL)"},
        holidays=frozenset({date(2027, 4, 27)}),
    )
    scale = LogScale(view.busiest_day)
    console = Console(force_terminal=True, color_system="truecolor", width=40, record=True)
    console.print(_month_grid(page, scale, 4))
    text = console.export_text(styles=True)
    # Each busy day: its level's foreground and background, whatever the terminal's theme.
    levels = {2: 4, 5: 1, 6: 2, 7: 3}
    for day, level in levels.items():
        fg, bg = (Color.parse(c).get_truecolor() for c in LEVELS[level].split(" on "))
        code = f"38;2;{fg.red};{fg.green};{fg.blue};48;2;{bg.red};{bg.green};{bg.blue}m"
        assert re.search(re.escape(code) + rf"\s*{day}\b", text), (day, level)
    assert "\x1b[2m4\x1b[0m" in text  # the quiet Sunday, dim
    assert "\x1b[2;4m27\x1b[0m" in text  # King's Day: dim and underlined, digits only
    assert re.search(r"(?<![;\d])8\b", text)  # an ordinary day: no colour at all


def test_the_terminal_view_has_a_legend_the_campaigns_and_one_contacts_year(cli: Cli) -> None:
    shop = planned_shop(cli)
    result = shop("calendar", "2027", "--contact", "anouk")
    assert result.exit_code == 0, result.output
    assert "sends per day (log scale):" in result.output
    assert "quiet day" in result.output and "holiday" in result.output
    table = result.output[result.output.index("busiest campaigns 2027") :]
    for name, when in (("spring", "every year"), ("news", "every month"), ("birthday", "on each")):
        assert re.search(rf"{name}\s+│ {when}", table), name
    assert "what Anouk de Vries (anouk) gets in 2027" in result.output
    unplanned = shop("calendar", "2031")
    assert unplanned.exit_code == 1 and "run `trouw plan 2031` first" in unplanned.output
