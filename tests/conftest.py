"""Fixtures: projects built from dicts, and a database on SQLite and PostgreSQL.

PostgreSQL tests use the server at TROUW_TEST_POSTGRES_URL (default: the local
one). Without a reachable server they are skipped with the reason, unless CI
is set: then they fail, because CI must test both databases.

The property tests (hypothesis) try new random examples on every run, and keep
the ones that failed in .hypothesis/ to try them first next time; with CI set
they try the same examples every time, so CI passes or fails on the code alone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from trouw.cli import main
from trouw.store import open_store

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

POSTGRES_URL = os.environ.get(
    "TROUW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

SETTINGS = """\
[project]
name = "Test Shop"
timezone = "Europe/Amsterdam"
locale = "nl"

[sender]
from = "Test Shop <hello@shop.example>"
postal_address = "Street 1, 1234 AB Town"
"""


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Write {relative path: content} under root; return root."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An empty project: trouw.toml and the three folders."""
    root = tmp_path / "shop"
    write_files(root, {"trouw.toml": SETTINGS})
    for folder in ("segments", "templates", "campaigns"):
        (root / folder).mkdir()
    return root


_postgres_problem: str | None = None
_postgres_checked = False


def _postgres_unavailable() -> str | None:
    global _postgres_checked, _postgres_problem
    if not _postgres_checked:
        _postgres_checked = True
        try:
            engine = create_engine(POSTGRES_URL)
            with engine.connect():
                pass
            engine.dispose()
        except Exception as exc:  # any reason at all: report it
            _postgres_problem = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
    return _postgres_problem


def _fresh_postgres_database() -> Iterator[str]:
    problem = _postgres_unavailable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL, but: {problem}")
        pytest.skip(problem)
    name = f"trouw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trouw.db'}"
    else:
        yield from _fresh_postgres_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


@dataclass
class Cli:
    """Runs trouw commands in-process against one project and database."""

    project: Path
    db_url: str

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            main,
            ["--project", str(self.project), "--db", self.db_url, *args],
            input=input,
            catch_exceptions=False,
        )


@pytest.fixture
def cli(project_dir: Path, db_url: str) -> Cli:
    return Cli(project_dir, db_url)


CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download cannot work here
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright; skipped with the reason if either is missing,
    except under CI, which must run the browser tests."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing: apt-get install -y chromium"
    else:
        try:
            import playwright.sync_api
        except ImportError:
            problem = "the playwright package is missing: pip install playwright"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests, but: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
