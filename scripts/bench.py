"""Benchmarks: trouw's stages beside a hand-written baseline, in the same run.

    python scripts/bench.py import --contacts 1000000

generates the demo shop at that scale (about ten events per contact), then
imports contacts and events with `trouw import` and, into fresh databases
with the identical schema and SQLite settings, with two baselines that read
the same files with the standard library and call `sqlite3.executemany` in
the same batch size, without any validation:

- "indexed": into the tables as trouw has them, indexes and all;
- "bare": into the tables without their secondary indexes, which are built
  once the rows are in (the fastest a plain load can be).

Each side runs in its own process so that its peak memory is its own.
Prints a table (a ratio to each baseline) and writes bench-import.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from trouw.importing import CONTACT_FIELDS, EVENT_FIELDS
from trouw.store.engine import CACHE_KIB

BATCH = 5000
# The columns the baselines fill, in the order their rows come (_baseline_contacts/_events);
# bench_pg.py COPYs the same rows into the same columns.
BASELINE_COLUMNS = {
    "contacts": (*CONTACT_FIELDS, "attributes", "created_at", "updated_at"),
    "events": ("external_id", *EVENT_FIELDS[1:], "properties"),
}


def run_measured(command: list[str]) -> tuple[float, float]:
    """Run a command; return (seconds, peak resident MB) of that process alone."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024


# ---------------------------------------------------------------- the baseline (child process)


def baseline(kind: str, path: Path, database: Path, bare: bool = False) -> None:
    """Standard-library read + executemany, batch by batch, no validation; `bare`: with the
    table's secondary indexes dropped first and built after the last batch.

    The same SQLite settings as trouw's engine, so the difference is trouw's own work.
    """
    connection = sqlite3.connect(database, isolation_level=None)
    for pragma in (
        f"cache_size = -{CACHE_KIB}",
        "journal_mode = WAL",
        "synchronous = NORMAL",
        "foreign_keys = ON",
        "busy_timeout = 30000",
    ):
        connection.execute(f"PRAGMA {pragma}")
    columns = BASELINE_COLUMNS[kind]
    sql = f"INSERT INTO {kind} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    rows = _baseline_contacts(path) if kind == "contacts" else _baseline_events(path)
    table = kind
    indexes = [
        (name, sql)
        for name, sql in connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        )
        if sql is not None  # not the automatic ones of UNIQUE and PRIMARY KEY
    ]
    if bare:
        for name, _sql in indexes:
            connection.execute(f"DROP INDEX {name}")
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            _write(connection, sql, batch)
            batch = []
    _write(connection, sql, batch)
    if bare:
        for _name, index_sql in indexes:
            connection.execute(index_sql)
    connection.close()


def _write(connection: sqlite3.Connection, sql: str, batch: list[tuple]) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(sql, batch)
    connection.execute("COMMIT")


def _baseline_contacts(path: Path):  # type: ignore[no-untyped-def]
    now = "2026-01-01 00:00:00.000000"
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        known = [header.index(name) for name in CONTACT_FIELDS]
        extra = [(i, name) for i, name in enumerate(header) if name not in CONTACT_FIELDS]
        for values in reader:
            attributes = json.dumps({name: values[i] for i, name in extra})
            yield (*(values[i] or None for i in known), attributes, now, now)


def _baseline_events(path: Path):  # type: ignore[no-untyped-def]
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            values = [record.pop(name, None) for name in EVENT_FIELDS]
            yield (*values, json.dumps(record))


# ---------------------------------------------------------------- the driver


def bench_import(contacts: int, workdir: Path, kinds: list[str]) -> dict[str, object]:
    from trouw.demo.generator import write_demo_files
    from trouw.store import open_store

    project = workdir / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "trouw.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
    started = time.perf_counter()
    files = write_demo_files(workdir / "data", contacts=contacts, as_of=date(2026, 11, 23))
    generated = time.perf_counter() - started
    print(
        f"generated {files.contacts:,} contacts and {files.events:,} events in {generated:.1f} s",
        flush=True,
    )

    ours_db, base_db, bare_db = (workdir / f"{n}.db" for n in ("ours", "baseline", "bare"))
    for database in (ours_db, base_db, bare_db):
        for stale in workdir.glob(f"{database.name}*"):  # a kept workdir: start fresh
            stale.unlink()
        open_store(f"sqlite:///{database}").dispose()  # the same schema for both

    trouw = [
        sys.executable,
        "-m",
        "trouw",
        "--project",
        str(project),
        "--db",
        f"sqlite:///{ours_db}",
        "import",
    ]
    me = [sys.executable, __file__, "_baseline"]
    results = []
    stages = (
        ("contacts", files.contacts_path, files.contacts),
        ("events", files.events_path, files.events),
    )
    for kind, path, rows in stages:
        if kind not in kinds:
            if kind == "contacts":  # events need their contacts: load them untimed
                run_measured([*me, kind, str(path), str(base_db)])
                run_measured([*me, kind, str(path), str(bare_db)])
                run_measured([*trouw, kind, str(path)])
            continue
        base_s, base_mb = run_measured([*me, kind, str(path), str(base_db)])
        bare_s, _bare_mb = run_measured([*me, kind, str(path), str(bare_db), "bare"])
        ours_s, ours_mb = run_measured([*trouw, kind, str(path)])
        results.append(
            {
                "stage": f"import {kind}",
                "rows": rows,
                "ours_s": round(ours_s, 2),
                "ours_rows_per_s": round(rows / ours_s),
                "ours_peak_mb": round(ours_mb),
                "baseline_s": round(base_s, 2),
                "baseline_rows_per_s": round(rows / base_s),
                "baseline_peak_mb": round(base_mb),
                "ratio": round(base_s / ours_s, 2),
                "bare_s": round(bare_s, 2),
                "bare_rows_per_s": round(rows / bare_s),
                "ratio_to_bare": round(bare_s / ours_s, 2),
            }
        )
        print(f"  {kind} done", flush=True)
    return {
        "bench": "import",
        "contacts": contacts,
        "events": files.events,
        "generate_s": round(generated, 1),
        "stages": results,
    }


def print_table(report: dict[str, object]) -> None:
    print(
        f"\n{'stage':<16}{'rows':>12}{'trouw rows/s':>14}{'indexed rows/s':>16}{'ratio':>7}"
        f"{'bare rows/s':>13}{'ratio':>7}{'trouw MB':>10}{'base MB':>9}"
    )
    for stage in report["stages"]:  # type: ignore[attr-defined]
        print(
            f"{stage['stage']:<16}{stage['rows']:>12,}{stage['ours_rows_per_s']:>14,}"
            f"{stage['baseline_rows_per_s']:>16,}{stage['ratio']:>7}"
            f"{stage['bare_rows_per_s']:>13,}{stage['ratio_to_bare']:>7}"
            f"{stage['ours_peak_mb']:>10}{stage['baseline_peak_mb']:>9}"
        )
    print(
        "ratio = baseline time / trouw time (1.0 = as fast as a raw executemany); "
        "bare: into the table without secondary indexes, built after"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_baseline":
        baseline(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), bare="bare" in sys.argv[5:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["import"])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=Path("bench-import.json"))
    parser.add_argument(
        "--only", choices=["contacts", "events"], help="time one kind (events still load contacts)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trouw-bench-") as scratch:
        kinds = [args.only] if args.only else ["contacts", "events"]
        report = bench_import(args.contacts, args.workdir or Path(scratch), kinds)
    print_table(report)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
