"""A campaign step's mails for chosen contacts: variant choice, facts, context, render.

This is what `trouw preview`, `trouw templates check` and the preview web page
share: pick the contacts (given, sampled from a segment, or synthetic), choose
each one's variant with one query per segment, compute their facts for the
whole batch, and render.

For a contact who gets the step by post, the letter is rendered: the
template's letter sibling `NAME.letter.html` when there is one (see
`letter_template`), in a context without tracking (`channel` "post").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select

from trouw.campaigns import Campaign, Choice, Step, Variant, choose_variants, sample_members
from trouw.facts import Facts, compute_facts
from trouw.project import Project
from trouw.segments import Catalog, Clock, load_catalog
from trouw.store import contacts
from trouw.templates.context import (
    campaign_view,
    contact_view,
    load_contacts,
    mail_context,
    shop_view,
)
from trouw.templates.environment import LETTER, Mail, MailTemplates, TemplateError
from trouw.templates.links import LinkSigner, signing_key
from trouw.templates.mail import build_message
from trouw.templates.mime import MimeMail

SYNTHETIC_PREFIX = "sample-"
LETTER_SUFFIX = f".{LETTER}"  # templates/NAME.letter.html: the letter of mail NAME


@dataclass
class RenderedMail:
    """One contact's mail from one campaign step, or why there is none."""

    campaign: Campaign
    step: Step
    contact: dict[str, Any]
    variant: Variant | None
    mail: Mail | None = None
    error: TemplateError | None = None
    notes: list[str] = field(default_factory=list)
    channel: str = "email"  # post: `mail` is the letter's content

    @property
    def contact_id(self) -> str:
        return str(self.contact["id"])

    @property
    def synthetic(self) -> bool:
        return self.contact_id.startswith(SYNTHETIC_PREFIX)


def synthetic_contact(locale: str, as_of: date, *, household: str = "family") -> dict[str, Any]:
    """A made-up contact for templates whose segment has no members (yet)."""
    first, last = ("Sanne", "de Vries") if locale == "nl" else ("Emma", "Wilson")
    return {
        "id": f"{SYNTHETIC_PREFIX}{locale}",
        "email": f"{first.lower()}@example.com",
        "first_name": first,
        "last_name": last,
        "locale": locale,
        "timezone": None,
        "birthday": date(1985, as_of.month, min(as_of.day, 28)),
        "customer_since": date(as_of.year - 3, as_of.month, min(as_of.day, 28)),
        "channel": "email",
        "street": "Dorpsstraat 12",
        "postcode": "1234 AB",
        "city": "Ergens",
        "country": "NL",
        "attributes": {"household": household, "children": 2, "points": 1250},
    }


SYNTHETIC_FACTS = Facts(
    last_purchase_date=None,
    last_purchase_product="garden-hose",
    favourite_category="garden",
    total_spent=312.45,
    order_count=4,
    years_as_customer=3,
    nps_score=9,
    nps_class="promoter",
    points=1250,
)


class CampaignMails:
    """Renders campaign steps for a project, as of a day, within one connection."""

    def __init__(
        self,
        project: Project,
        connection: Connection,
        as_of: date,
        *,
        templates: MailTemplates | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.project = project
        self.connection = connection
        self.as_of = as_of
        self.templates = templates or MailTemplates(project.templates_dir)
        self.catalog = catalog or load_catalog(project.segments_dir)
        self.clock = Clock(as_of, project.settings.tz)
        self.signing_key = signing_key(connection)
        self.signer = LinkSigner(project.settings.tracking_base_url, self.signing_key.secret)
        self.shop = shop_view(project.settings)
        self._letters: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------ choosing contacts

    def sample_ids(self, segment: str | None, limit: int) -> list[str]:
        """The first `limit` members of a segment (all contacts when None), by id."""
        if segment is not None:
            return sample_members(self.connection, segment, self.catalog, self.clock, limit=limit)
        query = select(contacts.c.id).order_by(contacts.c.id).limit(limit)
        return [str(row[0]) for row in self.connection.execute(query)]

    def variant_samples(self, campaign: Campaign, step: Step, per_variant: int) -> list[str]:
        """A few contacts per variant, each one who really gets that variant."""
        ids: list[str] = []
        for variant in step.variants:
            for contact_id in self.samples_of(campaign, step, variant, per_variant):
                if contact_id not in ids:
                    ids.append(contact_id)
        return ids

    def samples_of(self, campaign: Campaign, step: Step, variant: Variant, limit: int) -> list[str]:
        """Up to `limit` contacts who get `variant` from this step, by the send's own rule
        (campaigns.choose_variant): a fallback sample never shows a contact who gets
        another variant. Candidates are the variant's segment members (any contact for
        the fallback), ten times as many as wanted, in id order."""
        pool = self.sample_ids(variant.segment or campaign.segment, limit * 10)
        choices = choose_variants(
            self.connection, campaign, step, pool, catalog=self.catalog, clock=self.clock
        )
        return [cid for cid in pool if choices[cid].template == variant.template][:limit]

    def locales_in_use(self) -> list[str]:
        """The project's locale and every locale the contacts have."""
        query = select(contacts.c.locale).where(contacts.c.locale.is_not(None)).distinct()
        found = {str(row[0]) for row in self.connection.execute(query)}
        return sorted(found | {self.project.settings.locale})

    # ------------------------------------------------------------------ rendering

    def render_for(
        self,
        campaign: Campaign,
        step: Step,
        contact_ids: Sequence[str],
        templates: Mapping[str, str] | None = None,
        channels: Mapping[str, str] | None = None,
    ) -> list[RenderedMail]:
        """Each contact's mail from this step: their variant, facts and context.

        `templates`: the template decided for each contact (the send's decision);
        without it, each contact's variant is chosen here. `channels`: how each
        contact gets it (the send's channel; "post" renders the letter); without
        it, or for a contact not in it, by email.
        """
        rows = load_contacts(self.connection, list(contact_ids))
        ids = [str(row["id"]) for row in rows]
        if templates is None:
            choices = choose_variants(
                self.connection, campaign, step, ids, catalog=self.catalog, clock=self.clock
            )
        else:
            choices = {cid: Choice(cid, _variant(step, templates[cid])) for cid in ids}
        facts = compute_facts(self.connection, rows, as_of=self.as_of, tz=self.project.settings.tz)
        results = []
        for row in rows:
            choice = choices[str(row["id"])]
            channel = (channels or {}).get(str(row["id"]), "email")
            result = self._render(
                campaign, step, row, choice.variant, facts[str(row["id"])], channel
            )
            result.notes[:0] = _notes(campaign, choice)
            results.append(result)
        return results

    def render_synthetic(
        self, campaign: Campaign, step: Step, variant: Variant, locale: str, channel: str = "email"
    ) -> RenderedMail:
        """A variant rendered for a made-up contact (its segment has no members)."""
        household = "single" if variant.segment and "single" in variant.segment else "family"
        row = synthetic_contact(locale, self.as_of, household=household)
        result = self._render(campaign, step, row, variant, SYNTHETIC_FACTS, channel)
        result.notes.append("a made-up contact: the segment has no members")
        return result

    def render_template(
        self, name: str, row: Mapping[str, Any], facts: Facts, channel: str = "email"
    ) -> Mail:
        """Template `name` for one contact outside any campaign (templates check)."""
        view = contact_view(row, self.project.settings.locale)
        context = self._context(view, facts, campaign_view("preview", template=name), channel)
        return self._render_mail(name, context, channel)

    def letter_template(self, name: str, locale: str) -> str | None:
        """The letter sibling of mail `name` to use for a contact with `locale`, or None:
        render the mail itself (with `channel` "post"). The contact's language comes
        first: `NAME.letter.LOCALE`, else none when the mail has a `NAME.LOCALE` sibling
        (and the letter has not), else `NAME.letter`."""
        key = (name, locale)
        found = self._letters.get(key)
        if found is None:
            letter = name + LETTER_SUFFIX
            if self.templates.exists(f"{letter}.{locale}"):
                found = letter
            elif self.templates.exists(f"{name}.{locale}"):
                found = name
            else:
                found = letter if self.templates.exists(letter) else name
            self._letters[key] = found
        return None if found == name else found

    def _render_mail(self, name: str, context: Mapping[str, Any], channel: str) -> Mail:
        """Mail `name`, or for post its letter template, under the mail's name."""
        if channel == "post":
            letter = self.letter_template(name, str(context["locale"]))
            if letter is not None:
                return replace(self.templates.render(letter, context), template=name)
        return self.templates.render(name, context)

    def _render(
        self,
        campaign: Campaign,
        step: Step,
        row: Mapping[str, Any],
        variant: Variant | None,
        facts: Facts,
        channel: str = "email",
    ) -> RenderedMail:
        view = contact_view(row, self.project.settings.locale)
        result = RenderedMail(campaign, step, view, variant, channel=channel)
        if variant is None:
            return result
        info = campaign_view(
            campaign.name,
            description=campaign.description,
            kind=campaign.kind,
            step=step.name,
            template=variant.template,
        )
        try:
            context = self._context(view, facts, info, channel)
            result.mail = self._render_mail(variant.template, context, channel)
        except TemplateError as exc:
            result.error = exc
        return result

    def _context(
        self, view: Mapping[str, Any], facts: Facts, info: Mapping[str, Any], channel: str
    ) -> dict[str, Any]:
        return mail_context(
            contact=view,
            facts=facts,
            campaign=info,
            shop=self.shop,
            signer=self.signer,
            as_of=self.as_of,
            channel=channel,
        )

    def message(
        self,
        rendered: RenderedMail,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> MimeMail:
        """The complete message (.eml) of a rendered mail; `headers` are added at the end."""
        assert rendered.mail is not None
        contact = rendered.contact
        settings = self.project.settings
        return build_message(
            subject=rendered.mail.subject,
            html=rendered.mail.html,
            text=rendered.mail.text,
            sender=settings.sender.from_address,
            to_name=str(contact.get("full_name") or ""),
            to_address=str(contact.get("email") or f"{rendered.contact_id}@invalid"),
            reply_to=settings.sender.reply_to,
            unsubscribe_url=self.signer.unsubscribe_url(
                rendered.contact_id, rendered.campaign.name, contact.get("link_key")
            ),
            when=datetime.now(UTC),
            message_id=message_id,
            headers={
                "X-Trouw-Campaign": rendered.campaign.name,
                "X-Trouw-Step": rendered.step.name,
                "X-Trouw-Template": rendered.mail.template,
                **(headers or {}),
            },
        )


def _variant(step: Step, template: str) -> Variant:
    """The step's variant with this template (a decided one)."""
    return next((v for v in step.variants if v.template == template), Variant(template))


def _notes(campaign: Campaign, choice: Choice) -> list[str]:
    notes = []
    if not choice.in_audience:
        notes.append(f"not in the campaign's audience '{campaign.segment}': would not be sent")
    if choice.skipped_because:
        notes.append(f"{choice.skipped_because}: this step would be skipped")
    if choice.variant is None:
        notes.append("matches no variant and the campaign has no fallback: skipped")
    return notes
