"""Reading the store, and the user's writes: what the CLI and the dashboard use.

:class:`StoreReader` opens the database (creating or migrating the schema with
:func:`~monitor.store_migrate.migrate`, refusing one written by a newer micwatch) and works on
its own pooled connections, safe while a writer thread in this or another process writes.
Every read returns only the rows of its ``sensor``. The user's writes (labels, categories,
acknowledgements, mutes, forgetting a device) are committed when the call returns; the capture
never overwrites them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Table, and_, select, update

from monitor.store_cap import checkpoint
from monitor.store_migrate import migrate
from monitor.store_models import SCHEMA_VERSION, MetaRow
from monitor.store_sql import (
    ALERTS,
    DESTINATIONS,
    DEVICES,
    EVENTS,
    IMMEDIATE,
    LINKS,
    MUTES,
    SETTINGS,
    TRAFFIC,
    delete_device,
    make_engine,
    upsert,
)

META: Table = MetaRow.__table__  # type: ignore[assignment]
#: Rows returned by a read of a log-like table (alerts, events) unless a limit is given.
DEFAULT_LIMIT = 1000


class StoreReader:
    """The store without a writer: reads and the user's writes for one ``sensor``.

    ``record_version`` (writers only) stores this schema version under the sensor's name.
    """

    def __init__(
        self, url: str, *, sensor: str, busy_timeout_s: float = 5.0, record_version: bool = False
    ) -> None:
        if not sensor:
            raise ValueError("a store needs a sensor name")
        self.sensor = sensor
        self.engine = make_engine(url, busy_timeout_s)
        try:
            self._open_schema(record_version)
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def location(self) -> str:
        """Where the database is, for messages: the SQLite file, or the URL without password."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            return url.database or ":memory:"
        return url.render_as_string(hide_password=True)

    def _open_schema(self, record_version: bool) -> None:
        migrate(self.engine)
        with self._write() as conn:
            stored = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
            newest = max((int(v) for v in stored.scalars()), default=0)
            if newest > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {newest}; this micwatch knows "
                    f"{SCHEMA_VERSION}: upgrade micwatch"
                )
            if record_version:
                row = {"sensor": self.sensor, "key": "schema_version", "value": str(SCHEMA_VERSION)}
                upsert(conn, META, [row], lambda ex: {"value": ex.value})

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed when
        the block ends without an exception."""
        with self.engine.connect().execution_options(**IMMEDIATE) as conn, conn.begin():
            yield conn

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 30.0) -> bool:
        """Release the connections (``timeout`` serves writers); True. Idempotent."""
        self.engine.dispose()
        return True

    def for_sensor(self, sensor: str) -> StoreReader:
        """A reader of ``sensor``'s rows sharing this reader's engine (no new connection pool,
        no schema check): this reader itself when ``sensor`` is its own. Closing the view
        leaves the engine open; closing this reader closes it for every view."""
        if sensor == self.sensor:
            return self
        return _SensorView(self, sensor)

    # --- reads (this sensor's rows only) ---

    def devices(self) -> list[dict[str, Any]]:
        """Every device, most recently seen first, merged with the user's settings: ``label``
        and ``user_category`` are the user's word, ``category`` is the user's category when
        set, else the guess (kept in ``category_guess``)."""
        return [_merge_settings(r) for r in self._devices(None)]

    def device(self, mac: str) -> dict[str, Any] | None:
        """One device as in :meth:`devices`, or None."""
        rows = self._devices(mac)
        return _merge_settings(rows[0]) if rows else None

    def _devices(self, mac: str | None) -> list[dict[str, Any]]:
        on = and_(SETTINGS.c.sensor == DEVICES.c.sensor, SETTINGS.c.mac == DEVICES.c.mac)
        stmt = (
            select(DEVICES, SETTINGS.c.label, SETTINGS.c.user_category)
            .select_from(DEVICES.outerjoin(SETTINGS, on))
            .where(DEVICES.c.sensor == self.sensor)
            .order_by(DEVICES.c.last_seen.desc(), DEVICES.c.mac)
        )
        if mac is not None:
            stmt = stmt.where(DEVICES.c.mac == mac)
        return self._rows(stmt)

    def known_macs(self) -> list[str]:
        """The MACs of every device stored for this sensor (a forgotten device is not known)."""
        stmt = select(DEVICES.c.mac).where(DEVICES.c.sensor == self.sensor).order_by(DEVICES.c.mac)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def destinations(self, device_mac: str | None = None) -> list[dict[str, Any]]:
        """Destinations, most recently seen first. With ``device_mac``: the ones that device
        talked to, each with the link's ``first_seen``/``last_seen``, ``bytes_up``,
        ``bytes_down`` and ``flows`` (the destination's own times as ``dest_first_seen``/
        ``dest_last_seen``)."""
        if device_mac is None:
            stmt = (
                select(DESTINATIONS)
                .where(DESTINATIONS.c.sensor == self.sensor)
                .order_by(DESTINATIONS.c.last_seen.desc(), DESTINATIONS.c.ip)
            )
            return self._rows(stmt)
        on = and_(DESTINATIONS.c.sensor == LINKS.c.sensor, DESTINATIONS.c.ip == LINKS.c.dest_ip)
        dest_columns = [
            c.label(f"dest_{c.name}") if c.name in ("first_seen", "last_seen") else c
            for c in DESTINATIONS.c
            if c.name not in ("sensor", "ip")
        ]
        stmt = (
            select(LINKS, *dest_columns)
            .select_from(LINKS.outerjoin(DESTINATIONS, on))
            .where(LINKS.c.sensor == self.sensor, LINKS.c.device_mac == device_mac)
            .order_by(LINKS.c.last_seen.desc(), LINKS.c.dest_ip)
        )
        return [{"ip": r["dest_ip"], **r} for r in self._rows(stmt)]

    def alerts(
        self,
        since: float | None = None,
        level: str | None = None,
        device: str | None = None,
        rule: str | None = None,
        include_acknowledged: bool = True,
        limit: int = DEFAULT_LIMIT,
    ) -> list[dict[str, Any]]:
        """Alerts newest first (at most ``limit``), filtered by time (``ts >= since``), level,
        device MAC and rule; each with its ``id``, ``acknowledged`` and ``muted`` flags."""
        stmt = select(ALERTS).where(ALERTS.c.sensor == self.sensor)
        for column, value in (("level", level), ("device_mac", device), ("rule", rule)):
            if value is not None:
                stmt = stmt.where(ALERTS.c[column] == value)
        if since is not None:
            stmt = stmt.where(ALERTS.c.ts >= since)
        if not include_acknowledged:
            stmt = stmt.where(ALERTS.c.acknowledged.is_(False))
        return self._rows(stmt.order_by(ALERTS.c.ts.desc(), ALERTS.c.id.desc()).limit(limit))

    def events(
        self,
        kind: str | None = None,
        since: float | None = None,
        device: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[dict[str, Any]]:
        """Stored events (``upload_burst``, ``capture_stats``) newest first, each with its JSON
        ``body``."""
        stmt = select(EVENTS).where(EVENTS.c.sensor == self.sensor)
        for column, value in (("kind", kind), ("device_mac", device)):
            if value is not None:
                stmt = stmt.where(EVENTS.c[column] == value)
        if since is not None:
            stmt = stmt.where(EVENTS.c.ts >= since)
        return self._rows(stmt.order_by(EVENTS.c.ts.desc(), EVENTS.c.id.desc()).limit(limit))

    def bursts(
        self, since: float | None = None, device: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[dict[str, Any]]:
        """Upload bursts newest first: the burst record (``ts_start``, ``bytes_up``, ``shape``,
        ``destination``...) with ``id``, ``device_mac`` and ``dest``."""
        rows = self.events("upload_burst", since, device, limit)
        return [{"id": r["id"], "device_mac": r["device_mac"], "dest": r["dest"], **r["body"]}
                for r in rows]  # fmt: skip

    def traffic(self, device_mac: str | None, since: float | None = None) -> list[dict[str, Any]]:
        """Per-minute traffic rows (``minute``, ``device_mac``, ``dest``, ``bytes_up``,
        ``bytes_down``, ``packets_up``, ``flows``) oldest first, for one device or all."""
        stmt = select(TRAFFIC).where(TRAFFIC.c.sensor == self.sensor)
        if device_mac is not None:
            stmt = stmt.where(TRAFFIC.c.device_mac == device_mac)
        if since is not None:
            stmt = stmt.where(TRAFFIC.c.minute >= since)
        return self._rows(stmt.order_by(TRAFFIC.c.minute, TRAFFIC.c.device_mac, TRAFFIC.c.dest))

    def mutes(self, now: float) -> list[dict[str, Any]]:
        """Mutes still in force at ``now``: ``rule``, ``device_mac``, ``until``."""
        stmt = select(MUTES).where(MUTES.c.sensor == self.sensor, MUTES.c.until > now)
        return self._rows(stmt.order_by(MUTES.c.rule, MUTES.c.device_mac))

    def _rows(self, stmt: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    # --- the user's writes (committed when the call returns) ---

    def set_label(self, mac: str, label: str | None) -> None:
        """Set (None: clear) the user's name for a device; capture updates never change it."""
        self._set_setting(mac, "label", label)

    def set_category(self, mac: str, category: str | None) -> None:
        """Set (None: clear) the user's category for a device; it overrides the guess."""
        self._set_setting(mac, "user_category", category)

    def _set_setting(self, mac: str, column: str, value: str | None) -> None:
        row = {"sensor": self.sensor, "mac": mac, "label": None, "user_category": None}
        row[column] = value
        with self._write() as conn:
            upsert(conn, SETTINGS, [row], lambda ex: {column: ex[column]})

    def acknowledge_alert(self, alert_id: int) -> bool:
        """Mark an alert acknowledged; False when there is no such alert."""
        stmt = (
            update(ALERTS)
            .where(ALERTS.c.sensor == self.sensor, ALERTS.c.id == alert_id)
            .values(acknowledged=True)
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def mute(self, rule: str, mac: str, until: float) -> int:
        """Mute ``rule`` for device ``mac`` until ``until``: stored alerts of that rule and
        device up to then are marked muted (their count is returned), alerts written later with
        ``ts <= until`` are stored muted, and :meth:`mutes` lists it for the daemon."""
        row = {"sensor": self.sensor, "rule": rule, "device_mac": mac, "until": until}
        stmt = (
            update(ALERTS)
            .where(
                ALERTS.c.sensor == self.sensor,
                ALERTS.c.rule == rule,
                ALERTS.c.device_mac == mac,
                ALERTS.c.ts <= until,
            )
            .values(muted=True)
        )
        with self._write() as conn:
            upsert(conn, MUTES, [row], lambda ex: {"until": ex.until})
            return conn.execute(stmt).rowcount

    def forget_device(self, mac: str, timeout: float | None = 60.0) -> int:
        """Delete every row about the device: its device row, the user's settings, who it
        talked to, its traffic, its mutes, and every event and alert naming it; return how many
        rows were deleted. Nothing is kept, not even a tombstone (a tombstone would itself
        record the MAC). A daemon holding the device in memory records it again, afresh, if it
        keeps talking. With SQLite the write-ahead log is emptied afterwards, so no old copy of
        the rows stays in the files. (``timeout`` serves
        :meth:`monitor.store.Store.forget_device`.)"""
        with self._write() as conn:
            deleted = delete_device(conn, self.sensor, mac)
        checkpoint(self.engine)
        return deleted


class _SensorView(StoreReader):
    """:meth:`StoreReader.for_sensor`: another sensor's reads and user writes over the same
    engine, without a writer."""

    def __init__(self, owner: StoreReader, sensor: str) -> None:  # no super(): shares the engine
        if not sensor:
            raise ValueError("a store needs a sensor name")
        self.sensor = sensor
        self.engine = owner.engine

    def close(self, timeout: float = 30.0) -> bool:
        """Nothing to release: the engine belongs to the reader the view came from."""
        return True


def _merge_settings(row: dict[str, Any]) -> dict[str, Any]:
    row["category_guess"] = row["category"]
    row["category"] = row["user_category"] or row["category"]
    return row
