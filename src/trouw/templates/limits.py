"""Bounds on what a mail's templates may build, so that no template can exhaust memory.

Jinja's sandbox keeps templates away from Python's internals, not from
building a gigabyte: `{{ 'A' * 10**9 }}` peaked at 3.9 GB. The mail sandbox
(`environment.MailSandbox`) asks here, before it runs, every operation that
can make something much larger than its inputs:

- `*`, `+`, `%` and `**` on text, lists, tuples and integers; `~`; list,
  tuple and dict literals; `namespace(...)` and `dict(...)`;
- the str methods that pad, repeat or substitute (`center`, `ljust`, `rjust`,
  `zfill`, `expandtabs`, `replace`, `join`, `translate`, `format`) and the
  filters that do (`center`, `indent`, `wordwrap`, `join`, `replace`,
  `format`, `batch`, `slice`, `number`, `lipsum`);
- every `for` loop, against one budget of loop steps per mail (`range`
  itself stops at Jinja's MAX_RANGE);
- each rendered part (subject, HTML, text), captured block and macro result.

One value may hold at most MAX_TEXT characters, a list at most MAX_ITEMS
items, an integer MAX_INT_BITS bits; one mail may build MAX_BUILT characters
in all and take MAX_STEPS loop steps. Containers are measured by what `str()`
would write of them (`weight`), so a list of a thousand references to one
long text counts a thousand times. Over a bound, `TemplateLimit` is raised
before the memory is taken; the renderer reports it as a template error with
file and line. The budget is per mail (`budget()`); outside one, the bounds
per value still hold.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from functools import wraps
from typing import Any

from jinja2.utils import Namespace, generate_lorem_ipsum
from markupsafe import Markup

MAX_TEXT = 2_000_000  # characters in one text a template builds, and in one rendered part
MAX_ITEMS = 100_000  # items in one list or tuple (Jinja's own MAX_RANGE)
MAX_INT_BITS = 100_000  # about 30,000 digits
MAX_BUILT = 20_000_000  # characters built in all while rendering one mail
MAX_STEPS = 1_000_000  # loop steps while rendering one mail
MAX_DEPTH = 100  # nesting of lists, tuples, dicts and namespaces
MAX_DECIMALS = 100  # `number(decimals)`
FIX = (
    "build smaller values: a mail's text is at most "
    f"{MAX_TEXT:,} characters, a list {MAX_ITEMS:,} items, its loops {MAX_STEPS:,} steps"
)


class TemplateLimit(Exception):
    """A template would build more than a mail may hold."""


class Budget:
    """What one mail's rendering may still build (characters) and loop (steps)."""

    __slots__ = ("built", "steps")

    def __init__(self) -> None:
        self.built = MAX_BUILT
        self.steps = MAX_STEPS


_current: ContextVar[Budget | None] = ContextVar("trouw_template_budget", default=None)


def start_budget() -> Token[Budget | None] | None:
    """A fresh budget for one mail's rendering, unless one runs already; give what this
    returns to `end_budget` when the mail is rendered."""
    return _current.set(Budget()) if _current.get() is None else None


def end_budget(token: Token[Budget | None] | None) -> None:
    if token is not None:
        _current.reset(token)


def allow(size: int, what: str) -> None:
    """Allow building a text (or list) of about `size` characters, or raise TemplateLimit."""
    if size > MAX_TEXT:
        raise TemplateLimit(
            f"{what} would be {size:,} characters long; a template may build {MAX_TEXT:,}"
        )
    spent = _current.get()
    if spent is not None:
        spent.built -= size
        if spent.built < 0:
            raise TemplateLimit(
                f"{what}: this mail's templates build more than {MAX_BUILT:,} characters in all"
            )


def allow_items(count: int, what: str) -> None:
    if count > MAX_ITEMS:
        raise TemplateLimit(
            f"{what} would hold {count:,} items; a template may build {MAX_ITEMS:,}"
        )


# ----------------------------------------------------------------------------- measuring

_SCALAR = 32  # str() of a float, a date, None, an object of the context: about this long


def weight(value: Any) -> int:
    """About how long `str(value)` is: a text by its length, a container by what it holds,
    an item held twice counted twice (str() writes it twice). Stops soon after MAX_TEXT."""
    kind = type(value)
    if kind is str or kind is Markup:
        return len(value) + 2
    return _weight(value, {}, 0)


def _weight(value: Any, seen: dict[int, tuple[Any, int]], depth: int) -> int:
    if isinstance(value, str | bytes):
        return len(value) + 2
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    items: Iterable[Any]
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, Namespace):
        attributes = object.__getattribute__(value, "_Namespace__attrs")
        items = [*attributes.keys(), *attributes.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        return _SCALAR
    known = seen.get(id(value))
    if known is not None:
        return known[1]
    if depth > MAX_DEPTH:
        raise TemplateLimit(f"values nested more than {MAX_DEPTH} deep")
    total = 2
    for item in items:
        total += _weight(item, seen, depth + 1) + 2
        if total > MAX_TEXT:
            break
    seen[id(value)] = (value, total)  # the value is kept, so its id is not reused meanwhile
    return total


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, str) else weight(value)


def _count(value: Any) -> int:
    """An integer argument (a width, a count), or 0 for what is not one."""
    return int(value) if isinstance(value, int) else 0


# ----------------------------------------------------------------------------- operators

_SEQUENCES = (str, bytes, list, tuple)


def checked_binop(operator: Callable[[Any, Any], Any], op: str, left: Any, right: Any) -> Any:
    """`left op right` for the operators the sandbox intercepts (*, **, +, %), if small."""
    if op == "*":
        _check_multiply(left, right)
    elif op == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _check_sequence(left, right, len(left) + len(right), "joining two values with +")
    elif op == "%":
        if isinstance(left, str):
            allow(percent_size(left, right), "formatting with %")
    elif op == "**" and type(left) is int and type(right) is int and right > 1:
        bits = abs(left).bit_length() * right
        if abs(left) > 1 and bits > MAX_INT_BITS:
            raise TemplateLimit(
                f"{left} ** {right} would have about {bits * 3 // 10:,} digits; "
                f"a template may compute {MAX_INT_BITS * 3 // 10:,}"
            )
    return operator(left, right)


def _check_multiply(left: Any, right: Any) -> None:
    if isinstance(right, int) and isinstance(left, _SEQUENCES):
        sequence, times = left, right
    elif isinstance(left, int) and isinstance(right, _SEQUENCES):
        sequence, times = right, left
    else:
        if type(left) is int and type(right) is int:
            bits = left.bit_length() + right.bit_length()
            if bits > MAX_INT_BITS:
                raise TemplateLimit(
                    f"a product of about {bits * 3 // 10:,} digits; "
                    f"a template may compute {MAX_INT_BITS * 3 // 10:,}"
                )
        return
    if times > 1:
        _check_sequence(sequence, sequence, len(sequence) * times, f"a value * {times:,}", times)


def _check_sequence(left: Any, right: Any, length: int, what: str, times: int = 1) -> None:
    if isinstance(left, str | bytes):
        allow(length, what)
        return
    allow_items(length, what)
    size = weight(left) * times if times > 1 else weight(left) + weight(right)
    allow(size, what)


_FORMATTER = string.Formatter()
_DIGITS = re.compile(r"\d+")
_PERCENT = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)


def percent_size(text: str, arguments: Any) -> int:
    """An upper bound of `len(text % arguments)` (`%`-formatting, the `format` filter)."""
    if isinstance(arguments, tuple):
        positional: list[Any] = list(arguments)
    else:
        positional = [arguments]
    named = arguments if isinstance(arguments, Mapping) else {}
    size = len(text)
    index = 0
    for match in _PERCENT.finditer(text):
        key, width, precision, conversion = match.groups()
        if conversion == "%":
            continue
        for number in (width, precision):
            if number == "*":
                size += _count(positional[index]) if index < len(positional) else 0
                index += 1
            elif number:
                size += int(number) if len(number) < 20 else MAX_TEXT + 1
        if key is not None:
            value = named.get(key)
        else:
            value = positional[index] if index < len(positional) else None
            index += 1
        grows = 6 if conversion in "ra" or isinstance(text, Markup) else 1  # escapes
        size += 330 + _text_size(value) * grows  # 330: the digits of the largest float
    return size


def format_size(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper bound of `len(text.format(*args, **kwargs))`: each field as long as the
    longest value given, plus its width and precision."""
    values = [*args, *kwargs.values()]
    longest = max(map(_text_size, values), default=0)
    widest = max(map(_count, values), default=0)  # a width or precision given as `{:{}}`
    grows = 6 if isinstance(text, Markup) else 1  # Markup escapes what it formats
    size = len(text)
    for _, field, spec, conversion in _FORMATTER.parse(text):
        if field is None:
            continue
        for digits in _DIGITS.findall(spec or ""):
            size += int(digits) if len(digits) < 20 else MAX_TEXT + 1
        size += (spec or "").count("{") * widest
        size += 330 + longest * (6 if conversion in ("r", "a") else grows)
    return size


def checked_parts(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """The operands of `~`, if what they join is small enough."""
    allow(sum(map(_text_size, parts)), "joining with ~")
    return parts


def checked_items(value: Any) -> Any:
    """A list, tuple or dict literal, if what it holds is small enough."""
    allow(weight(value), "a list, tuple or dict")
    return value


def loop_steps(iterable: Any) -> Any:
    """What a `for` loop runs over, counted against the mail's budget of loop steps."""
    spent = _current.get()
    if spent is None:
        return iterable
    try:
        steps = len(iterable)
    except TypeError:
        return _counted(iterable, spent)
    spent.steps -= steps
    if spent.steps < 0:
        raise TemplateLimit(f"this mail's loops run more than {MAX_STEPS:,} steps")
    return iterable


def _counted(iterable: Iterable[Any], spent: Budget) -> Iterator[Any]:
    for item in iterable:
        spent.steps -= 1
        if spent.steps < 0:
            raise TemplateLimit(f"this mail's loops run more than {MAX_STEPS:,} steps")
        yield item


# ----------------------------------------------------------------------------- rendered text


class TextBuffer(list[str]):
    """The buffer a macro, `{% set %}` block or `{% filter %}` block renders into, bounded."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def append(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_TEXT:
            raise TemplateLimit(f"a block or macro renders more than {MAX_TEXT:,} characters")
        super().append(text)

    def extend(self, texts: Iterable[str]) -> None:
        texts = tuple(texts)
        self.size += sum(map(len, texts))
        if self.size > MAX_TEXT:
            raise TemplateLimit(f"a block or macro renders more than {MAX_TEXT:,} characters")
        super().extend(texts)


def rendered(
    parts: Iterable[str], limit: int = MAX_TEXT, length: Callable[[str], int] = len
) -> list[str]:
    """The pieces of a rendering, collected while it runs, at most MAX_TEXT characters.

    Checked piece by piece: a loop that outputs a long text again and again stops
    at the bound, not when memory runs out. (This loop is on every mail's path:
    hence the local names.)
    """
    if isinstance(parts, TextBuffer):
        return parts
    if isinstance(parts, list):
        if sum(map(length, parts)) > limit:
            raise TemplateLimit(f"a template renders more than {limit:,} characters")
        return parts
    pieces: list[str] = []
    append = pieces.append
    size = 0
    for piece in parts:
        size += length(piece)
        if size > limit:
            error = TemplateLimit(f"a template renders more than {limit:,} characters")
            throw = getattr(parts, "throw", None)
            if throw is not None:  # a rendering generator: raised at its line in the template
                throw(error)
            raise error
        append(piece)
    return pieces


def joined(parts: Iterable[str]) -> str:
    """A mail's rendered part: `"".join(parts)`, at most MAX_TEXT characters."""
    return "".join(rendered(parts))


def concat(parts: Iterable[str]) -> str:
    """A macro's or block's rendering, at most MAX_TEXT characters, counted against the
    mail's budget (a loop may call a macro many times)."""
    text = "".join(rendered(parts))
    allow(len(text), "a rendering")
    return text


# ----------------------------------------------------------------------------- str methods

GROWING_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate"}
)


def checked_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The arguments for `text.name(*args, **kwargs)` if its result is small enough (a `join`
    of an iterator gets a list of it instead)."""
    what = f"'…'.{name}()"
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width")
        allow(max(len(text), _count(width)), what)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        allow(len(text) + text.count("\t") * max(_count(size), 0), what)
    elif name == "replace":
        allow(replaced_size(text, *args[:3]), what)
    elif name == "join" and args:
        items = list(args[0])
        allow(joined_size(text, items), what)
        args = (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((_text_size(v) for v in args[0].values()), default=1)
        allow(len(text) * max(longest, 1), what)
    return args


def replaced_size(text: Any, old: Any = "", new: Any = "", count: Any = -1) -> int:
    text, old, new = (v if isinstance(v, str) else _sized_str(v) for v in (text, old, new))
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def joined_size(separator: Any, items: list[Any]) -> int:
    return sum(map(_text_size, items)) + _text_size(separator) * max(len(items) - 1, 0)


def _sized_str(value: Any) -> str:
    allow(weight(value), "writing a value as text")
    return str(value)


# ----------------------------------------------------------------------------- filters


def _center(value: Any, width: Any = 80) -> int:
    return max(_text_size(value), _count(width))


def _indent(value: Any, width: Any = 4, *rest: Any, **options: Any) -> int:
    text = value if isinstance(value, str) else _sized_str(value)
    pad = len(width) if isinstance(width, str) else max(_count(width), 0)
    return len(text) + (text.count("\n") + 1) * pad


def _wordwrap(text: Any, width: Any = 79, breaks: Any = True, wrapstring: Any = None, *rest: Any,
              **options: Any) -> int:  # fmt: skip
    wrap = options.get("wrapstring", wrapstring)
    size = _text_size(text)
    return size + (size + 1) * _text_size(wrap if wrap is not None else "\n")


def _replace(text: Any, old: Any = "", new: Any = "", count: Any = None) -> int:
    return replaced_size(text, old, new, -1 if count is None else count)


def _format(text: Any, *args: Any, **kwargs: Any) -> int:
    text = text if isinstance(text, str) else _sized_str(text)
    return percent_size(text, kwargs or args)


def _chunks(value: Any, count: Any = 0, fill_with: Any = None, **options: Any) -> int:
    allow_items(_count(count), "batch() or slice()")
    return 0


def _number(value: Any, decimals: Any = None) -> int:
    if isinstance(decimals, int) and decimals > MAX_DECIMALS:
        raise TemplateLimit(f"number() with {decimals:,} decimals; at most {MAX_DECIMALS}")
    return 0


_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "format": _format,
    "batch": _chunks,
    "slice": _chunks,
    "number": _number,
}


def bound_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """Replace the filters that can grow their input with ones that check first."""
    for name, size_of in _FILTER_SIZES.items():
        if name in filters:
            filters[name] = _bounded_filter(filters[name], name, size_of)
    if "join" in filters:
        filters["join"] = _bounded_join(filters["join"])


def _passes_first(function: Callable[..., Any]) -> int:
    """1 if Jinja passes the filter a context, eval context or environment first."""
    return 1 if getattr(function, "jinja_pass_arg", None) is not None else 0


def _bounded_filter(
    function: Callable[..., Any], name: str, size_of: Callable[..., int]
) -> Callable[..., Any]:
    skip = _passes_first(function)

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        size = size_of(*args[skip:], **kwargs)
        if size:
            allow(size, f"the {name} filter")
        return function(*args, **kwargs)

    return bounded


def _bounded_join(function: Callable[..., Any]) -> Callable[..., Any]:
    skip = _passes_first(function)

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        head, rest = args[:skip], args[skip:]
        if rest:
            # Items whole: their attribute (join(attribute=...)) is no longer than they are.
            items = list(rest[0])
            separator = rest[1] if len(rest) > 1 else kwargs.get("d", "")
            allow(joined_size(separator, items), "the join filter")
            rest = (items, *rest[1:])
        return function(*head, *rest, **kwargs)

    return bounded


# ----------------------------------------------------------------------------- globals


def mapping(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    """`dict(...)` in a template: a dict, measured (and no `dict.fromkeys` to reach)."""
    return checked_items(dict(*args, **kwargs))  # type: ignore[no-any-return]


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's `lipsum()`, with at most MAX_TEXT characters in all."""
    allow(_count(n) * _count(max) * 12, "lipsum()")
    return generate_lorem_ipsum(n, html, min, max)


def check_call(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A template calling `namespace(...)`: what it will hold, measured."""
    if function is Namespace:
        allow(weight(args) + weight(kwargs), "namespace()")
