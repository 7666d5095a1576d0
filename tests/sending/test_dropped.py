"""A connection dropped during DATA: the mail is never sent twice, and its row ends `unknown`."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.sending.conftest import DAY, SmtpServer, make_day_shop
from trouw.project import load_project
from trouw.sending import SendSummary, SmtpTransport, send_day
from trouw.store import ledger


def _send(root: Path, engine: Engine, server: SmtpServer, **options: bool) -> SendSummary:
    transport = SmtpTransport(server.url, backoff=(0.01, 0.01, 0.01))
    try:
        return send_day(engine, load_project(root), DAY, transport, **options)
    finally:
        transport.close()


def _rows(engine: Engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(ledger.c.contact_id, ledger.c.status, ledger.c.error))
        return {str(r[0]): (str(r[1]), str(r[2] or "")) for r in rows}


@pytest.mark.parametrize("kept", [False, True], ids=["lost", "kept-by-the-server"])
def test_a_connection_dropped_mid_data_leaves_the_row_unknown_and_sends_no_duplicate(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer, kept: bool
) -> None:
    root = make_day_shop(project_dir, engine)
    smtp_server.handler.drop["bob@x.example"] = kept
    summary = _send(root, engine, smtp_server)
    # The others go out over a new connection; bob's fate cannot be known by the client.
    assert (summary.sent, summary.unknown) == (2, 1)
    rows = _rows(engine)
    assert rows["c1"][0] == rows["c3"][0] == "sent"
    assert rows["c2"][0] == "unknown" and "during DATA" in rows["c2"][1]
    received = [r.rcpt_tos[0] for r in smtp_server.handler.received]
    assert received.count("bob@x.example") == (1 if kept else 0)
    again = _send(root, engine, smtp_server)  # a rerun never sends an unknown mail silently
    assert again.sent == 0 and again.unknown_waiting == 1
    assert len(smtp_server.handler.received) == len(received)
    # Only the operator's --retry-unknown sends it again, under the same Message-ID.
    retry = _send(root, engine, smtp_server, retry_unknown=True)
    assert retry.sent == 1 and _rows(engine)["c2"][0] == "sent"
    bobs = [r for r in smtp_server.handler.received if r.rcpt_tos == ["bob@x.example"]]
    assert len(bobs) == (2 if kept else 1)
    assert len({message_from_bytes(r.content)["Message-ID"] for r in bobs}) == 1
