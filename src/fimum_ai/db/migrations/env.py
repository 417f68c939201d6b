"""Alembic environment: always driven from code (fimum_ai.db.migrate) with an open connection."""

from __future__ import annotations

from alembic import context

from fimum_ai.chat import conversations  # noqa: F401  (registers the chat tables)
from fimum_ai.db import models  # noqa: F401  (registers the tables on Base.metadata)
from fimum_ai.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `fimum db upgrade` (it passes the configured connection)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
