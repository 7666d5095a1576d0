"""Benchmark: every example segment's `count` beside a hand-written SQL query, same run.

    python scripts/bench_segments.py --contacts 100000 [--workdir DIR] [--as-of 2027-03-01]

Generates the demo shop at that scale (about ten events per contact) into a
fresh SQLite database (or reuses the one in --workdir), then for each segment
in segments/ times trouw's compiled count and a hand-written query for the
same question run directly with the sqlite3 module (several shapes of it
where the question is about events; the fastest counts). All run warm, best
of three, taking turns. Prints a table and writes bench-segments.json.
"""

from __future__ import annotations

import argparse
import json
import resource
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
from trouw.store.engine import CACHE_KIB

ROOT = Path(__file__).resolve().parents[1]
ZONE = ZoneInfo("Europe/Amsterdam")


# The contact-first index, for hand-written queries that a planner left to itself
# would answer from (type, occurred_at) plus a table read per event row.
BY_CONTACT = "events INDEXED BY ix_events_contact_type_time"
TROUW = "trouw"


def hand_written(clock: Clock) -> dict[str, list[tuple[str, str, dict[str, object]]]]:
    """The same questions, written by hand for SQLite: (label, SQL, parameters) each.

    A question about events gets the ways a competent person would try after a
    look at EXPLAIN QUERY PLAN: the plain query, the same query pointed at the
    contact-first index, and the per-contact shape; the benchmark compares
    trouw with the fastest of them.
    """

    def ts(moment: object) -> str:
        return str(moment) + ".000000" if "." not in str(moment) else str(moment)

    def since(text: str) -> str:
        return ts(clock.window_start(parse_duration(text)))

    end = ts(clock.end)
    d = clock.as_of
    week = sorted(
        {(d + timedelta(days=i)).month * 100 + (d + timedelta(days=i)).day for i in range(7)}
    )
    year: dict[str, object] = {"y": since("1y"), "end": end}
    fortnight: dict[str, object] = {"s": since("14d"), "end": end}
    quarter: dict[str, object] = {"s": since("90d"), "end": end}
    half_year: dict[str, object] = {"s": since("180d"), "end": end}

    def active(source: str) -> str:
        return (
            f"SELECT count(DISTINCT contact_id) FROM {source} WHERE type = 'purchase' "
            "AND occurred_at >= :y AND occurred_at < :end AND contact_id NOT IN "
            "(SELECT contact_id FROM events WHERE type = 'unsubscribe' AND occurred_at < :end)"
        )

    def big(source: str) -> str:
        return (
            f"SELECT count(*) FROM (SELECT contact_id FROM {source} WHERE type = 'purchase' "
            "AND occurred_at >= :y AND occurred_at < :end GROUP BY contact_id "
            "HAVING sum(amount) >= 500)"
        )

    def lapsed(source: str) -> str:
        return (
            f"SELECT count(*) FROM (SELECT contact_id FROM {source} WHERE type = 'purchase' "
            "AND occurred_at < :end GROUP BY contact_id "
            "HAVING count(*) >= 2 AND max(occurred_at) < :s)"
        )

    def repeat(source: str) -> str:
        return (
            f"SELECT count(*) FROM (SELECT contact_id FROM {source} WHERE type = 'purchase' "
            "AND occurred_at < :end GROUP BY contact_id HAVING count(*) >= 3)"
        )

    def per_contact(exists: str, absent: str) -> str:
        return (
            "SELECT count(*) FROM contacts c WHERE EXISTS (SELECT 1 FROM events e "
            f"WHERE e.contact_id = c.id AND {exists}) AND NOT EXISTS (SELECT 1 FROM events e "
            f"WHERE e.contact_id = c.id AND {absent})"
        )

    def purchases(at_least: int) -> str:
        return (
            "SELECT count(*) FROM contacts c WHERE (SELECT count(*) FROM events e "
            "WHERE e.contact_id = c.id AND e.type = 'purchase' AND e.occurred_at < :end) "
            f">= {at_least}"
        )

    return {
        "active-customers": [
            ("plain", active("events"), year),
            ("by contact", active(BY_CONTACT), year),
            (
                "per contact",
                per_contact(
                    "e.type = 'purchase' AND e.occurred_at >= :y AND e.occurred_at < :end",
                    "e.type = 'unsubscribe' AND e.occurred_at < :end",
                ),
                year,
            ),
        ],
        "big-spenders": [
            ("plain", big("events"), year),
            ("by contact", big(BY_CONTACT), year),
        ],
        "birthday-this-week": [
            (
                "plain",
                "SELECT count(*) FROM contacts WHERE "
                f"CAST(strftime('%m%d', birthday) AS INTEGER) IN ({', '.join(map(str, week))})",
                {},
            )
        ],
        "cart-abandoners": [
            (
                "plain",
                "SELECT count(DISTINCT contact_id) FROM events WHERE type = 'add_to_cart' "
                "AND occurred_at >= :s AND occurred_at < :end AND contact_id NOT IN "
                "(SELECT contact_id FROM events WHERE type = 'purchase' AND occurred_at >= :s "
                "AND occurred_at < :end)",
                fortnight,
            ),
            (
                "per contact",
                per_contact(
                    "e.type = 'add_to_cart' AND e.occurred_at >= :s AND e.occurred_at < :end",
                    "e.type = 'purchase' AND e.occurred_at >= :s AND e.occurred_at < :end",
                ),
                fortnight,
            ),
        ],
        "detractors": _nps_sql(0, 6, end),
        "promoters": _nps_sql(9, 10, end),
        "families": [
            (
                "plain",
                "SELECT count(*) FROM contacts "
                "WHERE json_extract(attributes, '$.household') = 'family'",
                {},
            )
        ],
        "singles": [
            (
                "plain",
                "SELECT count(*) FROM contacts "
                "WHERE json_extract(attributes, '$.household') = 'single'",
                {},
            )
        ],
        "fire-safety-prospects": [
            (
                "plain",
                "SELECT count(DISTINCT contact_id) FROM events WHERE type = 'click' "
                "AND tag = 'fire-safety' AND occurred_at >= :s AND occurred_at < :end "
                "AND contact_id NOT IN (SELECT contact_id FROM events WHERE type = 'purchase' "
                "AND product = 'smoke-detector' AND occurred_at < :end)",
                quarter,
            ),
            (
                "from clicks",
                "SELECT count(DISTINCT contact_id) FROM events c WHERE type = 'click' "
                "AND tag = 'fire-safety' AND occurred_at >= :s AND occurred_at < :end "
                "AND NOT EXISTS (SELECT 1 FROM events p WHERE p.contact_id = c.contact_id "
                "AND p.type = 'purchase' AND p.product = 'smoke-detector' "
                "AND p.occurred_at < :end)",
                quarter,
            ),
            (
                "per contact",
                per_contact(
                    "e.type = 'click' AND e.tag = 'fire-safety' AND e.occurred_at >= :s "
                    "AND e.occurred_at < :end",
                    "e.type = 'purchase' AND e.product = 'smoke-detector' AND e.occurred_at < :end",
                ),
                quarter,
            ),
        ],
        "lapsed-buyers": [
            ("plain", lapsed("events"), half_year),
            ("by contact", lapsed(BY_CONTACT), half_year),
        ],
        "new-customers": [
            (
                "plain",
                "SELECT count(*) FROM contacts WHERE customer_since > :d",
                {"d": (d - timedelta(days=90)).isoformat()},
            )
        ],
        "prefers-post": [("plain", "SELECT count(*) FROM contacts WHERE channel = 'post'", {})],
        "repeat-buyers": [
            ("plain", repeat("events"), {"end": end}),
            ("by contact", repeat(BY_CONTACT), {"end": end}),
            ("per contact", purchases(3), {"end": end}),
        ],
    }


def _nps_sql(low: int, high: int, end: str) -> list[tuple[str, str, dict[str, object]]]:
    answers = "type = 'survey' AND tag = 'nps' AND score IS NOT NULL AND occurred_at < :end"
    return [
        (
            "window",
            "SELECT count(*) FROM (SELECT contact_id, score, row_number() OVER "
            "(PARTITION BY contact_id ORDER BY occurred_at DESC, id DESC) AS n FROM events "
            f"WHERE {answers}) WHERE n = 1 AND score BETWEEN {low} AND {high}",
            {"end": end},
        ),
        (
            "per contact",
            "SELECT count(*) FROM contacts c WHERE (SELECT score FROM events "
            f"WHERE contact_id = c.id AND {answers} ORDER BY occurred_at DESC, id DESC "
            f"LIMIT 1) BETWEEN {low} AND {high}",
            {"end": end},
        ),
    ]


def race(runs: int, contenders: dict[str, Callable[[], int]]) -> dict[str, tuple[float, int]]:
    """Each contender's best time of `runs` and its count, taking turns run by run.

    Turns, so that a busy moment on a shared machine slows every contender alike.
    """
    best = {label: (float("inf"), 0) for label in contenders}
    for _ in range(runs):
        for label, work in contenders.items():
            started = time.perf_counter()
            result = work()
            best[label] = (min(best[label][0], time.perf_counter() - started), result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2027, 3, 1))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-segments.json"))
    parser.add_argument("segments", nargs="*", help="only these segments (default: all)")
    args = parser.parse_args()
    workdir = args.workdir or Path(f".trouw/bench-segments-{args.contacts}")
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "trouw.db"
    if not database.exists():
        # As a shop's database is after `trouw import`: no ANALYZE statistics.
        print(f"generating {args.contacts} contacts in {workdir} …", file=sys.stderr)
        files = write_demo_files(workdir, contacts=args.contacts, as_of=args.as_of)
        engine = open_store(f"sqlite:///{database}")
        import_contacts(engine, files.contacts_path, timezone="Europe/Amsterdam")
        import_events(engine, files.events_path, timezone="Europe/Amsterdam")
    else:
        engine = open_store(f"sqlite:///{database}")
    catalog = load_catalog(ROOT / "segments")
    clock = Clock(args.as_of, ZONE)
    queries = hand_written(clock)
    raw = sqlite3.connect(database)
    # The same page cache as trouw's own connections, so only the SQL differs.
    raw.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    rows = []
    with engine.connect() as connection:
        for name in args.segments or catalog.names:
            segment = catalog.get(name)
            contenders: dict[str, Callable[[], int]] = {
                TROUW: lambda s=segment: count_members(connection, s, catalog, clock)
            }
            for label, sql, params in queries[name]:
                contenders[label] = lambda q=sql, p=params: int(raw.execute(q, p).fetchone()[0])
            timings = race(args.runs, contenders)
            ours, count = timings.pop(TROUW)
            shapes = {
                label: {"members": found, "s": round(seconds, 4)}
                for label, (seconds, found) in timings.items()
            }
            best = min(shapes, key=lambda label: shapes[label]["s"])
            theirs = shapes[best]["s"]
            rows.append(
                {
                    "segment": name,
                    "members": count,
                    "hand_written_members": sorted({shape["members"] for shape in shapes.values()}),
                    "trouw_s": round(ours, 4),
                    "hand_written_s": theirs,
                    "hand_written_shape": best,
                    "ratio": round(ours / theirs, 2) if theirs else None,
                    "shapes": shapes,
                    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                }
            )
            print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)
    print(
        f"{'segment':24} {'members':>9} {'trouw s':>9} {'by hand s':>9} {'ratio':>6}"
        f"  {'fastest by hand':16} {'max RSS MiB':>11}"
    )
    for row in rows:
        same = (
            ""
            if row["hand_written_members"] == [row["members"]]
            else f"  (hand-written: {row['hand_written_members']})"
        )
        print(
            f"{row['segment']:24} {row['members']:>9} {row['trouw_s']:>9.3f} "
            f"{row['hand_written_s']:>9.3f} {row['ratio']:>6}  {row['hand_written_shape']:16} "
            f"{row['max_rss_mib']:>11}{same}"
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
