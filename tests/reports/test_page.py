"""The report page as a marketer reads it, in headless Chromium: rates, grouping, letters, widths.

The shop of shop.py plus c7's letters; the page and `--format json` come from
the same database, so every rate on the page must be the JSON's, formatted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.reports.shop import add_letters, build_shop
from trouw.reports.formatting import percent
from trouw.store import open_store

REPORT = ("report", "--year", "2027", "--as-of", "2028-01-15")
RATES = ("delivered", "open", "click", "click_to_open", "unsubscribe", "bounce")
WIDTHS = {"phone": 375, "desktop": 1280}


@pytest.fixture
def report(project_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The page (written by `--html`) and the JSON of the same report."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = open_store(url)
    build_shop(engine)
    add_letters(engine)
    engine.dispose()
    cli = Cli(project_dir, url)
    page_path = tmp_path / "report.html"
    result = cli(*REPORT, "--format", "json", "--html", str(page_path))
    assert result.exit_code == 0, result.output
    return page_path, json.loads(result.stdout)


def _row_rates(row: Any) -> dict[str, str]:
    """The rates a table row shows, without the count of mails under each."""
    cells = row.locator("td[data-rate]")
    return {
        cells.nth(i).get_attribute("data-rate"): cells.nth(i).evaluate(
            "cell => cell.firstChild.textContent.trim()"
        )
        for i in range(cells.count())
    }


def test_the_funnel_rates_on_the_page_are_the_json_figures(
    report: tuple[Path, dict[str, Any]], browser: Any, tmp_path: Path
) -> None:
    page_path, data = report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_path.as_uri())
    table = page.locator("#email-funnel")
    shown = 0
    for campaign in data["campaigns"]:
        group = table.locator(f"tbody[data-campaign='{campaign['campaign']}']")
        expected = {rate: percent(campaign["rates"][rate]) for rate in RATES}
        assert _row_rates(group.locator("tr.campaign")) == expected, campaign["campaign"]
        variants = group.locator("tr.variant")
        if len(campaign["variants"]) > 1:
            assert variants.count() == len(campaign["variants"])
            for index, variant in enumerate(campaign["variants"]):
                row = variants.nth(index)
                assert variant["variant"] in row.locator("th").inner_text()
                expected = {rate: percent(variant["rates"][rate]) for rate in RATES}
                assert _row_rates(row) == expected, variant["variant"]
                shown += 1
        shown += 1
    assert shown == 7  # news + 2 variants, spring + 2 variants, welcome
    spring = table.locator("tbody[data-campaign='spring'] tr.campaign")
    assert _row_rates(spring) == {
        "delivered": "40.0%",
        "open": "100.0%",
        "click": "100.0%",
        "click_to_open": "100.0%",
        "unsubscribe": "50.0%",
        "bounce": "40.0%",
    }
    # The chart's bars say the same percentages as the table.
    chart = page.locator("svg[aria-labelledby^='response-rates']")
    values = chart.locator("text.value").all_text_contents()
    opens = [percent(c["rates"]["open"]) for c in data["campaigns"] if c["sent"] or c["failed"]]
    assert values[0::3] == opens
    page.screenshot(path=str(tmp_path / "report-funnel-desktop.png"), full_page=True)
    page.close()


def test_variants_sit_under_their_own_campaign(
    report: tuple[Path, dict[str, Any]], browser: Any
) -> None:
    page_path, _ = report
    page = browser.new_page()
    page.goto(page_path.as_uri())
    rows = page.locator("#email-funnel tbody tr")
    names = [
        (
            row.get_attribute("class"),
            row.locator("th").evaluate("th => th.firstChild.textContent.trim()"),
        )
        for row in rows.all()
    ]
    assert names == [
        ("campaign", "news"),
        ("variant", "news/april"),
        ("variant", "news/easter"),
        ("campaign", "spring"),
        ("variant", "spring/family"),
        ("variant", "spring/single"),
        ("campaign", "welcome"),
    ]
    # A campaign's own row comes first: the rows under it are its variants, and add up to it.
    spring = page.locator("#email-funnel tbody[data-campaign='spring']")
    assert spring.locator("tr.campaign").get_by_text("all 2 variants").is_visible()
    sent = [int(row.locator("td").nth(1).inner_text()) for row in spring.locator("tr").all()]
    assert sent[0] == sum(sent[1:]) == 3
    page.close()


def test_letters_are_apart_and_never_opened(
    report: tuple[Path, dict[str, Any]], browser: Any
) -> None:
    page_path, data = report
    # c7's letters: in the letters section, and nowhere in the e-mail figures.
    assert [(c["campaign"], c["sent"], c["opened"]) for c in data["letters"]] == [
        ("spring", 1, 0),
        ("welcome", 1, 0),
    ]
    assert all(rate is None for rate in data["letters"][0]["rates"].values())
    spring = next(c for c in data["campaigns"] if c["campaign"] == "spring")
    assert (spring["sent"], spring["opened"], spring["opened_mails"], spring["unsubscribed"]) == (
        3,
        3,
        2,
        1,
    )
    welcome = next(c for c in data["campaigns"] if c["campaign"] == "welcome")
    assert (welcome["sent"], welcome["opened_mails"]) == (2, 2)

    page = browser.new_page()
    page.goto(page_path.as_uri())
    letters = page.locator("#letters table")
    assert letters.locator("thead th").all_inner_texts() == [
        "campaign / variant",
        "planned",
        "sent",
        "failed",
    ]
    assert letters.locator("tr.campaign th").all_inner_texts() == ["spring", "welcome"]
    assert letters.locator("td[data-rate]").count() == 0
    assert page.locator("#email-funnel").get_by_text("c7").count() == 0
    page.close()


@pytest.mark.parametrize("device", WIDTHS)
def test_nothing_overflows_on_a_phone_or_a_desktop(
    report: tuple[Path, dict[str, Any]], browser: Any, tmp_path: Path, device: str
) -> None:
    page_path, _ = report
    width = WIDTHS[device]
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(page_path.as_uri())
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{device}: the page is {scroll}px wide"
    # Every chart fits the page, its text legible (a phone gets narrower twins of the wide
    # charts); a table too wide scrolls inside its own box.
    charts = page.locator("svg.chart:visible")
    assert charts.count() == 7  # 2 rates, the weekly pressure, 3 loyalty lines, segments
    for chart in charts.all():
        box = chart.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        smallest = chart.evaluate(
            """svg => Math.min(...[...svg.querySelectorAll('text')].map(text =>
                parseFloat(getComputedStyle(text).fontSize)
                * svg.clientWidth / svg.viewBox.baseVal.width))"""
        )
        assert smallest >= 9, f"{device}: text of {smallest:.1f}px"
    narrow = page.locator("svg.chart.narrow:visible").count()
    assert narrow == (5 if device == "phone" else 0)
    for table in page.locator("table").all():
        holder = table.evaluate_handle("t => t.parentElement")
        overflow = holder.evaluate("e => getComputedStyle(e).overflowX")
        fits = table.evaluate("t => t.getBoundingClientRect().right") <= width
        assert fits or overflow == "auto"
    if device == "desktop":
        # At 1280 px the whole funnel table shows, its last column (bounce) included.
        holder = page.locator("#email-funnel").evaluate_handle("t => t.parentElement")
        assert holder.evaluate("e => e.scrollWidth <= e.clientWidth")
        assert page.locator("#email-funnel th", has_text="bounce").is_visible()
    page.screenshot(path=str(tmp_path / f"report-{device}.png"), full_page=True)
    page.close()
