"""Named errors. The library raises them; only the CLI turns them into messages.

`UserError` and its children mean bad input or usage (exit code 2): the message
names the file, the line or key, what was expected and the fix. Anything else
that escapes is a failure of the work (exit code 1).
"""

from __future__ import annotations

from pathlib import Path


class TrouwError(Exception):
    """Base of every error trouw raises on purpose."""


class UserError(TrouwError):
    """Bad input or usage: the user can fix it. Exit code 2."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.key = key
        self.fix = fix
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f", line {self.line}"
            if self.key is not None:
                where += f", key '{self.key}'"
            where += ": "
        elif self.key is not None:
            where = f"key '{self.key}': "
        text = where + self.reason
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ProjectError(UserError):
    """trouw.toml or the project's folders are missing or invalid."""


class ImportFileError(UserError):
    """An import file cannot be read at all (not: some rows are bad)."""


class ContactNotFound(UserError):
    """A contact id given on the command line does not exist."""


class WorkFailed(TrouwError):
    """The work itself failed (database down, SMTP refused). Exit code 1."""
