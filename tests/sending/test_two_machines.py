"""Two machines, one PostgreSQL: `trouw send` and `trouw plan` as separate deployments.

Each "machine" is its own copy of the project in its own folder and runs
real `python -m trouw` processes; nothing is shared but the database (and no
TROUW_SECRET: the signing key lives in the database, as every machine of a
deployment finds it). What the two machines make together must equal what one
process makes from the same data on a fresh database.

To make the sharing deterministic rather than a race of start-up times, each
machine sends to its own SMTP sink, and a sink holds its first reply until the
other sink has a mail too: the first machine to start can reserve only the
chunks its courier holds (one on the wire, one waiting, one decided) while
the other still starts, so the other is certain to find chunks left.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, create_engine, text

from tests.conftest import SETTINGS, _fresh_postgres_database, write_files
from tests.planning.shop import TEMPLATE, policy
from tests.sending.conftest import DAY, Collector, _free_port
from trouw.store.plan_years import job_tables

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CONTACTS = 120
CHUNK = "10"  # contacts per send chunk: 12 chunks, so both machines find work
GATE_SECONDS = 20.0  # how long a sink holds its first reply for the other machine
# Held by the test while plan runs start: a run claims a chunk, then waits to read its
# contacts' events (a job's start reads none), so each run holds one chunk while it waits.
HOLD_CHUNKS = "LOCK TABLE events IN ACCESS EXCLUSIVE MODE"

FILES = {
    "trouw.toml": SETTINGS + policy(week=1, gap="0d"),
    # Two campaigns on DAY, one a week allowed: the caps must hold across machines.
    "campaigns/spring.yaml": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
    "campaigns/autumn.yaml": "priority: 40\nschedule:\n  dates: [2027-04-06]\ntemplate: other\n",
    "campaigns/birthday.yaml": "priority: 60\ntrigger: birthday\ntemplate: mail\n",
    "templates/mail.html": TEMPLATE,
    "templates/other.html": TEMPLATE,
    "segments/.keep": "",
    # Birthdays around DAY: some on it, some in its week (the cap), some not.
    "contacts.csv": "id,email,first_name,last_name,channel,birthday\n"
    + "".join(
        f"m{i:04d},m{i:04d}@x.example,Mia{i},Smit,email,1990-04-{1 + i % 12:02d}\n"
        for i in range(CONTACTS)
    ),
}


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases: the shared one and the one-process reference."""
    shared = _fresh_postgres_database()
    reference = _fresh_postgres_database()
    yield next(shared), next(reference)
    for database in (shared, reference):
        next(database, None)  # drops it


def _machine(tmp_path: Path, name: str) -> Path:
    return write_files(tmp_path / name, FILES)


def _start(root: Path, db_url: str, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "trouw", "--project", str(root), "--db", db_url, *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUW_")}
    env.update(COLUMNS="200", NO_COLOR="1")
    return subprocess.Popen(
        command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=50)
    assert process.returncode == 0, output
    return output


def _trouw(root: Path, db_url: str, *args: str) -> str:
    return _finish(_start(root, db_url, *args))


def _prepare(root: Path, db_url: str, *, plan: bool) -> None:
    _trouw(root, db_url, "import", "contacts", "contacts.csv")
    if plan:
        _trouw(root, db_url, "plan", "2027", "--as-of", "2027-01-01", "--workers", "1")


def _export(root: Path, db_url: str) -> list[str]:
    output = _trouw(root, db_url, "plan", "export", "--format", "csv", "--year", "2027")
    return sorted(output.splitlines())


def _ledger(root: Path, db_url: str) -> list[tuple[str, ...]]:
    """`trouw log` as CSV without the wall-clock and Message-ID columns, sorted."""
    output = _trouw(root, db_url, "log", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert rows
    drop = {"sent_at", "message_id"}
    return sorted(tuple(v for k, v in row.items() if k not in drop) for row in rows)


class Sink:
    """An aiosmtpd server on loopback for one machine; `gate` pairs two of them."""

    def __init__(self) -> None:
        self.handler = Collector()
        self.arrived = threading.Event()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=_free_port())

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    def gate(self, other: Sink) -> None:
        """Hold this sink's replies until the other sink has a mail (at most GATE_SECONDS)."""

        def hold(_received: int) -> None:
            self.arrived.set()
            other.arrived.wait(GATE_SECONDS)

        self.handler.before_reply = hold

    def recipients(self) -> Counter[str]:
        return Counter(a for r in self.handler.received for a in r.rcpt_tos)

    def message_ids(self) -> set[str]:
        return {str(message_from_bytes(r.content)["Message-ID"]) for r in self.handler.received}


@pytest.fixture
def sinks() -> Iterator[tuple[Sink, Sink, Sink]]:
    """Machine A's, machine B's and the reference run's SMTP sinks."""
    made = (Sink(), Sink(), Sink())
    for sink in made:
        sink.controller.start()
    try:
        yield made
    finally:
        for sink in made:
            sink.controller.stop()


def _sent(output: str) -> int:
    found = re.search(r", sent (\d+)", output)
    assert found, output
    return int(found.group(1))


def _key(output: str) -> str:
    found = re.search(r"links signed with key (\S+)", output)
    assert found, output
    return found.group(1)


def test_two_machines_send_one_day_together_as_one_process_would(
    tmp_path: Path, databases: tuple[str, str], sinks: tuple[Sink, Sink, Sink]
) -> None:
    shared, reference = databases
    sink_a, sink_b, sink_one = sinks
    machine_a, machine_b = _machine(tmp_path, "machine-a"), _machine(tmp_path, "machine-b")
    single = _machine(tmp_path, "single")
    _prepare(machine_a, shared, plan=True)
    _prepare(single, reference, plan=True)
    assert _export(machine_b, shared) == _export(single, reference)

    sink_a.gate(sink_b)
    sink_b.gate(sink_a)
    send = ("send", "--as-of", DAY.isoformat(), "--chunk-contacts", CHUNK)
    runs = [
        _start(machine_a, shared, *send, "--smtp", sink_a.url),
        _start(machine_b, shared, *send, "--smtp", sink_b.url),
    ]
    out_a, out_b = (_finish(run) for run in runs)
    out_one = _trouw(single, reference, *send, "--smtp", sink_one.url)

    # Shared: each machine sent part of the day, and its own sink got exactly that part.
    shares = [_sent(out_a), _sent(out_b)]
    assert shares == [len(sink_a.handler.received), len(sink_b.handler.received)]
    assert all(shares), shares
    assert sum(shares) == _sent(out_one) == len(sink_one.handler.received)
    # Every recipient once, across the machines, and the same people as one process mails.
    together = sink_a.recipients() + sink_b.recipients()
    assert set(together.values()) == {1}
    assert together == sink_one.recipients()
    assert not sink_a.message_ids() & sink_b.message_ids()
    # One signing key for both machines, found in the database (no TROUW_SECRET).
    assert _key(out_a) == _key(out_b)
    # The same ledger as one process: statuses, reasons, days, templates.
    assert _ledger(machine_a, shared) == _ledger(single, reference)
    assert _ledger(machine_b, shared) == _ledger(single, reference)


def _planned_contacts(output: str) -> int:
    found = re.search(r"(\d+) contacts, \d+ sends", output)
    assert found, output
    return int(found.group(1))


def test_two_machines_plan_one_year_together_as_one_process_would(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    shared, reference = databases
    machine_a, machine_b = _machine(tmp_path, "machine-a"), _machine(tmp_path, "machine-b")
    single = _machine(tmp_path, "single")
    _prepare(machine_a, shared, plan=False)
    _prepare(single, reference, plan=True)

    # Two chunks. Each run's chunk waits to read its events until both runs hold one, so the
    # first run to start cannot plan both before the other has joined.
    plan = ("plan", "2027", "--as-of", "2027-01-01", "--workers", "1", "--chunk-size", "100")
    engine = create_engine(shared)
    try:
        with engine.connect() as holder:
            holder.execute(text(HOLD_CHUNKS))
            runs = [_start(machine_a, shared, *plan), _start(machine_b, shared, *plan)]
            _wait_for_waiters(engine, runs, 2)
            holder.rollback()
        outputs = [run.communicate(timeout=50)[0] for run in runs]
    finally:
        engine.dispose()
    assert [run.returncode for run in runs] == [0, 0], outputs
    shares = [_planned_contacts(output) for output in outputs]
    assert all(0 < share < CONTACTS for share in shares), shares  # neither did it all
    assert sum(shares) == CONTACTS
    # One of them wrote the year's plan, and says so; the other says the first did.
    assert sorted("wrote the plan of 2027: 120 contacts" in out for out in outputs) == [
        False,
        True,
    ], outputs
    assert _export(machine_b, shared) == _export(single, reference)
    assert _export(machine_a, shared) == _export(single, reference)


def test_a_killed_plan_run_leaves_its_chunk_to_the_other_machine(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    shared, reference = databases
    machine_a, machine_b = _machine(tmp_path, "machine-a"), _machine(tmp_path, "machine-b")
    single = _machine(tmp_path, "single")
    _prepare(machine_a, shared, plan=True)  # an old plan of the year, to be replaced
    _prepare(single, reference, plan=True)

    # Each machine claims one of the two chunks and waits to plan it; then one of them dies.
    plan = ("plan", "2027", "--as-of", "2027-01-01", "--workers", "1", "--chunk-size", "100")
    engine = create_engine(shared)
    try:
        with engine.connect() as holder:
            holder.execute(text(HOLD_CHUNKS))
            runs = [_start(machine_a, shared, *plan), _start(machine_b, shared, *plan)]
            _wait_for_waiters(engine, runs, 2)
            dying, survivor = runs
            dying.kill()
            dying.communicate(timeout=50)
            holder.rollback()
        output = _finish(survivor)
        with engine.connect() as connection:
            runs_made = connection.execute(text("SELECT count(*) FROM plan_runs")).scalar_one()
            tables = len(job_tables(connection))
    finally:
        engine.dispose()
    assert dying.returncode == -9
    # The survivor planned its chunk and, once the dead run's claim went with its
    # connection, that chunk too; then it wrote the year's plan alone.
    assert _planned_contacts(output) == CONTACTS, output
    assert "wrote the plan of 2027" not in output  # no other process had a part in it
    assert _export(machine_b, shared) == _export(single, reference)
    assert (runs_made, tables) == (2, 0)  # the old plan's run and this one; nothing left over


def _wait_for_waiters(engine: Engine, runs: list[subprocess.Popen[str]], count: int) -> None:
    """Wait until `count` sessions of the database wait for a lock, while `runs` run."""
    deadline = time.monotonic() + 40
    while _waiting(engine) < count:
        assert all(run.poll() is None for run in runs), [_finish(r) for r in runs]
        assert time.monotonic() < deadline, "the plan runs never waited"
        time.sleep(0.05)


def test_two_machines_planning_at_once_leave_one_plan(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    shared, reference = databases
    machine_a, machine_b = _machine(tmp_path, "machine-a"), _machine(tmp_path, "machine-b")
    single = _machine(tmp_path, "single")
    _prepare(machine_a, shared, plan=False)
    _prepare(single, reference, plan=True)

    # Both runs overlap for sure: the plan run's record (the last write of a plan) waits
    # on this lock until both processes are waiting on something (the other run on its
    # turn, planning.runs.take_turn; without it, on this lock too, having written its rows).
    plan = ("plan", "2027", "--as-of", "2027-01-01", "--workers", "1")
    engine = create_engine(shared)
    try:
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE plan_runs IN EXCLUSIVE MODE"))
            runs = [_start(machine_a, shared, *plan), _start(machine_b, shared, *plan)]
            deadline = time.monotonic() + 40
            while _waiting(engine) < 2:
                assert all(run.poll() is None for run in runs), [_finish(r) for r in runs]
                assert time.monotonic() < deadline, "the plan runs never waited"
                time.sleep(0.05)
            holder.rollback()
        for run in runs:
            _finish(run)
    finally:
        engine.dispose()
    assert _export(machine_b, shared) == _export(single, reference)


def _waiting(engine: Engine) -> int:
    """How many sessions of the database wait for a lock (a table's, a row's, an advisory)."""
    with engine.connect() as connection:
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(connection.execute(text(query)).scalar_one())


def test_a_plan_run_with_other_campaigns_is_refused_rather_than_mixed_in(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    shared, _ = databases
    machine_a, machine_b = _machine(tmp_path, "machine-a"), _machine(tmp_path, "machine-b")
    (machine_b / "campaigns/spring.yaml").write_text(
        "priority: 50\nschedule:\n  dates: [2027-04-13]\ntemplate: mail\n"
    )
    _prepare(machine_a, shared, plan=False)

    plan = ("plan", "2027", "--as-of", "2027-01-01", "--workers", "1", "--chunk-size", "100")
    engine = create_engine(shared)
    try:
        with engine.connect() as holder:
            holder.execute(text(HOLD_CHUNKS))
            first = _start(machine_a, shared, *plan)
            _wait_for_waiters(engine, [first], 1)  # machine A's run holds a chunk
            refused = _start(machine_b, shared, *plan)
            output, _ = refused.communicate(timeout=50)
            holder.rollback()
        assert _planned_contacts(_finish(first)) == CONTACTS
    finally:
        engine.dispose()
    assert refused.returncode == 2, output
    assert "another `trouw plan 2027` runs with other campaigns, segments or policy" in output
    assert "give every machine the same project files" in output
    assert "Traceback" not in output
