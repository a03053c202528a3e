"""Alembic migrations of the store's schema (see :mod:`monitor.store_migrate`)."""
