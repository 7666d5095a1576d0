"""`trouw report` from the command line: tables, CSV, JSON, the HTML page in a browser, errors."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.reports.shop import add_letters, build_shop
from trouw.store import open_store

ROOT = Path(__file__).resolve().parents[2]
REPORT = ("report", "--year", "2027", "--as-of", "2028-01-15")


@pytest.fixture
def shop_cli(cli: Cli) -> Cli:
    engine = open_store(cli.db_url)
    build_shop(engine)
    engine.dispose()
    return cli


def test_json_has_every_section(shop_cli: Cli) -> None:
    result = shop_cli(*REPORT, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"report", "campaigns", "letters", "flooding", "loyalty", "segments"}
    assert data["report"]["year"] == 2027
    assert data["report"]["nothing_sent"] is None
    spring = next(c for c in data["campaigns"] if c["campaign"] == "spring")
    assert (spring["sent"], spring["opened"], spring["clicked"], spring["bounced"]) == (3, 3, 2, 2)
    family = next(v for v in spring["variants"] if v["variant"] == "spring/family")
    assert family["click_to_open"] == 1.0  # c1's mail; c2's opened mail bounced
    assert family["rates"]["delivered"] == pytest.approx(1 / 3, abs=1e-6)
    assert spring["rates"] == {
        "delivered": 0.4,
        "open": 1.0,
        "click": 1.0,
        "click_to_open": 1.0,
        "unsubscribe": 0.5,
        "bounce": 0.4,
    }
    assert data["letters"] == []
    week = data["flooding"]["week"]
    assert (week["cap"], week["max"], week["p99"], week["mean"]) == (2, 3, 3, 1.6)
    year = data["loyalty"]["year"]
    assert (year["churn_rate"], year["repurchase_rate"], year["upsell_rate"]) == (0.25, 0.4, 0.5)
    assert year["nps"] == pytest.approx(100 / 7, abs=1e-6)
    assert year["csat"] == 0.6
    assert year["loyalty_score"] == pytest.approx((46 / 7 + 9) / 3, abs=1e-6)
    assert year["counts"]["customers_at_start"] == 4
    assert len(data["loyalty"]["months"]) == 12
    assert data["loyalty"]["months"][3]["upsell_rate"] is None  # April: no returning buyer
    assert data["segments"][0] == {
        "segment": "families",
        "as_of": "2027-03-01",
        "size": 10,
        "entered": 10,
        "left": 0,
    }


def _csv(output: str) -> dict[tuple[str, ...], str]:
    rows = list(csv.reader(io.StringIO(output)))
    assert rows[0] == ["section", "name", "variant", "period", "metric", "value"]
    found = {tuple(row[:5]): row[5] for row in rows[1:]}
    assert len(found) == len(rows) - 1, "every (section, name, variant, period, metric) once"
    return found


def test_csv_is_one_long_table(shop_cli: Cli) -> None:
    result = shop_cli(*REPORT, "--format", "csv")
    assert result.exit_code == 0, result.output
    values = _csv(result.output)
    assert values[("campaigns", "spring", "", "2027", "sent")] == "3"
    assert values[("campaigns", "spring", "spring/family", "2027", "bounced")] == "2"
    assert values[("campaigns", "news", "news/april", "2027", "click_to_open")] == ""
    assert values[("campaigns", "spring", "", "2027", "unsubscribe_rate")] == "0.5"
    assert values[("campaigns", "news", "news/april", "2027", "open_rate")] == "0.0"
    assert values[("flooding", "", "", "week", "over_cap")] == "1"
    assert values[("flooding", "", "", "month", "mean")] == "1.4"
    assert values[("weeks", "", "", "2026-W53", "sends")] == "2"
    assert values[("months", "", "", "2027-04", "contacts")] == "4"
    assert values[("loyalty", "", "", "2027", "churn_rate")] == "0.25"
    assert values[("loyalty", "", "", "2027-06", "lost")] == "1"
    assert values[("loyalty", "", "", "2027", "csat")] == "0.6"
    assert values[("segments", "families", "", "2027-06-01", "size")] == "12"


def test_tables_in_the_terminal(shop_cli: Cli) -> None:
    result = shop_cli(*REPORT)
    assert result.exit_code == 0, result.output
    output = result.output
    for text in ("Test Shop", "spring/family", "spring/single", "welcome", "25.0%", "+14.3"):
        assert text in output
    assert "loyalty per month" in output
    assert "nothing sent" not in output


def test_an_empty_project_says_nothing_was_sent(cli: Cli) -> None:
    result = cli("report", "--as-of", "2027-03-01")
    assert result.exit_code == 0
    assert "nothing sent yet" in result.output
    assert "no loyalty figures" in result.output
    data = json.loads(cli("report", "--as-of", "2027-03-01", "--format", "json").stdout)
    assert data["campaigns"] == []
    assert "nothing sent yet" in data["report"]["nothing_sent"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--year", "20x"), "'20x' is not a valid integer"),
        (("--year", "2031", "--as-of", "2027-03-01"), "give a year from 1900 to 2027"),
        (("--year", "1066"), "cannot report on the year 1066"),
        (("--format", "xml"), "'xml' is not one of"),
        (("--as-of", "01-03-2027"), "write YYYY-MM-DD"),
    ],
)
def test_bad_options_exit_2(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli("report", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_the_page_template_ships_with_the_package() -> None:
    """Every non-Python file of trouw.reports is matched by package-data in pyproject.toml."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = settings["tool"]["setuptools"]["package-data"]["trouw"]
    package = ROOT / "src" / "trouw"
    data = [
        path.relative_to(package).as_posix()
        for path in (package / "reports").iterdir()
        if path.is_file() and path.suffix not in (".py", ".pyc")
    ]
    assert "reports/report.html" in data
    for name in data:
        assert any(fnmatch(name, pattern) for pattern in patterns), name


def test_the_html_page_draws_its_charts(project_dir: Path, tmp_path: Path, browser: Any) -> None:
    """The page opens offline in Chromium with seven charts of real size, titled and captioned."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = open_store(url)
    build_shop(engine)
    engine.dispose()
    page_path = tmp_path / "report.html"
    result = Cli(project_dir, url)(*REPORT, "--html", str(page_path))
    assert result.exit_code == 0, result.output
    assert f"wrote {page_path}" in result.output.replace("\n", "")
    source = page_path.read_text(encoding="utf-8")
    assert "<script" not in source and "<link" not in source and "@import" not in source

    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_path.as_uri())
    assert requests == [page_path.as_uri()], "the page loads nothing else"
    assert page.title() == "Test Shop — report 2027"
    charts = page.locator("figure svg.chart:not(.narrow)")  # a desktop's; phones get twins
    assert charts.count() == 7
    for index in range(charts.count()):
        chart = charts.nth(index)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
        assert chart.locator("title").first.text_content()
        assert chart.get_attribute("role") == "img"
    for caption in (
        "Open, click and click-to-open rate per campaign",
        "Unsubscribe and bounce rate per campaign",
        "Mails per contact per week against the weekly cap",
        "Churn, repurchase, upsell and CSAT per month",
        "NPS per month",
        "Loyalty score per month",
        "Segment sizes over time",
    ):
        assert page.get_by_text(caption, exact=True).is_visible()
    weekly = page.locator("svg[aria-labelledby^='weekly']")
    bar = weekly.locator("rect.bar").first.bounding_box()
    assert bar is not None and bar["height"] > 0
    cap = weekly.locator("line.cap").bounding_box()
    assert cap is not None and cap["width"] > 200
    rate_bars = page.locator("svg[aria-labelledby^='response-rates'] rect.bar")
    assert rate_bars.count() == 8  # news, spring, welcome: open, click, CTOR (news: none opened)
    # NPS answers in March, May, June, August and September: a point each.
    assert page.locator("svg[aria-labelledby^='nps'] circle.point").count() == 5
    assert page.get_by_text("25.0%", exact=True).is_visible()  # the churn rate's card
    page.close()


def test_without_a_year_the_report_is_on_the_latest_sends(shop_cli: Cli) -> None:
    """In January 2028 with nothing sent yet that year, the report is on 2027, and says so."""
    result = shop_cli("report", "--as-of", "2028-01-15")
    assert result.exit_code == 0, result.output
    assert "reporting on 2027, the year of the latest sends" in result.output
    assert "report on 2027" in result.output
    data = json.loads(shop_cli("report", "--as-of", "2028-01-15", "--format", "json").stdout)
    assert (data["report"]["year"], data["report"]["as_of"]) == (2027, "2028-01-15")
    # A ledger ahead of today (as after `trouw demo`): as of its latest send day, not today.
    data = json.loads(shop_cli("report", "--format", "json").stdout)
    assert data["report"]["year"] == 2027
    assert data["report"]["as_of"] >= "2027-04-05"  # c4's welcome, the latest sent mail
    assert data["report"]["nothing_sent"] is None
    # Given options win.
    data = json.loads(shop_cli("report", "--as-of", "2026-12-31", "--format", "json").stdout)
    assert (data["report"]["year"], data["report"]["as_of"]) == (2026, "2026-12-31")


def test_terminal_variants_follow_their_campaign_and_letters_stand_apart(shop_cli: Cli) -> None:
    engine = open_store(shop_cli.db_url)
    add_letters(engine)
    engine.dispose()
    result = shop_cli(*REPORT)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    sends = lines.index(next(line for line in lines if line.startswith("e-mail campaigns 2027")))
    names = [line.split("│")[1].strip() for line in lines[sends:] if line.startswith("│")]
    assert names[:7] == [
        "news",
        "news/april",
        "news/easter",
        "spring",
        "spring/family",
        "spring/single",
        "welcome",
    ]
    letters = lines.index("letters 2027")
    rows = [line.split("│") for line in lines[letters:] if line.startswith("│")]
    assert [(r[1].strip(), r[3].strip()) for r in rows[:2]] == [("spring", "1"), ("welcome", "1")]
    assert lines[letters + 7].startswith("└")  # the table ends after the two letters
    rates = next(line for line in lines if line.startswith("│ spring ") and "%" in line)
    cells = [cell.strip() for cell in rates.split("│")[2:8]]
    assert cells == ["40.0%", "100.0%", "100.0%", "100.0%", "50.0%", "40.0%"]
