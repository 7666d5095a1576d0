"""Problems: every bad-input error of a pass collected, instead of stopping at the first.

The loaders (trouw.toml, segments, campaigns, templates) report what is wrong
through a `Problems`. Loading for a command uses `Problems.first()`: the first
problem is raised, as it always was. `trouw check` uses a collecting one, so
the same rules, written once in the loaders, list every problem in one run.

A problem that does not stop loading (a setting that loads but makes no
sense, such as max_per_week above max_per_month) is added with `loads=True`:
a command goes on with it; `trouw check` still reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from trouw.errors import UserError

T = TypeVar("T")
D = TypeVar("D")


class Problems:
    """Collects UserErrors; `stop` makes it raise the first one that stops loading."""

    def __init__(self, *, stop: bool = False) -> None:
        self.stop = stop
        self._found: list[UserError] = []
        self._seen: set[str] = set()

    @classmethod
    def first(cls) -> Problems:
        """For loading: the first problem is raised as it is found."""
        return cls(stop=True)

    def add(self, error: UserError, *, loads: bool = False) -> None:
        """Report a problem; `loads`: the file still loads with it (only `check` minds)."""
        if self.stop:
            if loads:
                return
            raise error
        text = str(error)
        if text not in self._seen:  # one template may be reached from several campaigns
            self._seen.add(text)
            self._found.append(error)

    def attempt(self, work: Callable[[], T], default: D, error: type[UserError]) -> T | D:
        """`work()`, or `default` after reporting the `error` it raised: one bad part of a
        file does not keep the checker from the independent parts after it."""
        try:
            return work()
        except error as exc:
            self.add(exc)
            return default

    def __iter__(self) -> Iterator[UserError]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)
