"""YAML with line numbers: every mapping and list remembers where its keys and items are.

(And `read_text`, which every project file is read with: not UTF-8 is bad input with a line.)

PyYAML's SafeLoader keeps positions only on its nodes; these constructors copy
them onto the built values, so a validation error in a segment or campaign file
can name the line of the key that is wrong, not just the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trouw.errors import UserError


class LineDict(dict[Any, Any]):
    """A mapping from YAML: `line` is where it starts, `key_lines[key]` where each key is."""

    line: int
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A list from YAML: `line` is where it starts, `item_lines[i]` where each item is."""

    line: int
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            duplicate = key in result
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key '{key}' appears twice (first on line {result.key_lines[key]})",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """A date or time as YAML reads it; one that is no real day (2027-02-30) stays text, so
    the reader that wants a date reports it with its file and line, not a traceback."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def item_line(items: Any, index: int) -> int | None:
    """The line of item `index` of a LineList (None for a list not read from YAML)."""
    lines = getattr(items, "item_lines", None)
    return lines[index] if lines else None


def read_text(path: Path, error: type[UserError]) -> str:
    """A file's text as UTF-8; a file that is not (an image, UTF-16) is `error` with the line
    of the first byte that is not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})",
            path=path,
            line=data.count(b"\n", 0, exc.start) + 1,
            fix="save the file as UTF-8 text (is it the file you meant?)",
        ) from exc


def read_yaml(path: Path, error: type[UserError]) -> Any:
    """Parse one YAML file; syntax errors become `error` with the line."""
    text = read_text(path, error)
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise error(
            f"not valid YAML: {exc.problem or exc.context}",
            path=path,
            line=line,
            fix="correct the YAML syntax (indentation, colons, quotes)",
        ) from exc
    except yaml.reader.ReaderError as exc:  # a control character: its offset, not a mark
        raise error(
            f"not valid YAML: character {exc.character!r} is not allowed",
            path=path,
            line=text.count("\n", 0, exc.position) + 1,
            fix='remove the control character (or quote it as an escape, e.g. "\\t")',
        ) from exc
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}", path=path) from exc
