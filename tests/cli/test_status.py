"""`trouw status`: plan coverage, owed and stuck mail, the last runs, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, insert, update

from tests.conftest import Cli, write_files
from tests.planning.shop import TEMPLATE, policy
from tests.sending.conftest import Collector, SmtpServer, _free_port
from trouw.sending.runs import SendRun
from trouw.store import ledger, open_store, send_runs

DAY = "2027-04-06"  # a Tuesday: every contact gets `spring`
CONTACTS = (
    "id,email,first_name,last_name,channel,street,postcode,city,country\n"
    "c1,ann@x.example,Ann,Bakker,email,,,,\n"
    "c2,bob@x.example,Bob,Jansen,email,,,,\n"
    "c3,cor@x.example,Cor,Smit,email,,,,\n"
    "c4,,Dirk,Visser,post,Kerkstraat 5,1234 AB,Utrecht,NL\n"
)
FILES = {
    "campaigns/spring.yaml": f"priority: 50\nschedule:\n  dates: [{DAY}]\ntemplate: mail\n",
    "templates/mail.html": TEMPLATE,
    "contacts.csv": CONTACTS,
}
TOP = {"ok", "as_of", "checked_at", "database", "signing_key", "plan", "mail", "send", "attention"}


def _ok(result: Any) -> None:
    assert result.exit_code == 0, result.output


@pytest.fixture
def shop(cli: Cli) -> Cli:
    """The project with its four contacts, not planned yet."""
    write_files(cli.project, FILES)
    settings = cli.project / "trouw.toml"
    settings.write_text(settings.read_text() + policy(), encoding="utf-8")
    _ok(cli("import", "contacts", str(cli.project / "contacts.csv")))
    return cli


@pytest.fixture
def planned(shop: Cli) -> Cli:
    _ok(shop("plan", "2027", "--as-of", "2027-01-01"))
    return shop


@pytest.fixture
def sent(planned: Cli, tmp_path: Path) -> Cli:
    """Planned, and the day's mail sent to an outbox (the letter to its letters folder)."""
    _ok(planned("send", "--as-of", DAY, "--outbox", str(tmp_path / "outbox")))
    return planned


@pytest.fixture
def database(cli: Cli) -> Iterator[Engine]:
    engine = open_store(cli.db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{controller.port}", handler)
    finally:
        controller.stop()


def _status(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("status", "--format", "json", *args)
    assert result.exit_code in (0, 3), result.output
    return result.exit_code, json.loads(result.output)


def _problems(facts: dict[str, Any]) -> list[str]:
    return [item["problem"] for item in facts["attention"]]


def test_a_fresh_project_without_a_plan_needs_attention(shop: Cli) -> None:
    result = shop("status", "--as-of", DAY)
    assert result.exit_code == 3, result.output
    assert "there is no plan for 2027" in result.output
    assert "fix: run `trouw plan 2027`" in result.output
    assert "last send    none yet" in result.output
    code, facts = _status(shop, "--as-of", DAY)
    assert code == 3 and facts["ok"] is False
    assert facts["plan"]["covers_today"] is False
    assert facts["plan"]["this_year"] == {"year": 2027, "planned": False, "last_run": None}


def test_after_the_plan_and_the_days_send_all_is_well(sent: Cli) -> None:
    result = sent("status", "--as-of", DAY)
    assert result.exit_code == 0, result.output
    assert f"trouw status as of {DAY}" in result.output
    assert "plan 2027    planned as of 2027-01-01" in result.output
    assert "covers today" in result.output
    assert "owed         0 now, 0 overdue" in result.output
    assert "finished: for 2027-04-06" in result.output
    assert "sent 4" in result.output
    assert "attention" not in result.output


def test_json_has_the_documented_keys(sent: Cli, db_url: str) -> None:
    code, facts = _status(sent, "--as-of", DAY)
    assert code == 0
    assert set(facts) == TOP
    assert facts["ok"] is True and facts["attention"] == []
    assert facts["as_of"] == DAY
    assert facts["checked_at"].endswith("Z")
    assert set(facts["signing_key"]) == {"fingerprint", "source", "problem"}
    assert len(facts["signing_key"]["fingerprint"]) == 12
    plan = facts["plan"]
    assert set(plan) == {"covers_today", "this_year", "next_year", "next_year_needed", "last_run"}
    assert plan["covers_today"] is True and plan["next_year_needed"] is False
    assert plan["next_year"] == {"year": 2028, "planned": False, "last_run": None}
    last_plan = plan["last_run"]
    assert plan["this_year"] == {"year": 2027, "planned": True, "last_run": last_plan}
    assert set(last_plan) == {
        "year", "as_of", "started_at", "finished_at", "contacts", "planned", "deferred",
        "dropped",
    }  # fmt: skip
    assert (last_plan["year"], last_plan["as_of"], last_plan["contacts"]) == (2027, "2027-01-01", 4)
    assert last_plan["planned"] == 4
    assert facts["mail"] == {
        "owed": 0, "owed_since": None, "overdue": 0, "overdue_since": None, "expiring": 0,
        "deferred": 0, "days": 7, "since": "2027-03-31", "unknown": 0, "expired": 0,
        "failed": 0, "held": 0, "held_by_dead_runs": 0,
    }  # fmt: skip
    run = facts["send"]["last_run"]
    assert set(run) == {
        "id", "host", "pid", "as_of", "started_at", "ended_at", "outcome", "counts"
    }  # fmt: skip
    assert (run["as_of"], run["outcome"], run["counts"]["sent"]) == (DAY, "finished", 4)
    assert facts["send"]["live_runs"] == []
    if db_url.startswith("postgresql"):  # the test server's URL has no password to mask
        assert facts["database"].startswith("postgresql+psycopg://postgres@")
    else:
        assert facts["database"] == db_url


def test_the_password_in_the_url_is_masked(shop: Cli, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a SQLite URL has no password")
    masked = Cli(shop.project, db_url.replace("postgres@", "postgres:hunter2@", 1))
    result = masked("status", "--as-of", DAY)
    assert "hunter2" not in result.output
    assert "postgresql+psycopg://postgres:***@" in result.output


def test_owed_mail_no_run_handled_for_days_needs_attention(planned: Cli) -> None:
    code, facts = _status(planned, "--as-of", DAY)  # the day itself: owed, not late
    assert code == 0, facts["attention"]
    assert (facts["mail"]["owed"], facts["mail"]["owed_since"]) == (4, DAY)
    assert facts["mail"]["overdue"] == 0
    code, facts = _status(planned, "--as-of", "2027-04-08")
    assert code == 3
    mail = facts["mail"]
    assert (mail["owed"], mail["overdue"], mail["overdue_since"]) == (4, 4, DAY)
    assert facts["attention"] == [
        {
            "problem": f"4 owed mails have waited for a send run since {DAY}",
            "fix": "run `trouw send --as-of 2027-04-08` (is the send job scheduled?)",
        }
    ]


def test_a_mail_refused_with_451_shows_as_deferred(
    planned: Cli, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    smtp_server.handler.temporary["bob@x.example"] = 1000  # for longer than the run
    result = planned(
        "send", "--as-of", DAY, "--smtp", smtp_server.url, "--letters", str(tmp_path / "letters")
    )
    _ok(result)
    code, facts = _status(planned, "--as-of", DAY)
    assert code == 0, facts["attention"]
    assert facts["mail"]["deferred"] == 1
    assert facts["mail"]["owed"] == 0  # its next try has not come yet
    assert facts["send"]["last_run"]["counts"]["deferred"] == 1
    assert "deferred     1" in planned("status", "--as-of", DAY).output


def test_an_unknown_mail_needs_attention(sent: Cli, database: Engine) -> None:
    with database.begin() as connection:
        connection.execute(
            update(ledger).where(ledger.c.contact_id == "c2").values(status="unknown")
        )
    result = sent("status", "--as-of", DAY)
    assert result.exit_code == 3, result.output
    assert f"1 mails have an unknown fate (1 of {DAY})" in result.output
    assert "--retry-unknown" in result.output
    code, facts = _status(sent, "--as-of", DAY)
    assert code == 3 and facts["mail"]["unknown"] == 1
    # Out of the window (a week by default, --days), it no longer raises the alarm.
    code, facts = _status(sent, "--as-of", "2027-04-20")
    assert code == 0 and facts["mail"]["unknown"] == 0
    code, facts = _status(sent, "--as-of", "2027-04-20", "--days", "15")
    assert code == 3 and facts["mail"]["unknown"] == 1


def test_expired_mail_of_the_window_needs_attention(planned: Cli) -> None:
    # A run 30 days late: the day's mail is past its validity (defer_for 7d) and expires.
    _ok(planned("send", "--as-of", "2027-05-06", "--dry-run"))
    code, facts = _status(planned, "--as-of", "2027-05-06")
    assert facts["mail"]["expiring"] == 4 and facts["mail"]["owed"] == 0
    assert code == 3  # no run has handled them for a month
    _ok(planned("send", "--as-of", "2027-05-06", "--outbox", str(planned.project / "out")))
    code, facts = _status(planned, "--as-of", "2027-05-06")
    assert code == 3
    assert facts["mail"]["expired"] == 4
    assert _problems(facts) == ["4 mails expired since 2027-04-30: not sent within their validity"]


def test_a_failed_or_dead_last_send_run_needs_attention(sent: Cli, database: Engine) -> None:
    started = datetime.now(UTC).replace(tzinfo=None)
    with database.begin() as connection:
        connection.execute(
            insert(send_runs).values(
                host="mail-1", pid=4242, as_of=date(2027, 4, 6), started_at=started,
                ended_at=started, outcome="failed", summary={"sent": 0},
            )
        )  # fmt: skip
    code, facts = _status(sent, "--as-of", DAY)
    assert code == 3
    assert facts["send"]["last_run"]["outcome"] == "failed"
    assert "the last send run" in _problems(facts)[0] and "failed" in _problems(facts)[0]
    with database.begin() as connection:
        run_id = connection.execute(
            insert(send_runs)
            .values(host="mail-2", pid=4343, as_of=date(2027, 4, 6), started_at=started)
            .returning(send_runs.c.id)
        ).scalar_one()  # no outcome, and no lock: it died
        connection.execute(
            update(ledger)
            .where(ledger.c.contact_id == "c1")
            .values(status="sending", run_id=run_id)
        )
    code, facts = _status(sent, "--as-of", DAY)
    assert code == 3
    assert facts["send"]["last_run"]["outcome"] == "died"
    assert facts["mail"]["held_by_dead_runs"] == 1
    assert _problems(facts) == [
        "1 mails are held by send runs that died",
        f"the last send run (#{run_id}, for {DAY}, started {started:%Y-%m-%d %H:%M} UTC on "
        "mail-2, pid 4343) ended without a word: killed or crashed",
    ]


def test_mail_held_by_a_live_run_is_left_to_it(sent: Cli, database: Engine) -> None:
    with SendRun(database, date(2027, 4, 6)) as run:
        with database.begin() as connection:
            connection.execute(
                update(ledger)
                .where(ledger.c.contact_id == "c3")
                .values(status="reserved", run_id=run.id)
            )
        code, facts = _status(sent, "--as-of", DAY)
        assert code == 0, facts["attention"]
        assert (facts["mail"]["held"], facts["mail"]["held_by_dead_runs"]) == (1, 0)
        assert [r["id"] for r in facts["send"]["live_runs"]] == [run.id]
        assert facts["send"]["live_runs"][0]["outcome"] == "running"
        assert facts["send"]["last_run"]["outcome"] == "finished"  # the one before


def test_from_1_december_next_years_plan_is_needed(planned: Cli) -> None:
    code, facts = _status(planned, "--as-of", "2027-11-30")
    assert code == 0, facts["attention"]
    result = planned("status", "--as-of", "2027-12-01")
    assert result.exit_code == 3, result.output
    assert "there is no plan for 2028, and it is December" in result.output
    assert "fix: run `trouw plan 2028`" in result.output
    # Planned, even with no send in it (spring has no day in 2028): the plan run says so.
    _ok(planned("plan", "2028", "--as-of", "2027-12-01"))
    code, facts = _status(planned, "--as-of", "2027-12-01")
    assert code == 0, facts["attention"]
    assert facts["plan"]["next_year"]["planned"] is True
    assert facts["plan"]["next_year"]["last_run"]["planned"] == 0
    assert facts["plan"]["last_run"]["year"] == 2028


def test_a_plan_made_as_of_a_later_day_does_not_cover_today(shop: Cli) -> None:
    _ok(shop("plan", "2027", "--as-of", "2027-05-01"))
    code, facts = _status(shop, "--as-of", DAY)
    assert code == 3
    assert facts["plan"]["this_year"]["planned"] is True
    assert facts["plan"]["covers_today"] is False
    assert facts["attention"][0]["fix"] == f"run `trouw plan 2027 --as-of {DAY}`"


def test_bad_input_exits_2(shop: Cli) -> None:
    assert shop("status", "--as-of", "2027-13-01").exit_code == 2
    assert shop("status", "--days", "0").exit_code == 2
    assert shop("status", "--format", "csv").exit_code == 2


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_database_out_of_reach_exits_1(project_dir: Path, fmt: str) -> None:
    down = Cli(project_dir, "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/trouw")
    result = down("status", "--format", fmt)
    assert result.exit_code == 1, result.output
    assert "cannot be reached" in result.output
    assert "hunter2" not in result.output
    if fmt == "json":
        facts = json.loads(result.output)
        assert set(facts) == {"ok", "as_of", "database", "attention"} and facts["ok"] is False
