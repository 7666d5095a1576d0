"""Answers from the mail: `survey_link(question, score)`, clicked on a real `trouw serve`.

The mails are made by `trouw send --outbox`; their answer links are followed
over HTTP against the server process. An answer is a `survey` event that the
`nps:` segments and `trouw report` count at once; one answer per mail and
question, the latest wins; a forged token records nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.conftest import SETTINGS, Cli, write_files
from tests.planning.shop import policy as policy_settings
from tests.tracking.conftest import (
    BASE_URL,
    SECRET,
    Server,
    _Links,
    server_env,
    start_server,
    stop,
    wait_for_line,
)
from trouw.store import events, open_store
from trouw.templates.links import LinkSigner

DAY = "2027-03-15"
MAIL = """\
{% block subject %}Eén vraag{% endblock %}
<p>Hoi {{ contact.first_name }}, zou je ons aanraden?</p>
<p>{% for score in range(11) %}
<a href="{{ survey_link('nps', score) }}">{{ score }}</a>
{% endfor %}</p>
<p>Tevreden? <a href="{{ survey_link('csat', 5) }}">heel tevreden</a></p>
<p><a href="{{ track('https://shop.example/') }}">Shop</a></p>
{% include "trouw/footer.html" %}
"""
FILES = {
    "trouw.toml": SETTINGS + f'\n[tracking]\nbase_url = "{BASE_URL}"\n' + policy_settings(),
    "templates/nps.html": MAIL,
    "campaigns/nps.yaml": f"priority: 50\nschedule:\n  dates: [{DAY}]\ntemplate: nps\n",
    "segments/promoters.yaml": "where:\n  nps: promoter\n",
    "segments/detractors.yaml": "where:\n  nps: detractor\n",
    "contacts.csv": (
        "id,email,first_name,locale\nc1,ann@x.example,Ann,nl\nc2,bob@x.example,Bob,en\n"
    ),
}
CONTACT_OF = {"ann@x.example": "c1", "bob@x.example": "c2"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Answers:
    """The answer links of one mail: NPS 0-10 by score, and CSAT 5."""

    nps: list[str]
    csat: str
    click: str


@dataclass
class Survey:
    cli: Cli
    engine: Engine
    mails: dict[str, Answers]
    server: Server

    def answers(self) -> list[dict[str, Any]]:
        query = select(
            events.c.contact_id, events.c.tag, events.c.score, events.c.properties
        ).where(events.c.type == "survey")
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query.order_by(events.c.id))]

    def members(self, segment: str) -> list[str]:
        result = self.cli("segments", "members", segment, "--format", "json")
        assert result.exit_code == 0, result.output
        return [row["contact_id"] for row in json.loads(result.stdout)]

    def nps(self) -> Any:
        # The mail went out on a day ahead of the clock (DAY); its answers are recorded now.
        # Without --as-of the report would be on DAY's year, as of DAY: the answers report today.
        today = datetime.now(ZoneInfo("Europe/Amsterdam")).date().isoformat()
        result = self.cli("report", "--as-of", today, "--format", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["loyalty"]["year"]


def read_answers(path: Path) -> tuple[str, Answers]:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    assert html is not None
    links = _Links()
    links.feed(html.get_content())
    answers = [href for href in links.hrefs if href.startswith(f"{BASE_URL}/s/")]
    clicks = [href for href in links.hrefs if href.startswith(f"{BASE_URL}/c/")]
    assert len(answers) == 12 and len(clicks) == 1
    address = str(message["To"]).split("<")[-1].rstrip(">")
    return CONTACT_OF[address], Answers(answers[:11], answers[11], clicks[0])


@pytest.fixture
def survey(
    project_dir: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Survey]:
    """The NPS mail sent to c1 (nl) and c2 (en), and `trouw serve` on the shop."""
    monkeypatch.setenv("TROUW_SECRET", SECRET)
    write_files(project_dir, FILES)
    cli = Cli(project_dir, db_url)
    outbox = tmp_path / "outbox"
    for args in (
        ("import", "contacts", str(project_dir / "contacts.csv")),
        ("plan", "2027", "--as-of", "2027-01-01"),
        ("send", "--as-of", DAY, "--outbox", str(outbox)),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    mails = dict(read_answers(path) for path in sorted(outbox.glob("*.eml")))
    assert sorted(mails) == ["c1", "c2"]
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "trouw", "--project", str(project_dir), "--db", db_url]
    command += ["serve", "--host", "127.0.0.1", "--port", "0"]
    process = start_server(command, server_env(), log)
    engine = open_store(db_url)
    try:
        line = wait_for_line(process, log, "http://127.0.0.1:")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        yield Survey(cli, engine, mails, Server("127.0.0.1", port, log, process))
    finally:
        stop(process)
        engine.dispose()


def test_a_click_on_an_answer_is_a_survey_event_that_segments_and_report_count(
    survey: Survey,
) -> None:
    server, ann = survey.server, survey.mails["c1"]
    assert survey.nps()["nps"] is None
    assert survey.members("promoters") == []

    answer = server.get(ann.nps[9])
    assert answer.status == 200, answer.text
    assert "Bedankt voor je antwoord" in answer.text and "Shop" in answer.text
    assert answer.headers["cache-control"].startswith("no-cache")
    assert "form-action 'self'" in answer.headers["content-security-policy"]
    [recorded] = survey.answers()
    assert (recorded["contact_id"], recorded["tag"], recorded["score"]) == ("c1", "nps", 9)
    about = recorded["properties"]
    assert about["campaign"] == "nps" and about["mail_day"] == DAY
    assert about["template"] == "nps" and isinstance(about["ledger_id"], int)
    assert survey.members("promoters") == ["c1"]
    year = survey.nps()
    assert year["nps"] == 100 and year["counts"]["nps_answers"] == 1

    # Another score in the same mail replaces the answer: the latest wins, everywhere.
    assert server.get(ann.nps[3]).status == 200
    [recorded] = survey.answers()
    assert recorded["score"] == 3
    assert survey.members("promoters") == [] and survey.members("detractors") == ["c1"]
    year = survey.nps()
    assert year["nps"] == -100 and year["counts"]["nps_answers"] == 1

    # The comment form adds a comment to the same answer.
    form = urlencode({"comment": "Fijne winkel, maar de bezorging was laat."})
    done = server.request("POST", ann.nps[3], body=form, headers=FORM)
    assert done.status == 200 and "toelichting" in done.text
    [recorded] = survey.answers()
    assert recorded["score"] == 3
    assert recorded["properties"]["comment"] == "Fijne winkel, maar de bezorging was laat."
    assert server.get(ann.nps[10]).status == 200  # a change of mind keeps the comment
    [recorded] = survey.answers()
    assert recorded["score"] == 10 and "bezorging" in recorded["properties"]["comment"]

    # CSAT is a question of its own; Bob's answer is his own, in English.
    assert server.get(ann.csat).status == 200
    bob = server.get(survey.mails["c2"].nps[7])
    assert bob.status == 200 and "Thank you for your answer" in bob.text
    assert [(a["contact_id"], a["tag"], a["score"]) for a in survey.answers()] == [
        ("c1", "nps", 10),
        ("c1", "csat", 5),
        ("c2", "nps", 7),
    ]
    year = survey.nps()
    assert year["nps"] == 50 and year["csat"] == 1
    # The ordinary click link still records a click, not an answer.
    assert server.get(ann.click).status == 302
    assert len(survey.answers()) == 3


def test_a_forged_or_borrowed_token_records_nothing(survey: Survey) -> None:
    server, link = survey.server, survey.mails["c1"].nps[9]
    prefix, token = link.rsplit("/", 1)
    payload, signature = token.split(".")
    altered = (
        f"{prefix}/{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    )
    other = LinkSigner(BASE_URL, "another-secret").for_mail("c1", "nps").survey_url("nps", 9, DAY)
    click_token = survey.mails["c1"].click.rsplit("/", 1)[1]
    for bad in (altered, other, f"{BASE_URL}/s/{click_token}", f"{prefix}/{payload}"):
        assert server.get(bad).status == 404
        assert server.request("POST", bad, body="comment=x", headers=FORM).status == 404
    # A link checker's HEAD sees the page's status, and records nothing.
    assert server.request("HEAD", link).status == 200
    assert survey.answers() == []


def test_the_thank_you_page_in_a_real_browser(survey: Survey, browser: Any, tmp_path: Path) -> None:
    """Chromium follows the answer links of the Dutch and the English mail, sends a comment;
    screenshots of each page go to the test's folder."""
    base = f"http://127.0.0.1:{survey.server.port}"
    page = browser.new_page(viewport={"width": 900, "height": 760})
    for contact_id, heading, done in (
        ("c1", "Bedankt voor je antwoord", "Dank je wel voor je toelichting"),
        ("c2", "Thank you for your answer", "Thank you for your comment"),
    ):
        link = survey.mails[contact_id].nps[9].replace(BASE_URL, base)
        page.goto(link, timeout=30_000)
        assert page.inner_text("h1") == heading
        assert page.inner_text(".score") == "9"
        assert page.get_attribute("html", "lang") == ("nl" if contact_id == "c1" else "en")
        page.screenshot(path=str(tmp_path / f"thanks-{contact_id}.png"), full_page=True)
        page.fill("#comment", f"Comment from {contact_id}")
        page.click("button[type=submit]")
        page.wait_for_selector(f"h1:text-is('{done}')")
        page.screenshot(path=str(tmp_path / f"comment-{contact_id}.png"), full_page=True)
    mobile = browser.new_page(viewport={"width": 380, "height": 760})
    mobile.goto(survey.mails["c1"].nps[6].replace(BASE_URL, base), timeout=30_000)
    mobile.screenshot(path=str(tmp_path / "thanks-c1-phone.png"), full_page=True)
    comments = {a["contact_id"]: a["properties"].get("comment") for a in survey.answers()}
    assert comments == {"c1": "Comment from c1", "c2": "Comment from c2"}
    assert [a["score"] for a in survey.answers()] == [6, 9]
