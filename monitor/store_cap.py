"""The store's hard size cap: how big the database is, and oldest-first pruning below the cap.

Guarantees (SQLite; the cap is not applied to PostgreSQL, whose size is the server's business):

- :func:`database_bytes` is what the database holds on the card: the pages in use (the file minus
  its free pages) plus the write-ahead log.
- :func:`prune` checkpoints the WAL (``TRUNCATE``) and returns free pages to the file system;
  when the size still exceeds the cap, it deletes this sensor's oldest rows in slices of
  :data:`~monitor.store_sql.CHUNK`, one transaction each, until the size is under
  :data:`TARGET_RATIO` of the cap: per-minute traffic and events first (oldest hour first, both
  tables), then device-destination links and destinations. Alerts are deleted (oldest first)
  only when nothing else is left; devices and the user's settings are never deleted by the
  cap. Freed pages are returned to the file system when the database was created with
  ``auto_vacuum=INCREMENTAL`` (new databases are), otherwise SQLite reuses them, so the file
  stops growing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, func, select

from monitor.store_sql import (
    ALERTS,
    DESTINATIONS,
    EVENTS,
    IMMEDIATE,
    LINKS,
    TRAFFIC,
    delete_slice,
)

log = logging.getLogger(__name__)

#: Pruning stops when the database is under this share of the cap.
TARGET_RATIO = 0.9
#: Each pruning step deletes rows up to this many seconds after the oldest one left.
STEP_S = 3600.0
#: Pruning order: the tables (and their time column) deleted before alerts, by stage.
STAGES: tuple[tuple[tuple[Table, str], ...], ...] = (
    ((TRAFFIC, "minute"), (EVENTS, "ts")),
    ((LINKS, "last_seen"), (DESTINATIONS, "last_seen")),
    ((ALERTS, "ts"),),
)


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine, else None."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return Path(engine.url.database)


def database_bytes(engine: Engine) -> int | None:
    """Bytes the database holds: SQLite pages in use plus the WAL; PostgreSQL's
    ``pg_database_size``; None when it cannot be measured."""
    path = sqlite_path(engine)
    try:
        if path is None:
            with engine.connect() as conn:
                sql = "SELECT pg_database_size(current_database())"
                return int(conn.exec_driver_sql(sql).scalar_one())
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            page, pages, free = (
                cursor.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_size", "page_count", "freelist_count")
            )
            cursor.close()
        finally:
            raw.close()
    except Exception as exc:
        log.debug("database size unknown: %s", exc)
        return None
    return (pages - free) * page + _size(Path(f"{path}-wal"))


def file_bytes(engine: Engine) -> int | None:
    """The SQLite file plus its WAL as the file system sees them; None for other databases."""
    path = sqlite_path(engine)
    return _size(path) + _size(Path(f"{path}-wal")) if path else None


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def prune(engine: Engine, sensor: str, cap: int) -> int:
    """Bring a SQLite database under :data:`TARGET_RATIO` of ``cap`` bytes (see the module
    docstring); return the rows deleted. Does nothing for other databases or ``cap <= 0``."""
    if cap <= 0 or sqlite_path(engine) is None:
        return 0
    checkpoint(engine)
    size = database_bytes(engine)
    if size is None or size <= cap:
        return 0
    deleted = 0
    target = cap * TARGET_RATIO
    for stage in STAGES:
        while (database_bytes(engine) or 0) > target:
            step = _delete_oldest(engine, sensor, stage)
            if not step:
                break
            deleted += step
            checkpoint(engine)
    return deleted


def _delete_oldest(engine: Engine, sensor: str, stage: tuple[tuple[Table, str], ...]) -> int:
    """Delete one slice per table of rows within :data:`STEP_S` of the stage's oldest row."""
    with engine.connect() as conn:
        oldest = [_oldest(conn, table, column, sensor) for table, column in stage]
    known = [ts for ts in oldest if ts is not None]
    if not known:
        return 0
    cutoff = min(known) + STEP_S
    deleted = 0
    for table, column in stage:
        with engine.connect().execution_options(**IMMEDIATE) as conn, conn.begin():
            deleted += delete_slice(conn, table, column, sensor, cutoff)
    return deleted


def _oldest(conn: Connection, table: Table, column: str, sensor: str) -> float | None:
    stmt = select(func.min(table.c[column])).where(table.c.sensor == sensor)
    return conn.execute(stmt).scalar_one()


def checkpoint(engine: Engine) -> None:
    """SQLite: return free pages to the file system, then fold the WAL into the file and empty
    it (outside any transaction: the store's SQLite connections run in autocommit mode), so
    deleted rows leave no old page image behind on disk (the connections also set
    ``secure_delete``: deleted content is overwritten). Nothing for another database."""
    if sqlite_path(engine) is None:
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA incremental_vacuum").fetchall()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
