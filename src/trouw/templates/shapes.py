"""CSS inlining and text derivation once per shape of a mail, not once per mail.

The mails of one template differ in their text (names, dates, amounts) and in
their links (signed per contact), but mostly share a *shape*: the same
elements with the same classes, ids and inline styles, the same
stylesheet, and text in the same places. css-inline and html2text cost more
than rendering the template (about 90 and 1,400 µs a mail), yet their work
depends only on that shape:

- a style rule can only see an element's name, classes, id, its own `style`,
  and its ancestors and siblings (when the stylesheet uses no attribute
  selectors and no pseudo-classes other than structural ones, which is
  checked), so the `style` each element gets is the same for every mail of
  the shape;
- html2text's layout (paragraphs, lists, "label: URL" links) depends on the
  elements and on where text is, not on what the text says.

So a mail is split into tags and text nodes; its shape is the tags (with
link targets, image sources and alt texts blanked) plus which text nodes
hold more than whitespace, plus the stylesheets. The first mail of a shape
goes through css-inline and html2text with every element and text node
numbered; what comes out is kept as a plan: which tag gets which `style`,
which `<style>` blocks go, and the text part with holes for text nodes and
link targets. Later mails of the shape apply the plan with a few string
operations. A shape whose plan cannot be trusted (a stylesheet with
attribute selectors, an element css-inline made up and styled, derived text
that differs from html2text's) keeps the per-mail path.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable
from dataclasses import dataclass

# Every tag, end tag, comment or doctype; the text nodes lie between them.
_TAG = re.compile(r"(<[^>]*>)")
_START_TAG_NAME = re.compile(r"<([a-zA-Z][\w:-]*)")
# The non-blank core of each text node, in the text nodes joined with \x01.
_TEXT_CORE = re.compile(r"[^\s\x01](?:[^\x01]*[^\s\x01])?")
# Attribute values that differ per contact but neither style rules (no attribute
# selectors, checked) nor html2text (images ignored) look at, except link targets.
# Three patterns with a literal start, which the regex engine finds fast (`data-src` and the
# like are blanked too: neither style rules nor html2text read them).
_VOLATILE = (
    (re.compile(r'href="(?:https?:|mailto:)[^"]*"'), 'href=""'),
    (re.compile(r'src="[^"]*"'), 'src=""'),
    (re.compile(r'alt="[^"]*"'), 'alt=""'),
)
_STYLESHEET = re.compile(r"<style\b[^>]*>([^<]*)", re.IGNORECASE)
_HREF = re.compile(r'\shref="((?:https?:|mailto:)[^"]*)"', re.IGNORECASE)
_STYLE_ATTR = re.compile(r"""\sstyle\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_MARK_INDEX = re.compile(r'\sdata-trouw-i="(\d+)"')
_OUT_STYLE = re.compile(r'\sstyle="([^"]*)"')
_OUT_START_TAG = re.compile(r"<[a-zA-Z][^>]*>")
_HOLE = re.compile("\ue000(\\d+)\ue001")
_SPACES = re.compile(r"[ \t\n\r\f\v]+")

# Pseudo-classes that depend only on the tree, which the shape fixes.
_STRUCTURAL_PSEUDO = {
    "root",
    "empty",
    "first-child",
    "last-child",
    "only-child",
    "first-of-type",
    "last-of-type",
    "only-of-type",
    "nth-child",
    "nth-last-child",
    "nth-of-type",
    "nth-last-of-type",
    "not",
}
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
# @media and friends: css-inline cannot write them onto elements and leaves them out.
_AT_BLOCK = re.compile(r"@[^{;]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}|@[^{;]*;")
_RULE = re.compile(r"([^{}]*)\{[^{}]*\}")
_PSEUDO = re.compile(r"::?([\w-]+)")

MAX_SHAPES = 512  # beyond this, new shapes take the per-mail path (shape memory stays bounded)
_MEMO_LIMIT = 20_000


@dataclass(frozen=True)
class Shape:
    """What css-inline and html2text do to every mail of one shape."""

    styles: tuple[tuple[int, str, bool], ...] | None  # (tag part, ' style="..."', replace)
    dropped: tuple[int, ...]  # parts removed: non-kept <style> blocks, stylesheet <link>s
    text: tuple[str | int, ...] | None  # literal text, or the index of a part to fill in


def stylesheet_is_structural(css: str) -> bool:
    """Whether every rule selects by name, class, id and tree position only."""
    css = _AT_BLOCK.sub("", _COMMENT.sub("", css))
    if "[" in css or "@" in css:
        return False
    rules = _RULE.findall(css)
    if css.count("{") != len(rules):
        return False
    for selectors in rules:
        for name in _PSEUDO.findall(selectors):
            if name.lower() not in _STRUCTURAL_PSEUDO:
                return False
    return True


class ShapeCache:
    """Plans per shape, built with the per-mail functions on the first mail of each."""

    def __init__(self, inline: Callable[[str], str], text_of: Callable[[str], str]) -> None:
        self._inline = inline
        self._text_of = text_of
        self._shapes: dict[tuple[object, ...], Shape] = {}
        self._plain: dict[str, str] = {}
        self.misses = 0

    def finish(self, html: str, *, text: bool) -> tuple[str, str | None]:
        """The HTML with CSS inlined and (when `text`) the text part derived from it."""
        parts = _TAG.split(html)
        tags = "".join(parts[1::2])
        for pattern, blank in _VOLATILE:
            tags = pattern.sub(blank, tags)
        key = (
            len(parts),
            _TEXT_CORE.sub("\x00", "\x01".join(parts[0::2])),
            tags,
            tuple(_STYLESHEET.findall(html)),
        )
        shape = self._shapes.get(key)
        if shape is None:
            self.misses += 1
            shape = self._plan(html, parts)
            if len(self._shapes) < MAX_SHAPES:
                self._shapes[key] = shape
        derived: str | None = None
        if text:
            derived = self._text_of(html) if shape.text is None else self._fill(shape, parts)
        if shape.styles is None:
            return self._inline(html), derived
        return _apply_styles(shape, parts), derived

    # ------------------------------------------------------------------ per mail

    def _fill(self, shape: Shape, parts: list[str]) -> str:
        assert shape.text is not None
        out: list[str] = []
        plain = self._plain
        for piece in shape.text:
            if type(piece) is str:
                out.append(piece)
                continue
            raw = parts[piece]  # type: ignore[index]
            value = plain.get(raw)
            if value is None:
                if piece % 2:
                    found = _HREF.search(raw)
                    value = htmllib.unescape(found.group(1)) if found else ""
                else:
                    # html2text reads a raw no-break space as a space, &nbsp; as a no-break space.
                    value = _SPACES.sub(" ", htmllib.unescape(raw.replace("\xa0", " ")))
                    value = value.strip(" \t\n\r\f\v")
                if len(plain) < _MEMO_LIMIT:
                    plain[raw] = value
            out.append(value)
        return "".join(out)

    # ------------------------------------------------------------------ first mail of a shape

    def _plan(self, html: str, parts: list[str]) -> Shape:
        styles, dropped = self._plan_styles(html, parts)
        shape = Shape(styles, dropped, self._plan_text(parts))
        if shape.text is not None and _comparable(self._fill(shape, parts)) != _comparable(
            self._text_of(html)
        ):
            shape = Shape(styles, dropped, None)
        return shape

    def _plan_styles(
        self, html: str, parts: list[str]
    ) -> tuple[tuple[tuple[int, str, bool], ...] | None, tuple[int, ...]]:
        if not all(stylesheet_is_structural(css) for css in _STYLESHEET.findall(html)):
            return None, ()
        names: dict[int, str] = {}
        marked = list(parts)
        for index in range(1, len(parts), 2):
            found = _START_TAG_NAME.match(parts[index])
            if found:
                names[index] = found.group(1).lower()
                end = found.end()
                marked[index] = f'{parts[index][:end]} data-trouw-i="{index}"{parts[index][end:]}'
        inlined = self._inline("".join(marked))
        given: dict[int, str] = {}
        seen: set[int] = set()
        for tag in _OUT_START_TAG.findall(inlined):
            mark = _MARK_INDEX.search(tag)
            style = _OUT_STYLE.search(tag)
            if mark is None:
                if style is not None:
                    return None, ()  # an element the parser added got a style: not ours to copy
                continue
            index = int(mark.group(1))
            seen.add(index)
            if style is not None:
                given[index] = style.group(1)
        dropped: list[int] = []
        for index, name in names.items():
            if index in seen:
                continue
            if name == "link":
                dropped.append(index)
            elif name == "style" and parts[index + 2].lower().startswith("</style"):
                dropped.extend((index, index + 1, index + 2))
            else:
                return None, ()  # the parser moved or dropped an element
        styles = tuple(
            (index, f' style="{value}"', _STYLE_ATTR.search(parts[index]) is not None)
            for index, value in sorted(given.items())
        )
        return styles, tuple(dropped)

    def _plan_text(self, parts: list[str]) -> tuple[str | int, ...] | None:
        skeleton = list(parts)
        for index in range(0, len(parts), 2):
            core = _TEXT_CORE.search(parts[index])
            if core:
                text = parts[index]
                skeleton[index] = f"{text[: core.start()]}\ue000{index}\ue001{text[core.end() :]}"
        for index in range(1, len(parts), 2):
            found = _HREF.search(parts[index])
            if found:
                tag = parts[index]
                skeleton[index] = f"{tag[: found.start(1)]}\ue000{index}\ue001{tag[found.end(1) :]}"
        derived = _HOLE.split(self._text_of("".join(skeleton)))
        if "\ue000" in "".join(derived[0::2]) or "\ue001" in "".join(derived[0::2]):
            return None
        return tuple(piece if n % 2 == 0 else int(piece) for n, piece in enumerate(derived))


def _apply_styles(shape: Shape, parts: list[str]) -> str:
    assert shape.styles is not None
    out = list(parts)
    for index, attribute, replace in shape.styles:
        tag = out[index]
        found = _STYLE_ATTR.search(tag) if replace else None
        if found is not None:
            out[index] = tag[: found.start()] + attribute + tag[found.end() :]
        elif tag.endswith("/>"):
            out[index] = f"{tag[:-2].rstrip()}{attribute} />"
        else:
            out[index] = f"{tag[:-1]}{attribute}>"
    for index in shape.dropped:
        out[index] = ""
    # As css-inline's serializer writes it: robust in mail clients that guess the charset.
    return "".join(out).replace("\xa0", "&nbsp;")


def _comparable(text: str) -> str:
    """Text without whitespace and Markdown escapes: what must match html2text's."""
    return re.sub(r"[\s\\]+", "", text)
