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

Each problem is reported once, with the campaigns and sample contacts it was
seen for: a problem in the layout is one problem, not one per sample. A link
or image problem found in the rendered mail is traced back to the tag in the
template source (the mail, its layouts, includes and imports) for its file
and line.

Layouts wider than a phone are found statically, in the template files (not
by rendering in a browser): a fixed width over 375 px, as a `width="600"`
attribute or a CSS `width: 600px` / `min-width`, is a problem unless the same
element or rule also says `max-width` in % or an `@media (max-width: ...)`
rule sets the width of the same selector (or class) again, in a `<style
data-css-inline="keep">` block (the others are inlined into the tags and
dropped, media queries with them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import TemplateNotFound, TemplateSyntaxError, nodes

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
PHONE_WIDTH = 375  # CSS pixels of a common phone (iPhone mini/SE class)


@dataclass
class Finding:
    """One problem (its message names file and line), and where and for whom it was seen."""

    message: str
    wheres: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.wheres[0] if self.wheres else ""

    @property
    def contact(self) -> str:
        return self.contacts[0] if self.contacts else ""


@dataclass
class CheckReport:
    rendered: int = 0
    templates: set[str] = field(default_factory=set)
    errors: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _by_message: dict[str, Finding] = field(default_factory=dict, repr=False)

    def add(self, where: str, contact: str, message: str) -> None:
        """Record a problem once; seen again (another sample, campaign or template), it
        only gains the where and the contact."""
        finding = self._by_message.get(message)
        if finding is None:
            finding = self._by_message[message] = Finding(message)
            self.errors.append(finding)
        if where and where not in finding.wheres:
            finding.wheres.append(where)
        if contact and contact not in finding.contacts:
            finding.contacts.append(contact)


@dataclass(frozen=True)
class TagProblem:
    """A problem with one tag of a rendered mail, and how to find the tag in the source."""

    message: str
    tag: str
    attribute: str
    value: str


class _ImageLint(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[TagProblem] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        src = (dict(attrs).get("src") or "").strip()
        if tag == "img" and not src.lower().startswith("data:"):
            message = (
                f"an image a letter cannot print ({src[:60]!r}): a letter loads nothing; "
                "use a data: URL"
            )
            self.problems.append(TagProblem(message, "img", "src", src))


def letter_problems(mail: Mail) -> list[TagProblem]:
    """What is wrong with a rendered letter template, tag by tag."""
    parser = _ImageLint()
    parser.feed(mail.html)
    parser.close()
    return list(dict.fromkeys(parser.problems))


def lint_letter(mail: Mail) -> list[str]:
    """What is wrong with a rendered letter template (empty when it is fine)."""
    return [problem.message for problem in letter_problems(mail)]


class _LinkLint(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[TagProblem] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            href = (values.get("href") or "").strip()
            if href in ("", "#") or href.lower().startswith("javascript:"):
                message = f"a link without a target (href={href!r})"
                self.problems.append(TagProblem(message, "a", "href", href))
        elif tag == "img" and "alt" not in values:
            src = values.get("src") or "?"
            message = f'an image without alt text ({src[:60]}); add alt="..."'
            self.problems.append(TagProblem(message, "img", "alt", src))


def tag_problems(mail: Mail) -> list[TagProblem]:
    """The links without a target and images without alt text of a rendered mail."""
    parser = _LinkLint()
    parser.feed(mail.html)
    parser.close()
    return list(dict.fromkeys(parser.problems))


def lint_mail(mail: Mail, unsubscribe_url: str | None) -> list[str]:
    """What is wrong with a rendered mail, as messages (empty when it is fine)."""
    problems = [problem.message for problem in tag_problems(mail)]
    problems.extend(mail_problems(mail, unsubscribe_url))
    return problems


def mail_problems(mail: Mail, unsubscribe_url: str | None) -> list[str]:
    """What is wrong with a rendered mail as a whole: unsubscribe link, size, subject, text."""
    problems: list[str] = []
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
            _lint(mails.templates, name, locale, mail, None, where, str(row["id"]), report)
        report.templates.add(name)
    for name in sorted(report.templates):
        _check_letters(mails, name, locales, as_of, report)
    for wide in phone_width_problems(mails.templates):
        report.add("the template files, read as written (no browser)", "", str(wide))
    return report


def _lint(
    templates: MailTemplates,
    name: str,
    locale: str,
    mail: Mail,
    unsubscribe_url: str | None,
    where: str,
    contact: str,
    report: CheckReport,
) -> None:
    """Lint one rendered mail: tag problems at their file and line, the rest at the mail's."""
    tags, issues = tag_problems(mail), mail_problems(mail, unsubscribe_url)
    if not tags and not issues:
        return
    chain = template_chain(templates, name, locale)  # read only when there is a problem
    for problem in tags:
        report.add(where, contact, located(chain, problem))
    path = chain[0][1] if chain else None
    for issue in issues:
        report.add(where, contact, str(TemplateError(issue, path=path)) if path else issue)


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
        chain = template_chain(mails.templates, letter, locale)
        for problem in letter_problems(mail):
            report.add(where, str(row["id"]), located(chain, problem))


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
    locale = str(result.contact["locale"])
    name = result.mail.template
    _lint(mails.templates, name, locale, result.mail, unsubscribe, where, result.contact_id, report)


# ---------------------------------------------------------------------- back to the source

# (filename, path, source) of a template file
Source = tuple[str, "Path | None", str]


class _SourceTags(HTMLParser):
    """The start tags of a template's source with their lines, and its <style> blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.tags: list[tuple[str, dict[str, str | None], int]] = []
        self.styles: list[tuple[str, int, bool]] = []  # text, first line, kept by css-inline
        self._style: list[str] | None = None
        self._style_line = 0
        self._keep = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs), self.getpos()[0]))
        if tag == "style":
            self._style = []
            self._style_line = 0
            self._keep = dict(attrs).get("data-css-inline") == "keep"

    def handle_data(self, data: str) -> None:
        if self._style is not None:
            if not self._style:
                self._style_line = self.getpos()[0]
            self._style.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._style is not None:
            self.styles.append(("".join(self._style), self._style_line, self._keep))
            self._style = None


def _source_tags(source: str) -> _SourceTags:
    parser = _SourceTags()
    parser.feed(source)
    parser.close()
    return parser


def template_chain(templates: MailTemplates, name: str, locale: str) -> list[Source]:
    """The files mail `name` is made of for `locale`: itself first, then what it extends,
    includes and imports (and what those do), each once."""
    first = templates._find(f"{name}.{locale}.html") or templates._find(f"{name}.html")
    queue = [first] if first else []
    chain: list[Source] = []
    seen: set[str] = set()
    loader = templates.environment.loader
    assert loader is not None
    while queue:
        filename = queue.pop(0)
        if filename in seen:
            continue
        seen.add(filename)
        try:
            source, path, _ = loader.get_source(templates.environment, filename)
            tree = templates.environment.parse(source, filename)
        except (TemplateNotFound, TemplateSyntaxError):  # reported on their own elsewhere
            continue
        chain.append((filename, Path(path) if path else None, source))
        for node in tree.find_all(tuple(_TAGS)):
            assert isinstance(node, nodes.Extends | nodes.Include | nodes.Import | nodes.FromImport)
            for wanted in _named_templates(node.template):
                if templates._find(wanted) is not None:
                    queue.append(wanted)
    return chain


def located(chain: list[Source], problem: TagProblem) -> str:
    """The problem's message with the file and line of its tag in the template source: the
    tag written as rendered, else one whose value is computed (`{{ ... }}`)."""
    for exact in (True, False):
        for _filename, path, source in chain:
            for tag, attrs, line in _source_tags(source).tags:
                if tag != problem.tag or (problem.attribute == "alt" and "alt" in attrs):
                    continue
                key = "src" if problem.attribute == "alt" else problem.attribute
                value = (attrs.get(key) or "").strip()
                if value == problem.value if exact else ("{{" in value or "{%" in value):
                    return str(TemplateError(problem.message, path=path, line=line))
    if chain and chain[0][1] is not None:
        return str(TemplateError(problem.message, path=chain[0][1]))
    return problem.message


# ---------------------------------------------------------------------- phone width

_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_MEDIA_MAX = re.compile(r"@media[^{]*max-width[^{]*\{((?:[^{}]*\{[^{}]*\})*)[^{}]*\}", re.S | re.I)
_CSS_RULE = re.compile(r"([^{}@;]+)\{([^{}]*)\}")
_FIXED = re.compile(r"(?<![-\w])(min-width|width)\s*:\s*(\d+(?:\.\d+)?)px", re.I)
_SETS_WIDTH = re.compile(r"(?<![-\w])width\s*:", re.I)
_FLUID_MAX = re.compile(r"max-width\s*:\s*(?:\d+(?:\.\d+)?(?:%|vw)|(\d+(?:\.\d+)?)px)", re.I)
_FLUID_WIDTH = re.compile(r"(?<![-\w])width\s*:\s*\d+(?:\.\d+)?(?:%|vw)", re.I)
_CLASS = re.compile(r"\.([A-Za-z_][\w-]*)")


def _blank(match: re.Match[str]) -> str:
    """A stretch of CSS blanked out, its line breaks kept (so lines still count)."""
    return re.sub(r"[^\n]", " ", match.group(0))


def _fluid(declarations: str) -> bool:
    """Whether declarations cap the width at the screen: max-width in % or vw, or in px
    no wider than a phone."""
    found = _FLUID_MAX.search(declarations)
    return found is not None and (found.group(1) is None or float(found.group(1)) <= PHONE_WIDTH)


def _too_wide(declarations: str) -> tuple[str, int] | None:
    for found in _FIXED.finditer(declarations):
        if float(found.group(2)) > PHONE_WIDTH:
            return found.group(0), int(float(found.group(2)))
    return None


def phone_width_problems(templates: MailTemplates) -> list[TemplateError]:
    """Fixed widths over a phone's in the template files, each at its file and line."""
    folder = templates.templates_dir
    if folder is None or not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.rglob("*.html")):
        try:
            files.append((path, _source_tags(path.read_text(encoding="utf-8", errors="replace"))))
        except (OSError, AssertionError):
            continue
    # Selectors and classes an @media (max-width) rule sizes again; only a <style> block
    # css-inline keeps (data-css-inline="keep") reaches the mail, the others are inlined.
    narrowed: set[str] = set()
    for _path, parsed in files:
        for text, _line, keep in parsed.styles:
            if not keep:
                continue
            css = _CSS_COMMENT.sub(_blank, text)
            for media in _MEDIA_MAX.finditer(css):
                for rule in _CSS_RULE.finditer(media.group(1)):
                    if _SETS_WIDTH.search(rule.group(2)):
                        for selector in rule.group(1).split(","):
                            narrowed.add(selector.strip())
                            narrowed.update(_CLASS.findall(selector))
    problems = []
    for path, parsed in files:
        for text, first_line, _keep in parsed.styles:
            css = _MEDIA_MAX.sub(_blank, _CSS_COMMENT.sub(_blank, text))
            for rule in _CSS_RULE.finditer(css):
                selectors = [part.strip() for part in rule.group(1).split(",")]
                wide = _too_wide(rule.group(2))
                if wide is None or _fluid(rule.group(2)):
                    continue
                if any(sel in narrowed or set(_CLASS.findall(sel)) & narrowed for sel in selectors):
                    continue
                line = first_line + css[: rule.start(2)].count("\n")
                line += rule.group(2)[: rule.group(2).find(wide[0])].count("\n")
                what = f"`{', '.join(selectors)} {{ {wide[0]} }}`"
                problems.append(_wide(path, line, wide[1], what))
        for tag, attrs, line in parsed.tags:
            style = attrs.get("style") or ""
            classes = set((attrs.get("class") or "").split())
            if _fluid(style) or _FLUID_WIDTH.search(style) or classes & narrowed:
                continue  # a width in % in the style wins over the width attribute
            width = (attrs.get("width") or "").strip().removesuffix("px")
            if width.isdigit() and int(width) > PHONE_WIDTH:
                problems.append(_wide(path, line, int(width), f'`width="{width}"` on <{tag}>'))
                continue
            wide = _too_wide(style)
            if wide is not None:
                problems.append(_wide(path, line, wide[1], f"`{wide[0]}` on <{tag}>"))
    return problems


def _wide(path: Path, line: int, width: int, what: str) -> TemplateError:
    return TemplateError(
        f"a layout {width} px wide overflows a phone ({PHONE_WIDTH} px): {what} has no "
        "max-width in %, and no @media (max-width: ...) rule narrows it",
        path=path,
        line=line,
        fix=f'add max-width: 100% beside it (e.g. style="width: 100%; max-width: {width}px"), '
        f'or narrow it in <style data-css-inline="keep"> @media (max-width: {width + 20}px) '
        "{ ... width: 100% !important } </style> (other <style> blocks are inlined and dropped)",
    )


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
