"""The preference centre through a real `trouw serve`: each choice is an event (or a contact
change) that the next plan and send honour, on SQLite and PostgreSQL, and the page in Chromium.

The shop's calendar is placed a few weeks after the real today (a pause must end within a
year of it): `spring` (topic tips) carries the links; a week later `tips` (tips) on a
Tuesday, the service mail `orders` on Wednesday and `offers` (offers) on Thursday; two
weeks after that `news`, which has no topic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, select

from tests.conftest import SETTINGS, Cli, write_files
from tests.tracking.conftest import (
    BASE_URL,
    Server,
    read_mail,
    server_env,
    start_server,
    stop,
    wait_for_line,
)
from trouw.store import contacts, events, open_store

CONTACTS = (
    "id,email,first_name,locale,street,postcode,city,country\n"
    "c1,ann@x.example,Ann,nl,,,,\n"
    "c2,bob@x.example,Bob,en,,,,\n"
    "c3,cor@x.example,Cor,nl,Kerkstraat 5,1234 AB,Utrecht,NL\n"
)
CONTACT_OF = {"ann@x.example": "c1", "bob@x.example": "c2", "cor@x.example": "c3"}
MAIL = """\
{% block subject %}Nieuws{% endblock %}
<p>Hi {{ contact.first_name }}</p>
<p><a href="{{ track('https://shop.example/tuin', 'garden') }}">Tuin</a></p>
<p><a href="{{ track('https://shop.example/') }}">Shop</a></p>
<img src="{{ open_pixel_url }}" width="1" height="1" alt="">
{% include "trouw/footer.html" %}
"""
LETTER = (
    "<title>{% block subject %}Brief{% endblock %}</title>"
    "<p>Brief voor {{ contact.first_name }}</p>\n"
)
POLICY = (
    '\n[policy]\nmax_per_week = 3\nmax_per_month = 10\nmin_gap = "1d"\n'
    'quiet_days = ["sunday"]\ndefer_for = "3d"\n'
)


def calendar_start(today: date) -> date:
    """A Tuesday five weeks or more ahead whose following five weeks are in its year."""
    start = today + timedelta(days=35)
    start += timedelta(days=(1 - start.weekday()) % 7)
    if (start + timedelta(days=35)).year != start.year:
        start = date(start.year + 1, 1, 10)
        start += timedelta(days=(1 - start.weekday()) % 7)
    return start


@dataclass
class Days:
    spring: date
    tips: date
    orders: date
    offers: date
    news: date

    @classmethod
    def from_today(cls) -> Days:
        first = calendar_start(date.today())
        week = first + timedelta(days=7)
        return cls(
            first, week, week + timedelta(days=1), week + timedelta(days=2),
            first + timedelta(days=21),
        )  # fmt: skip


def _campaign(day: date | str, topic: str | None, kind: str = "promotional") -> str:
    text = f"kind: {kind}\npriority: 50\nschedule:\n  dates: [{day}]\ntemplate: mail\n"
    return text + (f"topic: {topic}\n" if topic else "")


@dataclass
class Centre:
    cli: Cli
    engine: Engine
    root: Path
    days: Days
    links: dict[str, str]  # contact id -> the unsubscribe link of its `spring` mail
    server: Server
    tmp: Path

    def post(self, contact_id: str, **form: str) -> Any:
        return self.server.request(
            "POST",
            self.links[contact_id],
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def events(self, kind: str) -> list[dict[str, Any]]:
        query = select(events).where(events.c.type == kind).order_by(events.c.id)
        with self.engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        for row in rows:
            if isinstance(row["properties"], str):
                row["properties"] = json.loads(row["properties"])
        return rows

    def contact(self, contact_id: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(select(contacts).where(contacts.c.id == contact_id)).one()
        return dict(row._mapping)

    def send(self, day: date) -> tuple[set[str], set[str], str]:
        """`trouw send` on `day`: who got a mail, who got a letter, and the output."""
        outbox = self.tmp / f"outbox-{day}"
        result = self.cli("send", "--as-of", day.isoformat(), "--outbox", str(outbox))
        assert result.exit_code == 0, result.output
        mailed = {CONTACT_OF[read_mail(p).address] for p in outbox.glob("*.eml")}
        names = {"Ann": "c1", "Bob": "c2", "Cor": "c3"}
        letters = {
            contact_id
            for path in (outbox / "letters").rglob("*.html")
            for name, contact_id in names.items()
            if f"Brief voor {name}" in path.read_text(encoding="utf-8")
        }
        return mailed, letters, result.output

    def explain(self, contact_id: str) -> str:
        result = self.cli("plan", "explain", "--contact", contact_id)
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    def log(self, contact_id: str) -> list[dict[str, str]]:
        result = self.cli("log", "--contact", contact_id, "--format", "json")
        assert result.exit_code == 0, result.output
        return list(json.loads(result.output))


@pytest.fixture
def centre(
    project_dir: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Centre]:
    monkeypatch.setenv("TROUW_SECRET", "tracking-tests-secret")
    days = Days.from_today()
    files = {
        "trouw.toml": SETTINGS
        + f'\n[tracking]\nbase_url = "{BASE_URL}"\n\n[brand]\ncolor = "#2f6b3a"\n'
        + POLICY,
        "templates/mail.html": MAIL,
        "templates/mail.letter.html": LETTER,
        "campaigns/spring.yaml": _campaign(days.spring, "tips"),
        "campaigns/tips.yaml": _campaign(f"{days.tips}, {days.news + timedelta(days=2)}", "tips"),
        "campaigns/orders.yaml": _campaign(days.orders, None, "service"),
        "campaigns/offers.yaml": _campaign(days.offers, "offers"),
        "campaigns/news.yaml": _campaign(days.news, None),
        "contacts.csv": CONTACTS,
    }
    write_files(project_dir, files)
    cli = Cli(project_dir, db_url)
    for args in (
        ("import", "contacts", str(project_dir / "contacts.csv")),
        ("plan", str(days.spring.year), "--as-of", str(days.spring - timedelta(days=7))),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    engine = open_store(db_url)
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "trouw", "--project", str(project_dir), "--db", db_url]
    command += ["serve", "--host", "127.0.0.1", "--port", "0"]
    process: subprocess.Popen[bytes] | None = None
    try:
        outbox = tmp_path / "outbox-spring"
        result = cli("send", "--as-of", str(days.spring), "--outbox", str(outbox))
        assert result.exit_code == 0, result.output
        mails = [read_mail(path) for path in outbox.glob("*.eml")]
        links = {CONTACT_OF[mail.address]: mail.unsubscribe for mail in mails}
        assert sorted(links) == ["c1", "c2", "c3"]
        process = start_server(command, server_env(), log)
        line = wait_for_line(process, log, "http://127.0.0.1:")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        server = Server("127.0.0.1", port, log, process)
        yield Centre(cli, engine, project_dir, days, links, server, tmp_path)
    finally:
        if process is not None:
            stop(process)
        engine.dispose()


def test_the_page_offers_topics_pause_letters_and_all_in_the_contacts_language(
    centre: Centre,
) -> None:
    dutch = centre.server.get(centre.links["c1"])
    assert dutch.status == 200 and '<html lang="nl">' in dutch.text
    assert "Hallo Ann" in dutch.text and "Test Shop" in dutch.text
    assert 'value="tips"' in dutch.text and 'value="offers"' in dutch.text
    assert "Even pauze" in dutch.text and "Liever per post" in dutch.text
    assert "Ja, meld me af" in dutch.text and "#2f6b3a" in dutch.text
    english = centre.server.get(centre.links["c2"])
    assert '<html lang="en">' in english.text and "Rather by post" in english.text
    # Cor has an address: the letters form holds it already.
    assert 'value="Kerkstraat 5"' in centre.server.get(centre.links["c3"]).text
    assert centre.events("unsubscribe") == [], "a GET records nothing"


def test_each_choice_is_an_event_that_plan_and_send_honour(centre: Centre) -> None:
    days = centre.days
    pause_until = days.offers + timedelta(days=1)

    left = centre.post("c1", choice="topic", topic="tips")
    assert left.status == 200 and "Afgemeld voor Tips" in left.text
    assert centre.post("c1", choice="topic", topic="tips").status == 200  # once is enough
    paused = centre.post("c2", choice="pause", until=pause_until.isoformat())
    assert paused.status == 200 and "Paused" in paused.text
    letters = centre.post(
        "c1", choice="post", street=" Dorpsstraat  9 ", postcode="9999 ZZ", city="Zwolle"
    )
    assert letters.status == 200 and "Dorpsstraat 9, 9999 ZZ, Zwolle" in letters.text

    [topic] = centre.events("unsubscribe")
    assert (topic["contact_id"], topic["tag"]) == ("c1", "topic:tips")
    assert topic["properties"] == {"campaign": "spring", "topic": "tips"}
    [pause] = centre.events("pause")
    assert pause["contact_id"] == "c2" and pause["tag"] is None
    assert pause["properties"] == {"campaign": "spring", "until": pause_until.isoformat()}
    [switch] = centre.events("preference")
    assert (switch["contact_id"], switch["tag"]) == ("c1", "channel:post")
    assert switch["properties"] == {"campaign": "spring", "channel": "post", "previous": "email"}
    ann = centre.contact("c1")
    assert (ann["channel"], ann["street"], ann["postcode"], ann["city"]) == (
        "post", "Dorpsstraat 9", "9999 ZZ", "Zwolle",
    )  # fmt: skip

    # The send of the plan made before follows: Ann left tips (and reads letters now),
    # Bob is paused, Cor gets all.
    mailed, lettered, output = centre.send(days.tips)
    assert (mailed, lettered) == ({"c3"}, set())
    assert f"cancelled 1: paused until {pause_until}" in output
    assert "cancelled 1: unsubscribed from topic tips" in output

    # The plan, made again, says why.
    result = centre.cli("plan", str(days.tips.year), "--as-of", str(days.orders))
    assert result.exit_code == 0, result.output
    ann_plan, bob_plan = centre.explain("c1"), centre.explain("c2")
    assert "tips:main mail by post" in ann_plan and "unsubscribed from topic tips" in ann_plan
    assert "offers:main mail by email" in bob_plan and f"paused until {pause_until}" in bob_plan
    assert "news:main mail by email" in bob_plan

    mailed, lettered, _ = centre.send(days.orders)  # service mail goes on through a pause
    assert (mailed, lettered) == ({"c2", "c3"}, {"c1"})
    mailed, lettered, _ = centre.send(days.offers)  # another topic: Ann still gets it
    assert (mailed, lettered) == ({"c3"}, {"c1"})
    mailed, lettered, _ = centre.send(days.news)  # the pause is over
    assert (mailed, lettered) == ({"c2", "c3"}, {"c1"})

    reasons = {(row["campaign"], row["status"], row["error"]) for row in centre.log("c2")}
    assert ("tips", "cancelled", f"paused until {pause_until}") in reasons
    # `offers` fell in the pause: the day's decision ended it, as it ended the `tips` the plan
    # made before the pause owed (simulate does the same, plan or no plan).
    assert ("news", "sent", None) in reasons
    assert ("offers", "cancelled", f"paused until {pause_until}") in reasons
    ann_log = {(row["campaign"], row["status"], row["error"]) for row in centre.log("c1")}
    assert ("tips", "cancelled", "unsubscribed from topic tips") in ann_log


def test_one_click_still_unsubscribes_from_everything_after_a_topic(centre: Centre) -> None:
    assert centre.post("c2", choice="topic", topic="offers").status == 200
    done = centre.server.post_one_click(centre.links["c2"])
    assert done.status == 200 and "You are unsubscribed" in done.text and "<form" not in done.text
    tags = [(e["contact_id"], e["tag"]) for e in centre.events("unsubscribe")]
    assert tags == [("c2", "topic:offers"), ("c2", "spring")]
    again = centre.server.get(centre.links["c2"])
    assert "You are unsubscribed" in again.text and "<form" not in again.text
    days = centre.days
    got = {day: "c2" in centre.send(day)[0] for day in (days.tips, days.orders, days.offers)}
    # Only the service mail still reaches them.
    assert got == {days.tips: False, days.orders: True, days.offers: False}
    assert "c2" not in centre.send(days.news)[0]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"choice": "pause", "until": "2020-01-01"}, "Kies een datum na vandaag"),
        ({"choice": "pause", "until": "today"}, "Kies een datum na vandaag"),
        ({"choice": "pause", "until": str(date.today() + timedelta(days=400))}, "binnen een jaar"),
        ({"choice": "pause"}, "Kies een datum"),
        ({"choice": "topic", "topic": "nope"}, "Dat onderwerp kennen we niet"),
        ({"choice": "topic", "topic": "<b>"}, "Dat onderwerp kennen we niet"),
        ({"choice": "teleport"}, "Die keuze kennen we niet"),
        ({"choice": "post", "street": "x" * 101, "postcode": "1", "city": "A"}, "straat"),
        ({"choice": "post", "street": "A 1", "postcode": "", "city": "A"}, "postcode"),
        ({"choice": "post", "street": "A 1", "postcode": "12<3", "city": "A"}, "postcode"),
        ({"choice": "post", "street": "A\r\n1", "postcode": "1", "city": "A"}, "straat"),
        ({"choice": "post", "street": "A 1", "postcode": "1", "city": ""}, "woonplaats"),
        (
            {"choice": "post", "street": "A 1", "postcode": "1", "city": "A", "country": "NLD"},
            "twee letters",
        ),
    ],
)
def test_bad_input_shows_the_page_again_with_the_message_and_records_nothing(
    centre: Centre, form: dict[str, str], message: str
) -> None:
    answer = centre.post("c1", **form)
    assert answer.status == 400, answer.text
    assert message in answer.text and 'role="alert"' in answer.text
    assert "<b>" not in answer.text
    assert centre.events("unsubscribe") == centre.events("pause") == []
    assert centre.events("preference") == [] and centre.contact("c1")["channel"] == "email"


def test_the_page_in_chromium_in_dutch_and_english_on_a_desktop_and_a_phone(
    centre: Centre, browser: Any, tmp_path: Path
) -> None:
    server = centre.server
    for contact_id, words in (("c1", "Je e-mailvoorkeuren"), ("c2", "Your e-mail preferences")):
        path = centre.links[contact_id].removeprefix(BASE_URL)
        address = f"http://{server.host}:{server.port}{path}"
        for width, height, device in ((1100, 1300, "desktop"), (390, 1700, "phone")):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(address)
            assert page.locator("h1").inner_text() == words
            # Nothing sticks out sideways on a phone.
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{device}: the page is {scroll}px wide"
            page.screenshot(path=str(tmp_path / f"preferences-{contact_id}-{device}.png"))
            page.close()
    # A real click: the pause of a month, and the answer.
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(f"http://{server.host}:{server.port}{centre.links['c2'].removeprefix(BASE_URL)}")
    page.get_by_role("button", name="1 month").click()
    page.wait_for_selector("text=Paused")
    page.screenshot(path=str(tmp_path / "preferences-c2-paused.png"))
    # A bad address: the page again with the message, the browser's own checks aside.
    page.go_back()
    page.evaluate("document.querySelectorAll('[required]').forEach(e => e.required = false)")
    page.fill("#street", "Laan 3")
    page.get_by_role("button", name="Send me letters").click()
    page.wait_for_selector("[role=alert]")
    assert "postcode" in page.locator("[role=alert]").inner_text()
    page.screenshot(path=str(tmp_path / "preferences-c2-error.png"), full_page=True)
    page.close()
    [pause] = centre.events("pause")
    assert pause["contact_id"] == "c2"
