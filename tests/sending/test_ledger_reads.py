"""A send run reads the ledger of the contacts due something in two steps: first only the
keys of the campaigns due (`statuses`), to pass over those who had it all; then the whole
`histories` of the rest. The first must say what the second says of those campaigns."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from trouw.sending import ledger as book
from trouw.store import atomic, ledger

DAY = date(2027, 3, 15)
NOW = datetime(2027, 3, 15, 10, 0)
CONTACTS = ("ann", "bob", "cor", "dirk")
CAMPAIGNS = ("welcome", "win-back", "birthday")
STATUSES = (book.SENT, book.DEFERRED, book.CANCELLED, book.EXPIRED)

rows = st.lists(
    st.tuples(
        st.sampled_from(CONTACTS),
        st.sampled_from(CAMPAIGNS),
        st.sampled_from(("one", "two")),
        st.sampled_from(("2026", "2027")),
        st.sampled_from(STATUSES),
        st.integers(-90, 90),
    ),
    max_size=25,
    unique_by=lambda row: row[:4],
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    found=rows,
    asked=st.lists(st.sampled_from(CONTACTS), unique=True),
    campaigns=st.sets(st.sampled_from(CAMPAIGNS)),
)
def test_the_statuses_of_some_campaigns_are_those_of_the_whole_history(
    engine: Engine,
    found: list[tuple[str, str, str, str, str, int]],
    asked: list[str],
    campaigns: set[str],
) -> None:
    with atomic(engine) as connection:
        connection.execute(delete(ledger))
        for contact, campaign, step, occurrence, status, days in found:
            send = book.Send(
                contact, campaign, step, occurrence, DAY + timedelta(days), "t", "email"
            )
            book.settle(connection, [(send, None, status, "why")], domain="x.example", now=NOW)
    with engine.connect() as connection:
        statuses = book.statuses(connection, asked, campaigns)
        whole = book.histories(connection, asked, since=DAY, until=DAY)
    expected = {
        contact: {key: status for key, status in history.status.items() if key[0] in campaigns}
        for contact, history in whole.items()
    }
    assert statuses == {contact: keys for contact, keys in expected.items() if keys}
