"""Schema migrations with Alembic, run when a store opens (SQLite and PostgreSQL alike).

Guarantees of :func:`migrate`, all in one transaction that holds the database's lock
(``BEGIN IMMEDIATE`` on SQLite, an advisory transaction lock on PostgreSQL), so sensors opening
one new database at once do not both create it:

- a new database gets the models' tables (``create_all``) and is stamped at the newest revision;
- a database created before micwatch used Alembic (tables, no ``alembic_version``) is stamped
  at :data:`INITIAL` (the schema those versions wrote) and upgraded;
- a database at an older revision is upgraded to the newest;
- a database at a revision this micwatch does not know (written by a newer one) is refused
  with a RuntimeError saying to upgrade micwatch; nothing is changed.

Revisions live in ``monitor/migrations/versions``; the test suite checks that upgrading an
empty database yields exactly the models' schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from monitor.store_models import Base
from monitor.store_sql import IMMEDIATE

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The revision matching the schema micwatch wrote before it used Alembic.
INITIAL = "0001"
#: PostgreSQL advisory lock key held while migrating ("mic" in ASCII).
LOCK_KEY = 0x6D6963


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration that runs on ``connection`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision."""
    script = ScriptDirectory(str(MIGRATIONS))
    return script.get_current_head()  # type: ignore[return-value]


def migrate(engine: Engine) -> str:
    """Bring the database to the newest revision (see the module docstring); return it."""
    with engine.connect().execution_options(**IMMEDIATE) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        config = alembic_config(conn)
        script = ScriptDirectory.from_config(config)
        newest = script.get_current_head()
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None:
            if "devices" in inspect(conn).get_table_names():
                command.stamp(config, INITIAL)
                command.upgrade(config, "head")
            else:
                Base.metadata.create_all(conn)
                command.stamp(config, "head")
        elif current != newest:
            if current not in {rev.revision for rev in script.walk_revisions()}:
                raise RuntimeError(
                    f"the database is at schema revision {current}, newer than this micwatch "
                    f"knows ({newest}): upgrade micwatch"
                )
            command.upgrade(config, "head")
    return newest  # type: ignore[return-value]
