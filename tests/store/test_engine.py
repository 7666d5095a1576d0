"""The engine's settings per database (store/engine.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text


def test_postgresql_plans_each_statement_for_its_own_parameters(engine: Engine) -> None:
    """A chunk's query over a range of contact ids, run again and again, must not fall back
    to a generic plan that reads the whole shop for every chunk: the setting holds on every
    pooled connection, also after rolled-back transactions and statements psycopg prepared."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plan cache")
    for _ in range(3):
        with engine.connect() as connection:  # rolled back when returned to the pool
            for low in range(7):  # prepared on the server after five runs
                connection.execute(text("SELECT :low + 1"), {"low": low}).scalar_one()
            mode = connection.execute(text("SHOW plan_cache_mode")).scalar_one()
            assert mode == "force_custom_plan"
