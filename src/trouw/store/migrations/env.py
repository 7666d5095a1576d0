"""Alembic environment: migrations always run on a connection trouw hands in."""

from alembic import context

from trouw.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
