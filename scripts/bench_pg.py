"""Benchmarks on PostgreSQL: each of trouw's stages beside its baseline, in the same run.

    python scripts/bench_pg.py --contacts 20000 [--database-url URL] [--mails 5000]
        [--stages import,segments,plan,send,clicks] [--workdir DIR] [--json bench-pg.json]
    python scripts/bench_pg.py --stages plan --database-url URL   # again, on a kept import

Generates the demo shop at that scale (about ten events per contact, as
scripts/bench.py does) and, on one PostgreSQL server:

- import: `trouw import contacts|events` of the generated files, beside `COPY`
  of the same rows (read from the same files with the standard library, as
  bench.py's baselines do) into a `baseline` schema whose tables are copies of
  trouw's (`LIKE … INCLUDING ALL` plus the same foreign keys);
- segments: every example segment's count (segments/, as of --as-of, warm,
  best of --runs, taking turns as bench_segments.py does) beside a
  hand-written query on the same tables, written here for PostgreSQL (several
  shapes where a competent person would try several; the fastest counts);
  also the time of a whole `trouw segments count NAME` process, start-up and
  all, as a user meets it (not part of the ratio). No ANALYZE is run: the JSON
  says whether the events had statistics yet (`events_analyzed`);
- plan: `trouw plan YEAR` of the example calendar beside `COPY` of the same
  plan rows (exported from it) into the baseline's copy of the plan table;
- send: `trouw send` with 1, 2 and 4 worker processes to bench_send.py's
  aiosmtpd sink (in its own process), each on a fresh copy of the planned
  database (CREATE DATABASE … TEMPLATE), for the busiest plan days until
  --mails are due (with trouw's default connections a worker), beside the
  sink's own limit for the same mail over as many connections as the largest
  run uses (the limit is no slower with more: 44 s against 47 s for 100,000
  mails over 16 and over 4), measured before and after the runs (the ratio is
  to their mean); then the last day once more with nothing left to send, the
  cost of deciding every contact that each day's run pays (`deciding_day_s`,
  shown beside the row), the day with the most mail alone against the sink's
  limit for its mails (`busiest_day_ratio`: on the example shop a catch-up
  day, the mails' own cost beside that of deciding) and the other days
  together (`other_days_ratio`: everyday runs);
- clicks: scripts/bench_clicks.py with --database-url on a database of its own.

Without the import stage, --database-url names a database an earlier run
imported into and kept (--keep): the other stages run on its contacts and
events again (its plan emptied first), without generating and importing anew.

Every trouw stage runs as its own process (the segment counts run in this
one) and its peak memory is that of its largest process (the run or one of
its workers), from wait4. Without --database-url a fresh database
`trouw_bench_…` is made on 127.0.0.1 and dropped at the end; with it, that
database must be empty (it is filled, not dropped). Either way the copies are
made beside it on the same server and dropped. A table is printed (trouw's
time as a multiple of its baseline's, and the issue's target) and the figures
are written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import create_engine, make_url

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

from bench import BASELINE_COLUMNS, _baseline_contacts, _baseline_events, run_measured  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ZONE = ZoneInfo("Europe/Amsterdam")
BASELINE = "baseline"  # the schema the COPY baselines write into
PLAN_COLUMNS = ("contact_id", "day", "campaign", "step", "occurrence", "template", "channel",
                "priority", "status", "reason")  # fmt: skip
STAGES = ("import", "segments", "plan", "send", "clicks")
SEND_WORKERS = (1, 2, 4)
# The targets, as trouw's time over the baseline's (lower is better).
TARGETS = {
    "import events": (2.0, "≥ 0.5x COPY's speed"),
    "segment": (1.5, "≤ 1.5x the hand-written query"),
    "plan": (3.0, "≤ 3x COPY of the rows"),
    "send, 2 workers": (2.0, "≥ 0.5x the sink's limit"),
}


def libpq(url: str) -> str:
    """The URL as psycopg takes it (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- the databases ---------------------------------------------------------------------------


class Databases:
    """The benchmark's database and the copies made beside it on the same server."""

    def __init__(self, url: str | None) -> None:
        self.owned = url is None
        if url is None:
            url = make_url(SERVER).set(database=f"trouw_bench_{uuid.uuid4().hex[:8]}")
            url = url.render_as_string(hide_password=False)
        self.url = url
        self.name = str(make_url(url).database)
        admin_url = make_url(url).set(database="postgres")
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.made: list[str] = []
        with self.admin.connect() as connection:
            self.version = int(connection.exec_driver_sql("SHOW server_version_num").scalar_one())
        if self.owned:
            self._create(self.name)

    def _create(self, name: str, template: str | None = None) -> None:
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            sql += f' TEMPLATE "{template}"'
            if self.version >= 150000:  # a file copy: no WAL for every page of a big database
                sql += " STRATEGY FILE_COPY"
        with self.admin.connect() as connection:
            connection.exec_driver_sql(sql)

    def copy(self, suffix: str, *, empty: bool = False) -> str:
        """A new database beside the main one: a copy of it (nobody may be connected), or empty."""
        name = f"{self.name}_{suffix}"
        self.drop(name)
        self._create(name, None if empty else self.name)
        self.made.append(name)
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_url(self, url: str) -> None:
        name = str(make_url(url).database)
        self.drop(name)
        if name in self.made:
            self.made.remove(name)

    def close(self, keep: bool) -> None:
        if not keep:
            for name in self.made:
                self.drop(name)
            if self.owned:
                self.drop(self.name)
        self.admin.dispose()


@contextmanager
def raw(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        yield connection


def make_baseline_schema(url: str) -> None:
    """trouw's schema (migrations), then `baseline`: copies of contacts, events and plan with
    the same columns, defaults, constraints, indexes and foreign keys."""
    from trouw.store import open_store

    open_store(url).dispose()
    tables = ("contacts", "events", "plan")
    with raw(url) as connection:
        found = connection.execute("SELECT count(*) FROM contacts").fetchone()
        if found and found[0]:
            raise SystemExit(f"{url} already holds contacts: give an empty database")
        connection.execute(f"DROP SCHEMA IF EXISTS {BASELINE} CASCADE")
        connection.execute(f"CREATE SCHEMA {BASELINE}")
        for table in tables:
            connection.execute(
                f"CREATE TABLE {BASELINE}.{table} (LIKE public.{table} INCLUDING ALL)"
            )
        keys = connection.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            (list(tables),),
        ).fetchall()
        with connection.transaction():
            connection.execute(f"SET LOCAL search_path TO {BASELINE}")  # REFERENCES resolve here
            for table, name, definition in keys:
                connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def imported(url: str) -> dict[str, int]:
    """A database an earlier run imported into and kept (--keep): its contacts and events,
    so that the later stages can be run again on it alone. Its plan and ledger (the send
    stage's earlier days) are emptied: the plan stage measures a first plan, as the run that
    imported did. Its schema is brought up to date first, and the baseline's plan table
    made again from trouw's, so that the COPY baseline meets the same indexes."""
    from trouw.store import open_store

    open_store(url).dispose()
    with raw(url) as connection:
        found = connection.execute(
            "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM events), "
            "to_regclass(%s) IS NOT NULL",
            (f"{BASELINE}.plan",),
        ).fetchone()
        assert found is not None
        if not found[0] or not found[2]:
            raise SystemExit(
                f"{url} holds no import of an earlier run: run with --stages import,… --keep"
            )
        connection.execute("TRUNCATE plan, plan_runs, plan_jobs, plan_chunks, ledger, send_runs")
        jobs = "SELECT tablename FROM pg_tables WHERE starts_with(tablename, 'plan_job_')"
        for (table,) in connection.execute(jobs).fetchall():  # of plans that never finished
            connection.execute(f'DROP TABLE "{table}"')
        connection.execute(f"DROP TABLE {BASELINE}.plan")
        connection.execute(f"CREATE TABLE {BASELINE}.plan (LIKE public.plan INCLUDING ALL)")
    return {"contacts": int(found[0]), "events": int(found[1])}


# --- the COPY baselines (child processes, so that their memory is their own) ----------------


def copy_rows(kind: str, path: Path, url: str) -> None:
    """The generated file's rows, read as bench.py's baselines read them, by COPY."""
    rows = _baseline_contacts(path) if kind == "contacts" else _baseline_events(path)
    columns = ", ".join(BASELINE_COLUMNS[kind])
    sql = f"COPY {BASELINE}.{kind} ({columns}) FROM STDIN"
    with raw(url) as connection, connection.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def copy_file(table: str, path: Path, url: str) -> None:
    """A file in COPY's text format into the baseline's copy of `table`."""
    sql = f"COPY {BASELINE}.{table} ({', '.join(PLAN_COLUMNS)}) FROM STDIN"
    with (
        raw(url) as connection,
        connection.cursor() as cursor,
        cursor.copy(sql) as copy,
        path.open("rb") as handle,
    ):
        while block := handle.read(1 << 20):
            copy.write(block)


def me(*args: str) -> list[str]:
    return [sys.executable, __file__, *args]


# --- import ----------------------------------------------------------------------------------


def stage(
    name: str,
    count: int,
    trouw_s: float,
    baseline: str,
    baseline_s: float,
    **extra: Any,
) -> dict[str, Any]:
    """One line of the report: trouw's time beside its baseline's, and the target if any."""
    ratio = trouw_s / baseline_s if baseline_s else None
    target = TARGETS.get(name) or (TARGETS["segment"] if name.startswith("segment ") else None)
    row: dict[str, Any] = {
        "stage": name,
        "count": count,
        "trouw_s": round(trouw_s, 4),
        "baseline": baseline,
        "baseline_s": round(baseline_s, 4),
        "ratio": round(ratio, 2) if ratio is not None else None,
        "target": f"x {target[0]} ({target[1]})" if target else None,
        "met": (ratio <= target[0]) if target and ratio is not None else None,
    }
    row.update(extra)
    return row


def bench_import(url: str, project: Path, files: Any) -> list[dict[str, Any]]:
    trouw = [sys.executable, "-m", "trouw", "--project", str(project), "--db", url, "import"]
    results = []
    for kind, path, rows in (
        ("contacts", files.contacts_path, files.contacts),
        ("events", files.events_path, files.events),
    ):
        print(f"import {kind} …", file=sys.stderr, flush=True)
        ours_s, ours_mb = run_measured([*trouw, kind, str(path)])
        base_s, base_mb = run_measured(me("_copy", kind, str(path), url))
        if kind == "events":  # the copies have served: no need to keep (or copy) them twice
            with raw(url) as connection:
                connection.execute(f"TRUNCATE {BASELINE}.events, {BASELINE}.contacts")
        results.append(
            stage(
                f"import {kind}", rows, ours_s, "COPY of the same rows", base_s,
                trouw_rows_per_s=round(rows / ours_s), baseline_rows_per_s=round(rows / base_s),
                trouw_peak_mb=round(ours_mb), baseline_peak_mb=round(base_mb),
            )
        )  # fmt: skip
    return results


# --- segments --------------------------------------------------------------------------------


def analyzed(url: str) -> bool:
    """Whether PostgreSQL has statistics on the events yet (trouw's import or autovacuum);
    the segment SQL of both sides is planned with what there is."""
    with raw(url) as connection:
        row = connection.execute(
            "SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL FROM pg_stat_user_tables "
            "WHERE schemaname = 'public' AND relname = 'events'"
        ).fetchone()
    return bool(row and row[0])


def hand_written(clock: Any) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """Each example segment's question by hand for PostgreSQL: (shape, SQL, parameters).

    Written from the segment files alone, on the tables as trouw has them and
    their indexes, the way a competent person would try after a look at
    EXPLAIN: a set-based shape and, where it may win, a per-contact one.
    """
    from trouw.durations import parse_duration

    def since(duration: str) -> datetime:
        return clock.window_start(parse_duration(duration))  # type: ignore[no-any-return]

    end = clock.end
    d = clock.as_of
    year = {"y": since("1y"), "end": end}
    fortnight = {"s": since("14d"), "end": end}
    quarter = {"s": since("90d"), "end": end}
    half_year = {"s": since("180d"), "end": end}
    week = sorted({(d + timedelta(days=i)).month * 100 + (d + timedelta(days=i)).day
                   for i in range(7)})  # fmt: skip

    def per_contact(exists: str, absent: str) -> str:
        return (
            "SELECT count(*) FROM contacts c WHERE EXISTS (SELECT 1 FROM events e "
            f"WHERE e.contact_id = c.id AND {exists}) AND NOT EXISTS (SELECT 1 FROM events e "
            f"WHERE e.contact_id = c.id AND {absent})"
        )

    def minus(first: str, second: str) -> str:
        return f"SELECT count(*) FROM ({first} EXCEPT {second}) AS members"

    def purchases(having: str, extra: str = "") -> str:
        return (
            "SELECT count(*) FROM (SELECT contact_id FROM events WHERE type = 'purchase' "
            f"AND occurred_at < %(end)s {extra} GROUP BY contact_id HAVING {having}) AS members"
        )

    def nps(low: int, high: int) -> list[tuple[str, str, dict[str, Any]]]:
        answers = "type = 'survey' AND tag = 'nps' AND score IS NOT NULL AND occurred_at < %(end)s"
        return [
            (
                "distinct on",
                "SELECT count(*) FROM (SELECT DISTINCT ON (contact_id) score FROM events "
                f"WHERE {answers} ORDER BY contact_id, occurred_at DESC, id DESC) AS latest "
                f"WHERE score BETWEEN {low} AND {high}",
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

    bought_in_year = (
        "SELECT contact_id FROM events WHERE type = 'purchase' "
        "AND occurred_at >= %(y)s AND occurred_at < %(end)s"
    )
    unsubscribed = (
        "SELECT contact_id FROM events WHERE type = 'unsubscribe' AND occurred_at < %(end)s"
    )
    carted = (
        "SELECT contact_id FROM events WHERE type = 'add_to_cart' "
        "AND occurred_at >= %(s)s AND occurred_at < %(end)s"
    )
    bought_since = (
        "SELECT contact_id FROM events WHERE type = 'purchase' "
        "AND occurred_at >= %(s)s AND occurred_at < %(end)s"
    )
    clicked = (
        "SELECT contact_id FROM events WHERE type = 'click' AND tag = 'fire-safety' "
        "AND occurred_at >= %(s)s AND occurred_at < %(end)s"
    )
    detector = (
        "SELECT contact_id FROM events WHERE type = 'purchase' AND product = 'smoke-detector' "
        "AND occurred_at < %(end)s"
    )
    return {
        "active-customers": [
            ("except", minus(bought_in_year, unsubscribed), year),
            (
                "per contact",
                per_contact(
                    "e.type = 'purchase' AND e.occurred_at >= %(y)s AND e.occurred_at < %(end)s",
                    "e.type = 'unsubscribe' AND e.occurred_at < %(end)s",
                ),
                year,
            ),
        ],
        "big-spenders": [
            ("group by", purchases("sum(amount) >= 500", "AND occurred_at >= %(y)s"), year)
        ],
        "birthday-this-week": [
            (
                "plain",
                "SELECT count(*) FROM contacts WHERE (extract(month FROM birthday) * 100 "
                "+ extract(day FROM birthday))::int = ANY(%(codes)s)",
                {"codes": week},
            )
        ],
        "cart-abandoners": [
            ("except", minus(carted, bought_since), fortnight),
            (
                "per contact",
                per_contact(
                    "e.type = 'add_to_cart' AND e.occurred_at >= %(s)s AND e.occurred_at < %(end)s",
                    "e.type = 'purchase' AND e.occurred_at >= %(s)s AND e.occurred_at < %(end)s",
                ),
                fortnight,
            ),
        ],
        "detractors": nps(0, 6),
        "promoters": nps(9, 10),
        "families": [
            ("plain", "SELECT count(*) FROM contacts WHERE attributes->>'household' = 'family'", {})
        ],
        "singles": [
            ("plain", "SELECT count(*) FROM contacts WHERE attributes->>'household' = 'single'", {})
        ],
        "fire-safety-prospects": [
            ("except", minus(clicked, detector), quarter),
            (
                "per contact",
                per_contact(
                    "e.type = 'click' AND e.tag = 'fire-safety' AND e.occurred_at >= %(s)s "
                    "AND e.occurred_at < %(end)s",
                    "e.type = 'purchase' AND e.product = 'smoke-detector' "
                    "AND e.occurred_at < %(end)s",
                ),
                quarter,
            ),
        ],
        "lapsed-buyers": [
            ("group by", purchases("count(*) >= 2 AND max(occurred_at) < %(s)s"), half_year)
        ],
        "new-customers": [
            (
                "plain",
                "SELECT count(*) FROM contacts WHERE customer_since > %(d)s",
                {"d": d - timedelta(days=90)},
            )
        ],
        "prefers-post": [("plain", "SELECT count(*) FROM contacts WHERE channel = 'post'", {})],
        "repeat-buyers": [
            ("group by", purchases("count(*) >= 3"), {"end": end}),
            (
                "per contact",
                "SELECT count(*) FROM contacts c WHERE (SELECT count(*) FROM events e "
                "WHERE e.contact_id = c.id AND e.type = 'purchase' AND e.occurred_at < %(end)s) "
                ">= 3",
                {"end": end},
            ),
        ],
    }


def bench_segments(
    url: str, project: Path, as_of: date, runs: int, once: float
) -> list[dict[str, Any]]:
    """Each segment's count, best of `runs` (of one, when a side took `once` seconds or more)."""
    from bench_segments import race
    from trouw.segments import Clock, count_members, load_catalog
    from trouw.store.engine import create_store_engine

    catalog = load_catalog(ROOT / "segments")
    clock = Clock(as_of, ZONE)
    queries = hand_written(clock)
    missing = sorted(set(catalog.names) - set(queries))
    if missing:
        raise SystemExit(f"no hand-written query for the segments {missing}: add one")
    engine = create_store_engine(url)
    results = []
    with engine.connect() as connection, raw(url) as by_hand:
        for name in catalog.names:
            print(f"segment {name} …", file=sys.stderr, flush=True)
            segment = catalog.get(name)
            contenders: dict[str, Callable[[], int]] = {
                "trouw": lambda s=segment: count_members(connection, s, catalog, clock)
            }
            for label, sql, params in queries[name]:

                def work(q: str = sql, p: dict[str, Any] = params) -> int:
                    row = by_hand.execute(q, p).fetchone()  # type: ignore[arg-type]
                    return int(row[0]) if row else 0

                contenders[label] = work
            timings = race(1, contenders)
            if runs > 1 and max(seconds for seconds, _ in timings.values()) < once:
                again = race(runs - 1, contenders)
                timings = {label: min(timings[label], again[label]) for label in timings}
            ours, members = timings.pop("trouw")
            # As a user meets it: a whole `trouw segments count NAME` process, start-up and all.
            process_s, process_mb = run_measured(
                [sys.executable, "-m", "trouw", "--project", str(project), "--db", url,
                 "segments", "count", name, "--as-of", as_of.isoformat()]
            )  # fmt: skip
            shapes = {label: {"members": n, "s": round(s, 4)} for label, (s, n) in timings.items()}
            best = min(shapes, key=lambda label: float(shapes[label]["s"]))
            results.append(
                stage(
                    f"segment {name}", members, ours, f"hand SQL ({best})",
                    float(shapes[best]["s"]), shapes=shapes,
                    same_count=all(shape["members"] == members for shape in shapes.values()),
                    trouw_process_s=round(process_s, 3), trouw_process_peak_mb=round(process_mb),
                    trouw_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                )
            )  # fmt: skip
    engine.dispose()
    return results


# --- plan ------------------------------------------------------------------------------------


def bench_plan(url: str, project: Path, year: int, as_of: date, workdir: Path) -> dict[str, Any]:
    print(f"plan {year} …", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "trouw", "--project", str(project), "--db", url,
               "plan", str(year), "--as-of", as_of.isoformat()]  # fmt: skip
    ours_s, ours_mb = run_measured(command)
    rows_file = workdir / "plan.copy"
    with raw(url) as connection, connection.cursor() as cursor, rows_file.open("wb") as out:
        query = f"COPY (SELECT {', '.join(PLAN_COLUMNS)} FROM public.plan ORDER BY id) TO STDOUT"
        with cursor.copy(query) as copy:
            for block in copy:
                out.write(block)
        rows = int(connection.execute("SELECT count(*) FROM plan").fetchone()[0])  # type: ignore[index]
    base_s, base_mb = run_measured(me("_copyfile", "plan", str(rows_file), url))
    with raw(url) as connection:
        connection.execute(f"TRUNCATE {BASELINE}.plan")
    rows_file.unlink()
    return stage(
        "plan", rows, ours_s, "COPY of the same plan rows", base_s,
        trouw_rows_per_s=round(rows / ours_s), trouw_peak_mb=round(ours_mb),
        baseline_peak_mb=round(base_mb),
    )  # fmt: skip


# --- send ------------------------------------------------------------------------------------


def earlier_days_sent(url: str, chosen: list[str]) -> None:
    """bench_send.earlier_days_sent for PostgreSQL: the ledger of a shop that sent every day
    of the 62 before the chosen ones (and between them), so a run is an everyday one; then
    the plan and the ledger vacuumed and analyzed, as autovacuum would have by then."""
    with raw(url) as connection:
        connection.execute(
            "INSERT INTO ledger (contact_id, campaign, step, occurrence, day, due, template, "
            "channel, status, message_id, reserved_at, sent_at) "
            "SELECT contact_id, campaign, step, occurrence, day, day, template, channel, 'sent', "
            "NULL, day + time '09:00', day + time '09:00' FROM plan "
            "WHERE status IN ('planned', 'deferred') AND day >= %(first)s::date - 62 "
            "AND day <= %(last)s::date AND NOT day = ANY(%(chosen)s::date[]) "
            "ON CONFLICT DO NOTHING",
            {"first": min(chosen), "last": max(chosen), "chosen": chosen},
        )
        # A shop's database has had its autovacuum between the plan (monthly) and a day's
        # send: without this, each copy would vacuum and analyze the plan's millions of new
        # rows and these ledger rows beside the send it measures (not timed here).
        connection.execute("VACUUM ANALYZE plan")
        connection.execute("VACUUM ANALYZE ledger")


def bench_send(
    dbs: Databases, project: Path, mails: int, crews: Sequence[int] = SEND_WORKERS
) -> list[dict[str, Any]]:
    from bench_send import (
        DAYS_SQL,
        Sink,
        busiest,
        choose_days,
        real_sample,
        sink_limit,
        trouw_send,
    )
    from trouw.sending.transports import CONNECTIONS

    conns = max(crews) * CONNECTIONS  # the sink's limit over as many as the largest run uses
    with raw(dbs.url) as connection:
        counts = [(str(day), int(n)) for day, n in connection.execute(DAYS_SQL).fetchall()]
    days = choose_days(counts, mails)  # type: ignore[arg-type]
    if not days:
        raise SystemExit("the plan has no email sends: nothing to send")
    earlier_days_sent(dbs.url, [day for day, _ in days])
    due = sum(n for _, n in days)
    print(f"send: {len(days)} days, {due} due email sends", file=sys.stderr, flush=True)
    # The sink's sample is rendered on a copy of its own: the main database stays untouched
    # for the runs' copies, and the limit can be measured before them as well as after.
    sampled = dbs.copy("sample")
    sample = real_sample(None, project, busiest(days), url=sampled)
    dbs.drop_url(sampled)
    sink = Sink()
    runs = []
    try:
        # The limit before and after the runs: this machine's speed drifts within a run
        # (session 28: 121.5, 138.9 and 86.5 s for the same mail in three runs), so the
        # ratio is taken to their mean and both are shown beside it. Before the runs, the
        # mails they will send are not known yet: the limit is taken over the due ones and
        # scaled to those sent (the limit is linear in the mails).
        limits = [sink_limit(sink, due, sample, connections=conns)]
        for workers in crews:
            print(f"send, --workers {workers} …", file=sys.stderr, flush=True)
            copy = dbs.copy(f"send{workers}")
            options = ["--workers", str(workers), "--connections", str(CONNECTIONS)]
            seconds, sent, summaries, peak_mb, per_day = trouw_send(
                sink, None, project, days, options, url=copy
            )
            # The last day once more, with nothing left to send: what deciding every contact
            # of the shop costs a run, whatever it sends (each chosen day pays it once).
            again_s, *_ = trouw_send(sink, None, project, days[-1:], options, url=copy)
            dbs.drop_url(copy)
            runs.append((workers, seconds, sent, summaries, peak_mb, again_s, per_day))
        sent = runs[0][2]
        print(f"sink limit ({sent} mails of {len(sample.data)} bytes) …", file=sys.stderr)
        limits = [limits[0] * sent / due, sink_limit(sink, sent, sample, connections=conns)]
    finally:
        sink.stop()
    limit_s = sum(limits) / len(limits)
    per_mail = limit_s / sent if sent else 0.0
    results = []
    for workers, seconds, sent_by_run, summaries, peak_mb, again_s, per_day in runs:
        name = f"send, {workers} worker{'s' if workers > 1 else ''}"
        # The day with the most mail alone against the sink's limit for its mails: the
        # mails' own cost, beside deciding every contact (which the other days mostly pay).
        # On the example shop it is a catch-up day (lapsed buyers' win-backs of the years
        # before the plan's), so the other days are shown apart: an everyday day's run.
        day, day_s, day_mails = max(per_day, key=lambda row: row[2])
        other_s = sum(row[1] for row in per_day) - day_s
        other_mails = sum(row[2] for row in per_day) - day_mails
        results.append(
            stage(
                name, sent_by_run, seconds, f"sink limit ({len(sample.data)} B, {conns} conns)",
                per_mail * sent_by_run,
                due=due, days=[day for day, _ in days],
                trouw_mails_per_s=round(sent_by_run / seconds),
                limit_mails_per_s=round(1 / per_mail) if per_mail else None,
                limit_before_after_s=[round(s, 2) for s in limits],
                trouw_peak_mb=round(peak_mb),
                deciding_day_s=round(again_s, 2), summaries=summaries,
                busiest_day=day, busiest_day_mails=day_mails, busiest_day_s=round(day_s, 2),
                busiest_day_ratio=_ratio(day_s, per_mail * day_mails),
                other_days_mails=other_mails, other_days_s=round(other_s, 2),
                other_days_ratio=_ratio(other_s, per_mail * other_mails),
            )
        )  # fmt: skip
    return results


def _ratio(seconds: float, baseline_s: float) -> float | None:
    return round(seconds / baseline_s, 2) if baseline_s else None


# --- clicks ----------------------------------------------------------------------------------


def bench_clicks(dbs: Databases, requests: int, contacts: int, workdir: Path) -> dict[str, Any]:
    print("clicks …", file=sys.stderr, flush=True)
    url = dbs.copy("clicks", empty=True)
    figures = workdir / "clicks.json"
    command = [sys.executable, str(SCRIPTS / "bench_clicks.py"), "--database-url", url,
               "--requests", str(requests), "--contacts", str(contacts),
               "--json", str(figures)]  # fmt: skip
    run_measured(command)
    dbs.drop_url(url)
    found = json.loads(figures.read_text(encoding="utf-8"))
    clicks, baseline = found["clicks"], found["baseline"]
    return stage(
        "clicks", clicks["ok"], clicks["seconds"], "/healthz on the same server",
        baseline["seconds"] * clicks["ok"] / max(baseline["ok"], 1),
        clicks_per_s=clicks["per_second"], healthz_per_s=baseline["per_second"],
        recorded=found["recorded"],
    )  # fmt: skip


# --- the driver ------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\n{report['contacts']:,} contacts, {report['events']:,} events on PostgreSQL "
        f"{report['server']}; {os.cpu_count()} cores, load {report['load']}"
    )
    print(
        f"{'stage':<32}{'count':>10}{'trouw s':>10}  {'baseline':<30}{'base s':>9}"
        f"{'x base':>8}  {'peak MB':>7}  target"
    )
    for row in report["stages"]:
        met = {True: "met", False: "NOT met", None: ""}[row["met"]]
        target = f"{row['target']} {met}" if row["target"] else ""
        same = "" if row.get("same_count", True) else "  (hand-written count differs!)"
        if "trouw_process_s" in row:
            same += f"  (a whole process: {row['trouw_process_s']:.2f} s)"
        if "deciding_day_s" in row:
            same += (
                f"  ({len(row['days'])} days; a day with nothing left to send: "
                f"{row['deciding_day_s']:.1f} s, deciding every contact; the busiest day "
                f"alone, {row['busiest_day_mails']:,} mails in {row['busiest_day_s']:.1f} s: "
                f"x {row['busiest_day_ratio']} its sink limit; "
            )
            if row["other_days_mails"]:
                same += (
                    f"the other days, {row['other_days_mails']:,} mails in "
                    f"{row['other_days_s']:.1f} s: x {row['other_days_ratio']}; "
                )
            same += (
                "the sink's limit before and after the runs: "
                f"{' and '.join(f'{s:.1f}' for s in row['limit_before_after_s'])} s)"
            )
        print(
            f"{row['stage']:<32}{row['count']:>10,}{row['trouw_s']:>10.4f}  "
            f"{row['baseline']:<30}{row['baseline_s']:>9.4f}{row['ratio']:>8}  "
            f"{row.get('trouw_peak_mb', ''):>7}  {target}{same}"
        )
    print("x base = trouw's time / the baseline's time for the same work (1.0: as fast)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_copy":
        copy_rows(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_copyfile":
        copy_file(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_generate":
        from trouw.demo.generator import write_demo_files

        files = write_demo_files(
            Path(sys.argv[2]), contacts=int(sys.argv[3]), as_of=date.fromisoformat(sys.argv[4])
        )
        print(json.dumps({"contacts": files.contacts, "events": files.events}))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--database-url", help="an empty database (default: a fresh one)")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 12, 1))
    parser.add_argument("--year", type=int, default=2027)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in order")
    parser.add_argument("--runs", type=int, default=3, help="segment counts: best of")
    parser.add_argument(
        "--once", type=float, default=60.0, help="a segment count this slow (s) is run once"
    )
    parser.add_argument("--mails", type=int, default=20_000, help="send: at least this many due")
    parser.add_argument(
        "--send-workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=list(SEND_WORKERS),
        help="send: the worker counts to run, comma-separated (default 1,2,4)",
    )
    parser.add_argument("--clicks", type=int, default=20_000, help="click requests")
    parser.add_argument("--click-contacts", type=int, default=3000)
    parser.add_argument("--workdir", type=Path, help="keep the generated files here")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--json", type=Path, default=Path("bench-pg.json"))
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    if "send" in stages and "plan" not in stages:
        parser.error("send needs the plan stage")
    reuse = "import" not in stages and ("segments" in stages or "plan" in stages)
    if reuse and args.database_url is None:
        parser.error(
            "segments and plan need the import stage, or --database-url of a database an "
            "earlier run imported into and kept (--keep)"
        )

    from bench_send import mail_project

    started = time.perf_counter()
    dbs = Databases(args.database_url)
    report: dict[str, Any] = {"contacts": args.contacts, "events": 0, "stages": []}
    try:
        with tempfile.TemporaryDirectory(prefix="trouw-bench-pg-") as scratch:
            workdir = args.workdir or Path(scratch)
            workdir.mkdir(parents=True, exist_ok=True)
            project = mail_project(workdir)
            if reuse:
                report.update(imported(dbs.url))
            else:
                make_baseline_schema(dbs.url)
            with raw(dbs.url) as connection:
                report["server"] = connection.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            if "import" in stages:
                data = workdir / "data"
                print(f"generating {args.contacts} contacts …", file=sys.stderr, flush=True)
                made = subprocess.run(
                    me("_generate", str(data), str(args.contacts), args.as_of.isoformat()),
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                report["events"] = json.loads(made.stdout)["events"]
                from trouw.demo.generator import DemoFiles

                files = DemoFiles(
                    data / "contacts.csv", data / "events.jsonl", args.contacts, report["events"]
                )
                report["stages"] += bench_import(dbs.url, project, files)
                keep_report(args.json, report)
            if "segments" in stages:
                report["events_analyzed"] = analyzed(dbs.url)
                report["stages"] += bench_segments(
                    dbs.url, project, args.as_of, args.runs, args.once
                )
                keep_report(args.json, report)
            if "plan" in stages:
                report["stages"].append(
                    bench_plan(dbs.url, project, args.year, args.as_of, workdir)
                )
                keep_report(args.json, report)
            if "send" in stages:
                report["stages"] += bench_send(dbs, project, args.mails, args.send_workers)
                keep_report(args.json, report)
            if "clicks" in stages:
                report["stages"].append(
                    bench_clicks(dbs, args.clicks, args.click_contacts, workdir)
                )
    finally:
        dbs.close(args.keep)
    report["seconds"] = round(time.perf_counter() - started)
    report["load"] = round(os.getloadavg()[0], 1)
    print_table(report)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.json} ({report['seconds']} s in all)")


def keep_report(path: Path, report: dict[str, Any]) -> None:
    """The figures so far, written after each stage: a long run stopped later keeps them."""
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
