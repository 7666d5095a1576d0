"""The whole loop on the demo shop: a mail's fire-safety link is clicked, the click lands in
the fire-safety segment, and the smoke-detector offer follows in the next send run.

The tracking server records clicks at the real time, so the shop's days are set
around today: the December mail (which links to fire-safety tips) is scheduled
for today, and the follow-up run is two days later (the policy's minimum gap).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sys
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.conftest import Cli
from tests.tracking.conftest import SECRET, Server, server_env, start_server, stop, wait_for_line
from trouw.planning.policy import QuietDays
from trouw.project import load_project
from trouw.store import contacts, events, open_store, plan
from trouw.templates import LinkSigner

ROOT = Path(__file__).resolve().parents[2]
BASE_URL = "https://t.huisentuin.example"  # the example project's [tracking] base_url
FIRE_SAFETY = "https://www.huisentuin.example/brandveiligheid"


def _members(cli: Cli, day: date) -> set[str]:
    result = cli("segments", "members", "fire-safety-prospects", "--as-of", str(day),
                 "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    return {row["contact_id"] for row in csv.DictReader(io.StringIO(result.output))}


def _mails(engine: Engine, outbox: Path, campaign: str) -> dict[str, str]:
    """The outbox's mails of `campaign` (their HTML), by contact id."""
    found = {}
    for path in outbox.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["X-Trouw-Campaign"] != campaign:
            continue
        address = str(message["To"]).split("<")[-1].rstrip(">")
        with engine.connect() as connection:
            contact = connection.execute(select(contacts.c.id).where(contacts.c.email == address))
            html = message.get_body(("html",))
            assert html is not None
            found[str(contact.scalar_one())] = str(html.get_content())
    return found


def _link_to(html: str, target: str) -> str:
    """The tracked link in `html` whose signed token leads to `target`."""
    signer = LinkSigner(BASE_URL, SECRET)
    for href in re.findall(r'href="([^"]+)"', html):
        if href.startswith(f"{BASE_URL}/c/"):
            click = signer.read_click(href.rsplit("/", 1)[1])
            if click is not None and click.url == target:
                return str(href)
    raise AssertionError(f"no tracked link to {target}")


@pytest.mark.slow
def test_a_click_on_a_fire_safety_tip_brings_the_smoke_detector_offer(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TROUW_SECRET", SECRET)
    today = date.today()
    project = tmp_path / "huis-en-tuin"
    project.mkdir()
    shutil.copy(ROOT / "trouw.toml", project)
    for folder in ("segments", "templates", "campaigns"):
        shutil.copytree(ROOT / folder, project / folder)
    december = project / "campaigns" / "december.yaml"
    december.write_text(
        december.read_text(encoding="utf-8").replace(
            'rrule: "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=1"', f"dates: [{today}]"
        ),
        encoding="utf-8",
    )
    cli = Cli(project, db_url)
    for args in (("demo", "--contacts", "300", "--as-of", str(today)),
                 ("plan", str(today.year), "--as-of", str(today))):  # fmt: skip
        result = cli(*args)
        assert result.exit_code == 0, result.output
    engine = open_store(db_url)
    try:
        with engine.connect() as connection:
            days = connection.execute(
                select(plan.c.day).where(plan.c.campaign == "december").distinct()
            ).scalars()
            day = min(days)  # today, or the next day that is not quiet
            owners = set(
                connection.execute(
                    select(events.c.contact_id).where(events.c.product == "smoke-detector")
                ).scalars()
            )
        noon = f"{day}T11:00"  # inside the example project's send window
        sent = cli("send", "--as-of", str(day), "--outbox", str(tmp_path / "first"), "--now", noon)
        assert sent.exit_code == 0, sent.output
        mails = _mails(engine, tmp_path / "first", "december")
        # Two days on (the project's min_gap), or the first day after that is not quiet: on
        # a Sunday or a holiday the offer waits, whatever day the suite runs on.
        quiet = QuietDays(load_project(project).settings.policy.quiet_days)
        follow_up_day = day + timedelta(days=2)
        while quiet.is_quiet(follow_up_day):
            follow_up_day += timedelta(days=1)
        before = _members(cli, follow_up_day)
        contact = min(c for c in mails if c not in before and c not in owners)
        link = _link_to(mails[contact], FIRE_SAFETY)

        log = tmp_path / "serve.log"
        command = [sys.executable, "-m", "trouw", "--project", str(project), "--db", db_url,
                   "serve", "--host", "127.0.0.1", "--port", "0"]  # fmt: skip
        process = start_server(command, server_env(), log)
        try:
            line = wait_for_line(process, log, "http://127.0.0.1:")
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            answer = Server("127.0.0.1", port, log).get(link)
        finally:
            stop(process)
        assert answer.status == 302
        assert answer.headers["location"] == FIRE_SAFETY

        assert contact in _members(cli, follow_up_day)  # the click is behaviour data
        second = cli(
            "send", "--as-of", str(follow_up_day), "--outbox", str(tmp_path / "second"),
            "--now", f"{follow_up_day}T11:00",
        )  # fmt: skip
        assert second.exit_code == 0, second.output
        assert "not in the plan: triggered or changed since" in second.output
        offers = _mails(engine, tmp_path / "second", "fire-safety")
        assert contact in offers  # the smoke-detector offer, the first day the gap allows
        assert "rookmelder" in offers[contact].lower()
    finally:
        engine.dispose()
