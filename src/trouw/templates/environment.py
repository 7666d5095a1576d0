"""The Jinja2 environment for mails: sandboxed, strict, autoescaped by extension.

Templates come from the project's `templates/` first and trouw's built-in
ones second (`trouw/footer.html`, ...), so a project can override a built-in
partial by writing a file with the same name; `builtin:NAME` always reaches
the original. HTML is autoescaped, `.txt` never. A missing variable is an
error, never a blank in a mail, and the sandbox keeps templates away from
Python internals.

A mail template `NAME` is `NAME.html` (with `{% block subject %}`), an
optional plain-text twin `NAME.txt`, and optional per-locale siblings
`NAME.en.html` / `NAME.en.txt` that win for contacts with that locale. Each
(name, locale) is resolved and compiled once per `MailTemplates` and cached.
`NAME.letter.html` (and its own locale siblings) is the letter of mail `NAME`
for contacts who get it by post; it is not a mail of its own.
"""

from __future__ import annotations

import html
import traceback
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    nodes,
)
from jinja2.debug import rewrite_traceback_stack
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from trouw.errors import UserError
from trouw.facts import Facts
from trouw.templates.context import Track
from trouw.templates.filters import FILTERS
from trouw.templates.mail import MailFinisher

BUILTIN_DIR = Path(__file__).parent / "builtin"
MAIL_EXTENSIONS = (".html", ".txt")
LETTER = "letter"  # NAME.letter.html: the letter of mail NAME


class TemplateError(UserError):
    """A template is missing, has a syntax error, or failed to render."""


@dataclass(frozen=True)
class Mail:
    """One rendered mail: what a contact would receive."""

    template: str
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledMail:
    """A mail template resolved for one locale: its HTML, text twin and subject block."""

    name: str
    html: Template
    text: Template | None
    subject: Callable[[Context], Iterator[str]]


def _autoescape(name: str | None) -> bool:
    """HTML (and anything that is not plain text) is escaped; `.txt` never is."""
    return not (name or "").endswith(".txt")


# A dict's own attributes (`items`, `get`, ...): a lookup of any other name on a dict
# falls through to the key in the sandbox too, so only those take the checked path.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Plain data fields of context objects: no underscore, not callable, not mutable containers.
_DATA_FIELDS: dict[type, frozenset[str]] = {Facts: frozenset(f.name for f in fields(Facts))}


class MailSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with short paths for what mails do most.

    `contact.first_name` on a dict, `facts.points` on `Facts` and `m.button` on an
    imported template give what the sandbox's checks would give (a key of a plain
    dict; a data field; a name the template exports), without first raising and
    catching an AttributeError or inspecting the value. Calling a macro or
    `track` skips the checks for unsafe callables, which those never are.
    Everything else (methods, dunder names, other types) goes through the
    sandbox's checks unchanged.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict:
            if attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    pass
        elif kind is TemplateModule:
            if attribute[:1] != "_":
                try:
                    return obj.__dict__[attribute]
                except KeyError:
                    pass
        else:
            names = _DATA_FIELDS.get(kind)
            if names is not None and attribute in names:
                return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Call from a template: macros and `track` directly, anything else checked."""
        kind = type(__obj)
        if kind is Macro or kind is Track:
            # What Context.call does for callables without pass_context & co.
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
            try:
                return __obj(*args, **kwargs)
            except StopIteration:
                return __context.environment.undefined(
                    "value was undefined because a callable raised a StopIteration exception"
                )
        return super().call(__context, __obj, *args, **kwargs)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict instead of Jinja's ChainMap.

        Every render copies the globals into its context (and imports compare their
        keys); a ChainMap does that in Python, a dict in C. The price: globals added
        to the environment after a template is loaded do not reach it, and trouw
        sets none (filters are not globals).
        """
        return {**self.globals, **(d or {})}


def make_environment(templates_dir: Path | None) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment over the project's templates and the built-in ones."""
    loaders: list[BaseLoader] = []
    if templates_dir is not None:
        loaders.append(FileSystemLoader(templates_dir))
    loaders.append(FileSystemLoader(BUILTIN_DIR))
    loaders.append(PrefixLoader({"builtin": FileSystemLoader(BUILTIN_DIR)}, delimiter=":"))
    environment = MailSandbox(
        loader=ChoiceLoader(loaders),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        auto_reload=False,  # one run = one set of templates; the preview server makes a new one
        keep_trailing_newline=True,
    )
    environment.filters.update(FILTERS)
    return environment


class MailTemplates:
    """The project's mail templates for one run: resolved, compiled and cached once."""

    def __init__(self, templates_dir: Path | None, *, finisher: MailFinisher | None = None):
        self.templates_dir = templates_dir
        self.environment = make_environment(templates_dir)
        self.finisher = finisher or MailFinisher()
        self._compiled: dict[tuple[str, str], CompiledMail] = {}

    # ------------------------------------------------------------------ finding

    def exists(self, name: str) -> bool:
        return self._find(f"{name}.html") is not None

    def mail_names(self) -> list[str]:
        """Every mail template in the project: `.html` files with a subject block.

        Layouts and partials (no subject, or an empty subject block) and locale
        siblings (`x.en.html`) and letters (`x.letter.html`) are left out; those are
        rendered through their base name.
        """
        if self.templates_dir is None or not self.templates_dir.is_dir():
            return []
        names = []
        for path in sorted(self.templates_dir.rglob("*.html")):
            relative = path.relative_to(self.templates_dir).as_posix()
            stem = relative[: -len(".html")]
            if _locale_suffix(stem) is not None or stem.endswith(f".{LETTER}"):
                continue
            source = path.read_text(encoding="utf-8", errors="replace")
            if _sets_subject(self.environment, source):
                names.append(stem)
        return names

    def locales_of(self, name: str) -> list[str]:
        """The locales that have their own sibling of mail `name` (`name.en.html` -> en)."""
        if self.templates_dir is None:
            return []
        folder = (self.templates_dir / name).parent
        base = Path(name).name
        return sorted(
            path.name[len(base) + 1 : -len(".html")]
            for path in folder.glob(f"{base}.*.html")
            if _locale_suffix(path.name[: -len(".html")]) is not None
            and not path.name.startswith(f"{base}.{LETTER}.")
        )

    def _find(self, filename: str) -> str | None:
        try:
            self.environment.loader.get_source(self.environment, filename)  # type: ignore[union-attr]
        except TemplateNotFound:
            return None
        return filename

    # ------------------------------------------------------------------ compiling

    def compiled(self, name: str, locale: str) -> CompiledMail:
        """Mail `name` for `locale`, compiled on first use and cached for the run."""
        key = (name, locale)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = self._compile(name, locale)
        return found

    def _compile(self, name: str, locale: str) -> CompiledMail:
        html_name = self._find(f"{name}.{locale}.html") or self._find(f"{name}.html")
        if html_name is None:
            raise TemplateError(
                f"no template '{name}'",
                path=self._path(f"{name}.html"),
                fix=f"create templates/{name}.html, or correct the template name",
            )
        html_template = self._load(html_name)
        text_name = self._find(f"{name}.{locale}.txt") or self._find(f"{name}.txt")
        text_template = self._load(text_name) if text_name else None
        subject = html_template.blocks.get("subject")
        if subject is None:
            raise TemplateError(
                "the mail sets no subject",
                path=self._path(html_name),
                fix="add {% block subject %}Your subject{% endblock %} to the template",
            )
        return CompiledMail(name, html_template, text_template, subject)

    def _load(self, filename: str) -> Template:
        try:
            return self.environment.get_template(filename)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}",
                path=self._path(exc.name or filename),
                line=exc.lineno,
                fix="correct the Jinja2 syntax ({{ value }}, {% tag %} ... {% endtag %})",
            ) from exc
        except TemplateNotFound as exc:
            raise TemplateError(
                f"template '{exc.name}' not found",
                path=self._path(filename),
                fix="create it, or correct the name in {% extends %} / {% include %}",
            ) from exc

    def _path(self, filename: str) -> Path:
        if self.templates_dir is None:
            return Path(filename)
        return self.templates_dir / filename

    # ------------------------------------------------------------------ rendering

    def render(self, name: str, context: Mapping[str, Any]) -> Mail:
        """Subject, HTML (CSS inlined) and text of mail `name` for one contact's context."""
        locale = str(context.get("locale") or "nl")
        compiled = self.compiled(name, locale)
        subject, body = self.render_parts(compiled, context)
        twin = compiled.text
        finished, derived = self.finisher.finish(body, text=twin is None)
        if twin is not None:
            text = self._run(twin, lambda: twin.render(context))
        else:
            assert derived is not None
            text = derived
        return Mail(name, subject, finished, text)

    def render_parts(self, compiled: CompiledMail, context: Mapping[str, Any]) -> tuple[str, str]:
        """The subject (plain text, one line) and the HTML before CSS inlining.

        The subject block is rendered once: where the layout shows it again (in
        `<title>`), it gets the same text without running the block a second time.
        """
        template = compiled.html
        # new_context copies the variables (into the globals): the caller's dict stays as is.
        variables = context if isinstance(context, dict) else dict(context)
        jinja_context = template.new_context(variables)
        raw_subject = self._run(template, lambda: "".join(compiled.subject(jinja_context)))
        jinja_context.blocks["subject"][0] = _rendered(raw_subject)
        body = self._run(template, lambda: "".join(template.root_render_func(jinja_context)))
        return " ".join(html.unescape(raw_subject).split()), body

    def _run(self, template: Template, work: Callable[[], str]) -> str:
        try:
            return work()
        except TemplateError:
            raise
        except Exception:
            # Rendering bypasses Template.render, so map the frames back to template lines here.
            exc = rewrite_traceback_stack()
        if isinstance(exc, SecurityError):
            raise self._render_error(
                template,
                exc,
                "not allowed in a template",
                "templates may use the context's values and filters, not Python internals",
            ) from exc
        if isinstance(exc, TemplateSyntaxError):
            raise TemplateError(
                f"template syntax error: {exc.message}",
                path=self._path(exc.filename or exc.name or template.name or "?"),
                line=exc.lineno,
                fix="correct the Jinja2 syntax",
            ) from exc
        if isinstance(exc, JinjaTemplateError):
            raise self._render_error(template, exc, "cannot render", _fix_for(exc)) from exc
        if isinstance(exc, TypeError | ValueError | ArithmeticError | LookupError):
            raise self._render_error(
                template, exc, "cannot render", "check the values and filters used on this line"
            ) from exc
        raise exc

    def _render_error(
        self, template: Template, exc: Exception, what: str, fix: str
    ) -> TemplateError:
        filename, line = _template_frame(exc, template)
        return TemplateError(f"{what}: {exc}", path=self._path(filename), line=line, fix=fix)


def _rendered(text: str) -> Callable[[Context], Iterator[str]]:
    """A block that was already rendered for this context: yields its text again."""

    def block(context: Context) -> Iterator[str]:
        yield text

    return block


def _fix_for(exc: Exception) -> str:
    message = str(exc)
    if "undefined" in message or "has no attribute" in message:
        return (
            "use a value the context has (contact, facts, campaign, shop, unsubscribe_url, "
            "track, channel), or guard it: {% if contact.x is defined %}"
        )
    return "check the template at this line"


def _template_frame(exc: BaseException, template: Template) -> tuple[str, int | None]:
    """The template file and line where a render error happened (Jinja rewrites frames)."""
    found: tuple[str, int | None] = (template.filename or template.name or "?", None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(MAIL_EXTENSIONS):
            found = (frame.filename, frame.lineno)
    return found


def _locale_suffix(stem: str) -> str | None:
    """`birthday.en` -> `en`; `birthday` -> None. A locale is 2 letters, optionally _XX."""
    name = Path(stem).name
    if "." not in name:
        return None
    suffix = name.rsplit(".", 1)[1]
    core = suffix.split("_")[0]
    if len(core) == 2 and core.isalpha() and core.islower():
        return suffix
    return None


def _sets_subject(environment: ImmutableSandboxedEnvironment, source: str) -> bool:
    """Whether a template fills `{% block subject %}`: a mail, not a layout or partial."""
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError:
        return True  # a broken mail is still a mail: rendering it reports the error
    for block in tree.find_all(nodes.Block):
        if block.name == "subject":
            for output in block.find_all(nodes.Output):
                for node in output.nodes:
                    if not (isinstance(node, nodes.TemplateData) and not node.data.strip()):
                        return True
    return False
