"""POST /api/events and /api/contacts through a real `trouw serve` process, on both databases.

Keys come from `trouw keys create`; items are checked as the lines of a file
import are, with the same column and words; a repeated event id is accepted
and stored once, also when many clients send and retry at once; a sign-up
pushed this way gets its welcome mail in the same day's `trouw send`.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import SETTINGS, Cli, write_files
from tests.planning.shop import policy
from tests.tracking.conftest import server_env, start_server, stop, wait_for_line
from trouw.importing import import_events
from trouw.store import events, ledger, open_store

DAY = "2027-04-06"  # a Tuesday
FILES = {
    "trouw.toml": SETTINGS + policy(),
    "templates/mail.html": "{% block subject %}Hoi{% endblock %}<p>{{ contact.first_name }}</p>\n",
    "campaigns/welcome.yaml": "kind: lifecycle\npriority: 90\ntrigger: signup\ntemplate: mail\n",
    # c1 signed up in March: the plan has a welcome (a year without a plan row fails `send`).
    "contacts.csv": (
        "id,email,first_name,customer_since\nc1,ann@x.example,Ann,2027-03-02\n"
        "c2,bob@x.example,Bob,\n"
    ),
}


@dataclass
class Api:
    """The project, its database, a key, and `trouw serve` answering on loopback."""

    cli: Cli
    engine: Engine
    root: Path
    port: int
    key: str

    def post(self, path: str, body: Any, key: str | None = "", raw: bytes | None = None) -> Any:
        """(status, parsed JSON answer) of a POST; key "" means the fixture's key."""
        headers = {"Content-Type": "application/json"}
        key = self.key if key == "" else key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else json.dumps(body).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("POST", path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def stored(self) -> dict[str, int]:
        """Stored events per external id."""
        query = select(events.c.external_id, func.count()).group_by(events.c.external_id)
        with self.engine.connect() as connection:
            return {str(key): int(n) for key, n in connection.execute(query)}


@pytest.fixture
def api(project_dir: Path, db_url: str, tmp_path: Path) -> Iterator[Api]:
    write_files(project_dir, FILES)
    cli = Cli(project_dir, db_url)
    for args in (
        ("import", "contacts", str(project_dir / "contacts.csv")),
        ("plan", "2027", "--as-of", "2027-01-01"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    created = cli("keys", "create", "shop-web")
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    assert key.startswith("trouw_") and len(key) == 49
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "trouw", "--project", str(project_dir), "--db", db_url]
    command += ["serve", "--host", "127.0.0.1", "--port", "0"]
    process = start_server(command, server_env(), log)
    engine = open_store(db_url)
    try:
        line = wait_for_line(process, log, "http://127.0.0.1:")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        yield Api(cli, engine, project_dir, port, key)
    finally:
        stop(process)
        engine.dispose()


def event(n: int, contact: str = "c1", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "contact_id": contact,
        "type": "page_view",
        "occurred_at": "2027-04-06T10:00:00",
        **extra,
    }


def test_only_a_valid_key_not_revoked_gets_in(api: Api) -> None:
    batch = [event(1)]
    assert api.post("/api/events", batch, key=None)[0] == 401
    assert api.post("/api/events", batch, key="trouw_" + "x" * 43)[0] == 401
    assert api.post("/api/events", batch, key="not-even-a-key")[0] == 401
    assert api.post("/api/contacts", [{"id": "c9"}], key=None)[0] == 401
    assert api.post("/api/events", batch) == (200, {"accepted": 1, "rejected": []})
    listed = api.cli("keys", "list")
    assert "shop-web" in listed.output and api.key[:10] in listed.output
    assert api.key not in listed.output  # shown once, stored as a hash

    assert api.cli("keys", "revoke", "shop-web").exit_code == 0
    deadline = time.monotonic() + 10
    while api.post("/api/events", batch)[0] != 401:  # the server reads keys every second
        assert time.monotonic() < deadline, "a revoked key still works"
        time.sleep(0.2)
    assert "revoked" in api.cli("keys", "list").output
    assert api.stored() == {"e1": 1}


def test_items_are_refused_as_a_file_import_refuses_its_lines(api: Api) -> None:
    batch = [
        event(1),
        event(2, occurred_at="yesterday"),
        "not an object",
        event(3, contact="nobody"),
        event(4, type="survey", tag="nps", score=11),
        event(5, amount=12.5, channel="web"),
    ]
    status, answer = api.post("/api/events", {"batch": batch})
    assert status == 200
    assert answer["accepted"] == 2
    got = {item["index"]: (item["column"], item["error"]) for item in answer["rejected"]}
    assert sorted(got) == [1, 2, 3, 4]

    # The same lines through `trouw import events`: the same columns and the same words.
    lines = [json.dumps(item) for item in batch]
    path = api.root / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_events(api.engine, path, timezone="Europe/Amsterdam")
    from_file = {r.line - 1: (r.column, r.reason) for r in report.rejected}
    assert from_file.pop(2) == (None, "expected a JSON object per line")
    assert got.pop(2) == (None, "expected a JSON object")
    assert from_file == got

    status, answer = api.post(
        "/api/contacts",
        [
            {"id": "c3", "email": "cor@x.example", "birthday": "1980-02-30"},
            {"id": "c4", "email": "not an address"},
            {"id": "c5", "email": "dirk@x.example", "loyalty": "gold"},
            {"email": "nobody@x.example"},
        ],
    )
    assert status == 200
    assert answer == {
        "accepted": 1,
        "rejected": [
            {"index": 0, "column": "birthday", "error": "'1980-02-30' is not a real date"},
            {
                "index": 1,
                "column": "email",
                "error": "'not an address' is not a valid email address",
            },
            {"index": 3, "column": "id", "error": "is required"},
        ],
    }


def test_a_repeated_event_id_is_accepted_and_stored_once(api: Api) -> None:
    batch = [event(1), event(2), event(1)]  # a repeat inside the batch, too
    assert api.post("/api/events", batch) == (200, {"accepted": 3, "rejected": []})
    assert api.post("/api/events", batch[:2]) == (200, {"accepted": 2, "rejected": []})
    assert api.stored() == {"e1": 1, "e2": 1}


def test_a_body_not_json_is_400_and_too_big_is_413(api: Api) -> None:
    assert api.post("/api/events", None, raw=b"{not json")[0] == 400
    assert api.post("/api/events", {"events": []})[0] == 400
    assert api.post("/api/events", None, raw=b"[" * 100_000)[0] == 400
    assert api.post("/api/events", [event(n) for n in range(1001)])[0] == 413
    assert api.post("/api/events", None, raw=b" " * (1 << 20) + b"[]")[0] == 413
    assert api.post("/api/events", []) == (200, {"accepted": 0, "rejected": []})
    assert api.stored() == {}


def test_segment_track_and_identify_are_read(api: Api) -> None:
    identify = {
        "type": "identify",
        "userId": "c7",
        "traits": {"email": "eva@x.example", "firstName": "Eva", "plan": "pro"},
    }
    assert api.post("/api/contacts", [identify]) == (200, {"accepted": 1, "rejected": []})
    track = {
        "type": "track",
        "userId": "c7",
        "event": "Order Completed",
        "messageId": "m-1",
        "timestamp": "2027-04-06T08:00:00Z",
        "properties": {"amount": 25, "product": "spade"},
    }
    assert api.post("/api/events", [track, track]) == (200, {"accepted": 2, "rejected": []})
    with api.engine.connect() as connection:
        row = connection.execute(select(events).where(events.c.external_id == "m-1")).one()
    assert (row.contact_id, row.type, row.amount, row.product) == (
        "c7",
        "order_completed",
        25,
        "spade",
    )
    assert row.occurred_at.isoformat() == "2027-04-06T08:00:00"


def test_a_signup_pushed_gets_its_welcome_in_the_next_send(api: Api, tmp_path: Path) -> None:
    # The shop does not say customer_since: the welcome (trigger: signup) starts at the
    # signup event pushed as it happened.
    contact = {"id": "c9", "email": "nina@x.example", "first_name": "Nina"}
    assert api.post("/api/contacts", [contact]) == (200, {"accepted": 1, "rejected": []})
    signup = {"id": "s9", "contact_id": "c9", "type": "signup", "occurred_at": f"{DAY}T09:30:00"}
    assert api.post("/api/events", [signup]) == (200, {"accepted": 1, "rejected": []})

    result = api.cli("send", "--as-of", DAY, "--outbox", str(tmp_path / "out"))  # no new plan
    assert result.exit_code == 0, result.output
    mails = [path.read_text(encoding="utf-8") for path in (tmp_path / "out").glob("*.eml")]
    assert len(mails) == 1, result.output
    assert "nina@x.example" in mails[0] and "Nina" in mails[0]
    with api.engine.connect() as connection:
        sent = connection.execute(select(ledger.c.contact_id, ledger.c.campaign, ledger.c.status))
        assert ("c9", "welcome", "sent") in [tuple(row) for row in sent]


@pytest.mark.slow
def test_20000_events_from_8_clients_are_each_stored_once(api: Api) -> None:
    """8 clients post 200 batches of 100 events (1 in 50 bad) and send every 10th batch
    twice, 2 of them from another client at the same moment: every accepted id is stored
    exactly once, every bad item is answered with its error."""
    contacts = [{"id": f"p{n}", "email": f"p{n}@x.example"} for n in range(200)]
    assert api.post("/api/contacts", contacts)[1]["accepted"] == 200
    batches = []
    for b in range(200):
        batch = []
        for i in range(100):
            n = b * 100 + i
            item = event(n, contact=f"p{n % 200}")
            if n % 50 == 7:
                item["occurred_at"] = "later"
            batch.append(item)
        batches.append(batch)
    work: list[list[int]] = [[] for _ in range(8)]
    for b in range(200):
        work[b % 8].append(b)
        if b % 10 == 0:
            work[b % 8].append(b)  # a retry by the same client
        if b % 100 == 3:
            work[(b + 1) % 8].append(b)  # the same batch from another client
    answers: list[tuple[int, int, dict[str, Any]]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api.key}"}
        for b in work[index]:
            connection.request("POST", "/api/events", json.dumps(batches[b]), headers)
            response = connection.getresponse()
            body = json.loads(response.read())
            with lock:
                if response.status == 200:
                    answers.append((b, response.status, body))
                else:
                    failures.append(f"batch {b}: {response.status} {body}")
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    assert not failures
    assert seconds < 60, f"{seconds:.1f} s"
    assert len(answers) == sum(len(w) for w in work)
    accepted: set[str] = set()
    for b, _, body in answers:
        bad = {i for i in range(100) if (b * 100 + i) % 50 == 7}
        assert {item["index"] for item in body["rejected"]} == bad
        assert all(item["column"] == "occurred_at" for item in body["rejected"])
        assert all("is not an ISO 8601 time" in item["error"] for item in body["rejected"])
        assert body["accepted"] == 100 - len(bad)
        accepted |= {f"e{b * 100 + i}" for i in range(100) if i not in bad}
    stored = api.stored()
    assert len(accepted) == 20_000 - 400
    assert set(stored) == accepted and set(stored.values()) == {1}
