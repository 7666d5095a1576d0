"""The strict tooling in pyproject.toml holds: ruff (lint and format) and mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_ruff_finds_nothing() -> None:
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed: pip install -e '.[dev]'")
    lint = _run("ruff", "check", "src", "tests", "scripts")
    assert lint.returncode == 0, lint.stdout
    form = _run("ruff", "format", "--check", "src", "tests", "scripts")
    assert form.returncode == 0, form.stdout


@pytest.mark.slow
def test_mypy_strict_on_the_library() -> None:
    result = _run(sys.executable, "-m", "mypy", "src/trouw")
    assert result.returncode == 0, result.stdout
