"""The production entry point under gunicorn, and the ways a server refuses to start."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.tracking.conftest import (
    GARDEN,
    Server,
    Shop,
    server_env,
    start_server,
    stop,
    wait_for_line,
)
from trouw.errors import UserError
from trouw.store import open_store
from trouw.templates.links import keep_signing_key, signing_key

pytestmark = pytest.mark.slow


@pytest.fixture
def gunicorn(shop: Shop, tmp_path: Path) -> Iterator[Server]:
    """`gunicorn trouw.tracking.wsgi:app`, configured by the environment only."""
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0"]
    command += ["--workers", "2", "--threads", "4", "trouw.tracking.wsgi:app"]
    env = server_env(TROUW_PROJECT=str(shop.root), TROUW_DATABASE_URL=shop.cli.db_url)
    elsewhere = tmp_path / "elsewhere"  # no trouw.toml above: the project comes from the env
    elsewhere.mkdir()
    process = start_server(command, env, log, cwd=elsewhere)
    try:
        line = wait_for_line(process, log, "Listening at: http://127.0.0.1:")
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        server = Server("127.0.0.1", port, log, process)
        deadline = time.monotonic() + 30
        while server.get("/healthz").status != 200:  # the workers are still booting
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield server
    finally:
        stop(process)


def test_gunicorn_serves_the_app_named_by_the_environment(shop: Shop, gunicorn: Server) -> None:
    mail = shop.mails["c3"]
    for _ in range(10):
        answer = gunicorn.get(mail.garden)
        assert (answer.status, answer.headers["location"]) == (302, GARDEN)
    assert gunicorn.get(mail.pixel).status == 200
    assert gunicorn.post_one_click(mail.unsubscribe).status == 200
    assert (shop.count("click", "c3"), shop.count("open"), shop.count("unsubscribe")) == (10, 1, 1)
    assert gunicorn.get(mail.garden.replace("/c/", "/u/")).status == 404


def test_without_trouw_secret_the_project_key_in_the_database_signs_and_checks(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trouw.tracking.app import app_from_environment

    monkeypatch.setenv("TROUW_PROJECT", str(cli.project))
    monkeypatch.setenv("TROUW_DATABASE_URL", cli.db_url)
    monkeypatch.delenv("TROUW_SECRET", raising=False)
    engine = open_store(cli.db_url)
    try:
        with engine.connect() as connection:
            key = signing_key(connection)
        again = open_store(cli.db_url)  # another machine on the same database: the same key
        with again.connect() as connection:
            assert signing_key(connection) == key
        again.dispose()
    finally:
        engine.dispose()
    assert key.source == "the project key" and len(key.secret) >= 40
    app_from_environment()  # starts without configuration


def test_a_secret_that_differs_from_the_one_mail_was_signed_with_is_refused(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trouw.tracking.app import app_from_environment

    monkeypatch.setenv("TROUW_PROJECT", str(shop.root))
    monkeypatch.setenv("TROUW_DATABASE_URL", shop.cli.db_url)
    engine = open_store(shop.cli.db_url)
    try:
        with engine.begin() as connection:  # a send signed mail with TROUW_SECRET
            keep_signing_key(connection, signing_key(connection))
    finally:
        engine.dispose()
    monkeypatch.setenv("TROUW_SECRET", "another secret")
    with pytest.raises(UserError, match="is not the secret this database's mail was signed"):
        app_from_environment()
    monkeypatch.delenv("TROUW_SECRET")
    with pytest.raises(UserError, match=r"signed with TROUW_SECRET .* which is not set here"):
        app_from_environment()


def test_serve_on_a_port_in_use_is_a_usage_error(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port))
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "choose another --port" in result.output
