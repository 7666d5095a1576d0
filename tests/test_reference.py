"""docs/ is the reference, and it cannot go stale.

Every key, operator, trigger, variable, filter, column and option the code
knows (read from the code's own constants) has its entry in the docs page of
its file type, and every entry names something the code knows. Every example
runs: TOML blocks load as trouw.toml; YAML segments, conditions and campaigns
and Jinja templates are written into a project that `trouw check` must find
fine, whose templates `trouw templates check` renders and whose segments
`trouw segments count` counts; CSV/JSONL blocks are imported with the options
their fence names; JSON blocks are posted to the API; `trouw ...` lines name
commands and options that exist.

Conventions of the pages (see docs/README.md): an entry is a `### `name``
heading under its `## Group` heading, or a row of a table whose first cell is
`name`; a fenced example says what it is in its first line or its fence.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from trouw import campaigns as campaign_keys
from trouw import durations, importing, project
from trouw.cli import main
from trouw.facts import Facts
from trouw.planning.candidates import PAUSE, STOPPING_EVENTS
from trouw.problems import Problems
from trouw.reports.loyalty import PURCHASE
from trouw.segments import definition
from trouw.store import contacts
from trouw.templates import limits
from trouw.templates.check import GMAIL_CLIP_BYTES
from trouw.templates.context import (
    SURVEY_SCALES,
    campaign_view,
    contact_view,
    mail_context,
    shop_view,
)
from trouw.templates.environment import make_environment
from trouw.templates.filters import FILTERS
from trouw.tracking.answers import SURVEY
from trouw.tracking.feedback import BOUNCE, COMPLAINT
from trouw.tracking.preferences import PREFERENCE
from trouw.tracking.record import CLICK, OPEN, UNSUBSCRIBE

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = ("trouw-toml.md", "segments.md", "campaigns.md", "templates.md", "events.md")
AS_OF = "2027-01-15"  # `trouw check` looks for each schedule's day in the coming year

_HEADING = re.compile(r"^(#{1,6}) (.*)$")
_FENCE = re.compile(r"^```(.*)$")
_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass
class Block:
    """A fenced example: its fence's words (`csv events --decimal-comma`), text and place."""

    page: str
    line: int
    info: str
    text: str

    @property
    def language(self) -> str:
        return self.info.split(" ", 1)[0]

    @property
    def where(self) -> str:
        return f"{self.page}, line {self.line}"


@dataclass
class Entry:
    """One `### `name`` entry: its text and examples."""

    name: str
    text: str = ""
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Page:
    name: str
    text: str
    blocks: list[Block] = field(default_factory=list)
    # group (the ## heading) -> entry name -> entry; table rows are entries without text
    groups: dict[str, dict[str, Entry]] = field(default_factory=dict)
    headings: list[str] = field(default_factory=list)


def read_page(name: str, folder: Path = DOCS) -> Page:
    text = (folder / name).read_text(encoding="utf-8")
    page = Page(name, text)
    group: dict[str, Entry] | None = None
    entry: Entry | None = None
    fence: Block | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is not None:
            if line.startswith("```"):
                page.blocks.append(fence)
                if entry is not None:
                    entry.blocks.append(fence)
                fence = None
            else:
                fence.text += line + "\n"
            continue
        opened = _FENCE.match(line)
        if opened:
            shown = name if folder != DOCS else f"docs/{name}"
            fence = Block(shown, number + 1, opened.group(1).strip(), "")
            continue
        heading = _HEADING.match(line)
        if heading:
            level, title = len(heading.group(1)), heading.group(2).strip()
            page.headings.append(title)
            if level == 2:
                group = page.groups.setdefault(_plain(title), {})
                entry = None
            elif level == 3 and group is not None:
                found = _CODE.match(title)
                entry = Entry(found.group(1)) if found else None
                if entry is not None:
                    group[entry.name] = entry
            continue
        if entry is not None:
            entry.text += line + "\n"
        elif group is not None and line.startswith("| `"):
            cell = _CODE.match(line[2:])
            if cell:
                group[cell.group(1)] = Entry(cell.group(1))
    assert fence is None, f"docs/{name}: a code block is not closed"
    return page


def _plain(title: str) -> str:
    return title.replace("`", "")


@pytest.fixture(scope="module")
def pages() -> dict[str, Page]:
    return {name: read_page(name) for name in PAGES}


def _names(page: Page, group: str) -> set[str]:
    assert group in page.groups, f"docs/{page.name} has no section '## {group}'"
    return set(page.groups[group])


def assert_same(page: Page, group: str, in_code: Any) -> None:
    """The entries of a section are exactly what the code knows."""
    documented = _names(page, group)
    known = set(in_code)
    missing = sorted(known - documented)
    unknown = sorted(documented - known)
    assert not missing, f"docs/{page.name}, '## {group}': not documented: {missing}"
    assert not unknown, f"docs/{page.name}, '## {group}': not known to the code: {unknown}"


# ---------------------------------------------------------------------- what the code knows


def known_event_types() -> set[str]:
    """The event types that mean something to trouw, from the modules that act on them."""
    # `signup` starts `trigger: signup` for a contact without customer_since
    # (planning/candidates.py asks for it by that name).
    return {*STOPPING_EVENTS, PAUSE, PREFERENCE, CLICK, OPEN, UNSUBSCRIBE, SURVEY, BOUNCE}.union(
        {COMPLAINT, PURCHASE, "signup"}
    )


def template_variables() -> dict[str, Any]:
    """A letter's context has every variable a mail's has (without signing anything)."""
    row = {column.name: None for column in contacts.c}
    row.update(id="c1", locale="nl")
    contact = contact_view(row, "nl")
    return mail_context(
        contact=contact,
        facts=Facts(),
        campaign=campaign_view("x"),
        shop=shop_view(project.Settings(name="x")),
        signer=None,  # type: ignore[arg-type]  # a letter signs nothing
        as_of=date(2027, 1, 1),
        channel="post",
    )


def subcommand(group: click.Command, name: str) -> click.Command | None:
    """A group's command by name (the top group loads its commands on demand)."""
    assert isinstance(group, click.Group)
    return group.get_command(click.Context(group), name)


def import_options() -> set[str]:
    group = subcommand(main, "import")
    assert group is not None
    found: dict[str, set[str]] = {}
    for kind in ("contacts", "events"):
        command = subcommand(group, kind)
        assert command is not None
        found[kind] = {
            opt
            for param in command.params
            if isinstance(param, click.Option)
            for opt in (*param.opts, *param.secondary_opts)
        }
    assert found["contacts"] == found["events"], "the two imports' options differ: document both"
    return found["events"]


# ---------------------------------------------------------------------- every key documented


def test_every_settings_section_and_key(pages: dict[str, Page]) -> None:
    page = pages["trouw-toml.md"]
    sections = {title[1:-1] for title in page.groups if re.fullmatch(r"\[\w+\]", title)}
    assert sections == set(project.SETTINGS_KEYS), "the [sections] of trouw.toml"
    for section, keys in project.SETTINGS_KEYS.items():
        assert_same(page, f"[{section}]", keys)


def _setting_default(section: str, key: str) -> Any:
    """The default of a setting, from the dataclasses that hold them (`...` when it has none)."""
    holders: dict[str, Any] = {
        "sender": project.Sender,
        "policy": project.Policy,
        "webhooks": project.Webhooks,
        "brand": project.Brand,
        "bounces": project.Bounces,
    }
    attribute = {"from": "from_address", "base_url": "tracking_base_url", "dir": "letters_dir"}
    holder = holders.get(section, project.Settings)
    fields = {f.name: f for f in dataclasses.fields(holder)}
    found = fields[attribute.get(key, key)]
    if found.default is dataclasses.MISSING:
        return ...
    return list(found.default) if isinstance(found.default, tuple) else found.default


def test_settings_defaults_are_the_code_s(pages: dict[str, Page]) -> None:
    page = pages["trouw-toml.md"]
    for section, keys in project.SETTINGS_KEYS.items():
        for key in keys:
            text = page.groups[f"[{section}]"][key].text
            said = re.search(r"Default: (`([^`]*)`|none)", text)
            assert said, f"docs/trouw-toml.md, [{section}] {key}: no 'Default: ...'"
            default = _setting_default(section, key)
            if said.group(1) == "none":
                assert default in (None, ...), f"[{section}] {key}: code says {default!r}"
            else:
                written = tomllib.loads(f"v = {said.group(2)}")["v"]
                assert written == default, f"[{section}] {key}: code says {default!r}"


def test_every_segment_form_operator_filter_and_aggregate(pages: dict[str, Page]) -> None:
    page = pages["segments.md"]
    aggregates = definition.AGGREGATES
    assert_same(page, "Top-level keys", definition.SEGMENT_KEYS)
    assert_same(page, "Condition forms", definition.FORMS)
    assert_same(page, "Operators", definition.OPERATORS)
    assert_same(page, "Event filters", set(definition.EVENT_KEYS) - {"event", *aggregates})
    assert_same(page, "Aggregates", aggregates)
    assert_same(page, "NPS classes", definition.NPS_CLASSES)
    assert_same(page, "Contact columns", definition.TEXT_COLUMNS + definition.DATE_COLUMNS)
    assert_same(
        page, "Event columns", definition.EVENT_TEXT_COLUMNS + definition.EVENT_NUMBER_COLUMNS
    )
    units = re.search(r"\(([a-z|]+)\)", durations._PATTERN.pattern)
    assert units is not None
    assert_same(page, "Durations", units.group(1).split("|"))
    for operator in definition.AGGREGATE_OPERATORS:
        assert f"`{operator}`" in page.text.split("## Aggregates", 1)[1].split("\n## ", 1)[0]


def test_every_campaign_key_kind_trigger_and_choice(pages: dict[str, Page]) -> None:
    page = pages["campaigns.md"]
    assert_same(page, "Top-level keys", campaign_keys.TOP_LEVEL_KEYS)
    assert_same(page, "Kinds", campaign_keys.KINDS)
    assert_same(page, "Schedule keys", campaign_keys.SCHEDULE_KEYS)
    assert_same(page, "Triggers", campaign_keys.TRIGGERS)
    assert set(campaign_keys.TRIGGER_WORDS) | set(campaign_keys.TRIGGER_KEYS) == set(
        campaign_keys.TRIGGERS
    )
    for trigger, options in campaign_keys.TRIGGER_KEYS.items():
        entry = page.groups["Triggers"][trigger]
        for option in options:
            assert f"{option}:" in entry.text, f"trigger {trigger}: option {option} not shown"
    assert_same(page, "Step keys", campaign_keys.STEP_KEYS)
    assert_same(page, "Variant keys", campaign_keys.VARIANT_KEYS)
    assert_same(page, "on_defer values", campaign_keys.ON_DEFER)
    # The experiments (issue 17): documented as soon as the code has them.
    for group, constant in (
        ("Test keys", "TEST_KEYS"),
        ("Arm keys", "ARM_KEYS"),
        ("pick_by values", "PICK_BY"),
        ("send_time values", "SEND_TIMES"),
    ):
        in_code = getattr(campaign_keys, constant, ())
        if in_code or group in page.groups:
            assert_same(page, group, in_code)


def test_every_template_variable_field_filter_and_function(pages: dict[str, Page]) -> None:
    page = pages["templates.md"]
    context = template_variables()
    assert_same(page, "Variables", context)
    variables = page.groups["Variables"]
    for name, value in (
        ("contact", context["contact"]),
        ("campaign", context["campaign"]),
        ("shop", context["shop"]),
    ):
        rows = set(_CODE.findall(variables[name].text.split("```", 1)[0]))
        missing = sorted(set(value) - rows)
        assert not missing, f"docs/templates.md, `{name}`: fields not documented: {missing}"
    rows = set(re.findall(r"^\| `(\w+)`", variables["facts"].text, re.MULTILINE))
    assert rows == {f.name for f in dataclasses.fields(Facts)}, "the fields of `facts`"
    for question, (low, high) in SURVEY_SCALES.items():
        assert f"`{question}` ({low}-{high})" in " ".join(variables["survey_link"].text.split())
    assert_same(page, "Filters", FILTERS)
    assert_same(page, "Functions", make_environment(None).globals)


def test_template_limits_are_the_code_s(pages: dict[str, Page]) -> None:
    text = pages["templates.md"].text.split("## Limits", 1)[1]
    assert f"{GMAIL_CLIP_BYTES // 1024} KB" in text
    for value in (limits.MAX_TEXT, limits.MAX_ITEMS, limits.MAX_BUILT, limits.MAX_STEPS):
        assert f"{value:,}" in text, f"limit {value:,} not in docs/templates.md"


def test_every_event_column_type_contact_column_and_import_option(
    pages: dict[str, Page],
) -> None:
    page = pages["events.md"]
    assert_same(page, "Event columns", {*importing.EVENT_FIELDS, *importing.REQUIRED["events"]})
    assert_same(page, "Event types", known_event_types())
    assert_same(page, "Contact columns", importing.CONTACT_FIELDS)
    assert_same(page, "Import options", import_options())
    delimiter = page.groups["Import options"]["--delimiter"].text
    assert all(f"`{name}`" in delimiter for name in ("comma", "semicolon", "tab"))


def test_every_entry_has_an_example_that_uses_it(pages: dict[str, Page]) -> None:
    for page in pages.values():
        for group, entries in page.groups.items():
            for entry in entries.values():
                if not entry.text:
                    continue  # a table row: the section's examples show them
                assert entry.blocks, f"docs/{page.name}, {group} `{entry.name}`: no example"
                shown = "".join(block.info + "\n" + block.text for block in entry.blocks)
                assert entry.name in shown, (
                    f"docs/{page.name}, {group} `{entry.name}`: its example does not use it"
                )


# ---------------------------------------------------------------------- links


def _anchors(page: Page) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as '-', repeats -1."""
    seen: dict[str, int] = {}
    found = set()
    for title in page.headings:
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_links_between_the_pages_resolve(pages: dict[str, Page]) -> None:
    every = {**pages, "README.md": read_page("README.md")}
    for page in every.values():
        for target in _LINK.findall(page.text):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            linked = every[file] if file else page
            assert (DOCS / (file or page.name)).is_file(), f"docs/{page.name}: {target}"
            if anchor:
                assert anchor in _anchors(linked), f"docs/{page.name}: no heading for {target}"
    index = every["README.md"].text
    for name in PAGES:
        assert f"({name})" in index, f"docs/README.md does not link {name}"
    assert "docs/README.md" in (ROOT / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------- the examples run


def blocks(pages: dict[str, Page], language: str) -> Iterator[Block]:
    for page in pages.values():
        yield from (block for block in page.blocks if block.language == language)


def test_every_block_is_an_example_the_tests_run(pages: dict[str, Page]) -> None:
    run = {"toml", "yaml", "jinja", "sh", "csv", "jsonl", "json"}
    for page in pages.values():
        for block in page.blocks:
            assert block.language in run, f"{block.where}: no test runs ```{block.info}"


def test_toml_examples_load_as_settings(pages: dict[str, Page], tmp_path: Path) -> None:
    for block in blocks(pages, "toml"):
        (tmp_path / "trouw.toml").write_text(block.text, encoding="utf-8")
        problems = Problems()
        project.load_project(tmp_path, problems)
        assert not list(problems), f"{block.where}: {[str(p) for p in problems]}"


def _example_name(block: Block) -> str:
    return f"{Path(block.page).stem}-line-{block.line}"


def write_examples(pages: dict[str, Page], root: Path) -> None:
    """The example project's settings, segments and templates, and every docs example.

    Each YAML example gets a file of its own (named after its page and line), so that
    examples of the same file (campaigns/welcome.yaml) are each checked; templates keep
    their path, as campaigns name them.
    """
    shutil.copy(ROOT / "trouw.toml", root / "trouw.toml")
    shutil.copytree(ROOT / "segments", root / "segments")
    shutil.copytree(ROOT / "templates", root / "templates")
    (root / "campaigns").mkdir()
    for block in blocks(pages, "yaml"):
        first, _, rest = block.text.partition("\n")
        if first == "# condition":
            body = "".join(f"  {line}\n" for line in rest.splitlines())
            path = root / "segments" / f"condition-{_example_name(block)}.yaml"
            path.write_text(f"description: {block.where}\nwhere:\n{body}", encoding="utf-8")
            continue
        found = re.fullmatch(r"# (segments|campaigns)/([\w-]+)\.yaml", first)
        assert found, f"{block.where}: starts with neither `# condition` nor `# FOLDER/NAME.yaml`"
        folder, stem = found.groups()
        path = root / folder / f"{stem}--{_example_name(block)}.yaml"
        path.write_text(block.text, encoding="utf-8")
    written: set[str] = set()
    for block in blocks(pages, "jinja"):
        first, _, rest = block.text.partition("\n")
        found = re.fullmatch(r"\{# templates/([\w/.-]+\.(?:html|txt)) #\}", first)
        assert found, f"{block.where}: a template example starts with {{# templates/PATH #}}"
        assert found.group(1) not in written, f"{block.where}: {found.group(1)} shown twice"
        written.add(found.group(1))
        path = root / "templates" / found.group(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rest, encoding="utf-8")


def run(root: Path, db: str, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["--project", str(root), "--db", db, *args], catch_exceptions=False
    )


def test_yaml_and_template_examples_pass_check_render_and_count(
    pages: dict[str, Page], tmp_path: Path
) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    write_examples(pages, root)
    db = f"sqlite:///{tmp_path / 'docs.db'}"
    checked = run(root, db, "check", "--as-of", AS_OF)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("project is fine")
    import_examples(pages, root, db)
    rendered = run(root, db, "templates", "check")
    assert rendered.exit_code == 0, rendered.output
    counted = run(root, db, "segments", "count", "--as-of", "2027-04-30")
    assert counted.exit_code == 0, counted.output
    for segment in (root / "segments").glob("condition-*.yaml"):
        assert segment.stem in counted.output
    post_api_examples(pages, root, db)


def import_examples(pages: dict[str, Page], root: Path, db: str) -> None:
    """Contacts first, then events, each block with the options its fence names."""
    examples = [*blocks(pages, "csv"), *blocks(pages, "jsonl")]
    examples.sort(key=lambda block: block.info.split()[1] != "contacts")
    for number, block in enumerate(examples):
        _, kind, *options = block.info.split()
        assert kind in ("contacts", "events"), f"{block.where}: ```{block.language} KIND"
        path = root / f"example-{number}.{block.language}"
        path.write_text(block.text, encoding="utf-8")
        result = run(root, db, "import", kind, str(path), *options)
        assert result.exit_code == 0, f"{block.where}:\n{result.output}"
        assert " rejected" not in result.output, f"{block.where}:\n{result.output}"


def post_api_examples(pages: dict[str, Page], root: Path, db: str) -> None:
    from sqlalchemy import create_engine
    from werkzeug.test import Client

    from trouw.tracking import create_app

    created = run(root, db, "keys", "create", "docs-examples")
    assert created.exit_code == 0, created.output
    key = created.output.split()[0]
    engine = create_engine(db)
    try:
        client = Client(create_app(project.load_project(root), engine, secret="docs" * 8))
        for block in blocks(pages, "json"):
            method, path = block.info.split()[1:3]
            assert method == "POST", block.where
            items = json.loads(block.text)
            response = client.post(path, json=items, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, f"{block.where}: {response.status_code}"
            answer = response.get_json()
            assert answer == {"accepted": len(items), "rejected": []}, f"{block.where}: {answer}"
    finally:
        engine.dispose()


def _options(command: click.Command) -> set[str]:
    return {
        opt
        for param in command.params
        if isinstance(param, click.Option)
        for opt in (*param.opts, *param.secondary_opts)
    }


def test_command_lines_name_commands_and_options_that_exist(pages: dict[str, Page]) -> None:
    """In the reference and in the README's tour."""
    lines = 0
    tour = read_page("README.md", ROOT)
    for block in [*blocks(pages, "sh"), *(b for b in tour.blocks if b.language == "sh")]:
        for offset, line in enumerate(block.text.splitlines()):
            if not line.startswith("trouw "):
                continue
            words = shlex.split(line, comments=True)
            lines += 1
            where = f"{block.page}, line {block.line + offset}"
            command: click.Command = main
            words = words[1:]
            while words and words[0].startswith("--") and words[0] in _options(main):
                words = words[2:]  # a global option and its value
            while isinstance(command, click.Group) and words and not words[0].startswith("-"):
                found = subcommand(command, words[0])
                if found is None and command.invoke_without_command:
                    break  # `trouw plan 2027`: a group that is a command of its own too
                assert found is not None, f"{where}: no command '{words[0]}'"
                command = found
                words.pop(0)
            for word in words:
                if word.startswith("--"):
                    option = word.split("=", 1)[0]
                    assert option in _options(command) | {"--help"}, f"{where}: no {option}"
    assert lines > 30
