"""`trouw templates check`: render every template for sample contacts and lint the result.

Without data (`trouw check`): `check_template_files` compiles every template
file and finds the layouts and partials it names that do not exist;
`check_mail` compiles a mail as a send would (its subject block, its `.txt`
twin, its locale siblings).

For every campaign step and variant: a few members of the variant's segment
in each locale in use (a made-up contact where there are none), then every
other mail template for a made-up contact per locale, and each letter
template (`NAME.letter.html`) for a made-up contact by post. Reported as errors:
campaign files that do not load or name missing segments/templates,
template syntax errors and missing variables (file and line), links without
a target, images without alt text, mails without the unsubscribe link, and
HTML over 100 KB (Gmail clips longer mails); in letters, images that are no
`data:` URL (a letter loads nothing, so it could not print them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from jinja2 import nodes

from trouw.campaigns import Campaign, CampaignError, check_references, load_campaign
from trouw.campaigns import campaign_names as list_campaigns
from trouw.errors import UserError
from trouw.problems import Problems
from trouw.project import Project
from trouw.segments import SegmentError
from trouw.templates.environment import (
    LETTER,
    MAIL_EXTENSIONS,
    Mail,
    MailTemplates,
    TemplateError,
)
from trouw.yamlfile import read_text

if TYPE_CHECKING:  # the check without data (`trouw check`) imports no SQLAlchemy
    from sqlalchemy import Connection

    from trouw.templates.campaign_mails import CampaignMails, RenderedMail

GMAIL_CLIP_BYTES = 100 * 1024


@dataclass(frozen=True)
class Finding:
    """One problem: where (campaign/template), for whom, and the message with file and line."""

    where: str
    contact: str
    message: str


@dataclass
class CheckReport:
    rendered: int = 0
    templates: set[str] = field(default_factory=set)
    errors: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, where: str, contact: str, message: str) -> None:
        finding = Finding(where, contact, message)
        if finding not in self.errors:
            self.errors.append(finding)


class _ImageLint(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        src = (dict(attrs).get("src") or "").strip()
        if tag == "img" and not src.lower().startswith("data:"):
            self.problems.append(
                f"an image a letter cannot print ({src[:60]!r}): a letter loads nothing; "
                "use a data: URL"
            )


def lint_letter(mail: Mail) -> list[str]:
    """What is wrong with a rendered letter template (empty when it is fine)."""
    parser = _ImageLint()
    parser.feed(mail.html)
    parser.close()
    return list(dict.fromkeys(parser.problems))


class _LinkLint(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            href = (values.get("href") or "").strip()
            if href in ("", "#") or href.lower().startswith("javascript:"):
                self.problems.append(f"a link without a target (href={href!r})")
        elif tag == "img" and "alt" not in values:
            src = values.get("src") or "?"
            self.problems.append(f'an image without alt text ({src[:60]}); add alt="..."')


def lint_mail(mail: Mail, unsubscribe_url: str | None) -> list[str]:
    """What is wrong with a rendered mail, as messages (empty when it is fine)."""
    parser = _LinkLint()
    parser.feed(mail.html)
    parser.close()
    problems = list(dict.fromkeys(parser.problems))
    if unsubscribe_url and unsubscribe_url not in mail.html:
        problems.append(
            'no unsubscribe link: include {% include "trouw/footer.html" %} in the layout'
        )
    size = len(mail.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        problems.append(f"the HTML is {size // 1024} KB; Gmail clips mails over 100 KB")
    if not mail.subject:
        problems.append("the subject is empty")
    if not mail.text.strip():
        problems.append("the text part is empty")
    return problems


def check_templates(
    project: Project, connection: Connection, as_of: date, *, samples: int = 2
) -> CheckReport:
    """Render and lint every campaign variant and every mail template; collect the errors."""
    from trouw.templates.campaign_mails import SYNTHETIC_FACTS, CampaignMails, synthetic_contact

    report = CheckReport()
    mails = CampaignMails(project, connection, as_of)
    locales = mails.locales_in_use()
    report.notes.append(f"locales: {', '.join(locales)}")
    campaigns: list[Campaign] = []
    for name in list_campaigns(project.campaigns_dir):
        try:
            campaign = load_campaign(project.campaigns_dir / f"{name}.yaml")
        except CampaignError as exc:
            report.add(f"campaign {name}", "", str(exc))
            continue
        problems = check_references(
            campaign, segments=mails.catalog.names, template_exists=mails.templates.exists
        )
        for problem in problems:
            report.add(f"campaign {name}", "", str(problem))
        if problems:
            continue
        campaigns.append(campaign)
        for segment in sorted(campaign.segments()):
            if segment in mails.catalog.errors:
                report.add(f"campaign {name}", "", str(mails.catalog.errors[segment]))
    for campaign in campaigns:
        _check_campaign(mails, campaign, locales, samples, report)
    for name in mails.templates.mail_names():
        if name in report.templates:
            continue
        for locale in locales:
            row = synthetic_contact(locale, as_of)
            where = f"template {name}"
            try:
                mail = mails.render_template(name, row, SYNTHETIC_FACTS)
            except TemplateError as exc:
                report.add(where, str(row["id"]), str(exc))
                continue
            report.rendered += 1
            for issue in lint_mail(mail, None):
                report.add(where, str(row["id"]), issue)
        report.templates.add(name)
    for name in sorted(report.templates):
        _check_letters(mails, name, locales, as_of, report)
    return report


def _check_letters(
    mails: CampaignMails, name: str, locales: list[str], as_of: date, report: CheckReport
) -> None:
    """Mail `name`'s letter template, where it has one, for a made-up contact by post."""
    from trouw.templates.campaign_mails import SYNTHETIC_FACTS, synthetic_contact

    for locale in locales:
        letter = mails.letter_template(name, locale)
        if letter is None:
            continue
        row = {**synthetic_contact(locale, as_of), "channel": "post"}
        where = f"letter {letter}"
        try:
            mail = mails.render_template(name, row, SYNTHETIC_FACTS, channel="post")
        except TemplateError as exc:
            report.add(where, str(row["id"]), str(exc))
            continue
        report.rendered += 1
        for issue in lint_letter(mail):
            report.add(where, str(row["id"]), issue)


def _check_campaign(
    mails: CampaignMails, campaign: Campaign, locales: list[str], samples: int, report: CheckReport
) -> None:
    for step in campaign.steps:
        where_step = campaign.name if not campaign.is_journey else f"{campaign.name}:{step.name}"
        for variant in step.variants:
            report.templates.add(variant.template)
            where = f"{where_step} → {variant.template}"
            segment = variant.segment or campaign.segment
            try:
                ids = mails.sample_ids(segment, samples * 10)
            except (SegmentError, UserError) as exc:
                report.add(where, "", str(exc))
                continue
            covered: set[str] = set()
            rendered = mails.render_for(campaign, step, ids) if ids else []
            chosen = [r for r in rendered if r.variant == variant]
            per_locale: dict[str, int] = {}
            for result in chosen:
                locale = str(result.contact["locale"])
                if per_locale.get(locale, 0) >= samples:
                    continue
                per_locale[locale] = per_locale.get(locale, 0) + 1
                covered.add(locale)
                _record(mails, result, where, report)
            for locale in locales:
                if locale not in covered:
                    _record(
                        mails,
                        mails.render_synthetic(campaign, step, variant, locale),
                        where,
                        report,
                    )


def _record(mails: CampaignMails, result: RenderedMail, where: str, report: CheckReport) -> None:
    if result.error is not None:
        report.add(where, result.contact_id, str(result.error))
        return
    if result.mail is None:
        return
    report.rendered += 1
    unsubscribe = mails.signer.unsubscribe_url(
        result.contact_id, result.campaign.name, result.contact.get("link_key")
    )
    for problem in lint_mail(result.mail, unsubscribe):
        report.add(where, result.contact_id, problem)


# ---------------------------------------------------------------------- without data

# The tags that name another template, as a template writes them.
_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}


def check_template_files(templates: MailTemplates, problems: Problems) -> int:
    """Compile every .html/.txt file under templates/ (Jinja syntax, known filters and tests)
    and report the templates each extends, includes or imports that do not exist. Nothing
    is rendered. Returns the number of files looked at."""
    folder = templates.templates_dir
    if folder is None or not folder.is_dir():
        return 0
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.suffix not in MAIL_EXTENSIONS or not path.is_file():
            continue
        count += 1
        name = path.relative_to(folder).as_posix()
        try:
            source = read_text(path, TemplateError)
        except TemplateError as exc:
            problems.add(exc)
            continue
        try:
            templates._load(name)  # the one conversion of Jinja's errors to file and line
        except TemplateError as exc:
            problems.add(exc)
            continue
        tree = templates.environment.parse(source, name, str(path))
        for node in tree.find_all(tuple(_TAGS)):
            assert isinstance(node, nodes.Extends | nodes.Include | nodes.Import | nodes.FromImport)
            if isinstance(node, nodes.Include) and node.ignore_missing:
                continue
            wanted = _named_templates(node.template)
            if wanted and all(templates._find(target) is None for target in wanted):
                tag = _TAGS[type(node)]
                problems.add(
                    TemplateError(
                        f"{{% {tag} %}} names '{' or '.join(wanted)}', which does not exist",
                        path=path,
                        line=node.lineno,
                        fix=f"create templates/{wanted[0]}, or correct the name "
                        "(built-in partials: trouw/footer.html, ...)",
                    )
                )
    return count


def _named_templates(node: nodes.Expr) -> list[str]:
    """The template names an extends/include/import gives as constants (none when computed)."""
    if isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, str):
            return [value]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        return []
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_named_templates(item) for item in node.items]
        if all(len(item) == 1 for item in items):
            return [item[0] for item in items]
    return []


def check_mail(templates: MailTemplates, name: str, locale: str, problems: Problems) -> None:
    """Compile mail `name` as a send would, for `locale` and each locale sibling it has: a
    subject block, the HTML and the text twin (a missing template is not reported here)."""
    if not templates.exists(name):
        return
    for each in dict.fromkeys([locale, *templates.locales_of(name)]):
        try:
            templates.compiled(name, each)
        except TemplateError as exc:
            problems.add(exc)
    letter = f"{name}.{LETTER}"  # its letter, if it has one, as a send by post would
    if templates.exists(letter):
        for each in dict.fromkeys([locale, *templates.locales_of(letter)]):
            try:
                templates.compiled(letter, each)
            except TemplateError as exc:
                problems.add(exc)
