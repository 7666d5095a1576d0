"""A small shop for planner tests: settings with a policy, files from dicts, contacts and events."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, select

from tests.conftest import SETTINGS, write_files
from trouw.importing import import_contacts, import_events
from trouw.planning import PlanSummary, plan_year
from trouw.project import load_project
from trouw.store import atomic, plan

TEMPLATE = "{% block subject %}Hi{% endblock %}<p>Hi {{ contact.first_name }}</p>\n"


def policy(
    *,
    week: int = 2,
    month: int = 6,
    gap: str = "2d",
    quiet: str = '["sunday", "holidays:NL"]',
    defer: str = "7d",
) -> str:
    return (
        f'\n[policy]\nmax_per_week = {week}\nmax_per_month = {month}\nmin_gap = "{gap}"\n'
        f'quiet_days = {quiet}\ndefer_for = "{defer}"\n'
    )


def make_shop(
    root: Path,
    engine: Engine,
    *,
    campaigns: dict[str, str],
    contacts: str,
    events: str = "",
    segments: dict[str, str] | None = None,
    settings: str = "",
) -> Path:
    """Write a project with the given campaigns (templates are made for them) and import data."""
    files = {"trouw.toml": SETTINGS + (settings or policy())}
    for name, text in campaigns.items():
        files[f"campaigns/{name}.yaml"] = text
    for name, text in (segments or {}).items():
        files[f"segments/{name}.yaml"] = text
    files["templates/mail.html"] = TEMPLATE
    files["templates/other.html"] = TEMPLATE
    files["contacts.csv"] = contacts
    write_files(root, files)
    (root / "segments").mkdir(exist_ok=True)
    import_contacts(engine, root / "contacts.csv", timezone="Europe/Amsterdam")
    if events:
        write_files(root, {"events.csv": events})
        import_events(engine, root / "events.csv", timezone="Europe/Amsterdam")
    return root


def run_plan(root: Path, engine: Engine, year: int, as_of: str) -> PlanSummary:
    with atomic(engine) as connection:
        return plan_year(
            connection,
            load_project(root),
            year=year,
            as_of=date.fromisoformat(as_of),
            chunk_size=100,
        )


def plan_rows(
    engine: Engine, contact_id: str | None = None
) -> list[tuple[str, str, str, str, str]]:
    """(day, campaign, step, occurrence, status) of the plan, in day order."""
    query = select(plan.c.day, plan.c.campaign, plan.c.step, plan.c.occurrence, plan.c.status)
    if contact_id is not None:
        query = query.where(plan.c.contact_id == contact_id)
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(plan.c.day, plan.c.campaign, plan.c.step))
        return [(r.day.isoformat(), r.campaign, r.step, r.occurrence, r.status) for r in rows]


def timeline_rows(out: Path) -> list[tuple[str, str, str, str, str, str, str]]:
    """The simulated sends in `out`'s timeline.csv, as (contact, campaign, step, occurrence,
    day, template, channel), sorted."""
    with (out / "timeline.csv").open(encoding="utf-8", newline="") as handle:
        return sorted(
            (r["contact_id"], r["campaign"], r["step"], r["occurrence"], r["day"], r["template"],
             r["channel"])
            for r in csv.DictReader(handle)
        )  # fmt: skip
