"""`trouw simulate`: a dry run on a scratch copy that leaves the real database as it was."""

from __future__ import annotations

import csv
import hashlib
from datetime import date
from pathlib import Path

from sqlalchemy import func, select, text

from tests.conftest import Cli, write_files
from tests.planning.shop import TEMPLATE, policy
from tests.planning.test_simulate import SHOP_CAMPAIGNS, SHOP_CONTACTS, SHOP_EVENTS
from trouw.planning.scratch import SCHEMA_PREFIX
from trouw.store import atomic, ledger, open_store, plan


def _shop(cli: Cli) -> Cli:
    files = {f"campaigns/{name}.yaml": body for name, body in SHOP_CAMPAIGNS.items()}
    files.update(
        {
            "templates/mail.html": TEMPLATE,
            "templates/other.html": TEMPLATE,
            "contacts.csv": SHOP_CONTACTS,
            "events.csv": SHOP_EVENTS,
        }
    )
    write_files(cli.project, files)
    settings = cli.project / "trouw.toml"
    settings.write_text(settings.read_text() + policy(), encoding="utf-8")
    for kind in ("contacts", "events"):
        result = cli("import", kind, str(cli.project / f"{kind}.csv"))
        assert result.exit_code == 0, result.output
    assert cli("plan", "2027", "--as-of", "2027-02-20").exit_code == 0
    return cli


def _state(url: str) -> tuple[int, int, list[tuple[object, ...]], list[str]]:
    """Row counts of plan and ledger, the ledger itself, and any scratch schemas left."""
    engine = open_store(url)
    try:
        with engine.connect() as connection:
            plans = connection.execute(select(func.count()).select_from(plan)).scalar_one()
            rows = [tuple(r) for r in connection.execute(select(ledger).order_by(ledger.c.id))]
            schemas: list[str] = []
            if engine.dialect.name == "postgresql":
                schemas = list(
                    connection.execute(
                        text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :prefix"),
                        {"prefix": f"{SCHEMA_PREFIX}%"},
                    ).scalars()
                )
            return plans, len(rows), rows, schemas
    finally:
        engine.dispose()


def test_simulate_prints_a_timeline_and_leaves_the_real_database_alone(
    cli: Cli, tmp_path: Path
) -> None:
    shop = _shop(cli)
    engine = open_store(shop.db_url)
    with atomic(engine) as connection:
        connection.execute(
            ledger.insert().values(
                contact_id="calm", campaign="weekly", step="main",
                occurrence="weekly:2027-02-24", day=date(2027, 2, 24), channel="email",
                status="sent", reserved_at=date(2027, 2, 24),
            )
        )  # fmt: skip
    engine.dispose()
    before = _state(shop.db_url)
    database = Path(shop.db_url.removeprefix("sqlite:///"))
    digest = hashlib.sha256(database.read_bytes()).hexdigest() if database.is_file() else None
    out = tmp_path / "sim"
    result = shop("simulate", "--from", "2027-03-01", "--to", "2027-03-31", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "simulated sends 2027-03-01 … 2027-03-31" in result.output
    assert "welcome" in result.output and "fire-safety" in result.output
    assert "mails per contact" in result.output and "p99" in result.output
    with (out / "timeline.csv").open(encoding="utf-8") as handle:
        timeline = list(csv.DictReader(handle))
    assert list(timeline[0]) == [
        "contact_id", "day", "campaign", "step", "occurrence", "template", "channel"
    ]  # fmt: skip
    days = {(r["contact_id"], r["day"], r["campaign"]) for r in timeline}
    assert ("clicker", "2027-03-05", "fire-safety") in days
    assert ("newbie", "2027-03-19", "welcome") in days
    # calm's 24 February mail is in the (copied) ledger: no catch-up on 1 March.
    assert ("calm", "2027-03-01", "weekly") not in days
    assert ("clicker", "2027-03-01", "weekly") in days
    after = _state(shop.db_url)
    assert after == before and after[3] == [], "the real plan and ledger are untouched"
    if digest is not None:
        assert hashlib.sha256(database.read_bytes()).hexdigest() == digest


def test_simulate_writes_to_the_project_by_default_and_checks_its_dates(cli: Cli) -> None:
    shop = _shop(cli)
    result = shop("simulate", "--from", "2027-03-31", "--to", "2027-03-01")
    assert result.exit_code == 2 and "is before --from" in result.output
    result = shop("simulate", "--from", "2027-03-01", "--to", "2028-12-31")
    assert result.exit_code == 2 and "simulate a shorter period" in result.output
    result = shop("simulate", "--from", "2027-03-01", "--to", "2027-03-02")
    assert result.exit_code == 0, result.output
    folder = shop.project / ".trouw" / "simulate"
    assert sorted(p.name for p in folder.iterdir()) == ["pressure.csv", "timeline.csv", "weeks.csv"]
