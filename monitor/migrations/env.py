"""Alembic environment: runs on the connection :mod:`monitor.store_migrate` hands over.

Migrations run online only, inside the caller's transaction, against the models' metadata (for
``alembic revision --autogenerate`` during development, see README.md).
"""

from __future__ import annotations

from alembic import context

from monitor.store_models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
