"""Real `trouw send` processes against a real SMTP sink: killed mid-run, and several at once.

Each test builds a shop whose plan has a few hundred mails due on DAY, points
one or more `trouw send` subprocesses at an aiosmtpd server on loopback, and
then compares what the sink received with what the ledger says.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.conftest import _fresh_postgres_database
from tests.planning.shop import make_shop, policy, run_plan
from tests.sending.conftest import DAY, SmtpServer
from trouw.sending.transports import CONNECTIONS  # trouw send's default per worker
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
    command += ["send", "--as-of", DAY.isoformat(), "--smtp", smtp_url, *options]  # last wins
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: a kill reaches its workers too
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


NEXT_DAY = DAY + timedelta(days=1)
TWO_DAYS = {
    "spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
    "autumn": "priority: 40\nschedule:\n  dates: [2027-04-07]\ntemplate: mail\n",
}


def _two_day_shop(root: Path, engine: Engine, n: int) -> list[tuple[str, ...]]:
    """n contacts with `spring` owed on DAY and `autumn` on the day after; the keys."""
    make_shop(root, engine, campaigns=TWO_DAYS, contacts=_contacts(n), settings=policy(gap="0d"))
    run_plan(root, engine, 2027, "2027-01-01")
    with engine.connect() as connection:
        rows = connection.execute(
            select(plan.c.contact_id, plan.c.campaign, plan.c.step, plan.c.occurrence).where(
                plan.c.status == "planned"
            )
        ).all()
    keys = [tuple(str(v) for v in row) for row in rows]
    assert len(keys) == 2 * n
    return keys


def _kill_after(run: subprocess.Popen[str], server: SmtpServer, more: int) -> None:
    """SIGKILL the run and its workers (as the OOM killer or systemd would) once the server
    has `more` mails more than now."""
    _wait_until_received(run, server, len(server.handler.received) + more)
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=10)
    assert run.returncode == -signal.SIGKILL


@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_9_twice_then_the_next_days_run_finishes_both_days_nothing_lost_or_twice(
    project_dir: Path, engine: Engine, db_url: str, smtp_server: SmtpServer, workers: str
) -> None:
    keys = _two_day_shop(project_dir, engine, 300)
    smtp_server.handler.delay = 0.01  # slow enough that the kills land mid-run
    seed = random.Random(f"{db_url.split(':')[0]}-{workers}")
    for _ in range(2):  # killed at random moments, twice, and not run again that day
        run = _send(project_dir, db_url, smtp_server.url, "--workers", workers)
        _kill_after(run, smtp_server, seed.randint(1, 60))
    assert len(smtp_server.handler.received) < 300  # the day really was left unfinished

    # The next day's run, started at once, takes over the dead runs' work and finishes both days.
    output = _finish(_send(project_dir, db_url, smtp_server.url, "--as-of", NEXT_DAY.isoformat()))
    assert "skipped" not in output, output
    assert f"from {DAY}" in output  # the summary counts what was owed from the killed day

    received = _received_ids(smtp_server)
    rows = _ledger(engine)
    assert max(received.values()) == 1  # no mail received twice
    assert set(rows) == set(keys)  # every owed mail has its row: nothing silently lost
    statuses = Counter(status for status, _ in rows.values())
    assert set(statuses) <= {"sent", "unknown"}, statuses
    sent_ids = {mid for status, mid in rows.values() if status == "sent"}
    unknown_ids = {mid for status, mid in rows.values() if status == "unknown"}
    assert sent_ids <= set(received)  # every `sent` row was received (exactly once)
    assert set(received) <= sent_ids | unknown_ids  # nothing received that the ledger denies
    # The doubt is at most one mail per connection per kill: those on the wire.
    assert statuses["unknown"] <= 2 * CONNECTIONS * int(workers), statuses
    # A third run sends nothing new.
    _finish(_send(project_dir, db_url, smtp_server.url, "--as-of", NEXT_DAY.isoformat()))
    assert sum(_received_ids(smtp_server).values()) == sum(received.values())


def test_right_after_a_kill_two_runs_at_once_finish_the_day_without_waiting(
    project_dir: Path, engine: Engine, db_url: str, smtp_server: SmtpServer
) -> None:
    keys = _big_shop(project_dir, engine, 200)
    smtp_server.handler.delay = 0.01
    _kill_after(_send(project_dir, db_url, smtp_server.url), smtp_server, 30)
    runs = [_send(project_dir, db_url, smtp_server.url) for _ in range(2)]
    outputs = [_finish(run) for run in runs]
    assert not any("already in the ledger" in out for out in outputs), outputs
    rows = _ledger(engine)
    assert set(rows) == set(keys)
    assert {status for status, _ in rows.values()} <= {"sent", "unknown"}
    assert max(_received_ids(smtp_server).values()) == 1


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


@pytest.mark.parametrize(
    ("signum", "workers"),
    [(signal.SIGINT, "1"), (signal.SIGTERM, "1"), (signal.SIGTERM, "2")],
    ids=["ctrl-c", "sigterm", "sigterm-2-workers"],
)
def test_ctrl_c_or_sigterm_mid_run_finishes_the_wire_and_leaves_nothing_held(
    project_dir: Path,
    engine: Engine,
    db_url: str,
    smtp_server: SmtpServer,
    signum: signal.Signals,
    workers: str,
) -> None:
    keys = _big_shop(project_dir, engine, 300)
    smtp_server.handler.delay = 0.01
    first = _send(project_dir, db_url, smtp_server.url, "--workers", workers)
    _wait_until_received(first, smtp_server, 40)
    first.send_signal(signum)
    output = first.communicate(timeout=30)[0]
    assert first.returncode == 128 + signum, output
    assert f"stopped by {signum.name}" in output
    rows = _ledger(engine)
    # Stopped, the run finished the mails on the wire, recorded them and gave back the rest.
    statuses = Counter(status for status, _ in rows.values())
    assert set(statuses) <= {"sent", "deferred"}, output
    assert 0 < statuses["sent"] < len(keys)
    sent = {mid for status, mid in rows.values() if status == "sent"}
    assert set(_received_ids(smtp_server)) == sent

    second = _finish(_send(project_dir, db_url, smtp_server.url))
    assert "unknown" not in second
    _recipients_once(smtp_server, len(keys))
    assert {status for status, _ in _ledger(engine).values()} == {"sent"}


def test_workers_settle_what_only_the_days_decision_owes_to_contacts_the_plan_also_owes(
    project_dir: Path, db_url: str, smtp_server: SmtpServer
) -> None:
    """A campaign added after the plan is owed by the day's decision alone: sent, or for
    its holdout recorded as held out (the lift compares those contacts). Each worker
    decides its own contacts and must settle all of their day: a held-out row once went
    missing when another worker had taken the contact for its planned mail."""
    engine = open_store(db_url)
    try:
        _big_shop(project_dir, engine, 120)
        (project_dir / "campaigns" / "tips.yaml").write_text(
            "priority: 30\nholdout: 50%\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
            encoding="utf-8",
        )
        run = _send(project_dir, db_url, smtp_server.url, "--workers", "4", "--chunk-contacts", "2")
        _finish(run)
        tips = {key[0]: status for key, (status, _) in _ledger(engine).items() if key[1] == "tips"}
        assert set(tips) == {f"p{i:04d}" for i in range(120)}  # every contact's tips settled
        assert set(tips.values()) == {"sent", "cancelled"}
        received = Counter(to for r in smtp_server.handler.received for to in r.rcpt_tos)
        assert sum(received.values()) == 120 + sum(1 for s in tips.values() if s == "sent")
    finally:
        engine.dispose()


def test_a_stop_raised_in_a_worker_process_comes_back_whole() -> None:
    """A worker stopped by SIGTERM inside a task sends its Stopped back to the run through a
    pipe: it must unpickle as the same stop (it once raised ValueError there, and the run
    ended with a traceback instead of finishing the wire)."""
    import pickle
    import signal

    from trouw.sending.run import Stopped

    again = pickle.loads(pickle.dumps(Stopped(signal.SIGTERM)))
    assert isinstance(again, Stopped)
    assert (again.signum, str(again)) == (signal.SIGTERM, "SIGTERM")
