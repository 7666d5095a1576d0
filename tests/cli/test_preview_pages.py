"""The preview of issue 16: when each campaign goes out, mails dated as of their planned day,
phone and desktop widths, and a test mail to a typed address (never to a contact).

A small shop: a birthday campaign (a trigger) and a monthly newsletter (a schedule),
planned for 2027 as of 1 December 2026. The browser test runs `trouw preview --serve`
with an aiosmtpd server on loopback, as a marketer would.
"""

from __future__ import annotations

import email
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from tests.conftest import Cli, write_files
from tests.sending.conftest import Collector
from trouw.planning.next_sends import describe_rrule, mail_days, next_sends
from trouw.preview.app import create_app, is_same_origin
from trouw.preview.testmail import TEST_LINK_KEY
from trouw.project import load_project
from trouw.store import ledger, open_store
from trouw.templates.links import LinkSigner
from trouw.templates.preview_run import dated_previews

PREVIEW_DAY = "2026-12-01"
SETTINGS = """\
[project]
name = "Test Shop"
timezone = "Europe/Amsterdam"
locale = "en"

[sender]
from = "Test Shop <hello@shop.example>"
postal_address = "Street 1, 1234 AB Town"

[tracking]
base_url = "https://t.shop.example"
"""
LAYOUT = """\
<!doctype html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block subject %}{% endblock %}</title>
<style>
  .mail { width: 600px; max-width: 600px; margin: 0 auto; }
</style>
<style data-css-inline="keep">
  @media (max-width: 620px) { .mail { width: 100% !important; } }
</style>
</head>
<body><table role="presentation" class="mail"><tr><td>{% block body %}{% endblock %}
{% include "trouw/footer.html" %}</td></tr></table></body></html>
"""
FILES = {
    "trouw.toml": SETTINGS,
    "templates/layout.html": LAYOUT,
    "templates/birthday.html": '{% extends "layout.html" %}'
    "{% block subject %}Happy birthday, {{ contact.first_name }}!{% endblock %}"
    '{% block body %}<p>Your code is valid until <span class="until">'
    "{{ today|add_days(14) }}</span>.</p>{% endblock %}",
    "templates/news.html": '{% extends "layout.html" %}'
    "{% block subject %}News for {{ contact.first_name }}{% endblock %}"
    "{% block body %}<p>This month: {{ today }}</p>{% endblock %}",
    "campaigns/birthday.yaml": "description: Birthday wishes with a code\n"
    "kind: lifecycle\ntrigger: birthday\ntemplate: birthday\n",
    "campaigns/news.yaml": "description: The monthly newsletter\nkind: promotional\n"
    'schedule:\n  rrule: "FREQ=MONTHLY;BYMONTHDAY=1"\ntemplate: news\n',
    "contacts.csv": "id,email,first_name,last_name,birthday,locale\n"
    "c1,anna@customer.example,Anna,Bakker,1990-03-12,en\n"
    "c2,bram@customer.example,Bram,Smit,1985-07-30,en\n",
}


def _shop(cli: Cli) -> None:
    write_files(cli.project, FILES)
    assert cli("import", "contacts", str(cli.project / "contacts.csv")).exit_code == 0
    planned = cli("plan", "2027", "--as-of", PREVIEW_DAY)
    assert planned.exit_code == 0, planned.output


@pytest.fixture
def smtp() -> Iterator[tuple[str, Collector]]:
    handler = Collector()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", handler
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ledger_rows(db_url: str) -> int:
    engine = open_store(db_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(ledger)).scalar_one())
    finally:
        engine.dispose()


def test_campaigns_next_send_days_come_from_the_plan(cli: Cli) -> None:
    _shop(cli)
    project = load_project(cli.project)
    engine = open_store(cli.db_url)
    try:
        from trouw.campaigns import load_campaigns

        campaigns = load_campaigns(project.campaigns_dir)
        with engine.connect() as connection:
            upcoming = next_sends(connection, campaigns, date(2026, 12, 1))
            birthday = next(c for c in campaigns if c.name == "birthday")
            days = mail_days(
                connection, birthday, birthday.steps[0], ["c1", "c2"], date(2026, 12, 1)
            )
            previews = dated_previews(
                project,
                connection,
                date(2026, 12, 1),
                "birthday",
                contact_ids=["c1"],
                segment=None,
                limit=1,
            )
    finally:
        engine.dispose()
    assert upcoming["birthday"].day == date(2027, 3, 12)  # Anna's, the first in 2027
    assert upcoming["birthday"].source == "planned" and upcoming["birthday"].mails == 1
    assert upcoming["news"].day == date(2027, 1, 1)
    assert days["c1"].day == date(2027, 3, 12) and days["c1"].why == "planned"
    assert days["c2"].day == date(2027, 7, 30)
    # The mail says what Anna reads on her birthday, not what it says on 1 December.
    [anna] = previews
    assert anna.day == date(2027, 3, 12)
    assert anna.result.mail is not None and "valid until 2027-03-26" in anna.result.mail.text


def test_a_mail_is_dated_by_the_definition_when_the_year_is_not_planned(cli: Cli) -> None:
    write_files(cli.project, FILES)
    assert cli("import", "contacts", str(cli.project / "contacts.csv")).exit_code == 0
    project = load_project(cli.project)
    engine = open_store(cli.db_url)
    try:
        from trouw.campaigns import load_campaigns

        campaigns = {c.name: c for c in load_campaigns(project.campaigns_dir)}
        with engine.connect() as connection:
            upcoming = next_sends(connection, campaigns.values(), date(2026, 12, 2))
            birthday = campaigns["birthday"]
            days = mail_days(connection, birthday, birthday.steps[0], ["c1"], date(2026, 12, 2))
    finally:
        engine.dispose()
    assert upcoming["news"].day == date(2027, 1, 1) and upcoming["news"].source == "scheduled"
    assert upcoming["birthday"].day is None  # a trigger, not planned: per contact
    assert days["c1"].day == date(2027, 3, 12) and days["c1"].why == "birthday"


def test_a_welcome_step_is_dated_from_the_signup_day(cli: Cli) -> None:
    write_files(
        cli.project,
        {
            **FILES,
            "contacts.csv": "id,email,first_name,customer_since\n"
            "c1,anna@customer.example,Anna,2026-11-25\nc2,bram@customer.example,Bram,2025-01-01\n",
            "campaigns/welcome.yaml": "trigger: signup\nsteps:\n"
            "  - {after: 0d, template: news}\n  - {after: 14d, template: news}\n",
        },
    )
    assert cli("import", "contacts", str(cli.project / "contacts.csv")).exit_code == 0
    project = load_project(cli.project)
    engine = open_store(cli.db_url)
    try:
        from trouw.campaigns import find_campaign

        welcome = find_campaign(project.campaigns_dir, "welcome")
        with engine.connect() as connection:
            second = mail_days(
                connection, welcome, welcome.step("2"), ["c1", "c2"], date(2026, 12, 2)
            )
    finally:
        engine.dispose()
    assert second["c1"].day == date(2026, 12, 9) and second["c1"].why == "signup"
    assert second["c2"].day == date(2026, 12, 2) and second["c2"].why == "as of"  # long past


def test_preview_as_of_dates_every_mail_that_day(cli: Cli) -> None:
    _shop(cli)
    result = cli("preview", "birthday", "--contact", "c1", "--as-of", "2027-03-01")
    assert result.exit_code == 0, result.output
    assert "dated 2027-03-01 (--as-of)" in result.output
    assert "valid until 2027-03-15" in result.output


def test_rules_in_words() -> None:
    assert describe_rrule("FREQ=YEARLY;BYMONTH=3,10;BYMONTHDAY=15") == (
        "every year on 15 Mar and 15 Oct"
    )
    assert describe_rrule("FREQ=MONTHLY;BYMONTHDAY=1") == "every month on day 1"
    assert describe_rrule("FREQ=WEEKLY;BYDAY=MO") == "every Monday"
    odd = "FREQ=YEARLY;INTERVAL=2;BYMONTH=5;BYMONTHDAY=3"
    assert describe_rrule(odd) == f"schedule {odd}"


def test_send_test_goes_to_the_typed_address_only(cli: Cli, smtp: tuple[str, Collector]) -> None:
    _shop(cli)
    url, received = smtp
    result = cli(
        "preview", "birthday", "--contact", "c1", "--send-test", "me@office.example",
        "--smtp", url, "--as-of", "2027-03-12",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sent a test to me@office.example" in result.output
    [mail] = received.received
    assert mail.rcpt_tos == ["me@office.example"]
    message = email.message_from_bytes(mail.content, policy=default_policy)
    assert str(message["Subject"]) == "[test] Happy birthday, Anna!"
    assert "me@office.example" in str(message["To"])
    assert b"anna@customer.example" not in mail.content
    assert mail.mail_from == "hello@shop.example"
    # The contact's data, dated as asked.
    body = message.get_body(("plain",))
    assert body is not None and "valid until 2027-03-26" in body.get_content()
    # Its links are signed for no contact: a click or unsubscribe records nothing.
    unsubscribe = str(message["List-Unsubscribe"]).split("<")[1].split(">")[0]
    engine = open_store(cli.db_url)
    try:
        from trouw.templates.links import signing_key

        with engine.connect() as connection:
            secret = signing_key(connection).secret
    finally:
        engine.dispose()
    token = LinkSigner("https://t.shop.example", secret).read_link("u", unsubscribe.split("/u/")[1])
    assert token is not None and token.link_key == TEST_LINK_KEY
    assert _ledger_rows(cli.db_url) == 0


def test_send_test_refuses_a_contacts_address_and_a_missing_server(
    cli: Cli, smtp: tuple[str, Collector]
) -> None:
    _shop(cli)
    url, received = smtp
    result = cli(
        "preview", "birthday", "--contact", "c1", "--send-test", "BRAM@customer.example",
        "--smtp", url, "--as-of", "2027-03-12",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "address of contact c2" in result.output and "never goes to a contact" in result.output
    bad = cli("preview", "birthday", "--send-test", "not-an-address", "--smtp", url)
    assert bad.exit_code == 2 and "not an e-mail address" in bad.output
    nowhere = cli("preview", "birthday", "--send-test", "me@office.example")
    assert nowhere.exit_code == 2 and "needs an SMTP server" in nowhere.output
    assert received.received == []
    assert _ledger_rows(cli.db_url) == 0


def test_the_test_form_takes_posts_from_the_page_only(
    cli: Cli, smtp: tuple[str, Collector]
) -> None:
    _shop(cli)
    url, received = smtp
    engine = open_store(cli.db_url)
    try:
        app = create_app(load_project(cli.project), engine, as_of=date(2026, 12, 1), smtp_url=url)
        client = app.test_client()
        form = {"contact": "c1", "step": "main", "day": "2027-03-12", "address": "me@o.example"}
        base = "http://localhost"
        for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Referer": "http://evil.example/campaign/birthday"}):  # fmt: skip
            answer = client.post("/campaign/birthday/test", data=form, headers=headers)
            assert answer.status_code == 403, headers
        assert received.received == []
        answer = client.post("/campaign/birthday/test", data=form, headers={"Origin": base})
        assert answer.status_code == 303
        assert "sent=me@o.example" in answer.headers["Location"]
        assert [m.rcpt_tos for m in received.received] == [["me@o.example"]]
        page = client.get(answer.headers["Location"])
        assert b'id="sent"' in page.data
        refused = client.post(
            "/campaign/birthday/test",
            data={**form, "address": "anna@customer.example"},
            headers={"Origin": base},
        )
        assert refused.status_code == 400 and b"never goes to a contact" in refused.data
        assert len(received.received) == 1
    finally:
        engine.dispose()
    assert _ledger_rows(cli.db_url) == 0


def test_a_test_mail_the_server_refuses_is_reported(cli: Cli, smtp: tuple[str, Collector]) -> None:
    _shop(cli)
    url, received = smtp
    received.refuse["me@office.example"] = "550 5.1.1 no such mailbox"
    result = cli(
        "preview", "birthday", "--contact", "c1", "--send-test", "me@office.example",
        "--smtp", url, "--as-of", "2027-03-12",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "did not take the test mail" in result.output and "550" in result.output
    engine = open_store(cli.db_url)
    try:
        app = create_app(load_project(cli.project), engine, as_of=date(2026, 12, 1), smtp_url=url)
        form = {"contact": "c1", "step": "main", "address": "me@office.example"}
        page = app.test_client().post(
            "/campaign/birthday/test", data=form, headers={"Origin": "http://localhost"}
        )
        assert page.status_code == 400 and b"did not take the test mail" in page.data
        closed = create_app(
            load_project(cli.project), engine, as_of=date(2026, 12, 1), smtp_url=None
        ).test_client()
        page = closed.post(
            "/campaign/birthday/test", data=form, headers={"Origin": "http://localhost"}
        )
        assert page.status_code == 400 and b"--smtp URL" in page.data
        assert b'id="test-address"' in closed.get("/campaign/birthday").data  # shown, disabled
    finally:
        engine.dispose()
    assert received.received == [] and _ledger_rows(cli.db_url) == 0


def test_same_origin() -> None:
    assert is_same_origin("http://127.0.0.1:8026", None, "127.0.0.1:8026")
    assert is_same_origin(None, "http://localhost:8026/campaign/x", "localhost:8026")
    assert not is_same_origin("http://127.0.0.1:9999", None, "127.0.0.1:8026")
    assert not is_same_origin(None, None, "127.0.0.1:8026")
    assert not is_same_origin("null", None, "127.0.0.1:8026")


def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"trouw preview --serve exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"trouw preview --serve did not listen on port {port}")


def _overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scrolling)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.slow
def test_preview_pages_in_a_real_browser(
    project_dir: Path, tmp_path: Path, browser: Any, smtp: tuple[str, Collector]
) -> None:
    from playwright.sync_api import expect  # the browser fixture skips without playwright

    db_url = f"sqlite:///{tmp_path / 'preview.db'}"
    cli = Cli(project_dir, db_url)
    _shop(cli)
    url, received = smtp
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "trouw", "--project", str(project_dir), "--db", db_url,
         "preview", "--serve", "--port", str(port), "--as-of", PREVIEW_DAY, "--smtp", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(port, process)
        for width in (1280, 375):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", timeout=30_000)
            birthday = page.locator("tr[data-campaign=birthday]")
            assert "on each contact's birthday" in birthday.locator(".when").inner_text()
            assert "12 Mar 2027" in birthday.locator(".next-send").inner_text()
            assert "from the plan" in birthday.locator(".next-send").inner_text()
            assert "Birthday wishes with a code" in birthday.inner_text()
            news = page.locator("tr[data-campaign=news]")
            assert "every month on day 1" in news.locator(".when").inner_text()
            assert "1 Jan 2027" in news.locator(".next-send").inner_text()
            assert _overflow(page) <= 0, f"the campaign list overflows at {width} px"
            page.screenshot(path=str(tmp_path / f"preview-index-{width}.png"), full_page=True)

            page.click("a.campaign-link:text-is('birthday')")
            page.wait_for_selector("#frames")
            # Names beside ids, the campaigns by name in the sidebar.
            assert "Anna Bakker" in page.inner_text("a.contact-link[data-contact=c1]")
            assert "The monthly newsletter" in page.inner_text("#campaign-list")
            # Dated as of Anna's planned day, with the day to choose.
            assert page.input_value("#day-input") == "2027-03-12"
            assert "planned day" in page.inner_text("#day-why")
            phone = page.locator("#mail-frame")
            desktop = page.locator("iframe.desktop-frame")
            if width == 1280:  # side by side, each at its own width
                assert phone.evaluate("e => e.clientWidth") == 375
                assert desktop.evaluate("e => e.clientWidth") == 700
                phone_box, desktop_box = phone.bounding_box(), desktop.bounding_box()
                assert phone_box is not None and desktop_box is not None
                assert desktop_box["x"] > phone_box["x"] + 375
                assert abs(desktop_box["y"] - phone_box["y"]) < 2
            for frame in (page.frame_locator("#mail-frame"), page.frame_locator(".desktop-frame")):
                until = frame.locator(".until").inner_text(timeout=30_000)
                assert until == "2027-03-26"
            assert _overflow(page) <= 0, f"the campaign page overflows at {width} px"
            page.screenshot(path=str(tmp_path / f"preview-birthday-{width}.png"), full_page=True)

            # Another day, chosen on the page.
            page.fill("#day-input", "2027-05-01")
            page.click("#day-picker button")
            page.wait_for_url("**day=2027-05-01**")  # the new page, not the old one's frames
            until = page.frame_locator("#mail-frame").locator(".until")
            expect(until).to_have_text("2027-05-15", timeout=30_000)
            page.close()

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/campaign/birthday?contact=c1", timeout=30_000)
        page.fill("#test-address", "me@office.example")
        page.click("#test-form button")
        page.wait_for_selector("#sent")
        assert "me@office.example" in page.inner_text("#sent")
        page.screenshot(path=str(tmp_path / "preview-test-sent.png"), full_page=True)
    finally:
        process.terminate()
        process.wait(timeout=10)
    [mail] = received.received
    assert mail.rcpt_tos == ["me@office.example"]
    message = email.message_from_bytes(mail.content, policy=default_policy)
    assert str(message["Subject"]).startswith("[test] Happy birthday, Anna")
    assert b"anna@customer.example" not in mail.content
    assert _ledger_rows(db_url) == 0
