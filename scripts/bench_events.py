"""Load check: events per second through POST /api/events on the production server, all stored.

    python scripts/bench_events.py [--requests 20000] [--batch 1] [--contacts 3000]
        [--database-url URL] [--workers 2] [--threads 8] [--clients 2] [--connections 4]

Prepares a project in a temporary folder with --contacts contacts and an API
key, starts `gunicorn trouw.tracking.wsgi:app` on a free loopback port (as
`scripts/bench_clicks.py` does, whose server and client parts this reuses)
and, in one run:

1. baseline: --requests requests to /healthz, a trivial endpoint of the same
   server (no key, no JSON, no database): what the server and client cost alone;
2. events: --requests POSTs to /api/events, each a JSON batch of --batch
   events (each with its own id, contacts mixed), each checked as a line of
   `trouw import events` is and stored by group commit (the answer waits for
   the commit).

The requests are made as bytes up front and sent from --clients processes
with --connections keep-alive connections each, one thread per process
driving its connections with a selector. Afterwards the events are counted
by id: every event of an answered request must be stored exactly once, or
the script fails. Printed: requests and events per second, the ratio of
requests per second to the baseline's, the CPU time per request of server
and clients, and the machine's load average. SQLite (a file in the
temporary folder) by default; --database-url for PostgreSQL (use an empty
database: its contacts and events are replaced).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import delete, func, insert, select

from bench_clicks import SETTINGS, Phase, Server, drive, measure, start_gunicorn
from trouw.store import atomic, contacts, events, open_store
from trouw.store.apikeys import create_api_key
from trouw.store.tables import api_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1, help="events per request")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=4, help="connections per client")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="time limit per phase")
    parser.add_argument("--database-url", help="default: SQLite in the temporary folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trouw-bench-events-") as folder:
        root = Path(folder)
        (root / "trouw.toml").write_text(SETTINGS, encoding="utf-8")
        url = args.database_url or f"sqlite:///{root / 'trouw.db'}"
        started = time.perf_counter()
        key = prepare(url, args.contacts)
        print(f"prepared {args.contacts} contacts in {time.perf_counter() - started:.1f} s ({url})")
        healthz = [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] * args.requests
        posts = [post(key, batch(n, args.batch, args.contacts)) for n in range(args.requests)]
        server = start_gunicorn(root, url, args.workers, args.threads, "gthread")
        load_before = os.getloadavg()[0]
        try:
            baseline = fire(server, healthz, args)
            pushed = fire(server, posts, args)
            stored, doubles = count_events(url)
        finally:
            server.stop()
        load_after = os.getloadavg()[0]

    print(
        f"gunicorn {args.workers} gthread workers x {args.threads} threads; {args.clients} client "
        f"processes x {args.connections} keep-alive connections; {args.batch} events a request; "
        f"{os.cpu_count()} cores, load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(baseline.line("baseline /healthz"))
    print(pushed.line("POST /api/events"))
    seconds = pushed.seconds or 1.0
    print(f"events/s: {pushed.ok * args.batch / seconds:.0f}")
    print(f"stored events: {stored} of {pushed.ok * args.batch} in answered requests")
    print(f"requests/s vs baseline: {pushed.per_second / baseline.per_second:.2f}")
    problems = []
    if stored != pushed.ok * args.batch or doubles:
        problems.append(
            f"{pushed.ok * args.batch} events answered, {stored} stored ({doubles} twice)"
        )
    if pushed.failed or baseline.failed:
        problems.append(f"{pushed.failed + baseline.failed} requests failed")
    if pushed.ok < args.requests:
        problems.append(f"only {pushed.ok} of {args.requests} requests within --max-seconds")
    if problems:
        sys.exit("FAILED: " + "; ".join(problems))


def prepare(url: str, count: int) -> str:
    """Contacts in a fresh store, and an API key."""
    engine = open_store(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    people = [
        {"id": f"bench-{n:06d}", "email": f"person{n}@bench.example", "channel": "email"}
        | {"attributes": {}, "created_at": now, "updated_at": now}
        for n in range(count)
    ]
    with atomic(engine) as connection:
        for table in (events, contacts, api_keys):
            connection.execute(delete(table))
        connection.execute(insert(contacts), people)
        key = create_api_key(connection, "bench")
    engine.dispose()
    return key


def batch(n: int, size: int, people: int) -> list[dict[str, object]]:
    start = datetime(2027, 4, 6, 8, 0)
    return [
        {
            "id": f"bench-{n}-{i}",
            "contact_id": f"bench-{(n * size + i) % people:06d}",
            "type": "page_view",
            "occurred_at": (start + timedelta(seconds=n)).isoformat(),
            "url": "https://bench.example/tuin",
        }
        for i in range(size)
    ]


def post(key: str, items: list[dict[str, object]]) -> bytes:
    body = json.dumps(items).encode()
    head = (
        f"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def count_events(url: str) -> tuple[int, int]:
    """(events with a bench id, ids stored more than once)."""
    engine = open_store(url)
    try:
        with engine.connect() as connection:
            per_id = (
                select(events.c.external_id, func.count().label("n"))
                .where(events.c.external_id.like("bench-%"))
                .group_by(events.c.external_id)
                .subquery()
            )
            total, doubles = connection.execute(
                select(func.coalesce(func.sum(per_id.c.n), 0), func.count().filter(per_id.c.n > 1))
            ).one()
            return int(total), int(doubles)
    finally:
        engine.dispose()


def fire(server: Server, requests: list[bytes], args: argparse.Namespace) -> Phase:
    """Send every request once, spread over client processes; count the 200 answers."""
    deadline = time.time() + args.max_seconds
    client = partial(_client, server.port, connections=args.connections, deadline=deadline)
    return measure(server, client, [requests[i :: args.clients] for i in range(args.clients)])


def _client(
    port: int, requests: list[bytes], connections: int, deadline: float
) -> tuple[int, int, float]:
    """(200 answers, other answers or errors, CPU seconds) of one client process."""
    cpu = time.process_time()
    ok, failed = drive(port, requests, connections, 200, deadline)
    return ok, failed, time.process_time() - cpu


if __name__ == "__main__":
    main()
