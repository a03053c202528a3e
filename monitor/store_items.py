"""Queue items: plain copies of what the store keeps from an event, built in the caller's thread.

Nothing in an item refers back to a live Device, Destination or Flow, so the capture loop may
keep mutating those while the writer works. Building an item costs time bounded by the size of
the event (a device's name sets, a flow's per-second bins), never by the database. Items carry
metadata only: no event the store listens to holds payload bytes, and nothing here copies any.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.model import DEVICE_SET_FIELDS

if TYPE_CHECKING:
    from monitor.events import CaptureStats, UploadBurst
    from monitor.model import Alert, Destination, Device, Flow

#: A flow's bytes older than its per-second bins are spread over at most this many minutes.
MAX_SPREAD_MINUTES = 1440
#: The device fields that are sets of names, stored as JSON lists.
DEVICE_SETS = DEVICE_SET_FIELDS
DEVICE_SCALARS = ("vendor", "hostname", "dhcp_fingerprint", "dhcp_vendor_class", "name")
DEST_SCALARS = ("country", "org", "asn", "asn_org", "jurisdiction")


def plain(value: Any) -> Any:
    """A deep copy that every supported database accepts: dicts, lists, str, int, float, bool
    and None; sets become sorted lists; text loses NUL characters and unencodable surrogates
    (PostgreSQL refuses both); NaN and infinities become None; anything else becomes its
    ``str``."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        if not value.isascii():
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


@dataclass(slots=True)
class DeviceItem:
    """A copy of a device's identifying facts (never its user label or category)."""

    mac: str
    row: dict[str, Any]


@dataclass(slots=True)
class DestinationItem:
    """A device contacted a destination; ``row`` is the destination's copy."""

    mac: str
    ts: float
    row: dict[str, Any]


@dataclass(slots=True)
class FlowItem:
    """A finished flow reduced to per-minute sums: ``minutes`` holds
    ``(minute, bytes_up, bytes_down, packets_up)``; the flow is counted in ``end_minute``."""

    mac: str
    remote_ip: str
    first_ts: float
    last_ts: float
    bytes_up: int
    bytes_down: int
    end_minute: float
    minutes: list[tuple[float, int, int, int]]


@dataclass(slots=True)
class EventItem:
    """A row for the events table."""

    mac: str | None
    row: dict[str, Any]


@dataclass(slots=True)
class AlertItem:
    """A row for the alerts table; never dropped."""

    mac: str | None
    row: dict[str, Any]


@dataclass(slots=True)
class Forget:
    """Command: delete every row about ``mac``; ``done`` resolves to the rows deleted once
    committed."""

    mac: str
    done: Future[int] = field(default_factory=Future)
    deleted: int = 0


@dataclass(slots=True)
class Expire:
    """Command: run retention to completion now; ``done`` resolves to the rows deleted."""

    now: float | None
    done: Future[int] = field(default_factory=Future)


Item = DeviceItem | DestinationItem | FlowItem | EventItem | AlertItem
Command = Forget | Expire


def device_item(device: Device) -> DeviceItem:
    """Copy a device's facts into an item."""
    row: dict[str, Any] = {name: sorted(getattr(device, name)) for name in DEVICE_SETS}
    row.update(
        mac=device.mac,
        vendor=device.vendor,
        randomized=device.randomized,
        hostname=device.hostname,
        dhcp_fingerprint=device.dhcp_fingerprint,
        dhcp_vendor_class=device.dhcp_vendor_class,
        mdns_txt=dict(device.mdns_txt),
        category=device.category,
        confidence=device.confidence,
        name=device.name,
        evidence=list(device.evidence),
        first_seen=device.first_seen,
        last_seen=device.last_seen,
    )
    return DeviceItem(device.mac, plain(row))


def destination_item(ts: float, device: Device, dest: Destination) -> DestinationItem:
    """Copy a contacted destination into an item."""
    row = {name: getattr(dest, name) for name in DEST_SCALARS}
    row.update(ip=dest.ip, names=sorted(dest.names), local=dest.local, foreign=dest.foreign)
    return DestinationItem(device.mac, ts, plain(row))


def _minute(ts: float) -> float:
    return float(math.floor(ts / 60.0) * 60)


def flow_item(flow: Flow) -> FlowItem | None:
    """Reduce a finished flow to per-minute sums, or None when it has no home device.

    Per-second bins go to their minutes. Bytes and upstream packets older than the bins (a flow
    longer than its bin ring) are spread evenly over the minutes from the flow's start to the
    minute before its oldest bin (at most :data:`MAX_SPREAD_MINUTES`); without bins, the totals
    go to the flow's last minute. Sums over the minutes equal the flow's totals.
    """
    mac = flow.device_mac or (f"ip:{flow.device_ip}" if flow.device_ip else None)
    if mac is None:
        return None
    packets_up = flow.orig_pkts if flow.device_is_orig else flow.resp_pkts
    sums: dict[float, list[int]] = {}
    current, acc = None, [0, 0, 0]
    for second, up, down, pkts in flow.seconds():  # oldest first: minutes change rarely
        minute = second - second % 60
        if minute != current:
            current, acc = minute, sums.setdefault(float(minute), [0, 0, 0])
        acc[0] += up
        acc[1] += down
        acc[2] += pkts
    rest = [
        max(0, flow.bytes_up - sum(a[0] for a in sums.values())),
        max(0, flow.bytes_down - sum(a[1] for a in sums.values())),
        max(0, packets_up - sum(a[2] for a in sums.values())),
    ]
    end_minute = _minute(flow.last_ts)
    if any(rest):
        if sums:
            oldest = min(sums)
            start = max(_minute(flow.first_ts), oldest - 60.0 * MAX_SPREAD_MINUTES)
            span = [start + 60.0 * i for i in range(int((oldest - start) // 60))] or [oldest]
        else:
            span = [end_minute]
        for i, minute in enumerate(span):
            acc = sums.setdefault(minute, [0, 0, 0])
            for k in range(3):
                share = rest[k] // len(span)
                acc[k] += share if i < len(span) - 1 else rest[k] - share * (len(span) - 1)
    return FlowItem(
        mac=mac,
        remote_ip=flow.remote_ip,
        first_ts=flow.first_ts,
        last_ts=flow.last_ts,
        bytes_up=flow.bytes_up,
        bytes_down=flow.bytes_down,
        end_minute=end_minute,
        minutes=sorted((m, a[0], a[1], a[2]) for m, a in sums.items()),
    )


def burst_item(event: UploadBurst) -> EventItem:
    """An upload burst as an ``upload_burst`` event row (the device by MAC only)."""
    dest = event.destination
    body = {
        "destination": dest.to_record(),
        "ts_start": event.ts_start,
        "ts_end": event.ts_end,
        "bytes_up": event.bytes_up,
        "bytes_down": event.bytes_down,
        "packets_up": event.packets_up,
        "duration_s": event.duration_s,
        "mean_kbps": event.mean_kbps,
        "peak_kbps": event.peak_kbps,
        "shape": event.shape,
        "audio_seconds": event.audio_seconds,
        "dest_ips": list(event.dest_ips),
        "services": list(event.services),
        "transports": list(event.transports),
    }
    row = {
        "ts": event.ts_start,
        "kind": "upload_burst",
        "device_mac": event.device.mac,
        "dest": dest.org or dest.ip,
        "body": body,
    }
    return EventItem(event.device.mac, plain(row))


def stats_item(event: CaptureStats) -> EventItem:
    """Capture counters as a ``capture_stats`` event row."""
    row = {
        "ts": event.ts,
        "kind": "capture_stats",
        "device_mac": None,
        "dest": None,
        "body": event.stats,
    }
    return EventItem(None, plain(row))


def health_item(ts: float, snapshot: dict[str, Any]) -> EventItem:
    """A health snapshot (see :mod:`monitor.health`) as a ``health`` event row."""
    row = {"ts": ts, "kind": "health", "device_mac": None, "dest": None, "body": snapshot}
    return EventItem(None, plain(row))


def alert_item(alert: Alert) -> AlertItem:
    """An alert as an alerts row."""
    row = {
        "rule": alert.rule,
        "level": alert.level,
        "ts": alert.ts,
        "device_mac": alert.device_mac,
        "dest": alert.dest,
        "title": alert.title,
        "message": alert.message,
        "event": alert.event,
        "suppression_key": alert.suppression_key,
        "suppressed_until": alert.suppressed_until,
    }
    return AlertItem(alert.device_mac, plain(row))
