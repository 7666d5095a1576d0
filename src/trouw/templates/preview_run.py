"""Previews of a campaign for the command line: which contacts, which steps, which files.

`preview_mails` renders every mail as of one day; `dated_previews` renders each
contact's mail as of the day it is dated (`planning.next_sends.mail_days`: their
planned day, else the schedule's next day or their next birthday), so a
birthday mail previewed in December reads as it will in March.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import Connection

from trouw.campaigns import Campaign, Step, find_campaign
from trouw.contacts import get_contact
from trouw.project import Project
from trouw.templates.campaign_mails import CampaignMails, RenderedMail


def parse_target(target: str) -> tuple[str, str | None]:
    """`welcome:2` -> ("welcome", "2"); `spring-outing` -> ("spring-outing", None)."""
    name, _, step = target.partition(":")
    return name, (step or None)


def preview_mails(
    project: Project,
    connection: Connection,
    as_of: date,
    target: str,
    *,
    contact_ids: list[str],
    segment: str | None,
    limit: int,
) -> tuple[list[RenderedMail], CampaignMails]:
    """The mails of `CAMPAIGN[:STEP]` for the given contacts, a segment sample, or samples."""
    name, step_name = parse_target(target)
    campaign = find_campaign(project.campaigns_dir, name)
    steps = [campaign.step(step_name)] if step_name or not campaign.is_journey else campaign.steps
    mails = CampaignMails(project, connection, as_of)
    for contact_id in contact_ids:
        get_contact(connection, contact_id)  # a clear error for an unknown id
    if segment is not None:
        mails.catalog.get(segment)  # a clear error for an unknown segment
    results: list[RenderedMail] = []
    for step in steps:
        ids = _contacts_for(mails, campaign, step, contact_ids, segment, limit)
        results.extend(mails.render_for(campaign, step, ids))
    return results, mails


@dataclass(frozen=True)
class DatedMail:
    """A contact's mail rendered as of `day`, why that day, and the renderer that made it."""

    result: RenderedMail
    mails: CampaignMails
    day: date
    why: str


def dated_previews(
    project: Project,
    connection: Connection,
    as_of: date,
    target: str,
    *,
    contact_ids: list[str],
    segment: str | None,
    limit: int,
    fixed: bool = False,
) -> list[DatedMail]:
    """As `preview_mails`, contacts chosen as of `as_of`, but each mail rendered as of the
    day it is dated (see `mail_days`; `fixed`: every mail as of `as_of`): one renderer
    per day, sharing templates and segments."""
    from trouw.planning.next_sends import AS_OF, MailDay, mail_days

    name, step_name = parse_target(target)
    campaign = find_campaign(project.campaigns_dir, name)
    steps = [campaign.step(step_name)] if step_name or not campaign.is_journey else campaign.steps
    base = CampaignMails(project, connection, as_of)
    for contact_id in contact_ids:
        get_contact(connection, contact_id)
    if segment is not None:
        base.catalog.get(segment)
    renderers = {as_of: base}
    previews: list[DatedMail] = []
    for step in steps:
        ids = _contacts_for(base, campaign, step, contact_ids, segment, limit)
        if fixed:
            days = {contact_id: MailDay(as_of, AS_OF) for contact_id in ids}
        else:
            days = mail_days(connection, campaign, step, ids, as_of)
        by_day: dict[date, list[str]] = {}
        for contact_id in ids:
            by_day.setdefault(days[contact_id].day, []).append(contact_id)
        found: dict[str, DatedMail] = {}
        for day, group in sorted(by_day.items()):
            mails = renderers.get(day)
            if mails is None:
                mails = CampaignMails(
                    project, connection, day, templates=base.templates, catalog=base.catalog
                )
                renderers[day] = mails
            for result in mails.render_for(campaign, step, group):
                found[result.contact_id] = DatedMail(
                    result, mails, day, days[result.contact_id].why
                )
        previews.extend(found[contact_id] for contact_id in ids if contact_id in found)
    return previews


def _contacts_for(
    mails: CampaignMails,
    campaign: Campaign,
    step: Step,
    contact_ids: list[str],
    segment: str | None,
    limit: int,
) -> list[str]:
    if contact_ids:
        return contact_ids
    if segment is not None:
        return mails.sample_ids(segment, limit)
    return mails.variant_samples(campaign, step, limit)


def mail_file_stem(result: RenderedMail) -> str:
    """`spring-outing-demo-000042` or `welcome-2-demo-000042`, safe as a file name."""
    parts = [result.campaign.name]
    if result.campaign.is_journey:
        parts.append(result.step.name)
    parts.append(result.contact_id)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def write_mail_files(mails: CampaignMails, result: RenderedMail, folder: Path) -> list[Path]:
    """Write the mail's .html, .txt and complete .eml into `folder`; return the paths."""
    assert result.mail is not None
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / mail_file_stem(result)
    html_path = stem.with_name(stem.name + ".html")
    text_path = stem.with_name(stem.name + ".txt")
    eml_path = stem.with_name(stem.name + ".eml")
    html_path.write_text(result.mail.html, encoding="utf-8")
    text_path.write_text(result.mail.text, encoding="utf-8")
    eml_path.write_bytes(mails.message(result).as_bytes())
    return [html_path, text_path, eml_path]
