"""Previews of a campaign for the command line: which contacts, which steps, which files."""

from __future__ import annotations

import re
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
