"""Benchmark: every example segment's `count` beside a hand-written SQL query, same run.

    python scripts/bench_segments.py --contacts 100000 [--workdir DIR] [--as-of 2027-03-01]

Generates the demo shop at that scale (about ten events per contact) into a
fresh SQLite database (or reuses the one in --workdir), then for each segment
in segments/ times trouw's compiled count and a hand-written query for the
same question run directly with the sqlite3 module. Both run warm, best of
three. Prints a table and writes bench-segments.json.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from trouw.demo.generator import write_demo_files
from trouw.durations import parse_duration
from trouw.importing import import_contacts, import_events
from trouw.segments import Clock, count_members, load_catalog
from trouw.store import open_store

ROOT = Path(__file__).resolve().parents[1]
ZONE = ZoneInfo("Europe/Amsterdam")


def hand_written(clock: Clock) -> dict[str, tuple[str, dict[str, object]]]:
    """The same questions, written by hand for SQLite, with their parameters."""

    def ts(moment: object) -> str:
        return str(moment) + ".000000" if "." not in str(moment) else str(moment)

    def since(text: str) -> str:
        return ts(clock.window_start(parse_duration(text)))

    end = ts(clock.end)
    d = clock.as_of
    week = sorted(
        {(d + timedelta(days=i)).month * 100 + (d + timedelta(days=i)).day for i in range(7)}
    )
    return {
        "active-customers": (
            "SELECT count(DISTINCT contact_id) FROM events WHERE type = 'purchase' "
            "AND occurred_at >= :y AND occurred_at < :end AND contact_id NOT IN "
            "(SELECT contact_id FROM events WHERE type = 'unsubscribe' AND occurred_at < :end)",
            {"y": since("1y"), "end": end},
        ),
        "big-spenders": (
            "SELECT count(*) FROM (SELECT contact_id FROM events WHERE type = 'purchase' "
            "AND occurred_at >= :y AND occurred_at < :end GROUP BY contact_id "
            "HAVING sum(amount) >= 1000)",
            {"y": since("1y"), "end": end},
        ),
        "birthday-this-week": (
            "SELECT count(*) FROM contacts WHERE CAST(strftime('%m%d', birthday) AS INTEGER) "
            f"IN ({', '.join(map(str, week))})",
            {},
        ),
        "cart-abandoners": (
            "SELECT count(DISTINCT contact_id) FROM events WHERE type = 'add_to_cart' "
            "AND occurred_at >= :s AND occurred_at < :end AND contact_id NOT IN "
            "(SELECT contact_id FROM events WHERE type = 'purchase' AND occurred_at >= :s "
            "AND occurred_at < :end)",
            {"s": since("14d"), "end": end},
        ),
        "detractors": (_nps_sql(0, 6), {"end": end}),
        "promoters": (_nps_sql(9, 10), {"end": end}),
        "families": (
            "SELECT count(*) FROM contacts WHERE json_extract(attributes, '$.household') = "
            "'family'",
            {},
        ),
        "singles": (
            "SELECT count(*) FROM contacts WHERE json_extract(attributes, '$.household') = "
            "'single'",
            {},
        ),
        "fire-safety-prospects": (
            "SELECT count(DISTINCT contact_id) FROM events WHERE type = 'click' "
            "AND tag = 'fire-safety' AND occurred_at >= :s AND occurred_at < :end "
            "AND contact_id NOT IN (SELECT contact_id FROM events WHERE type = 'purchase' "
            "AND product = 'smoke-detector' AND occurred_at < :end)",
            {"s": since("90d"), "end": end},
        ),
        "lapsed-buyers": (
            "SELECT count(*) FROM (SELECT contact_id FROM events WHERE type = 'purchase' "
            "AND occurred_at < :end GROUP BY contact_id "
            "HAVING count(*) >= 2 AND max(occurred_at) < :s)",
            {"s": since("180d"), "end": end},
        ),
        "new-customers": (
            "SELECT count(*) FROM contacts WHERE customer_since > :d",
            {"d": (d - timedelta(days=90)).isoformat()},
        ),
        "prefers-post": ("SELECT count(*) FROM contacts WHERE channel = 'post'", {}),
        "repeat-buyers": (
            "SELECT count(*) FROM (SELECT contact_id FROM events WHERE type = 'purchase' "
            "AND occurred_at < :end GROUP BY contact_id HAVING count(*) >= 3)",
            {"end": end},
        ),
    }


def _nps_sql(low: int, high: int) -> str:
    return (
        "SELECT count(*) FROM (SELECT contact_id, score, row_number() OVER "
        "(PARTITION BY contact_id ORDER BY occurred_at DESC, id DESC) AS n FROM events "
        "WHERE type = 'survey' AND tag = 'nps' AND score IS NOT NULL AND occurred_at < :end) "
        f"WHERE n = 1 AND score BETWEEN {low} AND {high}"
    )


def best_of(runs: int, work: Callable[[], int]) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2027, 3, 1))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-segments.json"))
    args = parser.parse_args()
    workdir = args.workdir or Path(f".trouw/bench-segments-{args.contacts}")
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "trouw.db"
    if not database.exists():
        print(f"generating {args.contacts} contacts in {workdir} …", file=sys.stderr)
        files = write_demo_files(workdir, contacts=args.contacts, as_of=args.as_of)
        engine = open_store(f"sqlite:///{database}")
        import_contacts(engine, files.contacts_path, timezone="Europe/Amsterdam")
        import_events(engine, files.events_path, timezone="Europe/Amsterdam")
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    else:
        engine = open_store(f"sqlite:///{database}")
    catalog = load_catalog(ROOT / "segments")
    clock = Clock(args.as_of, ZONE)
    queries = hand_written(clock)
    raw = sqlite3.connect(database)
    rows = []
    with engine.connect() as connection:
        for name in catalog.names:
            segment = catalog.get(name)
            ours, count = best_of(
                args.runs, lambda s=segment: count_members(connection, s, catalog, clock)
            )
            sql, params = queries[name]
            theirs, expected = best_of(
                args.runs, lambda q=sql, p=params: int(raw.execute(q, p).fetchone()[0])
            )
            rows.append(
                {
                    "segment": name,
                    "members": count,
                    "hand_written_members": expected,
                    "trouw_s": round(ours, 4),
                    "hand_written_s": round(theirs, 4),
                    "ratio": round(ours / theirs, 2) if theirs else None,
                }
            )
    print(f"{'segment':24} {'members':>9} {'trouw s':>9} {'by hand s':>9} {'ratio':>6}")
    for row in rows:
        same = (
            ""
            if row["members"] == row["hand_written_members"]
            else f"  (hand-written: {row['hand_written_members']})"
        )
        print(
            f"{row['segment']:24} {row['members']:>9} {row['trouw_s']:>9.3f} "
            f"{row['hand_written_s']:>9.3f} {row['ratio']:>6}{same}"
        )
    args.out.write_text(
        json.dumps(
            {"contacts": args.contacts, "as_of": str(args.as_of), "results": rows}, indent=2
        ),
        encoding="utf-8",
    )
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
