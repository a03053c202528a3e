"""SQL for the store: the engine, upserts, writing a batch, retention slices and forgetting.

Only SQLite and PostgreSQL are supported for writing: upserts use each dialect's
``INSERT ... ON CONFLICT DO UPDATE``. On SQLite the engine runs in WAL mode with
``synchronous=NORMAL``, a busy timeout and (for a new file) ``auto_vacuum=INCREMENTAL`` so the
size cap can give pages back, and write transactions start with ``BEGIN IMMEDIATE``
(connections opened with :data:`IMMEDIATE`) so a writer takes the lock up front instead of
failing halfway when a reader's snapshot is stale; reads start a plain deferred ``BEGIN``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    String,
    Table,
    cast,
    create_engine,
    delete,
    event,
    func,
    make_url,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store_batch import Batch, merge_destination, merge_device
from monitor.store_models import (
    AlertRow,
    DestinationRow,
    DeviceDestinationRow,
    DeviceRow,
    DeviceSettingRow,
    EventRow,
    MuteRow,
    TrafficMinuteRow,
)

#: Execution option that makes a SQLite transaction start with ``BEGIN IMMEDIATE``.
IMMEDIATE = {"micwatch_immediate": True}
#: Rows per statement for multi-row writes, ``IN`` lists and retention deletes.
CHUNK = 500

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}

DEVICES: Table = DeviceRow.__table__  # type: ignore[assignment]
SETTINGS: Table = DeviceSettingRow.__table__  # type: ignore[assignment]
DESTINATIONS: Table = DestinationRow.__table__  # type: ignore[assignment]
LINKS: Table = DeviceDestinationRow.__table__  # type: ignore[assignment]
TRAFFIC: Table = TrafficMinuteRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
ALERTS: Table = AlertRow.__table__  # type: ignore[assignment]
MUTES: Table = MuteRow.__table__  # type: ignore[assignment]

#: The value columns of a link and a traffic row, in :class:`~monitor.store_batch.Batch` order.
LINK_VALUES = ("first_seen", "last_seen", "bytes_up", "bytes_down", "flows")
TRAFFIC_VALUES = ("bytes_up", "bytes_down", "packets_up", "flows")

#: Retention: each table with the column whose age decides. Device settings are absent on
#: purpose: only forgetting a device deletes them.
RETENTION: tuple[tuple[Table, str], ...] = (
    (TRAFFIC, "minute"),
    (EVENTS, "ts"),
    (ALERTS, "ts"),
    (LINKS, "last_seen"),
    (DESTINATIONS, "last_seen"),
    (DEVICES, "last_seen"),
    (MUTES, "until"),
)


#: Seconds a PostgreSQL connection attempt may take.
CONNECT_TIMEOUT_S = 5


def make_engine(url: str, busy_timeout_s: float) -> Engine:
    """An engine for ``url``; raises ValueError for an unsupported dialect or an in-memory
    SQLite database (the writer thread and readers need to share a file)."""
    parsed = make_url(url)
    dialect = parsed.get_backend_name()
    if dialect not in _INSERTS:
        raise ValueError(f"unsupported database {dialect!r}: micwatch writes SQLite or PostgreSQL")
    if dialect == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
    serializer = functools.partial(json.dumps, default=str, separators=(",", ":"))
    # A server that stopped answering (host down, no reset) must not hold a caller for the
    # system's TCP timeout (minutes): libpq gives up connecting after CONNECT_TIMEOUT_S.
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if dialect == "postgresql" else {}
    engine = create_engine(
        url,
        json_serializer=serializer,
        pool_pre_ping=dialect != "sqlite",
        connect_args=connect_args,
    )
    if dialect == "sqlite":
        _configure_sqlite(engine, busy_timeout_s)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        """Per-connection settings. Changing the file's own modes takes a write lock, so it is
        done only while the file is not yet in WAL mode (a new database): a new connection to
        a database another program holds locked must not wait for it."""
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file only
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA secure_delete = ON")  # "forget device" leaves no bytes behind
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("micwatch_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` rows."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    update: Callable[[Any], dict[str, Any]],
) -> None:
    """Insert ``rows``; on a primary-key conflict apply ``update(excluded)`` instead."""
    if not rows:
        return
    stmt = _INSERTS[conn.dialect.name](table)
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update(stmt.excluded))
    for chunk in chunks(rows):
        conn.execute(stmt, list(chunk))


def greatest(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    """The larger of two SQL values (``max(a, b)`` on SQLite, ``greatest`` on PostgreSQL)."""
    return func.max(a, b) if conn.dialect.name == "sqlite" else func.greatest(a, b)


def least(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    """The smaller of two SQL values."""
    return func.min(a, b) if conn.dialect.name == "sqlite" else func.least(a, b)


def _replace_all(table: Table) -> Callable[[Any], dict[str, Any]]:
    keys = {c.name for c in table.primary_key.columns}
    return lambda excluded: {c.name: excluded[c.name] for c in table.columns if c.name not in keys}


def _stored(
    conn: Connection, table: Table, sensor: str, key: Column[Any], wanted: Iterable[str]
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(sorted(wanted)):
        stmt = select(table).where(table.c.sensor == sensor, key.in_(chunk))
        for row in conn.execute(stmt).mappings():
            found[row[key.name]] = dict(row)
    return found


def write_batch(conn: Connection, sensor: str, batch: Batch) -> None:
    """Write a batch in the caller's transaction: forgets first (so rows folded after a forget
    survive it), then devices and destinations (merged with the stored rows), links and traffic
    (added to the stored counters), events and alerts (new rows; an alert is stored ``muted``
    when a mute for its rule and device covers its time)."""
    for forget in batch.forgets:
        forget.deleted = delete_device(conn, sensor, forget.mac)
    _write_merged(
        conn, sensor, DEVICES, DEVICES.c.mac, batch.devices, batch.device_traffic, merge_device
    )
    _write_merged(
        conn,
        sensor,
        DESTINATIONS,
        DESTINATIONS.c.ip,
        batch.destinations,
        batch.dest_seen,
        merge_destination,
    )
    link_keys = ("device_mac", "dest_ip")
    links = [_row(sensor, link_keys, key, LINK_VALUES, v) for key, v in batch.links.items()]
    upsert(
        conn,
        LINKS,
        links,
        lambda ex: {
            "first_seen": least(conn, LINKS.c.first_seen, ex.first_seen),
            "last_seen": greatest(conn, LINKS.c.last_seen, ex.last_seen),
            **{c: LINKS.c[c] + ex[c] for c in LINK_VALUES[2:]},
        },
    )
    traffic_keys = ("device_mac", "minute", "dest")
    traffic = [_row(sensor, traffic_keys, k, TRAFFIC_VALUES, v) for k, v in batch.traffic.items()]
    upsert(conn, TRAFFIC, traffic, lambda ex: {c: TRAFFIC.c[c] + ex[c] for c in TRAFFIC_VALUES})
    for chunk in chunks(batch.events):
        conn.execute(EVENTS.insert(), [{"sensor": sensor, **row} for row in chunk])
    if batch.alerts:
        mutes = conn.execute(select(MUTES).where(MUTES.c.sensor == sensor)).all()
        rows = [{"sensor": sensor, **row, "muted": _muted(row, mutes)} for row in batch.alerts]
        for chunk in chunks(rows):
            conn.execute(ALERTS.insert(), list(chunk))


def _row(
    sensor: str,
    key_names: Sequence[str],
    key: tuple[Any, ...],
    value_names: Sequence[str],
    values: Sequence[Any],
) -> dict[str, Any]:
    row = {"sensor": sensor, **dict(zip(key_names, key, strict=True))}
    row.update(zip(value_names, values, strict=True))
    return row


def _muted(alert: dict[str, Any], mutes: Sequence[Any]) -> bool:
    return any(
        m.rule == alert["rule"] and m.device_mac == alert["device_mac"] and alert["ts"] <= m.until
        for m in mutes
    )


def _write_merged(
    conn: Connection,
    sensor: str,
    table: Table,
    key: Column[Any],
    snapshots: dict[str, dict[str, Any]],
    spans: dict[str, list[float]],
    merge: Callable[..., dict[str, Any]],
) -> None:
    wanted = set(snapshots) | set(spans)
    if not wanted:
        return
    stored = _stored(conn, table, sensor, key, wanted)
    rows = []
    for name in sorted(wanted):
        row = merge(stored.get(name), snapshots.get(name), spans.get(name))
        row.update(sensor=sensor, **{key.name: name})
        rows.append(row)
    upsert(conn, table, rows, _replace_all(table))


def delete_device(conn: Connection, sensor: str, mac: str) -> int:
    """Delete every row of ``sensor`` about ``mac``: its device and settings rows, its links,
    traffic and mutes, and every event or alert naming it (by column or inside the JSON)."""
    deleted = 0
    for table, column in (
        (DEVICES, "mac"),
        (SETTINGS, "mac"),
        (LINKS, "device_mac"),
        (TRAFFIC, "device_mac"),
        (MUTES, "device_mac"),
    ):
        stmt = delete(table).where(table.c.sensor == sensor, table.c[column] == mac)
        deleted += conn.execute(stmt).rowcount
    for table, texts in ((EVENTS, ("body",)), (ALERTS, ("event", "message", "title"))):
        mentions = [table.c.device_mac == mac, table.c.dest == mac]
        mentions += [cast(table.c[t], String).contains(mac, autoescape=True) for t in texts]
        stmt = delete(table).where(table.c.sensor == sensor, or_(*mentions))
        deleted += conn.execute(stmt).rowcount
    return deleted


def delete_slice(conn: Connection, table: Table, column: str, sensor: str, cutoff: float) -> int:
    """Delete at most :data:`CHUNK` rows of ``sensor`` whose ``column`` is before ``cutoff``;
    return how many were deleted."""
    key = list(table.primary_key.columns)
    old = select(*key).where(table.c.sensor == sensor, table.c[column] < cutoff).limit(CHUNK)
    target = key[0] if len(key) == 1 else tuple_(*key)
    return conn.execute(delete(table).where(target.in_(old))).rowcount
