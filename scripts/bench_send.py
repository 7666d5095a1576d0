"""Benchmark: end-to-end `trouw send` to an SMTP sink, beside the sink's limit and a naive loop.

    python scripts/bench_send.py [--contacts 20000] [--mails 100000] [--workdir DIR]
                                 [--workers 2] [--connections 4] [--no-naive]

Generates the demo shop at that scale (in a child process, as bench_plan.py
does), or reuses the one in --workdir, and plans --year with the example
calendar once (kept as planned.db). The plan days with the most due email
sends are taken, largest first, until at least --mails are due, and sent in
calendar order.

An aiosmtpd sink runs in its own process on a free loopback port; its handler
only counts messages and answers 250. Against it, in one run:

1. limit: one pre-built message's bytes pushed over 4 parallel smtplib
   connections (MAIL/RCPT/DATA per mail), as many mails as trouw sends. The
   message is one of trouw's own mails of that day (taken from `send
   --outbox`): the sink's work grows with the lines of a mail, so
   the limit is measured with mails of the same size. The limit with a small
   1.7 kB message is printed too, for comparison with earlier figures;
2. naive: an email.message.EmailMessage built per mail (the same text and
   HTML) and `send_message` on one connection, no rendering, no ledger;
3. trouw: `trouw send --as-of DAY --smtp smtp://127.0.0.1:PORT --workers N
   --connections C` for each chosen day, on a fresh copy of planned.db
   (eligibility, render, MIME, ledger, SMTP: all of it). Mails are counted by
   the sink.

Then a breakdown of where trouw's time goes: `send_day` (one worker, in this
process, --profile-mails mails of the biggest day, fresh copy) with its parts
timed (eligibility, render, MIME, ledger, SMTP). A table is printed and the
figures written as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
SENDER = "shop@example.com"


# --- the sink -------------------------------------------------------------------------------


def _sink_main(port: int, counter, ready) -> None:
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope) -> str:
            counter.value += 1
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()  # until terminated


class Sink:
    """The aiosmtpd counting sink in its own process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = free_port()
        self.counter = context.RawValue("q", 0)
        ready = context.Event()
        self.process = context.Process(
            target=_sink_main, args=(self.port, self.counter, ready), daemon=True
        )
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")

    @property
    def count(self) -> int:
        return int(self.counter.value)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(sink: Sink, target: int, timeout: float = 30.0) -> None:
    """The sink counts after answering: wait until it has counted `target`."""
    deadline = time.monotonic() + timeout
    while sink.count < target and time.monotonic() < deadline:
        time.sleep(0.005)


# --- the shop -------------------------------------------------------------------------------


def prepare_shop(workdir: Path, contacts: int, as_of: date, year: int) -> tuple[Path, Path]:
    """planned.db (generated and planned once, then reused) and the project copy."""
    workdir.mkdir(parents=True, exist_ok=True)
    project = mail_project(workdir)
    planned = workdir / "planned.db"
    if planned.exists():
        return planned, project
    database = workdir / "trouw.db"
    if not database.exists():
        print(f"generating {contacts} contacts in {workdir} …", file=sys.stderr)
        command = [sys.executable, str(SCRIPTS / "bench_plan.py"), "--generate-only",
                   "--contacts", str(contacts), "--workdir", str(workdir),
                   "--as-of", as_of.isoformat()]  # fmt: skip
        subprocess.run(command, check=True)
    print(f"planning {year} …", file=sys.stderr)
    from trouw.planning import plan_year
    from trouw.project import load_project
    from trouw.store import atomic, open_store

    engine = open_store(f"sqlite:///{database}")
    with atomic(engine) as connection:
        plan_year(connection, load_project(project), year=year, as_of=as_of)
    engine.dispose()
    shutil.copy(database, planned)
    return planned, project


def mail_project(workdir: Path) -> Path:
    """The example project copied into workdir, mail only, as the baselines: without a
    letters folder the post contacts' letters stay owed (their PDFs, ~0.1 s each, would
    be timed as mail)."""
    sys.path.insert(0, str(SCRIPTS))
    from bench_plan import project_copy

    project = project_copy(workdir)
    settings = project / "trouw.toml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(text.split("\n[letters]")[0] + "\n", encoding="utf-8")
    return project


# The due email sends per plan day, largest first (plain SQL: SQLite and PostgreSQL).
DAYS_SQL = (
    "SELECT day, count(*) FROM plan WHERE channel = 'email' AND status = 'planned' "
    "GROUP BY day ORDER BY count(*) DESC, day"
)


def busiest_days(planned: Path, mails: int) -> list[tuple[str, int]]:
    """The days with the most due email sends until `mails` are due, in calendar order."""
    connection = sqlite3.connect(planned)
    rows = connection.execute(DAYS_SQL).fetchall()
    connection.close()
    return choose_days(rows, mails)


def busiest(days: list[tuple[str, int]]) -> str:
    """The chosen day with the most due sends (its mail is the sink's sample)."""
    return max(days, key=lambda row: row[1])[0]


def choose_days(rows: list[tuple[object, int]], mails: int) -> list[tuple[str, int]]:
    """From (day, due) largest first: the days until `mails` are due, in calendar order (the
    order a shop's daily runs send them in). A day with more than twice `mails` due is passed
    over while a smaller one is left (a large shop's newsletter day holds half a million: an
    hour a run); the largest is taken when all are."""
    fitting = [row for row in rows if int(row[1]) <= 2 * mails] or rows[:1]
    chosen, total = [], 0
    for day, count in fitting:
        if total >= mails:
            break
        chosen.append((str(day), int(count)))
        total += int(count)
    return sorted(chosen)


def earlier_days_sent(planned: Path, chosen: list[str]) -> None:
    """The ledger of a shop that sent every day but the chosen ones: the plan's sends of the
    62 days before the first chosen day up to the last, `sent` (once; kept in planned.db).
    Without it a run would also work those days as owed (most of them expired): a shop's
    first day, not an everyday one."""
    marks = ",".join("?" * len(chosen))
    with sqlite3.connect(planned) as connection:
        connection.execute(
            "INSERT OR IGNORE INTO ledger (contact_id, campaign, step, occurrence, day, due,"
            " template, channel, status, message_id, reserved_at, sent_at)"
            " SELECT contact_id, campaign, step, occurrence, day, day, template, channel,"
            " 'sent', NULL, day || ' 09:00:00', day || ' 09:00:00' FROM plan"
            " WHERE status IN ('planned', 'deferred')"
            f" AND day >= date(?, '-62 days') AND day <= ? AND day NOT IN ({marks})",
            (min(chosen), max(chosen), *chosen),
        )


def midday(day: str) -> str:
    """11:00 UTC of `day`: inside the example project's send window (09:00-17:00 in NL)."""
    return f"{day}T11:00"


def fresh_copy(planned: Path, name: str) -> Path:
    target = planned.with_name(name)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copy(planned, target)
    return target


# --- the baselines --------------------------------------------------------------------------

TEXT = "Beste klant,\n\n" + "Dit voorjaar in de tuin: nieuwe planten en potten.\n" * 12 + "\n"
HTML = "<html><body><p>Beste klant,</p>" + "<p>Dit voorjaar in de tuin: nieuwe planten.</p>\n" * 12


@dataclass(frozen=True)
class Sample:
    """A mail for the baselines: its bytes (CRLF), and its text and HTML for EmailMessage."""

    data: bytes
    text: str
    html: str
    subject: str


def small_sample() -> Sample:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = "customer@example.com"
    message["Subject"] = "Nieuw in de tuin"
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    return Sample(message.as_bytes(policy=SMTP), TEXT, HTML, "Nieuw in de tuin")


def real_sample(planned: Path | None, project: Path, day: str, url: str | None = None) -> Sample:
    """One mail exactly as trouw sends it on `day` (through --outbox), so the baselines
    push as many bytes and lines per mail as trouw does. `url`: a database to use up
    instead of a fresh copy of `planned`."""
    if url is None:
        assert planned is not None
        url = f"sqlite:///{fresh_copy(planned, 'sample.db')}"
    outbox = project.parent / "sample-outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    command = ["trouw", "--project", str(project), "--db", url, "send",
               "--as-of", day, "--now", midday(day), "--outbox", str(outbox),
               "--limit", "20"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    data = sorted(outbox.glob("*.eml"))[0].read_bytes()  # (the first few may be letters)
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text, html = (message.get_body((kind,)) for kind in ("plain", "html"))
    assert text is not None and html is not None
    return Sample(data, text.get_content(), html.get_content(), str(message["Subject"]))


def naive_message(sample: Sample, n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = f"customer{n}@example.com"
    message["Subject"] = sample.subject
    message.set_content(sample.text)
    message.add_alternative(sample.html, subtype="html")
    return message


def sink_limit(sink: Sink, mails: int, sample: Sample, connections: int = 4) -> float:
    """One pre-built message's bytes over `connections` parallel smtplib connections."""
    start_count = sink.count
    shares = [mails // connections + (i < mails % connections) for i in range(connections)]

    def push(share: int) -> None:
        smtp = smtplib.SMTP("127.0.0.1", sink.port)
        smtp.ehlo()
        for n in range(share):
            smtp.sendmail(SENDER, [f"customer{n}@example.com"], sample.data)
        smtp.quit()

    threads = [threading.Thread(target=push, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(sink, start_count + mails)
    return time.perf_counter() - started


def naive_loop(sink: Sink, mails: int, sample: Sample) -> float:
    """EmailMessage per mail and send_message on one connection."""
    start_count = sink.count
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", sink.port)
    smtp.ehlo()
    for n in range(mails):
        smtp.send_message(naive_message(sample, n))
    smtp.quit()
    wait_for(sink, start_count + mails)
    return time.perf_counter() - started


# --- trouw ----------------------------------------------------------------------------------


def trouw_send(
    sink: Sink,
    planned: Path | None,
    project: Path,
    days: list[tuple[str, int]],
    options: list[str],
    url: str | None = None,
) -> tuple[float, int, list[str], float, list[tuple[str, float, int]]]:
    """`trouw send` for each day on a fresh copy of the plan (or on the database `url`):
    seconds, mails received, summaries, the peak RSS in MB of the largest process (the
    run or one of its workers), and each day's (day, seconds, mails received)."""
    if url is None:
        assert planned is not None
        url = f"sqlite:///{fresh_copy(planned, 'send.db')}"
    start_count = sink.count
    summaries = []
    peak_mb = 0.0
    per_day = []
    started = time.perf_counter()
    for day, _ in days:
        day_started, day_count = time.perf_counter(), sink.count
        command = ["trouw", "--project", str(project), "--db", url, "send",
                   "--as-of", day, "--now", midday(day), "--smtp", f"smtp://127.0.0.1:{sink.port}",
                   *options]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        output = process.stdout.read()  # to the end first, or a full pipe blocks the run
        process.stdout.close()
        _pid, status, usage = os.wait4(process.pid, 0)  # (not wait(): rusage is wanted)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"trouw send failed for {day}:\n{output}")
        peak_mb = max(peak_mb, usage.ru_maxrss / 1024)
        summaries.append(output.strip())
        per_day.append((day, time.perf_counter() - day_started, sink.count - day_count))
    elapsed = time.perf_counter() - started
    return elapsed, sink.count - start_count, summaries, peak_mb, per_day


LEDGER_FUNCTIONS = ("reserve", "reclaim", "start_sending", "confirm", "release", "settle",
                    "take_over", "claim_contacts", "count_unknown", "histories")  # fmt: skip


def _timed(owner: object, name: str, totals: dict[str, float], part: str) -> None:
    """Wrap owner.name so that its wall time adds up in totals[part] (from any thread)."""
    original = getattr(owner, name)
    lock = threading.Lock()

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                totals[part] += time.perf_counter() - started

    setattr(owner, name, timed)


def profile_send(
    sink: Sink, planned: Path, project: Path, day: str, mails: int, connections: int
) -> dict:
    """Where the time of `send_day` goes (one worker, this process, `mails` mails of `day`).

    cProfile sees one thread only, and delivery runs in the courier's threads, so
    the parts are timed by wrapping the functions that make them: eligibility,
    render and MIME on the run's thread; ledger writes on both; SMTP (the
    pool's deliver, the server's answers included) on the connections' threads,
    overlapping the rest and each other.
    """
    from trouw.project import load_project
    from trouw.sending import ledger
    from trouw.sending.checks import SendChecks
    from trouw.sending.run import send_day
    from trouw.sending.transports import SmtpPool
    from trouw.store import open_store
    from trouw.templates.campaign_mails import CampaignMails

    totals = dict.fromkeys(("eligibility", "render", "MIME", "ledger", "SMTP"), 0.0)
    _timed(SendChecks, "check", totals, "eligibility")
    _timed(CampaignMails, "render_for", totals, "render")
    _timed(CampaignMails, "message", totals, "MIME")
    for name in LEDGER_FUNCTIONS:
        _timed(ledger, name, totals, "ledger")
    _timed(SmtpPool, "deliver", totals, "SMTP")
    database = fresh_copy(planned, "profile.db")
    engine = open_store(f"sqlite:///{database}")
    loaded = load_project(project)
    transport = SmtpPool(f"smtp://127.0.0.1:{sink.port}", connections=connections)
    started = time.perf_counter()
    summary = send_day(
        engine, loaded, date.fromisoformat(day), transport, limit=mails,
        now=datetime.fromisoformat(midday(day)),
    )  # fmt: skip
    wall = time.perf_counter() - started
    transport.close()
    engine.dispose()
    sent = max(summary.sent, 1)
    return {
        "day": day,
        "mails": summary.sent,
        "wall_seconds": round(wall, 2),
        "seconds": {k: round(v, 3) for k, v in totals.items()},
        "ms_per_mail": {k: round(1000 * v / sent, 3) for k, v in totals.items()},
    }


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--mails", type=int, default=100_000, help="at least this many due")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 12, 1))
    parser.add_argument("--year", type=int, default=2027)
    parser.add_argument("--workers", type=int, default=2, help="trouw send --workers")
    parser.add_argument("--connections", type=int, default=4, help="trouw send --connections")
    parser.add_argument("--profile-mails", type=int, default=3000, help="0: no breakdown")
    parser.add_argument(
        "--no-naive", action="store_true", help="skip the naive loop (slow at large --mails)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-send.json"))
    args = parser.parse_args()
    workdir = args.workdir or Path(f".trouw/bench-send-{args.contacts}")
    planned, project = prepare_shop(workdir, args.contacts, args.as_of, args.year)
    days = busiest_days(planned, args.mails)
    earlier_days_sent(planned, [day for day, _ in days])
    due = sum(count for _, count in days)
    print(f"{len(days)} days, {due} due email sends: {days[:5]} …", file=sys.stderr)

    sink = Sink()
    try:
        print("trouw send …", file=sys.stderr)
        options = ["--workers", str(args.workers), "--connections", str(args.connections)]
        trouw_s, sent, summaries, _peak_mb, _per_day = trouw_send(
            sink, planned, project, days, options
        )
        sample = real_sample(planned, project, busiest(days))
        small = small_sample()
        print(f"sink limit ({sent} mails of {len(sample.data)} bytes) …", file=sys.stderr)
        limit_s = sink_limit(sink, sent, sample)
        print(f"sink limit ({sent} mails of {len(small.data)} bytes) …", file=sys.stderr)
        small_limit_s = sink_limit(sink, sent, small)
        naive_s = None
        if not args.no_naive:
            print("naive loop …", file=sys.stderr)
            naive_s = naive_loop(sink, sent, sample)
        breakdown = None
        if args.profile_mails:
            print(f"profiling {args.profile_mails} mails …", file=sys.stderr)
            breakdown = profile_send(
                sink, planned, project, busiest(days), args.profile_mails, args.connections
            )
    finally:
        sink.stop()

    seconds_by_run = {
        "limit": limit_s,
        "small_limit": small_limit_s,
        **({"naive": naive_s} if naive_s is not None else {}),
        "trouw": trouw_s,
    }
    rates = {k: sent / v for k, v in seconds_by_run.items()}
    print()
    print(f"{args.contacts} contacts, {len(days)} days, {due} due, {sent} mails sent")
    print(f"{'run':<40}{'seconds':>10}{'mails/s':>10}{'of limit':>10}")
    for label, key, seconds in (
        (f"sink limit, {len(sample.data)} B mail (4 conns)", "limit", limit_s),
        (f"sink limit, {len(small.data)} B mail (4 conns)", "small_limit", small_limit_s),
        ("naive EmailMessage loop", "naive", naive_s),
        (f"trouw send {' '.join(options)}", "trouw", trouw_s),
    ):
        if seconds is None:
            continue
        share = rates[key] / rates["limit"]
        print(f"{label:<40}{seconds:>10.1f}{rates[key]:>10.0f}{share:>9.0%}")
    if breakdown:
        print()
        print(
            f"where trouw's time goes (1 worker, {breakdown['mails']} mails of "
            f"{breakdown['day']} in {breakdown['wall_seconds']} s; SMTP runs on "
            f"{args.connections} connections beside the rest):"
        )
        for part, seconds in breakdown["seconds"].items():
            print(f"  {part:<12}{seconds:>8.2f} s{breakdown['ms_per_mail'][part]:>8.3f} ms/mail")
    result = {
        "contacts": args.contacts,
        "days": days,
        "due": due,
        "sent": sent,
        "options": options,
        "mail_bytes": {"trouw": len(sample.data), "small": len(small.data)},
        "seconds": {k: round(v, 2) for k, v in seconds_by_run.items()},
        "mails_per_second": {k: round(v) for k, v in rates.items()},
        "trouw_share_of_limit": round(rates["trouw"] / rates["limit"], 3),
        "trouw_summaries": summaries,
        "breakdown": breakdown,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
