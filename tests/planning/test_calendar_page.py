"""The year calendar page: its numbers are the plan's, and it works in a real browser.

The shop of calendar_shop.py, planned for 2027. The page (`trouw calendar 2027
--html`) and the preview server's home page are driven in headless Chromium at
phone and desktop widths.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import Cli, write_files
from tests.planning.calendar_shop import FILES, SENDS, WIDTHS, planned_shop
from trouw.campaigns import load_campaigns
from trouw.planning import QuietDays
from trouw.planning.calendar_data import build_calendar
from trouw.planning.views import LogScale, year_view
from trouw.preview.app import create_app
from trouw.project import load_project
from trouw.store import open_store


@pytest.fixture
def shop(cli: Cli) -> Cli:
    return planned_shop(cli)


def _export(shop: Cli) -> list[dict[str, str]]:
    result = shop("plan", "export", "--format", "csv", "--year", "2027")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.output)))


def _page_data(text: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="calendar-data">(.*?)</script>', text)
    assert found, "the page embeds its figures"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_calendars_numbers_per_day_campaign_and_variant_are_plan_exports(
    shop: Cli, tmp_path: Path
) -> None:
    page_path = tmp_path / "calendar.html"
    result = shop("calendar", "2027", "--html", str(page_path))
    assert result.exit_code == 0, result.output
    text = page_path.read_text(encoding="utf-8")
    rows = _export(shop)
    assert {row["status"] for row in rows} >= {"planned", "deferred", "dropped"}
    sends = [row for row in rows if row["status"] in SENDS]

    data = _page_data(text)
    per_variant = Counter(
        {
            (day, campaign, template): count
            for day, campaigns in data["days"].items()
            for campaign, templates in campaigns.items()
            for template, count in templates.items()
        }
    )
    assert per_variant == Counter((r["date"], r["campaign"], r["template"]) for r in sends)
    per_campaign: Counter[tuple[str, str]] = Counter()
    for (day, campaign, _template), count in per_variant.items():
        per_campaign[day, campaign] += count
    assert per_campaign == Counter((r["date"], r["campaign"]) for r in sends)
    # The month grid's day cells carry the same totals.
    cells = dict(re.findall(r"data-date='(\d{4}-\d\d-\d\d)' data-sends='(\d+)'", text))
    per_day = Counter(r["date"] for r in sends)
    assert len(cells) == 365
    assert {day: int(n) for day, n in cells.items() if n != "0"} == dict(per_day)
    # The campaigns table: planned, deferred and dropped per campaign, as exported.
    statuses = Counter((r["campaign"], r["status"]) for r in rows)
    table = text[text.index('id="campaigns"') :]
    for campaign in ("spring", "news", "birthday", "welcome"):
        row = re.search(rf"</span> {campaign} <small.*?</tr>", table, re.S)
        assert row, campaign
        numbers = re.findall(r"<td>(\d+)</td>", row.group(0))
        assert numbers == [str(statuses[campaign, s]) for s in ("planned", "deferred", "dropped")]


def test_a_segments_calendar_counts_only_its_members_sends(shop: Cli, tmp_path: Path) -> None:
    page_path = tmp_path / "families.html"
    result = shop(
        "calendar", "2027", "--segment", "families", "--as-of", "2026-12-01",
        "--html", str(page_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "segment families as of 2026-12-01: 2 contacts" in result.output
    text = page_path.read_text(encoding="utf-8")
    assert "Only the members of segment <b>families</b> as of 2026-12-01: 2 contacts" in text
    families = {"anouk", "cor"}  # household family
    sends = [r for r in _export(shop) if r["status"] in SENDS and r["contact_id"] in families]
    data = _page_data(text)
    shown = Counter(
        {
            (day, campaign): sum(templates.values())
            for day, campaigns in data["days"].items()
            for campaign, templates in campaigns.items()
        }
    )
    assert shown == Counter((r["date"], r["campaign"]) for r in sends)
    assert {person["id"] for person in data["people"]} == families
    wrong = shop("calendar", "2027", "--segment", "nobody")
    assert wrong.exit_code == 2 and "no segment named 'nobody'" in wrong.output


def test_quiet_days_and_holidays_come_from_the_policy(shop: Cli, tmp_path: Path) -> None:
    page_path = tmp_path / "calendar.html"
    assert shop("calendar", "2027", "--html", str(page_path)).exit_code == 0
    data = _page_data(page_path.read_text(encoding="utf-8"))
    assert data["quiet"]["2027-04-04"] == "sunday"
    assert data["quiet"]["2027-04-27"] == "King's Day (NL)"  # holidays:NL, a Tuesday
    assert "2027-04-26" not in data["quiet"]
    # Nothing is planned on a quiet day: the plan moved it, the calendar shows it so.
    assert not set(data["quiet"]) & set(data["days"])


def test_log_scale_levels_keep_ordinary_days_apart() -> None:
    scale = LogScale(389)
    assert scale.ranges() == [(1, 1, 4), (2, 5, 20), (3, 21, 88), (4, 89, 389)]
    assert [scale.level(n) for n in (0, 1, 4, 5, 20, 21, 389)] == [0, 1, 1, 2, 2, 3, 4]
    assert LogScale(2).ranges() == [(1, 1, 1), (2, 2, 2)]
    assert LogScale(0).ranges() == [] and LogScale(0).level(0) == 0


def _no_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.evaluate("innerWidth"), f"the page is {width} px wide"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_calendar_page_in_chromium(shop: Cli, tmp_path: Path, browser: Any) -> None:
    page_path = tmp_path / "calendar.html"
    assert shop("calendar", "2027", "--html", str(page_path)).exit_code == 0
    rows = _export(shop)
    sends = [row for row in rows if row["status"] in SENDS]
    text = page_path.read_text(encoding="utf-8")
    # Self-contained: nothing is fetched (no linked style, script, font or image).
    assert not re.search(r"""(src|href)=["']?(https?:)?//|url\(["']?(https?:)?//|@import""", text)
    assert "<link" not in text
    errors: list[str] = []  # script errors on any of the pages
    for device, (width, height) in WIDTHS.items():
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_path.as_uri(), timeout=30_000)
        # One lane and one legend entry per campaign, in the same colour.
        lanes = page.locator("svg.lanes g.lane")
        assert sorted(lanes.evaluate_all("gs => gs.map(g => g.dataset.campaign)")) == [
            "birthday", "news", "spring", "welcome",
        ]  # fmt: skip
        legend = page.locator("#legend button")
        assert legend.count() == 4 and "spring" in legend.all_inner_texts()[0] + page.inner_text(
            "#legend"
        )
        # Each lane's name sits beside its lane, whether or not the drawing scrolls.
        offsets = page.evaluate(
            """() => [...document.querySelectorAll('.tc-lane-names .lane-name')].map(name => {
                const lane = document.querySelector(
                    `svg.lanes g.lane[data-campaign='${name.dataset.campaign}'] line`);
                return lane.getBoundingClientRect().top - name.getBoundingClientRect().top;
            })"""
        )
        assert len(offsets) == 4 and all(29 <= offset <= 31.5 for offset in offsets), offsets
        box = page.locator(".tc-lanes .tc-scroll")
        scrolls = box.evaluate("b => b.scrollWidth > b.clientWidth")
        assert scrolls == (device == "phone")  # a phone scrolls the lanes in their own box
        assert page.locator("td.day.quiet").count() >= 52  # every Sunday
        assert page.locator("td.day.holiday[data-date='2027-04-27']").count() == 1
        _no_overflow(page)
        page.screenshot(path=str(tmp_path / f"calendar-{device}.png"), full_page=True)

        # A click on a day lists its campaigns and variants with their counts.
        page.click("td.day[data-date='2027-04-02']")
        detail = page.locator("#day-detail")
        expected = Counter(r["campaign"] for r in sends if r["date"] == "2027-04-02")
        shown = {
            item.get_attribute("data-campaign"): int(item.locator("b.count").inner_text())
            for item in detail.locator("li.campaign").all()
        }
        assert shown == dict(expected) and shown["spring"] >= 2
        variants = {
            v.get_attribute("data-template"): int(v.locator(".count").inner_text())
            for v in detail.locator("li.campaign[data-campaign='spring'] ul.variants li").all()
        }
        assert variants == dict(
            Counter(
                r["template"]
                for r in sends
                if (r["date"], r["campaign"]) == ("2027-04-02", "spring")
            )
        )
        assert "Friday 2 April 2027" in detail.inner_text()
        page.screenshot(path=str(tmp_path / f"calendar-{device}-day.png"), full_page=True)

        # The lanes are clickable too; a Sunday says why nothing goes out.
        page.locator(".hits rect[data-date='2027-04-04']").dispatch_event("click")
        assert "Quiet day (sunday)" in detail.inner_text()

        # The contact filter: what does Anouk get in 2027?
        page.fill("#person-search", "Anouk")
        page.click("#person-form button")
        year = page.locator("#person-year")
        assert "What Anouk de Vries (anouk) gets in 2027" in year.inner_text()
        anouk = [r for r in rows if r["contact_id"] == "anouk"]
        shown_rows = year.locator("tr")
        assert shown_rows.count() == len(anouk)
        for row, expected_row in zip(shown_rows.all(), anouk, strict=True):
            assert row.get_attribute("data-date") == expected_row["date"]
            assert expected_row["campaign"] in row.inner_text()
            assert expected_row["status"] in row.inner_text()
        mine = page.locator("td.day.mine").evaluate_all("cs => cs.map(c => c.dataset.date)")
        assert sorted(mine) == sorted({r["date"] for r in anouk if r["status"] in SENDS})
        dots = page.locator("svg.lanes circle.mine").evaluate_all(
            "ds => ds.map(d => [d.dataset.date, d.parentNode.dataset.campaign])"
        )
        assert sorted(map(tuple, dots)) == sorted(
            (r["date"], r["campaign"]) for r in anouk if r["status"] in SENDS
        )
        _no_overflow(page)
        page.screenshot(path=str(tmp_path / f"calendar-{device}-anouk.png"), full_page=True)
        page.click("#person-year button.tc-clear")
        assert page.locator("td.day.mine").count() == 0
        assert page.locator("svg.lanes circle.mine").count() == 0
        # A contact the page does not hold is said so, with how to get their page.
        page.fill("#person-search", "nobody")
        page.click("#person-form button")
        assert "No contact 'nobody' in this page" in page.inner_text("#person-year")
        assert errors == []
        page.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_calendar_for_one_contact_opens_with_their_year(shop: Cli, tmp_path: Path) -> None:
    page_path = tmp_path / "anouk.html"
    result = shop("calendar", "2027", "--contact", "anouk", "--html", str(page_path))
    assert result.exit_code == 0, result.output
    assert "what Anouk de Vries (anouk) gets in 2027" in result.output
    data = _page_data(page_path.read_text(encoding="utf-8"))
    assert data["selected"] == "anouk"
    assert any(person["id"] == "anouk" for person in data["people"])
    result = shop("calendar", "2027", "--contact", "nobody")
    assert result.exit_code == 2 and "no contact 'nobody'" in result.output


@pytest.fixture
def preview_server(shop: Cli, db_url: str) -> Iterator[str]:
    """The preview server of the shop, as of 2 December 2026, on a free loopback port."""
    engine = open_store(db_url)
    app = create_app(load_project(shop.project), engine, as_of=date(2026, 12, 2))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join()
        engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_preview_home_page_shows_the_calendar_and_looks_contacts_up(
    preview_server: str, shop: Cli, tmp_path: Path, browser: Any
) -> None:
    for device, (width, height) in WIDTHS.items():
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(preview_server, timeout=30_000)
        assert "who gets what in 2027" in page.inner_text("#year-calendar")
        assert page.locator("#year-calendar svg.lanes g.lane").count() == 4
        assert page.locator("#campaigns").first.is_visible()  # the campaign list stays
        page.click("td.day[data-date='2027-04-02']")
        assert page.locator("#day-detail li.campaign[data-campaign='spring']").count() == 1
        _no_overflow(page)
        page.screenshot(path=str(tmp_path / f"preview-home-{device}.png"), full_page=True)
        page.close()
    # Every contact is in this small plan's page; the server also looks up by ?contact=.
    width, height = WIDTHS["desktop"]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(preview_server + "?contact=bram", timeout=30_000)
    assert "What Bram Jansen (bram) gets in 2027" in page.inner_text("#person-year")
    page.goto(preview_server + "?contact=ghost", timeout=30_000)
    assert "There is no contact 'ghost'" in page.inner_text("#person-year")
    # The segment filter: one segment's plan, and a contact looked up keeps it.
    page.select_option("#segment-choice", "families")
    page.wait_for_selector("#segment-note")
    assert "Only the members of segment families" in page.inner_text("#segment-note")
    assert page.locator("td.day[data-date='2027-04-02']").get_attribute("data-sends") == "1"
    page.fill("#person-search", "cor")
    page.click("#person-form button")
    assert "What Cor Smit (cor) gets in 2027" in page.inner_text("#person-year")
    assert "segment=families" in page.url
    page.screenshot(path=str(tmp_path / "preview-home-families.png"), full_page=True)
    page.close()


def test_the_preview_home_page_without_a_plan_says_how_to_make_one(cli: Cli) -> None:
    write_files(cli.project, FILES)
    engine = open_store(cli.db_url)
    try:
        app = create_app(load_project(cli.project), engine, as_of=date(2026, 12, 2))
        response = app.test_client().get("/", headers={"Host": "127.0.0.1"})
    finally:
        engine.dispose()
    assert response.status_code == 200
    assert "run <code>trouw plan 2027</code>" in response.get_data(as_text=True)


def test_a_big_plan_embeds_the_asked_contacts_and_examples_of_the_variants(
    shop: Cli, db_url: str
) -> None:
    """Past EMBED_ALL contacts a page cannot hold everyone's year: it holds the contacts asked
    for and a different example contact for each variant where the first receivers allow."""
    project = load_project(shop.project)
    engine = open_store(db_url)
    try:
        with engine.connect() as connection:
            page = build_calendar(
                connection,
                name="Shop",
                view=year_view(connection, 2027),
                campaigns=load_campaigns(project.campaigns_dir),
                quiet=QuietDays(project.settings.policy.quiet_days),
                contact_ids=["eef", "ghost"],
                embed_all=2,
            )
    finally:
        engine.dispose()
    sends = [row for row in _export(shop) if row["status"] in SENDS]
    examples = {p.id: p.example for p in page.people if p.example}
    variants = {(r["campaign"], r["template"]) for r in sends}
    assert len(examples) == len(set(examples.values())) >= 4 and len(examples) <= len(variants)
    for contact_id, example in examples.items():
        campaign, template = example.split(" · ")
        assert (contact_id, campaign, template) in {
            (r["contact_id"], r["campaign"], r["template"]) for r in sends
        }
    assert "eef" in [p.id for p in page.people]  # asked for: every row dropped, still shown
    assert page.unknown == ["ghost"]
    assert "of the 5 contacts in the plan: the ones asked for and" in page.people_note
