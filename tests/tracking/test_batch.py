"""Group commit (store/groupcommit.py) in the tracking server: one transaction per batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import OperationalError

from tests.tracking.conftest import BASE_URL, SECRET, Server, Shop
from trouw.store import atomic, contacts, events
from trouw.store.groupcommit import GroupCommit, WriteFailed
from trouw.store.writelock import WriteLock
from trouw.templates.links import LinkSigner
from trouw.tracking.record import Visit, VisitRecorder

NOW = datetime(2027, 4, 6, 12, 0)


def _clicks(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(events).where(events.c.type == "click")
        return int(connection.execute(query).scalar_one())


def _visit(contact_id: str = "c1", tag: str = "garden") -> Visit:
    return Visit.click(contact_id, "spring", tag, "https://shop.example/", NOW)


def test_a_failed_batch_records_nothing_and_the_writer_goes_on(engine: Engine) -> None:
    with atomic(engine) as connection:
        connection.execute(
            insert(contacts),
            [{"id": "c1", "email": "a@x.example", "channel": "email", "attributes": {},
              "created_at": NOW, "updated_at": NOW}],
        )  # fmt: skip
    failing = threading.Event()
    failing.set()
    started = threading.Barrier(9)

    recorder = VisitRecorder(engine, WriteLock(engine))

    def write(cursor: Any, visits: Sequence[Visit]) -> list[bool]:
        done = recorder.write(cursor, visits)  # the rows are written, then it fails
        if failing.is_set():
            raise OperationalError("INSERT INTO events", {}, Exception("disk I/O error"))
        return done

    group: GroupCommit[Visit, bool, Any] = GroupCommit(recorder.transaction, write, limit=3)

    def attempt(n: int) -> str:
        started.wait()
        try:
            return str(group.submit(_visit(tag=f"t{n}")))
        except WriteFailed as exc:
            return f"failed: {exc}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [pool.submit(attempt, n) for n in range(8)]
        started.wait()
        results = [answer.result() for answer in answers]
    assert all(result.startswith("failed: ") and "disk I/O error" in result for result in results)
    assert _clicks(engine) == 0

    failing.clear()
    assert group.submit(_visit()) is True
    assert group.submit(_visit("forgotten")) is False  # no such contact: nothing recorded
    assert _clicks(engine) == 1
    group.close()
    with pytest.raises(WriteFailed, match="closed"):
        group.submit(_visit())
    recorder.close()
    assert _clicks(engine) == 1


def test_close_writes_what_is_queued(engine: Engine) -> None:
    gate = threading.Event()
    seen: list[int] = []

    def write(connection: Connection, visits: Sequence[Visit]) -> list[bool]:
        gate.wait()
        seen.append(len(visits))
        return [False] * len(visits)

    group: GroupCommit[Visit, bool, Connection] = GroupCommit(lambda: atomic(engine), write)
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = [pool.submit(group.submit, _visit(tag=f"t{n}")) for n in range(5)]
        time.sleep(0.3)  # all five are queued, or in the write that waits for the gate
        threading.Timer(0.2, gate.set).start()
        group.close()  # returns once every queued visit is written
        assert sum(seen) == 5
        assert [answer.result() for answer in answers] == [False] * 5


@pytest.mark.slow
def test_concurrent_clicks_are_answered_only_once_committed_and_recorded_once(
    shop: Shop, server: Server
) -> None:
    signer = LinkSigner(BASE_URL, SECRET)
    people = sorted(shop.mails)
    keys = {person: shop.link_key(person) for person in people}
    links = {
        f"tag-{n}": signer.click_url(
            people[n % 3], "spring", "https://shop.example/", f"tag-{n}", keys[people[n % 3]]
        )
        for n in range(200)
    }

    def click(tag: str) -> tuple[int, int]:
        status = server.get(links[tag]).status
        query = select(func.count()).select_from(events).where(events.c.tag == tag)
        with shop.engine.connect() as connection:  # right after the answer: committed?
            return status, int(connection.execute(query).scalar_one())

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(click, links))
    assert answers == [(302, 1)] * 200
    assert shop.count("click") == 200
