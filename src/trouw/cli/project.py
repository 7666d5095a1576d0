"""`trouw init DIR`."""

from __future__ import annotations

from pathlib import Path

import click

from trouw.cli.output import console
from trouw.scaffold import create_project


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init_command(directory: Path) -> None:
    """Create a new campaign project in DIRECTORY.

    Writes trouw.toml, segments/, templates/ and campaigns/ with a small
    working example.

    \b
    Example:
      trouw init my-shop && cd my-shop && trouw demo
    """
    written = create_project(directory)
    console.print(f"created a trouw project in {directory} ({len(written)} files)")
    console.print(f"next: cd {directory} && trouw demo")
