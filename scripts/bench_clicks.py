"""Load check: clicks per second through the production tracking server, all recorded.

    python scripts/bench_clicks.py [--requests 20000] [--contacts 3000] [--database-url URL]
        [--workers 2] [--threads 8] [--worker-class gthread|sync] [--clients 2]
        [--connections 4] [--client raw|http.client] [--json FILE]

Prepares a project in a temporary folder: --contacts contacts, each with a
`sent` ledger row of the campaign `bench` (so every click finds its mail, as
in real life), and a signed click link per contact and tag. Then starts
`gunicorn trouw.tracking.wsgi:app` on a free loopback port (--workers
processes with --threads threads each, as the README advises; or
`--worker-class sync`: one request at a time per process, no keep-alive)
and, in one run:

1. baseline: --requests requests to /healthz, a trivial endpoint of the same
   server (no token, no database): what the server and client cost alone;
2. clicks: --requests click links (contacts and tags mixed), each a token
   check and a row of the INSERT … SELECT committed for a batch of clicks
   (group commit: the 302 waits for that commit).

Requests come from --clients processes with --connections keep-alive
connections each. By default each client process drives its connections from
one thread with a selector and parses answers only as far as status and
Content-Length: the client shares the machine's cores with the server, and
http.client (`--client http.client`, a thread per connection) costs it about
as much CPU per request as the server spends. Both phases stop at
--max-seconds. Afterwards the click events in the database are counted:
every answered click must be recorded, or the script fails. Printed: requests
per second, the CPU time per request of server and clients (Linux /proc), and
the machine's load average, as the figures mean little on a shared machine.
SQLite (a file in the temporary folder) by default; --database-url for
PostgreSQL (use an empty database: its contacts, ledger and events are
replaced).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select

from trouw.store import contacts, events, ledger, open_store
from trouw.templates.links import LinkSigner

SECRET = "bench-clicks-secret"
BASE_URL = "https://t.bench.example"
CAMPAIGN = "bench"
TAGS = ("garden", "kitchen", "fire-safety", "bench")
SETTINGS = f"""\
[project]
name = "Bench Shop"

[sender]
from = "Bench Shop <hello@bench.example>"
postal_address = "Street 1, 1234 AB Town"

[tracking]
base_url = "{BASE_URL}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=8,
        help="threads per gunicorn worker (several clicks wait on one batch commit)",
    )
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=4, help="connections per client")
    parser.add_argument(
        "--client",
        choices=["raw", "http.client"],
        default="raw",
        help="raw: one thread per client process drives its connections with a selector",
    )
    parser.add_argument("--max-seconds", type=float, default=120.0, help="time limit per phase")
    parser.add_argument("--database-url", help="default: SQLite in the temporary folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trouw-bench-clicks-") as folder:
        root = Path(folder)
        (root / "trouw.toml").write_text(SETTINGS, encoding="utf-8")
        url = args.database_url or f"sqlite:///{root / 'trouw.db'}"
        if args.worker_class == "sync":
            args.threads = 1  # more would make gunicorn use gthread after all
        started = time.perf_counter()
        links = prepare(url, args.contacts)
        print(f"prepared {args.contacts} contacts in {time.perf_counter() - started:.1f} s ({url})")
        paths = [links[i % len(links)] for i in range(args.requests)]
        server = start_gunicorn(root, url, args.workers, args.threads, args.worker_class)
        load_before = os.getloadavg()[0]
        try:
            baseline = fire(server, ["/healthz"] * args.requests, args, expect=200)
            before = count_clicks(url)
            clicks = fire(server, paths, args, expect=302)
            recorded = count_clicks(url) - before
        finally:
            server.stop()
        load_after = os.getloadavg()[0]

    print(
        f"gunicorn {args.workers} {args.worker_class} workers x {args.threads} threads; "
        f"{args.clients} client "
        f"processes x {args.connections} keep-alive connections ({args.client}); "
        f"{os.cpu_count()} cores, load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(baseline.line("baseline /healthz"))
    print(clicks.line("clicks /c/TOKEN"))
    print(f"recorded clicks: {recorded} of {clicks.ok} answered with 302")
    print(f"clicks/s vs baseline: {clicks.per_second / baseline.per_second:.2f}")
    if args.json:
        figures = {
            "requests": args.requests,
            "workers": args.workers,
            "threads": args.threads,
            "baseline": {**asdict(baseline), "per_second": round(baseline.per_second)},
            "clicks": {**asdict(clicks), "per_second": round(clicks.per_second)},
            "recorded": recorded,
            "ratio": round(clicks.per_second / baseline.per_second, 3),
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    problems = []
    if recorded != clicks.ok:
        problems.append(f"{clicks.ok} clicks were answered but {recorded} recorded")
    if clicks.failed or baseline.failed:
        problems.append(f"{clicks.failed + baseline.failed} requests failed")
    if clicks.ok < args.requests:
        problems.append(f"only {clicks.ok} of {args.requests} clicks within --max-seconds")
    if problems:
        sys.exit("FAILED: " + "; ".join(problems))


# --- the project's data ---------------------------------------------------------------------


def prepare(url: str, count: int) -> list[str]:
    """Contacts, their `sent` ledger rows and signed click links (paths), in a fresh store."""
    engine = open_store(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    people: list[dict[str, object]] = [
        {
            "id": f"bench-{n:06d}",
            "email": f"person{n}@bench.example",
            "locale": "nl" if n % 3 else "en",
            "channel": "email",
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    sends = [
        {
            "contact_id": person["id"],
            "campaign": CAMPAIGN,
            "step": "main",
            "occurrence": f"{CAMPAIGN}:2027-04-06",
            "day": date(2027, 4, 6),
            "template": "mail",
            "channel": "email",
            "status": "sent",
            "reserved_at": now,
            "sent_at": now,
        }
        for person in people
    ]
    with engine.begin() as connection:
        for table in (events, ledger, contacts):
            connection.execute(delete(table))
        connection.execute(insert(contacts), people)
        connection.execute(insert(ledger), sends)
    engine.dispose()
    signer = LinkSigner(BASE_URL, SECRET)
    paths = []
    for n, person in enumerate(people):
        tag = TAGS[n % len(TAGS)]
        link = signer.click_url(str(person["id"]), CAMPAIGN, f"https://bench.example/{tag}", tag)
        paths.append(link[len(BASE_URL) :])
    return paths


def count_clicks(url: str) -> int:
    engine = open_store(url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(events).where(events.c.type == "click")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


# --- the server -----------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def cpu_seconds(self) -> float:
        """CPU time of gunicorn and its workers so far (Linux /proc)."""
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(pid) for pid in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # a worker that just ended
            total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / ticks


def start_gunicorn(root: Path, url: str, workers: int, threads: int, kind: str) -> Server:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [
        sys.executable, "-m", "gunicorn", "trouw.tracking.wsgi:app",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--worker-class", kind,
        "--keep-alive", "60", "--log-level", "warning",
    ]  # fmt: skip
    env = {
        **os.environ,
        "TROUW_PROJECT": str(root),
        "TROUW_DATABASE_URL": url,
        "TROUW_SECRET": SECRET,
    }
    process = subprocess.Popen(command, env=env)
    server = Server(port, process)
    deadline = time.monotonic() + 60
    while True:  # ready when every worker can answer: ask a few times in a row
        try:
            if all(_get(port, "/healthz") == 200 for _ in range(workers * 4)):
                return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            sys.exit("gunicorn did not start")
        time.sleep(0.1)


def _get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# --- the clients ----------------------------------------------------------------------------


@dataclass
class Phase:
    ok: int
    failed: int
    seconds: float
    server_cpu: float  # seconds of CPU the server's processes used in the phase
    client_cpu: float

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def line(self, label: str) -> str:
        done = max(self.ok + self.failed, 1)
        return (
            f"{label:<18} {self.ok:>7} ok {self.failed:>4} failed in {self.seconds:6.2f} s: "
            f"{self.per_second:6.0f} requests/s; CPU per request: server "
            f"{self.server_cpu / done * 1e6:4.0f} us, client {self.client_cpu / done * 1e6:4.0f} us"
        )


def fire(server: Server, paths: list[str], args: argparse.Namespace, *, expect: int) -> Phase:
    """Send every path once, spread over client processes; count the expected answers."""
    deadline = time.time() + args.max_seconds
    client = partial(
        _client, args.client, server.port,
        connections=args.connections, expect=expect, deadline=deadline,
    )  # fmt: skip
    return measure(server, client, [paths[i :: args.clients] for i in range(args.clients)])


def measure(
    server: Server, client: Callable[[Any], tuple[int, int, float]], shares: list[Any]
) -> Phase:
    """Run `client` on each share in its own process at once, the server's CPU and the wall
    clock measured around them; `client` returns (expected answers, others, its CPU)."""
    with ProcessPoolExecutor(len(shares)) as pool:
        list(pool.map(_warm, range(len(shares))))  # start the processes before the clock
        server_cpu = server.cpu_seconds()
        started = time.perf_counter()
        results = list(pool.map(client, shares))
        seconds = time.perf_counter() - started
        server_cpu = server.cpu_seconds() - server_cpu
    ok, failed, client_cpu = (sum(r[i] for r in results) for i in range(3))
    return Phase(int(ok), int(failed), seconds, server_cpu, client_cpu)


def _warm(_: int) -> None:
    return None


def _client(
    kind: str, port: int, paths: list[str], connections: int, expect: int, deadline: float
) -> tuple[int, int, float]:
    """One client process; returns (expected answers, other answers or errors, CPU seconds)."""
    cpu = time.process_time()
    run = _raw_client if kind == "raw" else _http_client
    ok, failed = run(port, paths, connections, expect, deadline)
    return ok, failed, time.process_time() - cpu


def _raw_client(
    port: int, paths: list[str], connections: int, expect: int, deadline: float
) -> tuple[int, int]:
    """GET each of `paths` over `drive`'s connections."""
    requests = [f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii") for path in paths]
    return drive(port, requests, connections, expect, deadline)


def drive(
    port: int, raw_requests: list[bytes], connections: int, expect: int, deadline: float
) -> tuple[int, int]:
    """`connections` keep-alive HTTP/1.1 connections driven by one thread with a selector;
    returns (answers with status `expect`, other answers or errors).

    Each connection sends its next request once the previous answer is complete
    (no pipelining). Requests are made as bytes up front and answers are parsed
    only as far as status and Content-Length: the client should cost little of
    the CPU the server shares with it.
    """
    requests = iter(raw_requests)
    ok = failed = 0
    selector = selectors.DefaultSelector()

    def take() -> bytes | None:
        return None if time.time() > deadline else next(requests, None)

    def send(request: bytes) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        selector.register(sock, selectors.EVENT_READ, bytearray())
        sock.sendall(request)

    for _ in range(connections):
        request = take()
        if request is not None:
            send(request)
    while selector.get_map():
        ready = selector.select(timeout=30)
        if not ready:  # the server stopped answering
            failed += len(selector.get_map())
            break
        for key, _ in ready:
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            buffer: bytearray = key.data
            chunk = sock.recv(65536)
            buffer += chunk
            answer = _complete(buffer)
            if answer is None and chunk:
                continue  # the rest of the answer is on its way
            if answer is not None and answer[0] == expect:
                ok += 1
            else:
                failed += 1
            request = take()
            if answer is None or answer[1] or request is None:  # closed, or done
                selector.unregister(sock)
                sock.close()
                if request is not None:
                    send(request)
                continue
            del buffer[:]
            sock.sendall(request)
    return ok, failed


def _complete(data: bytearray) -> tuple[int, bool] | None:
    """(status, the server closes the connection) once `data` holds a whole answer."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].lower()
    length = 0
    found = head.find(b"\r\ncontent-length:")
    if found >= 0:
        length = int(head[found + 17 : head.find(b"\r\n", found + 2) % (len(head) + 1)])
    if len(data) < end + 4 + length:
        return None
    return int(data[9:12]), b"\r\nconnection: close" in head


def _http_client(
    port: int, paths: list[str], connections: int, expect: int, deadline: float
) -> tuple[int, int]:
    """`connections` threads, each with a keep-alive http.client connection."""
    totals = [[0, 0] for _ in range(connections)]

    def run(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for path in paths[index::connections]:
            if time.time() > deadline:
                break
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                totals[index][0 if response.status == expect else 1] += 1
            except (OSError, http.client.HTTPException):
                totals[index][1] += 1
                connection.close()  # reconnects on the next request
        connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(t[0] for t in totals), sum(t[1] for t in totals)


if __name__ == "__main__":
    main()
