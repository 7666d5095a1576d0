"""`trouw demo` through the command line: its own database, refusals, --clean, its figures."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from trouw.cli import main
from trouw.demo.database import MARKER
from trouw.store import contacts, ledger, open_store, plan, segment_snapshots
from trouw.store.tables import keys

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-23"  # late in 2026: the demo plans 2027


@pytest.fixture(autouse=True)
def _no_database_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROUW_DATABASE_URL", raising=False)


def trouw(project: Path, *args: str, db: str | None = None) -> Result:
    options = ["--project", str(project), *(["--db", db] if db else [])]
    return CliRunner().invoke(main, [*options, *args])


def example_project(tmp_path: Path) -> Path:
    """A copy of the repository's example project (Huis & Tuin)."""
    project = tmp_path / "example"
    project.mkdir()
    shutil.copy(ROOT / "trouw.toml", project)
    for folder in ("segments", "templates", "campaigns"):
        shutil.copytree(ROOT / folder, project / folder)
    return project


def starter_project(tmp_path: Path) -> Path:
    """A project as `trouw init` writes it: a monthly newsletter for everyone."""
    project = tmp_path / "shop"
    assert CliRunner().invoke(main, ["init", str(project)]).exit_code == 0
    return project


def shop_data(project: Path, db: str | None = None) -> None:
    """The shop's own contacts, a plan of 2027 and the ledger of its first newsletter."""
    examples = str(project / "examples" / "contacts.csv")
    for args in (
        ("import", "contacts", examples),
        ("plan", "2027", "--as-of", AS_OF),
        ("send", "--as-of", "2027-01-05", "--outbox", str(project / "sent"),
         "--now", "2027-01-05T11:00"),
    ):  # fmt: skip
        result = trouw(project, *args, db=db)
        assert result.exit_code == 0, result.output


def snapshot(url: str) -> dict[str, Any]:
    """Every contact id, plan row and ledger row: what the demo must leave alone."""
    engine = open_store(url)
    try:
        with engine.connect() as connection:
            return {
                "contacts": sorted(connection.execute(select(contacts.c.id)).scalars()),
                "plan": sorted(
                    tuple(row)
                    for row in connection.execute(
                        select(plan.c.contact_id, plan.c.day, plan.c.campaign, plan.c.status)
                    )
                ),
                "ledger": sorted(
                    tuple(row)
                    for row in connection.execute(
                        select(ledger.c.contact_id, ledger.c.occurrence, ledger.c.status)
                    )
                ),
                "marker": connection.execute(
                    select(func.count()).select_from(keys).where(keys.c.name == MARKER)
                ).scalar_one(),
                "snapshots": connection.execute(
                    select(func.count()).select_from(segment_snapshots)
                ).scalar_one(),
            }
    finally:
        engine.dispose()


def files_under(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*")}


def test_the_demo_works_in_its_own_database_and_the_tour_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = example_project(tmp_path)
    (tmp_path / "own.csv").write_text(
        "id,email,birthday\nshop-1,own@example.nl,1980-01-12\n", encoding="utf-8"
    )
    assert trouw(project, "import", "contacts", str(tmp_path / "own.csv")).exit_code == 0
    assert trouw(project, "plan", "2027", "--as-of", AS_OF).exit_code == 0
    project_url = f"sqlite:///{project.resolve() / '.trouw' / 'trouw.db'}"
    before = snapshot(project_url)
    assert before["contacts"] == ["shop-1"] and before["plan"]

    first = trouw(project, "demo", "--contacts", "30", "--as-of", AS_OF)
    assert first.exit_code == 0, first.output
    assert snapshot(project_url) == before  # the project's own database: untouched
    demo_url = f"sqlite:///{project.resolve() / '.trouw' / 'demo.db'}"
    assert f"export TROUW_DATABASE_URL={demo_url}" in first.stdout
    assert "its own database" in first.stdout
    assert "plan 2027" in first.stdout
    assert (project / ".trouw" / "demo" / "calendar-2027.ics").is_file()
    assert list((project / ".trouw" / "demo" / "previews").glob("*.eml"))
    demo = snapshot(demo_url)
    assert len(demo["contacts"]) == 30
    assert all(contact.startswith("demo-") for contact in demo["contacts"])
    assert demo["plan"] and demo["ledger"] and demo["marker"] == 1

    # The tour: with the export line the demo printed, the other commands see its data.
    monkeypatch.setenv("TROUW_DATABASE_URL", demo_url)
    counted = trouw(project, "segments", "count", "--as-of", AS_OF)
    assert counted.exit_code == 0, counted.output
    assert re.search(r"active-customers\W+[1-9]", counted.stdout), counted.stdout
    log = trouw(project, "log", "--format", "csv")
    assert log.exit_code == 0 and "demo-" in log.stdout

    second = trouw(project, "demo", "--contacts", "20", "--as-of", AS_OF)  # twice in a row
    assert second.exit_code == 0, second.output
    assert "export TROUW_DATABASE_URL" not in second.stdout  # this shell looks at it already
    assert len(snapshot(demo_url)["contacts"]) == 20  # the second run replaced the first
    assert snapshot(project_url) == before


def test_the_demo_refuses_a_named_database_holding_other_contacts(
    tmp_path: Path, db_url: str
) -> None:
    project = starter_project(tmp_path)
    shop_data(project, db=db_url)
    before = snapshot(db_url)
    assert before["contacts"] and before["plan"] and before["ledger"]

    refused = trouw(project, "demo", "--contacts", "30", "--as-of", AS_OF, db=db_url)
    assert refused.exit_code == 2, refused.output
    assert "holds 3 contacts the demo did not make (e.g. 'example-1')" in refused.stderr
    assert "fix: leave out --db: `trouw demo` then works in its own database" in refused.stderr
    assert "Traceback" not in refused.output
    assert snapshot(db_url) == before  # contacts, plan and ledger as they were; no marker
    assert not (project / ".trouw" / "demo").exists()  # not even the generated files

    cleaned = trouw(project, "demo", "--clean", db=db_url)
    assert cleaned.exit_code == 0, cleaned.output
    assert "as it is: it holds no demo data" in cleaned.stdout
    assert snapshot(db_url) == before


def test_the_demo_runs_twice_in_a_named_empty_database_and_cleans_up(
    tmp_path: Path, db_url: str
) -> None:
    project = starter_project(tmp_path)
    for count in ("30", "20"):
        result = trouw(project, "demo", "--contacts", count, "--as-of", AS_OF, db=db_url)
        assert result.exit_code == 0, result.output
        assert "export TROUW_DATABASE_URL=" in result.stdout
        assert f"--db {db_url} demo --clean" in result.stdout
        assert snapshot(db_url)["snapshots"] == 0  # sizes saved from an earlier run: gone
        saved = trouw(project, "segments", "count", "--save", "--as-of", AS_OF, db=db_url)
        assert saved.exit_code == 0, saved.output
    made = snapshot(db_url)
    assert len(made["contacts"]) == 20 and made["plan"] and made["marker"] == 1

    # Someone imports their own contacts into it: the demo's rows go, theirs stay.
    own = tmp_path / "own.csv"
    own.write_text("id,email\nshop-1,own@example.nl\n", encoding="utf-8")
    assert trouw(project, "import", "contacts", str(own), db=db_url).exit_code == 0
    assert trouw(project, "demo", "--contacts", "5", db=db_url).exit_code == 2
    cleaned = trouw(project, "demo", "--clean", db=db_url)
    assert cleaned.exit_code == 0, cleaned.output
    assert "removed the demo's 20 contacts" in cleaned.stdout
    assert "kept the 1 contact the demo did not make" in cleaned.stdout
    after = snapshot(db_url)
    # Saved segment sizes stay: with another's contacts in it they may count those too.
    assert after == {
        "contacts": ["shop-1"], "plan": [], "ledger": [], "marker": 0,
        "snapshots": made["snapshots"],
    }  # fmt: skip
    assert not (project / ".trouw" / "demo").exists()


def test_clean_removes_the_demos_things_and_nothing_else(tmp_path: Path) -> None:
    project = starter_project(tmp_path)
    shop_data(project)  # the project's own database, and letters in its letters folder
    (project / "letters").mkdir(exist_ok=True)
    (project / "letters" / "2027-01-05-newsletter.html").write_text("a letter", encoding="utf-8")
    (project / ".trouw" / "logs").mkdir()
    (project / ".trouw" / "logs" / "send.log").write_text("sent\n", encoding="utf-8")
    before_files = files_under(project)
    project_url = f"sqlite:///{project.resolve() / '.trouw' / 'trouw.db'}"
    before = snapshot(project_url)

    result = trouw(project, "demo", "--contacts", "30", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert (project / ".trouw" / "demo.db").is_file()

    cleaned = trouw(project, "demo", "--clean")
    assert cleaned.exit_code == 0, cleaned.output
    assert f"removed  {project.resolve() / '.trouw' / 'demo.db'}" in cleaned.stdout
    assert f"removed  {project.resolve() / '.trouw' / 'demo'}" in cleaned.stdout
    assert files_under(project) == before_files  # exactly what was there before the demo
    assert snapshot(project_url) == before

    again = trouw(project, "demo", "--clean")
    assert again.exit_code == 0
    assert "nothing to remove" in again.stdout


def test_the_demo_counts_each_letter_once(tmp_path: Path) -> None:
    # The starter's newsletter goes to everyone on the plan's first day, post contacts too.
    project = starter_project(tmp_path)
    result = trouw(project, "demo", "--contacts", "40", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    found = re.search(r"sent +(\S+): (\d+) mails and (\d+) letters by post", result.stdout)
    assert found, result.stdout
    day, mails, letters = found.group(1), int(found.group(2)), int(found.group(3))
    outbox = project / ".trouw" / "demo" / "outbox"
    assert mails == len(list(outbox.glob("*.eml")))
    assert letters == len(list((outbox / "letters").glob("*.html"))) > 0
    # A letter may be an .html and a .pdf beside it: one letter, not two.
    stems = {
        path.stem
        for path in (outbox / "letters").rglob("*")
        if path.suffix in (".html", ".pdf") and path.stem != "letters"  # the day's letters.pdf
    }
    assert len(stems) == letters
    demo = snapshot(f"sqlite:///{project.resolve() / '.trouw' / 'demo.db'}")
    sent = [row for row in demo["ledger"] if row[2] == "sent"]
    assert len(sent) == mails + letters
    assert day == "2027-01-05"  # the first Tuesday: the starter's newsletter
