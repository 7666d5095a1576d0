"""The Jinja2 environment for mails: sandboxed, strict, autoescaped by extension.

Templates come from the project's `templates/` first and trouw's built-in
ones second (`trouw/footer.html`, ...), so a project can override a built-in
partial by writing a file with the same name; `builtin:NAME` always reaches
the original. HTML is autoescaped, `.txt` never. A missing variable is an
error, never a blank in a mail, and the sandbox keeps templates away from
Python internals and bounds what they build (limits.py): a template cannot
make a text of a gigabyte or loop without end.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import BuiltinMethodType, MethodType
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
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.debug import rewrite_traceback_stack
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from trouw.errors import UserError
from trouw.facts import Facts
from trouw.templates import limits
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


# The filter every `for` loop's iterable passes through (added by the code generator):
# it counts the loop's steps against the mail's budget.
LOOP_STEPS = "trouw_loop_steps"


class MailCodeGenerator(CodeGenerator):
    """Jinja's code generator, with the checks of limits.py where code builds values.

    `for` loops count their steps; `~` and list, tuple and dict literals are measured
    before they are built; macros and `{% set %}`/`{% filter %}` blocks render into a
    bounded buffer.
    """

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Before Jinja collects the filters each function uses: every loop's iterable
        # passes through LOOP_STEPS.
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, LOOP_STEPS, [], [], None, None, lineno=loop.lineno)
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Jinja's own, with the operands measured before they are joined.
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.checked_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.checked_items(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.checked_items(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target: `{% for a, b in ... %}`, `{% set a, b = ... %}`
            super().visit_Tuple(node, frame)
            return
        self.write("environment.checked_items(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.text_buffer()")


class MailTemplate(Template):
    """A template whose module (`{% import %}`) renders its top level bounded too."""

    def make_module(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> TemplateModule:
        context = self.new_context(vars, shared, locals)
        return TemplateModule(self, context, limits.rendered(self.root_render_func(context)))


class MailSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with short paths for what mails do most.

    `contact.first_name` on a dict, `facts.points` on `Facts` and `m.button` on an
    imported template give what the sandbox's checks would give (a key of a plain
    dict; a data field; a name the template exports), without first raising and
    catching an AttributeError or inspecting the value. Calling a macro or
    `track` skips the checks for unsafe callables, which those never are.
    Everything else (methods, dunder names, other types) goes through the
    sandbox's checks unchanged.

    What could build something huge is checked first (limits.py): the operators
    `*`, `**`, `+` and `%`, the str methods that pad or repeat, `str.format`,
    `namespace()`, and (by `MailCodeGenerator`) loops, `~`, literals and blocks.
    """

    code_generator_class = MailCodeGenerator
    template_class = MailTemplate
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    checked_parts = staticmethod(limits.checked_parts)
    checked_items = staticmethod(limits.checked_items)
    text_buffer = limits.TextBuffer

    def concat(self, parts: Iterable[str]) -> str:
        """How Jinja joins a rendering (Template.render, macros, blocks): bounded."""
        return limits.concat(parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return limits.checked_binop(self.binop_table[operator], operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # `dict.fromkeys` would hold one value any number of times, unmeasured.
        return attr != "fromkeys" and super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map` as the sandbox wraps them, measured first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text: str = value.__self__
        by_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if by_map:
                given = args[0] if args and isinstance(args[0], Mapping) else {}
                limits.allow(limits.format_size(text, (), given), "format_map()")
            else:
                limits.allow(limits.format_size(text, args, kwargs), "format()")
            return wrapped(*args, **kwargs)

        return bounded

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
        if (kind is BuiltinMethodType or kind is MethodType) and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            if __obj.__name__ in limits.GROWING_METHODS:
                args = limits.checked_method(__obj.__self__, __obj.__name__, args, kwargs)
        else:
            limits.check_call(__obj, args, kwargs)
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
    limits.bound_filters(environment.filters)
    environment.filters[LOOP_STEPS] = limits.loop_steps
    environment.globals["dict"] = limits.mapping
    environment.globals["lipsum"] = limits.lipsum
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
        budget = limits.start_budget()  # one for the whole mail: subject, HTML and text
        try:
            subject, body = self.render_parts(compiled, context)
            twin = compiled.text
            finished, derived = self.finisher.finish(body, text=twin is None)
            if twin is not None:
                text = self._run(twin, lambda: twin.render(context))
            else:
                assert derived is not None
                text = derived
        finally:
            limits.end_budget(budget)
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
        joined = limits.joined  # "".join, bounded
        budget = limits.start_budget()
        try:
            raw_subject = self._run(template, lambda: joined(compiled.subject(jinja_context)))
            jinja_context.blocks["subject"][0] = _rendered(raw_subject)
            body = self._run(template, lambda: joined(template.root_render_func(jinja_context)))
        finally:
            limits.end_budget(budget)
        return " ".join(html.unescape(raw_subject).split()), body

    def _run(self, template: Template, work: Callable[[], str]) -> str:
        try:
            return work()
        except TemplateError:
            raise
        except Exception:
            # Rendering bypasses Template.render, so map the frames back to template lines here.
            exc = rewrite_traceback_stack()
        if isinstance(exc, limits.TemplateLimit):
            raise self._render_error(template, exc, "too big to render", limits.FIX) from exc
        if isinstance(exc, RecursionError):
            raise self._render_error(
                template, exc, "cannot render", "a macro that calls itself must stop somewhere"
            ) from exc
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
