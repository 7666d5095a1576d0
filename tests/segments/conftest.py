"""Fixtures of the segment tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from trouw.store import open_store


@pytest.fixture
def shared_engine(db_url: str) -> Iterator[Engine]:
    """One engine for all of a property test's examples (each loads its own rows)."""
    engine = open_store(db_url)
    yield engine
    engine.dispose()
