"""Printing: the one rich console, tables and progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _bar(amount: ProgressColumn) -> Progress:
    """A bar on stderr that disappears when done, and stays silent when not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        amount,
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )


@contextmanager
def byte_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar over `total` bytes; yields the function that advances it."""
    with _bar(DownloadColumn()) as progress:
        task = progress.add_task(label, total=total)
        pending = 0

        def advance(size: int) -> None:
            nonlocal pending
            pending += size
            if pending >= 1 << 20:  # redraw per MiB, not per line
                progress.advance(task, pending)
                pending = 0

        yield advance


@contextmanager
def count_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar over `total` items (contacts, days); yields `done(n)`, which sets it."""
    with _bar(MofNCompleteColumn()) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)
