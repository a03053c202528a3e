"""Read-only aggregate queries over the store's tables, for the dashboard and the report.

Each function takes a :class:`~monitor.store_reader.StoreReader`, reads only that reader's
sensor's rows (except :func:`sensors`, which lists the sensors), never writes, and returns
plain data. What a chart plots is aggregated in SQL (sums per country, per minute) so a page
costs a few indexed queries whatever the history.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import Integer, and_, cast, func, select

from monitor.store_reader import StoreReader
from monitor.store_sql import ALERTS, DESTINATIONS, DEVICES, EVENTS, LINKS, TRAFFIC


def _rows(reader: StoreReader, stmt: Any) -> list[dict[str, Any]]:
    with reader.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


#: Carrier-grade NAT space: traffic there leaves the home (see :mod:`monitor.enrich`).
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def stays_home(dest: dict[str, Any]) -> bool:
    """True when a destination row is inside the home: flagged ``local``, or a private,
    link-local, loopback, multicast, broadcast or reserved address (rows written before
    enrichment ran may lack the flag)."""
    if dest.get("local"):
        return True
    try:
        address = ipaddress.ip_address(dest.get("ip") or "")
    except ValueError:
        return False
    return (
        address.is_private
        or address.is_multicast
        or address.is_link_local
        or address.is_loopback
        or address.is_reserved
        or address.is_unspecified
    ) and address not in _SHARED


def countries(reader: StoreReader, since: float) -> list[dict[str, Any]]:
    """Where the home's data went: per destination country (None: unknown), the bytes sent
    and received over links active since ``since``, the devices involved and whether the
    country is outside the home set; biggest upload first. Destinations inside the home
    (:func:`stays_home`) are left out. Summed per address in SQL, per country here."""
    on = and_(DESTINATIONS.c.sensor == LINKS.c.sensor, DESTINATIONS.c.ip == LINKS.c.dest_ip)
    stmt = (
        select(
            DESTINATIONS.c.ip,
            DESTINATIONS.c.local,
            DESTINATIONS.c.country,
            DESTINATIONS.c.foreign,
            func.sum(LINKS.c.bytes_up).label("bytes_up"),
            func.sum(LINKS.c.bytes_down).label("bytes_down"),
        )
        .select_from(LINKS.join(DESTINATIONS, on))
        .where(LINKS.c.sensor == reader.sensor, LINKS.c.last_seen >= since)
        .group_by(DESTINATIONS.c.ip)
    )
    links = select(LINKS.c.dest_ip, LINKS.c.device_mac).where(
        LINKS.c.sensor == reader.sensor, LINKS.c.last_seen >= since
    )
    totals: dict[str | None, dict[str, Any]] = {}
    country_of: dict[str, str | None] = {}
    for row in _rows(reader, stmt):
        if stays_home(row):
            continue
        country_of[row["ip"]] = row["country"]
        entry = totals.setdefault(
            row["country"],
            {"country": row["country"], "bytes_up": 0, "bytes_down": 0, "devices": set(),
             "foreign": False},
        )  # fmt: skip
        entry["bytes_up"] += row["bytes_up"] or 0
        entry["bytes_down"] += row["bytes_down"] or 0
        entry["foreign"] = entry["foreign"] or bool(row["foreign"])
    for link in _rows(reader, links):
        if link["dest_ip"] in country_of:
            totals[country_of[link["dest_ip"]]]["devices"].add(link["device_mac"])
    result = [{**e, "devices": len(e["devices"])} for e in totals.values()]
    return sorted(result, key=lambda e: (-e["bytes_up"], -e["bytes_down"]))


def upload_series(reader: StoreReader, mac: str, start: float, end: float) -> list[dict[str, Any]]:
    """One device's traffic per minute in ``[start, end)``: ``minute``, ``bytes_up``,
    ``bytes_down`` summed over destinations, oldest first (minutes without traffic absent)."""
    stmt = (
        select(
            TRAFFIC.c.minute,
            func.sum(TRAFFIC.c.bytes_up).label("bytes_up"),
            func.sum(TRAFFIC.c.bytes_down).label("bytes_down"),
        )
        .where(
            TRAFFIC.c.sensor == reader.sensor,
            TRAFFIC.c.device_mac == mac,
            TRAFFIC.c.minute >= start,
            TRAFFIC.c.minute < end,
        )
        .group_by(TRAFFIC.c.minute)
        .order_by(TRAFFIC.c.minute)
    )
    return _rows(reader, stmt)


def alert_counts(reader: StoreReader) -> dict[str, int]:
    """Alerts not yet acknowledged (nor muted), per level."""
    stmt = (
        select(ALERTS.c.level, func.count().label("n"))
        .where(
            ALERTS.c.sensor == reader.sensor,
            ALERTS.c.acknowledged.is_(False),
            ALERTS.c.muted.is_(False),
        )
        .group_by(ALERTS.c.level)
    )
    return {r["level"]: r["n"] for r in _rows(reader, stmt)}


def alert(reader: StoreReader, alert_id: int) -> dict[str, Any] | None:
    """One alert by id (as :meth:`StoreReader.alerts` returns it), or None."""
    stmt = select(ALERTS).where(ALERTS.c.sensor == reader.sensor, ALERTS.c.id == alert_id)
    rows = _rows(reader, stmt)
    return rows[0] if rows else None


def alert_rules(reader: StoreReader) -> list[str]:
    """The ids of the rules that raised a stored alert, sorted (the Alerts page's filter)."""
    stmt = (
        select(ALERTS.c.rule)
        .where(ALERTS.c.sensor == reader.sensor)
        .group_by(ALERTS.c.rule)
        .order_by(ALERTS.c.rule)
    )
    return [r["rule"] for r in _rows(reader, stmt)]


def sensors(reader: StoreReader) -> list[str]:
    """The names of the sensors whose devices are in the database, sorted; the reader's own
    sensor alone when there are none. (Unlike the other queries, this one reads every
    sensor's rows: it is what the dashboard's sensor selector offers.)"""
    stmt = select(DEVICES.c.sensor).distinct().order_by(DEVICES.c.sensor)
    with reader.engine.connect() as conn:
        names = [name for name in conn.execute(stmt).scalars() if name]
    return names or [reader.sensor]


def change_stamp(reader: StoreReader) -> str:
    """A short text that changes whenever a device, alert or event is written or changed by
    the user: the live pages poll it and refresh when it moves."""
    with reader.engine.connect() as conn:
        parts = [
            conn.execute(
                select(func.count(), func.max(DEVICES.c.last_seen)).where(
                    DEVICES.c.sensor == reader.sensor
                )
            ).one(),
            conn.execute(
                select(
                    func.count(),
                    func.max(ALERTS.c.id),
                    func.sum(cast(ALERTS.c.acknowledged, Integer)),
                ).where(ALERTS.c.sensor == reader.sensor)
            ).one(),
            conn.execute(
                select(func.max(EVENTS.c.id)).where(EVENTS.c.sensor == reader.sensor)
            ).one(),
        ]
    return "/".join(str(value) for part in parts for value in part)
