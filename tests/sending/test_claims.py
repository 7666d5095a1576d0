"""PostgreSQL: a worker claims its contacts with SKIP LOCKED; another worker gets the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.conftest import Cli
from tests.sending.conftest import DAY, SmtpServer, make_day_shop
from trouw.sending.ledger import claim_contacts


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_contact_held_by_one_worker_is_skipped_by_another(
    project_dir: Path, engine: Engine
) -> None:
    make_day_shop(project_dir, engine)
    with engine.connect() as first, engine.connect() as second:
        with first.begin():
            assert claim_contacts(first, ["c1", "c2"]) == {"c1", "c2"}
            with second.begin():  # does not wait: skips what the first holds
                assert claim_contacts(second, ["c1", "c2", "c3", "gone"]) == {"c3", "gone"}
        with second.begin():  # the first committed: free again
            assert claim_contacts(second, ["c1", "c2"]) == {"c1", "c2"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_write_transaction_is_the_claim(project_dir: Path, engine: Engine) -> None:
    with engine.connect() as connection, connection.begin():
        assert claim_contacts(connection, ["c1", "c9"]) == {"c1", "c9"}


def test_cli_send_with_workers_sends_each_mail_once(
    cli: Cli, engine: Engine, smtp_server: SmtpServer
) -> None:
    make_day_shop(cli.project, engine)
    result = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url, "--workers", "3")
    assert result.exit_code == 0, result.output
    assert "owed, sent 3" in result.output
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == [
        "ann@x.example",
        "bob@x.example",
        "cor@x.example",
    ]
    refused = cli("send", "--as-of", DAY.isoformat(), "--dry-run", "--workers", "2")
    assert refused.exit_code == 2 and "--workers" in refused.output
