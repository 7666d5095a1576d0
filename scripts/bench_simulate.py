"""Benchmark: `trouw simulate` of a year beside `trouw plan` of the same year and shop.

    python scripts/bench_simulate.py --contacts 10000 [--workdir DIR] [--days 365]
        [--simulate-workers N] [--repeat N]

Generates the demo shop at that scale into a fresh SQLite database (in a child
process, as scripts/bench_plan.py does), with its events running up to the end
of the simulated year, so purchases, clicks and unsubscribes happen during it.
Then, in this process, with the repository's example calendar: plans the year
as of its first day (`trouw plan`, --workers processes), and simulates the
same year day by day on a scratch copy (`trouw simulate`, copy included,
--simulate-workers processes). --repeat N times both, one after the other, N
times (a machine whose speed drifts within minutes then shows in the pairs),
and gives the ratio of the medians.
--plain also times the replay that decides every contact every day (slow: a
plan a day; use it on small shops or with --days). Prints the seconds and the
ratio simulate / plan. Target: <= 5x at 100,000 contacts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import project_copy, run_plan


def run_simulate(
    database: Path,
    project: Path,
    start: date,
    days: int,
    chunk: int,
    *,
    incremental: bool,
    workers: int = 1,
) -> tuple[float, int]:
    from trouw.planning.scratch import scratch_copy
    from trouw.planning.simulate import simulate_period
    from trouw.project import load_project
    from trouw.store import open_store

    engine = open_store(f"sqlite:///{database}")
    out = database.parent / ("simulate" if incremental else "simulate-plain")
    started = time.perf_counter()
    with scratch_copy(engine) as scratch, scratch.connect() as connection:
        summary = simulate_period(
            connection, load_project(project), start=start,
            end=start + timedelta(days=days - 1), out_dir=out, chunk_size=chunk,
            incremental=incremental, workers=workers,
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, summary.sends


def main() -> None:
    from trouw.planning.parallel import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--year", type=int, default=2027)
    parser.add_argument("--days", type=int, default=365, help="simulated days from 1 January")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=default_workers(), help="plan processes")
    parser.add_argument(
        "--simulate-workers", type=int, default=default_workers(), help="simulate processes"
    )
    parser.add_argument("--plain", action="store_true", help="also time the every-contact replay")
    parser.add_argument("--repeat", type=int, default=1, help="plan and simulate, N times each")
    parser.add_argument("--out", type=Path, default=Path("bench-simulate.json"))
    args = parser.parse_args()
    start = date(args.year, 1, 1)
    workdir = args.workdir or Path(f".trouw/bench-simulate-{args.contacts}")
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "trouw.db"
    if not database.exists():
        print(f"generating {args.contacts} contacts in {workdir} …", file=sys.stderr)
        command = [sys.executable, str(Path(__file__).parent / "bench_plan.py"), "--generate-only",
                   "--contacts", str(args.contacts), "--workdir", str(workdir),
                   "--as-of", date(args.year, 12, 31).isoformat()]  # fmt: skip
        subprocess.run(command, check=True)
    project = project_copy(workdir)
    plans: list[float] = []
    simulations: list[float] = []
    for _ in range(max(1, args.repeat)):
        plan_s, rows = run_plan(database, project, args.year, start, args.chunk_size, args.workers)
        simulate_s, sends = run_simulate(
            database, project, start, args.days, args.chunk_size, incremental=True,
            workers=args.simulate_workers,
        )  # fmt: skip
        plans.append(plan_s)
        simulations.append(simulate_s)
        if args.repeat > 1:
            print(f"  plan {plan_s:.1f} s, simulate {simulate_s:.1f} s: x{simulate_s / plan_s:.2f}")
    plan_s, simulate_s = statistics.median(plans), statistics.median(simulations)
    result: dict[str, object] = {
        "contacts": args.contacts,
        "days": args.days,
        "plan_workers": args.workers,
        "plan_rows": rows,
        "plan_seconds": round(plan_s, 2),
        "simulate_workers": args.simulate_workers,
        "simulate_sends": sends,
        "simulate_seconds": round(simulate_s, 2),
        "ratio": round(simulate_s / plan_s, 2),
        "plan_runs": [round(x, 2) for x in plans],
        "simulate_runs": [round(x, 2) for x in simulations],
    }
    median = " (medians)" if args.repeat > 1 else ""
    line = (
        f"{args.contacts} contacts, {args.days} days{median}: plan {plan_s:.1f} s ({rows} rows, "
        f"{args.workers} worker{'s' if args.workers > 1 else ''}), simulate {simulate_s:.1f} s "
        f"({sends} sends, {args.simulate_workers} worker"
        f"{'s' if args.simulate_workers > 1 else ''}): x{simulate_s / plan_s:.2f}"
    )
    if args.plain:
        plain_s, plain_sends = run_simulate(
            database, project, start, args.days, args.chunk_size, incremental=False
        )
        result["plain_simulate_seconds"] = round(plain_s, 2)
        line += f"; every contact every day {plain_s:.1f} s (x{plain_s / plan_s:.2f})"
        assert plain_sends == sends, (plain_sends, sends)
    print(line)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
