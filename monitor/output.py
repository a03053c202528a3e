"""What ``micwatch analyze`` and ``micwatch capture`` print: a readable report, JSON or JSON lines.

:class:`RunCollector` is a handler that gathers, per device, the destinations it talked to with
bytes and flows, plus bursts and alerts. :class:`JsonLinesPrinter` streams records as they happen
(flows as they end, bursts and alerts as they fire) and writes devices, destinations and the
summary at the end. Guarantees: JSON-lines output is one JSON object per line with a ``kind``
field, and nothing else goes to standard output (progress and logs go to standard error); the
``summary`` record is always the last line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from monitor.events import (
    AlertRaised,
    DestinationContacted,
    DeviceSeen,
    FlowEnd,
    UploadBurst,
)
from monitor.model import Destination, Device


@dataclass
class Contact:
    """A device's traffic with one remote address over the run."""

    destination: Destination
    bytes_up: int = 0
    bytes_down: int = 0
    flows: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0


@dataclass
class RunCollector:
    """Gathers what a run found, for the report printed at its end."""

    device_lookup: Callable[[str, float], Destination]
    devices: dict[str, Device] = field(default_factory=dict)
    contacts: dict[str, dict[str, Contact]] = field(default_factory=dict)
    bursts: list[UploadBurst] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)

    def on_device_seen(self, event: DeviceSeen) -> None:
        self.devices[event.device.mac] = event.device

    def on_destination_contacted(self, event: DestinationContacted) -> None:
        per_device = self.contacts.setdefault(event.device.mac, {})
        per_device.setdefault(
            event.destination.ip,
            Contact(event.destination, first_ts=event.ts, last_ts=event.ts),
        )

    def on_flow_end(self, event: FlowEnd) -> None:
        flow = event.flow
        mac = flow.device_mac or (f"ip:{flow.device_ip}" if flow.device_ip else None)
        if mac is None or mac not in self.devices:
            return
        per_device = self.contacts.setdefault(mac, {})
        contact = per_device.get(flow.remote_ip)
        if contact is None:
            contact = per_device[flow.remote_ip] = Contact(
                self.device_lookup(flow.remote_ip, flow.last_ts), first_ts=flow.first_ts
            )
        contact.bytes_up += flow.bytes_up
        contact.bytes_down += flow.bytes_down
        contact.flows += 1
        contact.last_ts = max(contact.last_ts, flow.last_ts)

    def on_upload_burst(self, event: UploadBurst) -> None:
        self.bursts.append(event)

    def on_alert_raised(self, event: AlertRaised) -> None:
        self.alerts.append(event.alert)

    def device_records(self) -> list[dict[str, Any]]:
        return [device.to_record() for device in self._sorted_devices()]

    def destination_records(self) -> list[dict[str, Any]]:
        records = []
        for device in self._sorted_devices():
            for contact in self._sorted_contacts(device.mac):
                record = contact.destination.to_record()
                record.update(
                    device=device.mac,
                    bytes_up=contact.bytes_up,
                    bytes_down=contact.bytes_down,
                    flows=contact.flows,
                    first_ts=contact.first_ts,
                    last_ts=contact.last_ts,
                )
                records.append(record)
        return records

    def _sorted_devices(self) -> list[Device]:
        return sorted(self.devices.values(), key=lambda d: (-(d.bytes_up + d.bytes_down), d.mac))

    def _sorted_contacts(self, mac: str) -> list[Contact]:
        return sorted(
            self.contacts.get(mac, {}).values(),
            key=lambda c: (-(c.bytes_up + c.bytes_down), c.destination.ip),
        )

    def write_text(self, out: IO[str], summary: dict[str, Any]) -> None:
        """The readable report: each device, then its destinations, then totals."""
        devices = self._sorted_devices()
        out.write(f"{len(devices)} devices\n")
        for device in devices:
            category = device.user_category or device.category
            facts = [f for f in (device.vendor, device.hostname) if f]
            title = device.display_name
            mac = f"  {device.mac}" if title != device.mac else ""
            randomized = " (private address)" if device.randomized else ""
            out.write(f"\n{title}  [{category}]{mac}{randomized}\n")
            if facts:
                out.write(f"  {' / '.join(facts)}\n")
            if device.ips:
                out.write(f"  addresses: {', '.join(sorted(device.ips))}\n")
            out.write(f"  sent {_size(device.bytes_up)}, received {_size(device.bytes_down)}\n")
            contacts = self._sorted_contacts(device.mac)
            for contact in contacts[:25]:
                dest = contact.destination
                where = dest.country or ("LAN" if dest.local else "??")
                flag = " FOREIGN" if dest.foreign else ""
                name = f"{dest.name} " if dest.name else ""
                org = f"({dest.org}) " if dest.org and dest.org not in name else ""
                out.write(
                    f"    -> {name}{org}{dest.ip} [{where}]{flag}  "
                    f"up {_size(contact.bytes_up)} down {_size(contact.bytes_down)}\n"
                )
            if len(contacts) > 25:
                out.write(f"    ... and {len(contacts) - 25} more destinations\n")
        if self.bursts:
            out.write(f"\n{len(self.bursts)} upload bursts\n")
            for burst in self.bursts:
                out.write(
                    f"  {burst.shape:5} {burst.device.display_name} -> "
                    f"{burst.destination.name or burst.destination.ip} "
                    f"[{burst.destination.country or '??'}] {_size(burst.bytes_up)} in "
                    f"{burst.duration_s:.1f}s\n"
                )
        if self.alerts:
            out.write(f"\n{len(self.alerts)} alerts\n")
            for alert in self.alerts:
                out.write(f"  [{alert.level}] {alert.message}\n")
        out.write(
            f"\n{summary['packets']} packets ({summary['malformed']} malformed, "
            f"{summary['skipped']} skipped), {summary['flows']} flows, "
            f"{summary['seconds']:.2f}s ({summary['pps']:.0f} packets/s)\n"
        )


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return str(count)


def burst_record(event: UploadBurst) -> dict[str, Any]:
    """The JSON record of an upload burst (``kind: "burst"``)."""
    return {
        "kind": "burst",
        "device": {
            "mac": event.device.mac,
            "name": event.device.display_name,
            "category": event.device.user_category or event.device.category,
        },
        "dest": event.destination.to_record(),
        "ts_start": event.ts_start,
        "ts_end": event.ts_end,
        "duration_s": event.duration_s,
        "bytes_up": event.bytes_up,
        "bytes_down": event.bytes_down,
        "packets_up": event.packets_up,
        "mean_kbps": event.mean_kbps,
        "peak_kbps": event.peak_kbps,
        "shape": event.shape,
        "audio_seconds": event.audio_seconds,
        "dest_ips": event.dest_ips,
        "services": event.services,
        "transports": event.transports,
    }


class JsonLinesPrinter:
    """Streams flows (optional), bursts and alerts as JSON lines while the run goes on."""

    def __init__(self, out: IO[str], *, flows: bool = False) -> None:
        self.out = out
        self.flows = flows

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":"), default=_json_default) + "\n")

    def on_flow_end(self, event: FlowEnd) -> None:
        if self.flows:
            self.write({"kind": "flow", **event.flow.to_record()})

    def on_upload_burst(self, event: UploadBurst) -> None:
        self.write(burst_record(event))

    def on_alert_raised(self, event: AlertRaised) -> None:
        self.write({"kind": "alert", **event.alert.to_record()})


def print_json(value: Any, out: IO[str]) -> None:
    """Pretty JSON for people and scripts (``--format json`` of the store commands)."""
    json.dump(value, out, indent=2, default=_json_default)
    out.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


class EventPrinter:
    """Prints what the live daemon notices, one line each, as it happens (text output)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def on_device_seen(self, event: DeviceSeen) -> None:
        device = event.device
        vendor = f" ({device.vendor})" if device.vendor else ""
        self._line(f"device  {device.mac}{vendor} {', '.join(sorted(device.ips))}")

    def on_upload_burst(self, event: UploadBurst) -> None:
        dest = event.destination
        self._line(
            f"burst   {event.shape} {event.device.display_name} -> {dest.name or dest.ip} "
            f"[{dest.country or '??'}] {_size(event.bytes_up)} in {event.duration_s:.1f}s"
        )

    def on_alert_raised(self, event: AlertRaised) -> None:
        self._line(f"ALERT   [{event.alert.level}] {event.alert.message}")
