"""Benchmark: `trouw plan YEAR` on the example calendar beside a raw insert of as many rows.

    python scripts/bench_plan.py --contacts 100000 [--workdir DIR] [--runs 2]

Generates the demo shop at that scale into a fresh SQLite database (in a child
process, so its memory does not count), or reuses the one in --workdir. Then,
in this process: plans the year with the repository's example calendar
(segments/, templates/, campaigns/, trouw.toml), and inserts the same number
of rows into a copy of the plan table (same columns and indexes) with plain
sqlite3.executemany in batches of 10,000, in one transaction. Each is run
--runs times, best time kept. Peak memory is this process's max RSS, and the
peak of its RSS plus its worker processes' (--workers), sampled every 0.1 s.
Targets: plan <= 3x the raw insert, under 5 minutes and 500 MB at 1M contacts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generate(workdir: Path, contacts: int, as_of: date) -> None:
    from trouw.demo.generator import write_demo_files
    from trouw.importing import import_contacts, import_events
    from trouw.store import open_store

    files = write_demo_files(workdir / "demo", contacts=contacts, as_of=as_of)
    engine = open_store(f"sqlite:///{workdir / 'trouw.db'}")
    import_contacts(engine, files.contacts_path, timezone="Europe/Amsterdam")
    import_events(engine, files.events_path, timezone="Europe/Amsterdam")
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def project_copy(workdir: Path) -> Path:
    """The example project's files next to the database (re-copied: the calendar may change)."""
    project = workdir / "project"
    for name in ("segments", "templates", "campaigns"):
        shutil.rmtree(project / name, ignore_errors=True)
        shutil.copytree(ROOT / name, project / name)
    shutil.copy(ROOT / "trouw.toml", project / "trouw.toml")
    return project


def run_plan(
    database: Path, project: Path, year: int, as_of: date, chunk: int, workers: int
) -> tuple[float, int]:
    from trouw.planning import plan_year
    from trouw.project import load_project
    from trouw.store import atomic, open_store

    engine = open_store(f"sqlite:///{database}")
    started = time.perf_counter()
    with atomic(engine) as connection:
        summary = plan_year(
            connection,
            load_project(project),
            year=year,
            as_of=as_of,
            chunk_size=chunk,
            workers=workers,
        )
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, sum(summary.statuses.values())


def raw_insert(database: Path, rows: int) -> float:
    """Insert `rows` plan-shaped rows with sqlite3 executemany into a fresh indexed copy."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA cache_size = -65536")
    connection.execute("DROP TABLE IF EXISTS bench_plan_raw")
    connection.execute(
        "CREATE TABLE bench_plan_raw (id INTEGER PRIMARY KEY, contact_id VARCHAR(200) NOT NULL, "
        "day DATE NOT NULL, campaign VARCHAR(200) NOT NULL, step VARCHAR(200) NOT NULL, "
        "occurrence VARCHAR(50) NOT NULL, template VARCHAR(300), channel VARCHAR(10) NOT NULL, "
        "priority INTEGER NOT NULL, status VARCHAR(10) NOT NULL, reason TEXT)"
    )
    connection.execute("CREATE INDEX ix_bench_plan_raw_day ON bench_plan_raw (day)")
    connection.execute("CREATE INDEX ix_bench_plan_raw_contact ON bench_plan_raw (contact_id)")
    sql = (
        "INSERT INTO bench_plan_raw (contact_id, day, campaign, step, occurrence, template, "
        "channel, priority, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    days = [date.fromordinal(date(2027, 1, 1).toordinal() + i).isoformat() for i in range(365)]
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    for start in range(0, rows, 10_000):
        batch = [
            (f"demo-{(n // 6):07d}", days[n % 365], "spring-outing", "main",
             f"spring-outing:{days[n % 365]}", "spring/generic", "email", 50, "planned", None)
            for n in range(start, min(rows, start + 10_000))
        ]  # fmt: skip
        connection.executemany(sql, batch)
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.execute("DROP TABLE bench_plan_raw")
    connection.close()
    return elapsed


class MemorySampler(threading.Thread):
    """The peak of this process's RSS plus its children's (Linux /proc), every 0.1 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            self.peak_kib = max(self.peak_kib, self.total_kib())

    @staticmethod
    def total_kib() -> int:
        pids, total = [str(os.getpid())], 0
        while pids:
            pid = pids.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            total += next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")),
                0,
            )
            pids.extend(children)
        return total


def main() -> None:
    from trouw.planning.parallel import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 12, 1))
    parser.add_argument("--year", type=int, default=2027)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="planner worker processes"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-plan.json"))
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(f".trouw/bench-plan-{args.contacts}")
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "trouw.db"
    if args.generate_only:
        generate(workdir, args.contacts, args.as_of)
        return
    if not database.exists():
        print(f"generating {args.contacts} contacts in {workdir} …", file=sys.stderr)
        started = time.perf_counter()
        command = [sys.executable, __file__, "--generate-only", "--contacts", str(args.contacts),
                   "--workdir", str(workdir), "--as-of", args.as_of.isoformat()]  # fmt: skip
        subprocess.run(command, check=True)
        print(f"  generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    project = project_copy(workdir)
    plan_times, raw_times, rows = [], [], 0
    sampler = MemorySampler()
    sampler.start()
    for _ in range(args.runs):
        elapsed, rows = run_plan(
            database, project, args.year, args.as_of, args.chunk_size, args.workers
        )
        plan_times.append(elapsed)
        raw_times.append(raw_insert(database, rows))
    sampler.stopped.set()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total_mb = max(sampler.peak_kib / 1024, peak_mb)
    plan_s, raw_s = min(plan_times), min(raw_times)
    result = {
        "contacts": args.contacts,
        "workers": args.workers,
        "plan_rows": rows,
        "plan_seconds": round(plan_s, 2),
        "raw_insert_seconds": round(raw_s, 2),
        "ratio": round(plan_s / raw_s, 2),
        "peak_rss_mb": round(peak_mb),
        "peak_rss_with_workers_mb": round(total_mb),
        "plan_runs": [round(t, 2) for t in plan_times],
        "raw_runs": [round(t, 2) for t in raw_times],
    }
    print(
        f"{args.contacts} contacts -> {rows} plan rows: plan {plan_s:.1f} s "
        f"({args.workers} worker{'s' if args.workers > 1 else ''}), raw insert "
        f"{raw_s:.1f} s (x{plan_s / raw_s:.2f}), peak RSS {peak_mb:.0f} MB "
        f"({total_mb:.0f} MB with the workers)"
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
