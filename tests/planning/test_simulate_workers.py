"""`simulate --workers N`: the chunks decided in N processes, the days in lockstep, write what
one process writes: the same timeline.csv, weeks.csv and pressure.csv, and the same ledger
rows (those the A/B winner is picked from), on SQLite and PostgreSQL. The demo shop with
the example calendar, plus an A/B test whose winner (picked in the main process between
days) goes to the rest, and an `entered` trigger (the main process's day snapshots). A
worker that dies or fails makes the run fail with a message, not hang."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tests.conftest import Cli
from tests.planning.shop import timeline_rows
from trouw.demo.generator import write_demo_files
from trouw.errors import WorkFailed
from trouw.importing import import_contacts, import_events
from trouw.planning.scratch import scratch_copy
from trouw.planning.simulate import simulate_period
from trouw.project import load_project
from trouw.store import ledger, test_winners

ROOT = Path(__file__).resolve().parents[2]
START = date(2027, 3, 29)
DAYS = 14  # spring-outing on 2 April, the A/B test's first wave on 6 April, its rest on 7 April
CONTACTS = 240
CHUNK = 40  # 6 chunks: 3 per worker of 2
LAUNCH = (
    "priority: 55\nschedule:\n  dates: [2027-04-06]\n"
    "test:\n  arms:\n    - {template: spring/generic}\n    - {template: december/gift-ideas}\n"
    "  share: 40%\n  pick_by: click_rate\n  after: 24h\n"
)
BIG_SPENDER = "priority: 45\ntrigger: {entered: big-spenders}\ntemplate: spring/generic\n"
FILES = ("timeline.csv", "weeks.csv", "pressure.csv")
# The ledger row's first columns, in this order (all the others follow, all but the id).
FIRST = ("contact_id", "campaign", "step", "occurrence", "day", "template", "channel", "status")


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's contacts and events, running up to the end of the simulated period."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo_files(folder, contacts=CONTACTS, as_of=START + timedelta(days=DAYS))
    return folder


def _shop(root: Path, engine: Engine, demo: Path) -> Path:
    """The example project (with the A/B test and the `entered` trigger) on the demo data."""
    for name in ("segments", "templates", "campaigns"):
        shutil.copytree(ROOT / name, root / name, dirs_exist_ok=True)
    shutil.copy(ROOT / "trouw.toml", root / "trouw.toml")
    (root / "campaigns" / "launch.yaml").write_text(LAUNCH, encoding="utf-8")
    (root / "campaigns" / "big-spender.yaml").write_text(BIG_SPENDER, encoding="utf-8")
    import_contacts(engine, demo / "contacts.csv", timezone="Europe/Amsterdam")
    import_events(engine, demo / "events.jsonl", timezone="Europe/Amsterdam")
    return root


def _simulated(
    root: Path, engine: Engine, out: Path, workers: int, **options: Any
) -> tuple[list[tuple[Any, ...]], dict[str, str], list[tuple[Any, ...]]]:
    """The ledger rows the simulation wrote (without ids), its files, and the A/B winners."""
    with scratch_copy(engine) as scratch, scratch.connect() as connection:
        simulate_period(
            connection, load_project(root), start=START, end=START + timedelta(days=DAYS - 1),
            out_dir=out, chunk_size=CHUNK, workers=workers, **options,
        )  # fmt: skip
        first = [ledger.c[name] for name in FIRST]
        columns = [*first, *(c for c in ledger.c if c.name != "id" and c not in first)]
        with connection.begin():
            rows = sorted(tuple(row) for row in connection.execute(select(*columns)))
            winners = sorted(
                (row.campaign, row.step, row.occurrence, row.winner)
                for row in connection.execute(select(test_winners))
            )
    return rows, {name: (out / name).read_text(encoding="utf-8") for name in FILES}, winners


def test_two_workers_write_what_one_process_writes(
    tmp_path: Path, engine: Engine, demo_files: Path
) -> None:
    root = _shop(tmp_path / "shop", engine, demo_files)
    one = _simulated(root, engine, tmp_path / "one", workers=1)
    two = _simulated(root, engine, tmp_path / "two", workers=2)
    assert two[0] == one[0]
    assert two[1] == one[1]
    assert two[2] == one[2]
    sends = timeline_rows(tmp_path / "one")
    campaigns = {row[1] for row in sends}
    assert {"spring-outing", "launch"} <= campaigns, campaigns
    # The winner, picked between days by the main process, went to the rest on 7 April.
    assert [w[:3] for w in one[2]] == [("launch", "main", "launch:2027-04-06")]
    rest = {row[0] for row in sends if row[1] == "launch" and row[4] == "2027-04-07"}
    assert rest, "the rest of the A/B test got the winner"
    # The scratch ledger holds the sends the main process picks the winner from, no others.
    launched = [row[:7] for row in sends if row[1] == "launch"]
    assert sorted((*row[:4], row[4].isoformat(), *row[5:7]) for row in one[0]) == launched


def test_a_worker_that_is_killed_fails_the_run(
    tmp_path: Path, engine: Engine, demo_files: Path
) -> None:
    root = _shop(tmp_path / "shop", engine, demo_files)

    def kill_a_worker(day: date) -> None:
        if day == START + timedelta(days=1):
            worker = next(p for p in multiprocessing.active_children() if "simulate" in p.name)
            os.kill(worker.pid or 0, signal.SIGKILL)

    with pytest.raises(WorkFailed, match=r"simulate worker \d of 2 .* killed \(signal 9\)"):
        _simulated(root, engine, tmp_path / "out", workers=2, progress=kill_a_worker)


def test_a_worker_that_fails_fails_the_run_with_its_error(
    tmp_path: Path, db_url: str, engine: Engine, demo_files: Path
) -> None:
    root = _shop(tmp_path / "shop", engine, demo_files)

    def lose_the_snapshots(day: date) -> None:  # after the first day, on the scratch copy
        if day == START:  # the workers read them for the `entered` trigger, before the main
            with scratch.begin() as connection:  # process's day ends and writes them
                connection.execute(
                    text("ALTER TABLE segment_snapshots RENAME TO segment_snapshots_gone")
                )

    failure = r"simulate worker \d of 2 .* simulating 2027-03-30: .*segment_snapshots"
    with (
        scratch_copy(engine) as scratch,
        scratch.connect() as connection,
        pytest.raises(WorkFailed, match=failure),
    ):
        simulate_period(
            connection, load_project(root), start=START, end=START + timedelta(days=3),
            out_dir=tmp_path / "out", chunk_size=CHUNK, workers=2, progress=lose_the_snapshots,
        )  # fmt: skip


def test_simulate_workers_on_the_command_line(
    tmp_path: Path, engine: Engine, cli: Cli, demo_files: Path
) -> None:
    root = _shop(cli.project, engine, demo_files)
    end = (START + timedelta(days=4)).isoformat()
    args = ("simulate", "--from", START.isoformat(), "--to", end, "--chunk-size", "100")
    result = cli(*args, "--workers", "2", "--out", str(tmp_path / "two"))
    assert result.exit_code == 0, result.output
    one = cli(*args, "--workers", "1", "--out", str(tmp_path / "one"))
    assert one.exit_code == 0, one.output
    for name in FILES:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    refused = cli(*args, "--workers", "0")
    assert refused.exit_code == 2
    assert "--workers" in refused.output and "0" in refused.output
    assert root == cli.project
