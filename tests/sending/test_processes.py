"""Real `trouw send` processes against a real SMTP sink: killed mid-run, and several at once.

Each test builds a shop whose plan has a few hundred mails due on DAY, points
one or more `trouw send` subprocesses at an aiosmtpd server on loopback, and
then compares what the sink received with what the ledger says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.conftest import _fresh_postgres_database
from tests.planning.shop import make_shop, policy, run_plan
from tests.sending.conftest import DAY, SmtpServer
from trouw.sending.run import SEND_BATCH
from trouw.store import ledger, open_store, plan

pytestmark = pytest.mark.slow

TWO_CAMPAIGNS = {
    "spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
    "autumn": "priority: 40\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
}


def _contacts(n: int) -> str:
    lines = ["id,email,first_name,last_name,channel"]
    lines += [f"p{i:04d},p{i:04d}@x.example,Per{i},Son,email" for i in range(n)]
    return "\n".join(lines) + "\n"


def _big_shop(root: Path, engine: Engine, n: int, *, two: bool = False) -> list[tuple[str, ...]]:
    """n contacts with `spring` due on DAY (and `autumn` too if `two`); the due keys."""
    campaigns = TWO_CAMPAIGNS if two else {"spring": TWO_CAMPAIGNS["spring"]}
    make_shop(root, engine, campaigns=campaigns, contacts=_contacts(n), settings=policy(gap="0d"))
    run_plan(root, engine, 2027, "2027-01-01")
    if two:  # planned two a contact; now the policy allows one a week: the ledger must hold it
        settings = root / "trouw.toml"
        text = settings.read_text(encoding="utf-8").replace("max_per_week = 2", "max_per_week = 1")
        settings.write_text(text, encoding="utf-8")
    with engine.connect() as connection:
        rows = connection.execute(
            select(plan.c.contact_id, plan.c.campaign, plan.c.step, plan.c.occurrence).where(
                plan.c.day == DAY, plan.c.status == "planned"
            )
        ).all()
    keys = [tuple(str(v) for v in row) for row in rows]
    assert len(keys) == n * (2 if two else 1)
    return keys


def _send(root: Path, db_url: str, smtp_url: str, *options: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "trouw", "--project", str(root), "--db", db_url]
    command += ["send", "--as-of", DAY.isoformat(), "--smtp", smtp_url, *options]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _finish(process: subprocess.Popen[str], timeout: float = 30) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def _ledger(engine: Engine) -> dict[tuple[str, ...], tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence,
                ledger.c.status, ledger.c.message_id,
            )
        ).all()  # fmt: skip
    return {tuple(str(v) for v in row[:4]): (str(row[4]), str(row[5])) for row in rows}


def _received_ids(server: SmtpServer) -> Counter[str]:
    return Counter(
        str(message_from_bytes(r.content)["Message-ID"]) for r in server.handler.received
    )


def _wait_until_received(run: subprocess.Popen[str], server: SmtpServer, count: int) -> None:
    """Wait until the server has `count` mails from the run, which must still be running."""
    deadline = time.monotonic() + 20
    while len(server.handler.received) < count:
        assert run.poll() is None, run.communicate()[0]
        assert time.monotonic() < deadline, "the first run sent nothing in time"
        time.sleep(0.005)


def test_kill_9_mid_run_then_rerun_sends_each_mail_at_most_once_and_accounts_for_all(
    project_dir: Path, engine: Engine, db_url: str, smtp_server: SmtpServer
) -> None:
    keys = _big_shop(project_dir, engine, 300)
    smtp_server.handler.delay = 0.01  # slow enough that the kill lands mid-run
    first = _send(project_dir, db_url, smtp_server.url)
    _wait_until_received(first, smtp_server, 40)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    before = len(smtp_server.handler.received)
    assert before < len(keys)  # it really died mid-run

    # The rerun treats the dead run's leftovers at once (a real one waits 10 minutes).
    output = _finish(_send(project_dir, db_url, smtp_server.url, "--stale-after", "0"))
    assert "had not left: made again" in output  # the untouched reservations, sent now

    received = _received_ids(smtp_server)
    rows = _ledger(engine)
    assert max(received.values()) == 1  # no mail received twice
    assert set(rows) == set(keys)  # every due mail has its row: nothing silently lost
    statuses = Counter(status for status, _ in rows.values())
    assert set(statuses) <= {"sent", "unknown"}, statuses
    sent_ids = {mid for status, mid in rows.values() if status == "sent"}
    unknown_ids = {mid for status, mid in rows.values() if status == "unknown"}
    assert sent_ids <= set(received)  # every `sent` row was received (exactly once)
    assert set(received) <= sent_ids | unknown_ids  # nothing received that the ledger denies
    # The doubt is one batch at most: the mails marked `sending` when the kill came.
    assert statuses["unknown"] <= SEND_BATCH
    assert f"{statuses['unknown']} mails of a run that died mid-send" in output or (
        statuses["unknown"] == 0
    )
    # A third run sends nothing new, and says how many wait for --retry-unknown.
    third = _finish(_send(project_dir, db_url, smtp_server.url))
    assert sum(_received_ids(smtp_server).values()) == sum(received.values())
    if statuses["unknown"]:
        assert f"{statuses['unknown']} mails of {DAY} have an unknown fate" in third


def _recipients_once(server: SmtpServer, n: int) -> None:
    recipients = Counter(r.rcpt_tos[0] for r in server.handler.received)
    assert all(len(r.rcpt_tos) == 1 for r in server.handler.received)
    assert len(recipients) == n and max(recipients.values()) == 1, recipients.most_common(3)
    assert max(_received_ids(server).values()) == 1


def _all_sent_once(engine: Engine, keys: list[tuple[str, ...]]) -> None:
    rows = _ledger(engine)
    by_contact = Counter(key[0] for key, (status, _) in rows.items() if status == "sent")
    assert len(by_contact) == len({k[0] for k in keys})
    assert set(by_contact.values()) == {1}  # max_per_week 1 held across processes


def test_two_processes_at_once_on_sqlite_send_every_mail_once(
    project_dir: Path, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    db_url = f"sqlite:///{tmp_path / 'two.db'}"
    engine = open_store(db_url)
    try:
        keys = _big_shop(project_dir, engine, 150, two=True)
        smtp_server.handler.delay = 0.002
        runs = [_send(project_dir, db_url, smtp_server.url, "--chunk-contacts", "25")]
        runs.append(_send(project_dir, db_url, smtp_server.url, "--chunk-contacts", "25"))
        for run in runs:
            _finish(run)
        _recipients_once(smtp_server, 150)
        _all_sent_once(engine, keys)
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _fresh_postgres_database()


@pytest.mark.postgres
def test_four_workers_on_postgresql_share_the_day_without_duplicates(
    project_dir: Path, postgres_url: str, smtp_server: SmtpServer
) -> None:
    engine = open_store(postgres_url)
    try:
        keys = _big_shop(project_dir, engine, 200, two=True)
        smtp_server.handler.delay = 0.01
        options = ("--chunk-contacts", "10")
        runs = [_send(project_dir, postgres_url, smtp_server.url, *options) for _ in range(3)]
        runs.append(_send(project_dir, postgres_url, smtp_server.url, *options, "--workers", "2"))
        outputs = [_finish(run) for run in runs]
        _recipients_once(smtp_server, 200)
        _all_sent_once(engine, keys)
        shares = [int(out.split(", sent ")[1].split()[0]) for out in outputs]
        assert sum(shares) == 200
        assert sum(1 for share in shares if share) >= 2, shares  # the work was shared
    finally:
        engine.dispose()


def test_ctrl_c_mid_run_stops_after_the_batch_and_leaves_nothing_in_doubt(
    project_dir: Path, engine: Engine, db_url: str, smtp_server: SmtpServer
) -> None:
    keys = _big_shop(project_dir, engine, 300)
    smtp_server.handler.delay = 0.01
    first = _send(project_dir, db_url, smtp_server.url)
    _wait_until_received(first, smtp_server, 40)
    first.send_signal(signal.SIGINT)
    output = first.communicate(timeout=20)[0]
    assert first.returncode != 0, output
    rows = _ledger(engine)
    # Interrupted, the run finished its batch, confirmed it and released the rest.
    assert {status for status, _ in rows.values()} == {"sent"}, output
    assert len(rows) < len(keys)
    assert set(_received_ids(smtp_server)) == {mid for _, mid in rows.values()}

    second = _finish(_send(project_dir, db_url, smtp_server.url))
    assert "unknown" not in second
    _recipients_once(smtp_server, len(keys))
    assert {status for status, _ in _ledger(engine).values()} == {"sent"}
