"""`trouw init` and `trouw demo`: a newcomer's first two commands."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from tests.conftest import Cli
from trouw.cli import main
from trouw.store import contacts, events, open_store

ROOT = Path(__file__).resolve().parents[2]


def test_init_scaffolds_a_project_the_demo_runs_on(tmp_path: Path) -> None:
    shop = tmp_path / "my-shop"
    result = CliRunner().invoke(main, ["init", str(shop)])
    assert result.exit_code == 0, result.output
    assert (shop / "trouw.toml").is_file()
    assert (shop / "templates" / "layout.html").is_file()
    assert (shop / ".gitignore").read_text() == ".trouw/\n"
    again = CliRunner().invoke(main, ["init", str(shop)])
    assert again.exit_code == 2
    assert "already holds a project" in again.stderr

    demo = CliRunner().invoke(
        main, ["--project", str(shop), "demo", "--contacts", "200", "--as-of", "2026-11-23"]
    )
    assert demo.exit_code == 0, demo.output
    assert "200 contacts" in demo.stdout
    assert (shop / ".trouw" / "trouw.db").is_file()  # the default, embedded database


def test_demo_on_the_example_project_replaces_its_own_rows(tmp_path: Path, db_url: str) -> None:
    project = tmp_path / "example"
    project.mkdir()
    shutil.copy(ROOT / "trouw.toml", project)
    for folder in ("segments", "templates", "campaigns"):
        shutil.copytree(ROOT / folder, project / folder)
    cli = Cli(project, db_url)
    (tmp_path / "own.csv").write_text("id,email\nshop-1,own@example.nl\n", encoding="utf-8")
    assert cli("import", "contacts", str(tmp_path / "own.csv")).exit_code == 0

    first = cli("demo", "--contacts", "300", "--as-of", "2026-11-23")
    assert first.exit_code == 0, first.output
    assert "Huis & Tuin" in first.stdout
    assert "Where to look next" in first.stdout
    assert "trouw contacts show demo-" in first.stdout
    assert "fire-safety-prospects" in first.stdout  # every segment counted
    previews = sorted((project / ".trouw" / "demo" / "previews").glob("*.eml"))
    assert previews, "the demo writes sample mails"
    assert "spring-outing" in " ".join(path.name for path in previews)
    assert "plan 2027" in first.stdout  # late in 2026 the demo plans the coming year
    assert (project / ".trouw" / "demo" / "calendar-2027.ics").is_file()
    assert "logged in the ledger" in first.stdout  # the plan's first day went to the outbox
    assert list((project / ".trouw" / "demo" / "outbox").glob("*.eml"))
    second = cli("demo", "--contacts", "100", "--as-of", "2026-11-23")
    assert second.exit_code == 0, second.output

    engine = open_store(db_url)
    with engine.connect() as connection:
        ids = set(connection.execute(select(contacts.c.id)).scalars())
        demo_events = connection.execute(
            select(func.count()).select_from(events).where(events.c.contact_id.startswith("demo-"))
        ).scalar_one()
    engine.dispose()
    assert "shop-1" in ids  # the shop's own contacts are never touched
    assert len(ids) == 101  # the second demo replaced the first one's 300
    assert demo_events > 100
