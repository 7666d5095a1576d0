"""`trouw plan`, `plan export`, `plan explain` and `trouw calendar` (ICS and a real browser)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import icalendar
import pytest

from tests.conftest import Cli, write_files
from tests.planning.shop import TEMPLATE, policy

CONTACTS = """\
id,email,first_name,channel,birthday,customer_since,household
ann,ann@x.example,Ann,email,1985-05-02,2019-05-10,family
bob,bob@x.example,Bob,post,2000-02-29,2026-12-20,single
cas,cas@x.example,Cas,none,1990-06-18,2015-01-01,
"""
FILES = {
    "segments/families.yaml": "where:\n  attribute: household\n  equals: family\n",
    "templates/mail.html": TEMPLATE,
    "templates/family.html": TEMPLATE,
    "campaigns/spring.yaml": (
        "description: Spring\npriority: 50\n"
        'schedule:\n  rrule: "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=2"\n'
        "variants:\n  - segment: families\n    template: family\n  - template: mail\n"
    ),
    "campaigns/birthday.yaml": "kind: lifecycle\npriority: 80\ntrigger: birthday\ntemplate: mail\n",
    "campaigns/welcome.yaml": (
        "kind: lifecycle\npriority: 90\ntrigger: signup\nsteps:\n"
        "  - {after: 0d, template: mail}\n  - {after: 14d, template: mail}\n"
    ),
}


@pytest.fixture
def shop(cli: Cli) -> Cli:
    write_files(cli.project, {**FILES, "contacts.csv": CONTACTS})
    settings = cli.project / "trouw.toml"
    settings.write_text(settings.read_text() + policy(), encoding="utf-8")
    result = cli("import", "contacts", str(cli.project / "contacts.csv"))
    assert result.exit_code == 0, result.output
    result = cli("plan", "2027", "--as-of", "2026-12-01")
    assert result.exit_code == 0, result.output
    return cli


def test_plan_prints_a_summary_per_campaign(shop: Cli) -> None:
    result = shop("plan", "2027", "--as-of", "2026-12-01", "--chunk-size", "100")
    assert result.exit_code == 0, result.output
    assert "plan 2027 as of 2026-12-01" in result.output
    assert "3 contacts" in result.output
    for name in ("spring", "birthday", "welcome"):
        assert name in result.output


def test_export_csv_and_json(shop: Cli) -> None:
    result = shop("plan", "export", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == [
        "contact_id", "date", "campaign", "step", "template", "channel", "priority", "status",
        "reason",
    ]  # fmt: skip
    found = {(r["contact_id"], r["date"], r["campaign"], r["template"], r["status"]) for r in rows}
    assert ("ann", "2027-04-02", "spring", "family", "planned") in found
    assert ("bob", "2027-04-02", "spring", "mail", "planned") in found
    # 29 February birthday: 28 February 2027 is a Sunday, so Monday 1 March.
    assert ("bob", "2027-03-01", "birthday", "mail", "planned") in found
    # The journey started on 20 December 2026 continues on (Monday) 4 January 2027.
    assert ("bob", "2027-01-04", "welcome", "mail", "planned") in found
    assert {r["status"] for r in rows if r["contact_id"] == "cas"} == {"dropped"}
    assert next(r for r in rows if r["contact_id"] == "bob")["channel"] == "post"
    result = shop("plan", "export", "--format", "json", "--year", "2027")
    data = json.loads(result.output)
    assert len(data) == len(rows)
    assert data[0]["contact_id"] == "ann" and data[0]["date"].startswith("2027-")
    assert json.loads(shop("plan", "export", "--format", "json", "--year", "1999").output) == []


def test_explain_gives_each_send_with_its_reason(shop: Cli) -> None:
    result = shop("plan", "explain", "--contact", "cas")
    assert result.exit_code == 0, result.output
    assert "dropped" in result.output and "channel none: service mails only" in result.output
    result = shop("plan", "explain", "--contact", "bob")
    assert "2027-03-01" in result.output and "moved from 2027-02-28 (sunday)" in result.output
    assert "occurrence birthday:2027" in result.output
    missing = shop("plan", "explain", "--contact", "nobody")
    assert missing.exit_code == 2 and "no contact 'nobody'" in missing.output


def test_plan_needs_a_year_and_valid_campaigns(cli: Cli) -> None:
    result = cli("plan")
    assert result.exit_code == 2 and "give the year to plan" in result.output
    write_files(
        cli.project,
        {
            "templates/mail.html": TEMPLATE,
            "campaigns/bad.yaml": "priority: 5\nsegment: ghosts\ntrigger: birthday\n"
            "template: mail\n",
        },
    )
    result = cli("plan", "2027")
    assert result.exit_code == 2
    assert "bad.yaml, line 2, key 'segment'" in result.output
    assert "no segment 'ghosts'" in result.output
    write_files(cli.project, {"campaigns/bad.yaml": "trigger: birthday\ntemplate: nothing\n"})
    result = cli("plan", "2027")
    assert result.exit_code == 2 and "no template 'nothing'" in result.output


def test_calendar_terminal_html_and_ics(shop: Cli, tmp_path: Path) -> None:
    page, feed = tmp_path / "calendar.html", tmp_path / "campaigns.ics"
    result = shop("calendar", "2027", "--html", str(page), "--ics", str(feed))
    assert result.exit_code == 0, result.output
    assert "April" in result.output and "busiest campaigns 2027" in result.output
    calendar = icalendar.Calendar.from_ical(feed.read_bytes())
    events = [c for c in calendar.walk("VEVENT")]
    days = {(str(e.get("summary")), e.decoded("dtstart")) for e in events}
    assert ("spring: 2 sends", date(2027, 4, 2)) in days
    assert all(e.decoded("dtend") > e.decoded("dtstart") for e in events)
    assert len({str(e.get("uid")) for e in events}) == len(events)
    text = page.read_text(encoding="utf-8")
    assert "data-date='2027-04-02' data-sends='2'" in text


def test_calendar_page_in_a_real_browser(shop: Cli, tmp_path: Path, browser: Any) -> None:
    page_path = tmp_path / "calendar.html"
    assert shop("calendar", "2027", "--html", str(page_path)).exit_code == 0
    page = browser.new_page()
    page.goto(page_path.as_uri(), timeout=30_000)
    assert page.locator(".month").count() == 12
    cell = page.locator("td[data-date='2027-04-02']")
    assert cell.get_attribute("data-sends") == "2"
    assert "spring: 2" in (cell.get_attribute("title") or "")
    assert "spring" in page.inner_text("#campaigns")


def test_a_monthly_rrule_plans_1998_and_a_schedule_without_a_day_is_reported(
    cli: Cli, engine: Any
) -> None:
    write_files(
        cli.project,
        {
            "trouw.toml": (cli.project / "trouw.toml").read_text() + policy(quiet="[]"),
            "templates/mail.html": TEMPLATE,
            "campaigns/news.yaml": 'schedule:\n  rrule: "FREQ=MONTHLY;BYMONTHDAY=1"\n'
            "template: mail\n",
            "campaigns/once.yaml": "schedule:\n  dates: [2027-04-02]\ntemplate: mail\n",
            "contacts.csv": "id,email\nold,old@x.example\n",
        },
    )
    assert cli("import", "contacts", str(cli.project / "contacts.csv")).exit_code == 0
    result = cli("plan", "1998", "--as-of", "1997-12-01")
    assert result.exit_code == 0, result.output
    assert "campaign 'once' has no day in 1998" in result.output
    export = cli("plan", "export", "--format", "json", "--year", "1998")
    rows = json.loads(export.output)
    assert [row["date"] for row in rows] == [f"1998-{m:02d}-01" for m in range(1, 13)]
