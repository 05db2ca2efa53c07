"""Alembic's entry point for the runs database. RunStore runs the migrations itself at start-up
(alembic.command.upgrade with its own open connection in config.attributes), so there is no
alembic.ini and no logging set-up here: one transaction, on the connection it is given."""
from alembic import context

from server.engine.records_schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  # SQLite cannot ALTER most things in place: let Alembic copy the table instead.
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
