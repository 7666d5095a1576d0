"""`send --workers N`: N worker processes share one day through the database.

Rendering and MIME are CPU work, so workers are processes, not threads: a
thread pool would run one mail at a time under the GIL. Each worker opens its
own engine, project and transport and runs `send_day` as a separate process
or machine would (`worker=(i, n)` spreads where they start); the ledger's
unique key and the claims keep every mail single. The parent adds up the
summaries and shows one progress bar from a shared array of counts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from trouw.errors import TrouwError, WorkFailed
from trouw.project import Project, load_project
from trouw.sending.checks import CLAIMED, MADE_MEANWHILE, TAKEN
from trouw.sending.run import Stopped, send_day
from trouw.sending.summary import SendSummary
from trouw.sending.transports import Transport, TransportDown

OWN_WORK = frozenset({CLAIMED, MADE_MEANWHILE, TAKEN})

# A picklable maker of one worker's transport (e.g. functools.partial(SmtpTransport, url)),
# or None for a dry run.
TransportMaker = Callable[[], Transport] | None

_progress: Any = None  # the shared array of finished counts, in a worker process


@dataclass(frozen=True)
class Job:
    """What a worker process needs to open everything itself."""

    database_url: str
    project_root: Path
    as_of: date
    make_transport: TransportMaker
    workers: int
    options: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """A worker's error, carried back as text: exceptions with their own arguments don't pickle."""

    kind: str
    message: str


def send_with_workers(
    engine: Engine,
    project: Project,
    as_of: date,
    make_transport: TransportMaker,
    *,
    workers: int = 1,
    progress: Callable[[int, int], Any] | None = None,
    **options: Any,
) -> SendSummary:
    """`send_day` in this process (one worker) or in `workers` processes, one summary.

    Raises TransportDown (or WorkFailed) after every worker has stopped when one failed.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers == 1:
        transport = make_transport() if make_transport is not None else None
        try:
            return send_day(engine, project, as_of, transport, progress=progress, **options)
        finally:
            if transport is not None:
                transport.close()
    if options.get("limit") is not None:
        raise ValueError("limit needs a single worker")
    options.setdefault("started", datetime.now(UTC).replace(tzinfo=None))
    job = Job(
        engine.url.render_as_string(hide_password=False),
        project.root,
        as_of,
        make_transport,
        workers,
        options,
    )
    context = multiprocessing.get_context("spawn")
    finished = context.Array("q", workers + 1, lock=False)  # per worker, then the total
    stopped: Stopped | None = None
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_remember, initargs=(finished,)
    ) as pool:
        futures = [pool.submit(_work, job, index) for index in range(workers)]
        while True:
            try:
                pending = wait(futures, timeout=0.2).not_done
            except KeyboardInterrupt as stop:  # pass the stop on; the workers end cleanly
                stopped = stop if isinstance(stop, Stopped) else Stopped(signal.SIGINT)
                for pid in list(getattr(pool, "_processes", {}) or {}):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                continue
            if progress is not None and finished[workers]:
                progress(sum(finished[:workers]) // workers, finished[workers])
            if not pending:
                break
        results = [future.result() for future in futures]
    failures = [r for r in results if isinstance(r, Failed)]
    if failures:
        first = failures[0]
        raise (TransportDown if first.kind == "TransportDown" else WorkFailed)(first.message)
    merged = merge([r for r in results if isinstance(r, SendSummary)])
    if stopped is not None:
        merged.interrupted = merged.interrupted or str(stopped)
    return merged


def _remember(finished: Any) -> None:
    global _progress
    _progress = finished
    # A worker stops as the run does: SIGTERM (passed on by the parent, or from systemd)
    # and Ctrl-C both finish the mails on the wire and give back the rest.
    signal.signal(signal.SIGTERM, stop_on_signal)


def stop_on_signal(signum: int, _frame: Any) -> None:
    """A signal handler: stop the run as Ctrl-C does."""
    raise Stopped(signum)


def _work(job: Job, index: int) -> SendSummary | Failed:
    from trouw.store import open_store

    def report(done: int, total: int) -> None:
        _progress[index] = done
        _progress[job.workers] = total

    engine = open_store(job.database_url)
    transport = job.make_transport() if job.make_transport is not None else None
    try:
        project = load_project(job.project_root)
        return send_day(
            engine, project, job.as_of, transport,
            worker=(index, job.workers), progress=report, **job.options,
        )  # fmt: skip
    except TrouwError as exc:
        return Failed(type(exc).__name__, str(exc))
    finally:
        if transport is not None:
            transport.close()
        engine.dispose()


def merge(summaries: Sequence[SendSummary]) -> SendSummary:
    """One summary for the workers of one run: each worker owes and works its own contacts
    (run.py), so their counts add up."""
    merged = SendSummary(summaries[0].day, dry_run=summaries[0].dry_run)
    for one in summaries:
        for name in ("due", "triggered", "sent", "would_send", "failed", "unknown", "deferred",
                     "released", "taken_over", "stale", "suppressed"):  # fmt: skip
            setattr(merged, name, getattr(merged, name) + getattr(one, name))
        for day, count in one.earlier.items():
            merged.earlier[day] = merged.earlier.get(day, 0) + count
        merged.earlier = dict(sorted(merged.earlier.items()))
        merged.expired += one.expired
        merged.settled.update(one.settled)
        merged.held = merged.held or one.held
        merged.unknown_waiting = max(merged.unknown_waiting, one.unknown_waiting)
        merged.limited = merged.limited or one.limited
        merged.interrupted = merged.interrupted or one.interrupted
        merged.signed_with = merged.signed_with or one.signed_with
        merged.unplanned = merged.unplanned or one.unplanned
        merged.failures.extend(one.failures)
        merged.retried.extend(one.retried)
    # What one worker found claimed or made by another is the run's own work, not a skip;
    # a send skipped by several workers is one skip.
    for one in summaries:
        for key, reason in one.skips.items():
            if reason not in OWN_WORK:
                merged.skips.setdefault(key, reason)
    return merged


__all__ = ["Job", "TransportMaker", "merge", "send_with_workers", "stop_on_signal"]
