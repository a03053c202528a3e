"""The database schema of the store: SQLAlchemy 2.0 typed models.

Guarantees:

- Every table carries ``sensor`` (the name of the micwatch instance that wrote the row) as the
  first column of its key or of its indexes, so several sensors can share one database and each
  reads back only its own rows.
- Every timestamp is a float of epoch seconds (UTC), the clock events carry: packet timestamps
  are floats, a replayed capture keeps its own times, comparisons and minute buckets are plain
  arithmetic on SQLite and PostgreSQL alike, and no time-zone conversion can creep in.
- Metadata only: no column can hold payload bytes (no binary columns; JSON columns hold names,
  fingerprints and counters copied from events that never carry payloads).
- Constraint and index names follow :data:`NAMING`, so Alembic migrations can refer to them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Double, Index, Integer, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Bumped with every schema change; stored in ``meta`` under ``schema_version``.
SCHEMA_VERSION = 1

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

_JSON = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base: floats are double precision, lists and dicts are JSON."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        float: Double(),
        str: String(),
        list[str]: _JSON,
        dict[str, Any]: _JSON,
    }


class DeviceRow(Base):
    """What the capture learnt about a device (the guess); never holds the user's word."""

    __tablename__ = "devices"

    sensor: Mapped[str] = mapped_column(primary_key=True)
    mac: Mapped[str] = mapped_column(primary_key=True)
    ips: Mapped[list[str]] = mapped_column(default=list)
    vendor: Mapped[str | None]
    randomized: Mapped[bool] = mapped_column(default=False)
    hostname: Mapped[str | None]
    dhcp_fingerprint: Mapped[str | None]
    dhcp_vendor_class: Mapped[str | None]
    mdns_names: Mapped[list[str]] = mapped_column(default=list)
    services: Mapped[list[str]] = mapped_column(default=list)
    mdns_txt: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ssdp_servers: Mapped[list[str]] = mapped_column(default=list)
    user_agents: Mapped[list[str]] = mapped_column(default=list)
    domains: Mapped[list[str]] = mapped_column(default=list)
    tls_fingerprints: Mapped[list[str]] = mapped_column(default=list)
    category: Mapped[str] = mapped_column(default="unknown")
    confidence: Mapped[float] = mapped_column(default=0.0)
    name: Mapped[str | None]
    evidence: Mapped[list[str]] = mapped_column(default=list)
    first_seen: Mapped[float]
    last_seen: Mapped[float]
    bytes_up: Mapped[int] = mapped_column(default=0)
    bytes_down: Mapped[int] = mapped_column(default=0)

    __table_args__ = (Index(None, "sensor", "last_seen"),)


class DeviceSettingRow(Base):
    """The user's word about a device. Only user calls write it; retention never deletes it;
    :meth:`monitor.store.Store.forget_device` does."""

    __tablename__ = "device_settings"

    sensor: Mapped[str] = mapped_column(primary_key=True)
    mac: Mapped[str] = mapped_column(primary_key=True)
    label: Mapped[str | None]
    user_category: Mapped[str | None]


class DestinationRow(Base):
    """A remote endpoint with where it is and who runs it."""

    __tablename__ = "destinations"

    sensor: Mapped[str] = mapped_column(primary_key=True)
    ip: Mapped[str] = mapped_column(primary_key=True)
    names: Mapped[list[str]] = mapped_column(default=list)
    country: Mapped[str | None]
    org: Mapped[str | None]
    asn: Mapped[int | None]
    asn_org: Mapped[str | None]
    jurisdiction: Mapped[str | None]
    local: Mapped[bool] = mapped_column(default=False)
    foreign: Mapped[bool] = mapped_column(default=False)
    first_seen: Mapped[float]
    last_seen: Mapped[float]

    __table_args__ = (Index(None, "sensor", "last_seen"),)


class DeviceDestinationRow(Base):
    """Who talks to whom: totals per device and destination address."""

    __tablename__ = "device_destinations"

    sensor: Mapped[str] = mapped_column(primary_key=True)
    device_mac: Mapped[str] = mapped_column(primary_key=True)
    dest_ip: Mapped[str] = mapped_column(primary_key=True)
    first_seen: Mapped[float]
    last_seen: Mapped[float]
    bytes_up: Mapped[int] = mapped_column(default=0)
    bytes_down: Mapped[int] = mapped_column(default=0)
    flows: Mapped[int] = mapped_column(default=0)

    __table_args__ = (Index(None, "sensor", "last_seen"),)


class TrafficMinuteRow(Base):
    """One minute of one device's traffic with one destination: what the charts plot.

    ``dest`` is the destination's organisation when enrichment knew it, else its address.
    ``packets_up`` counts upstream packets (the per-second bins carry no downstream packet
    counts); ``flows`` counts each flow once, in the minute it ended, so sums over minutes are
    exact.
    """

    __tablename__ = "traffic_minutes"

    sensor: Mapped[str] = mapped_column(primary_key=True)
    device_mac: Mapped[str] = mapped_column(primary_key=True)
    minute: Mapped[float] = mapped_column(primary_key=True)
    dest: Mapped[str] = mapped_column(primary_key=True)
    bytes_up: Mapped[int] = mapped_column(default=0)
    bytes_down: Mapped[int] = mapped_column(default=0)
    packets_up: Mapped[int] = mapped_column(default=0)
    flows: Mapped[int] = mapped_column(default=0)

    __table_args__ = (Index(None, "sensor", "minute"),)


class EventRow(Base):
    """A notable event (``upload_burst``, ``capture_stats``) with its JSON record."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sensor: Mapped[str]
    ts: Mapped[float]
    kind: Mapped[str]
    device_mac: Mapped[str | None]
    dest: Mapped[str | None]
    body: Mapped[dict[str, Any]]

    __table_args__ = (
        Index(None, "sensor", "ts"),
        Index(None, "sensor", "device_mac", "ts"),
    )


class AlertRow(Base):
    """An alert a rule raised; ``acknowledged`` and ``muted`` are the user's word about it."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sensor: Mapped[str]
    rule: Mapped[str]
    level: Mapped[str]
    ts: Mapped[float]
    device_mac: Mapped[str | None]
    dest: Mapped[str | None]
    title: Mapped[str] = mapped_column(default="")
    message: Mapped[str]
    event: Mapped[dict[str, Any]]
    suppression_key: Mapped[str]
    suppressed_until: Mapped[float]
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index(None, "sensor", "ts"),
        Index(None, "sensor", "device_mac", "ts"),
    )


class MuteRow(Base):
    """The user muted a rule for a device until a time; the daemon reads these."""

    __tablename__ = "mutes"

    sensor: Mapped[str] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(primary_key=True)
    device_mac: Mapped[str] = mapped_column(primary_key=True)
    until: Mapped[float]


class MetaRow(Base):
    """Key/value facts about the store (``schema_version``)."""

    __tablename__ = "meta"

    sensor: Mapped[str] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]
