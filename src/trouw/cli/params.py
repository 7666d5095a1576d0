"""Shared options and the run context, defined once for every command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # the project and the database are imported by the commands that use them
    from sqlalchemy import Engine

    from trouw.project import Project

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Env:
    """What a command needs: the project and its database, resolved lazily."""

    project_dir: Path | None = None
    db_override: str | None = None
    _project: Project | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def project(self) -> Project:
        if self._project is None:
            from trouw.project import find_project

            self._project = find_project(self.project_dir)
        return self._project

    @property
    def database_url(self) -> str:
        return self.project.database_url(self.db_override)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from trouw.store import open_store

            self._engine = open_store(self.database_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def today(self) -> date:
        """Today in the project's time zone."""
        return datetime.now(self.project.settings.tz).date()


pass_env = click.make_pass_decorator(Env)


def parse_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date; write YYYY-MM-DD") from None


def as_of_option(function: F) -> F:
    return click.option(
        "--as-of",
        "as_of",
        metavar="YYYY-MM-DD",
        callback=parse_day,
        help="Act as if it were the end of this day (default: today in the project's zone).",
    )(function)


def format_option(*choices: str, default: str) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=default,
            show_default=True,
            help="Output format.",
        )(function)

    return decorate
