"""The field vocabulary of rules: each event flattened into a dict with dotted keys.

:data:`FIELDS` is the one table of every field a rule may name in ``match``, ``suppress.key`` or
a message placeholder, with its type, the events that carry it and what it means;
``rules/FIELDS.md`` is generated from it (``python -m rules.schema_reference``) and a test
keeps the two equal.

Guarantees of :func:`flatten`: it returns a new dict holding exactly the fields :data:`FIELDS`
lists for that event (an unknown value is present as ``None``), every value JSON-safe (str, int,
float, bool, None or a list of str), and ``ts`` always set to the event's time in seconds since
the epoch. It never raises for a supported event. Flattening is cheap (a few dozen dict stores)
because rule events are rare compared to packets.

Field types (``kind``): ``str``, ``int``, ``float``, ``bool`` and ``list`` (a list of strings;
a condition on a list field holds when it holds for any element).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.events import (
    DestinationContacted,
    DeviceSeen,
    Event,
    FlowEnd,
    NameContacted,
    UploadBurst,
)
from monitor.model import Destination, Device

#: Services counted as encrypted by the ``encrypted`` field (``ssl`` is Zeek's name for TLS).
ENCRYPTED_SERVICES = frozenset({"tls", "ssl", "quic", "dtls", "ssh"})
_ENCRYPTED_UDP = frozenset({"quic", "dtls"})

UPLOAD_BURST = UploadBurst.event_name
DEVICE_SEEN = DeviceSeen.event_name
DESTINATION_CONTACTED = DestinationContacted.event_name
NAME_CONTACTED = NameContacted.event_name
FLOW_END = FlowEnd.event_name

#: The events rules can listen to, in documentation order.
EVENTS: tuple[str, ...] = (
    UPLOAD_BURST,
    DEVICE_SEEN,
    DESTINATION_CONTACTED,
    NAME_CONTACTED,
    FLOW_END,
)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the vocabulary: dotted name, type, the events carrying it, its meaning."""

    name: str
    kind: str
    events: tuple[str, ...]
    doc: str


_WITH_DEVICE = (UPLOAD_BURST, DEVICE_SEEN, DESTINATION_CONTACTED, NAME_CONTACTED)
_WITH_DEST = (UPLOAD_BURST, DESTINATION_CONTACTED)


def _f(name: str, kind: str, events: tuple[str, ...], doc: str) -> Field:
    return Field(name, kind, events, doc)


# fmt: off
FIELDS: tuple[Field, ...] = (
    _f("ts", "float", EVENTS,
       "When the event happened (seconds since the epoch): a burst's end, a flow's last packet."),
    _f("device.mac", "str", (*_WITH_DEVICE, FLOW_END),
       "The home device's MAC address (``ip:<addr>`` when the link has none); for ``flow_end`` "
       "the flow's home side, unknown when no side is local."),
    _f("device.name", "str", _WITH_DEVICE,
       "The name a household reads: the user's label, else the guessed name, else the hostname, "
       "else the MAC. Attacker-controlled (it can come from DHCP)."),
    _f("device.label", "str", _WITH_DEVICE, "The user's label for the device, if any."),
    _f("device.category", "str", _WITH_DEVICE,
       "speaker, toy, camera, tv, plug, hub, meter, phone, computer or unknown (the user's "
       "choice overrides the guess)."),
    _f("device.vendor", "str", _WITH_DEVICE, "The maker, from the MAC address's OUI."),
    _f("device.hostname", "str", _WITH_DEVICE, "The DHCP host name (option 12)."),
    _f("device.randomized", "bool", _WITH_DEVICE,
       "True for a locally administered (private, rotating) MAC address."),
    _f("dest.ip", "str", (*_WITH_DEST, NAME_CONTACTED, FLOW_END),
       "The remote address; for ``name_contacted`` the server address when known (SNI, Host)."),
    _f("dest.name", "str", _WITH_DEST,
       "The destination's most specific name (from DNS answers, SNI or HTTP Host)."),
    _f("dest.country", "str", _WITH_DEST,
       "Where the address is registered, ISO 3166 alpha-2 (e.g. IE, US, CN)."),
    _f("dest.org", "str", _WITH_DEST,
       "Who runs it: the registrable domain of its name (amazon.com) or the ASN organisation."),
    _f("dest.asn", "int", _WITH_DEST, "The autonomous system number, when a database gives it."),
    _f("dest.asn_org", "str", _WITH_DEST, "The autonomous system's organisation name."),
    _f("dest.jurisdiction", "str", _WITH_DEST,
       "The operator's home country (ISO alpha-2) where known."),
    _f("dest.foreign", "bool", _WITH_DEST,
       "True only when the country is known and outside the configured home set."),
    _f("dest.local", "bool", _WITH_DEST, "True for LAN, link-local, loopback and multicast."),
    _f("shape", "str", (UPLOAD_BURST,), "The burst's shape: audio, video or bulk."),
    _f("bytes_up", "int", (UPLOAD_BURST,), "Bytes the device sent during the burst."),
    _f("bytes_down", "int", (UPLOAD_BURST,), "Bytes the device received during the burst."),
    _f("packets_up", "int", (UPLOAD_BURST,), "Packets the device sent during the burst."),
    _f("duration_s", "float", (UPLOAD_BURST,), "How long the burst lasted, in seconds."),
    _f("mean_kbps", "float", (UPLOAD_BURST,),
       "Mean upstream rate in kilobytes per second (1 kB = 1000 bytes)."),
    _f("peak_kbps", "float", (UPLOAD_BURST,), "Highest one-second upstream rate, kB/s."),
    _f("audio_seconds", "float", (UPLOAD_BURST,),
       "Seconds of speech the uploaded bytes could carry at the configured voice bitrate."),
    _f("services", "list", (UPLOAD_BURST,),
       "Application protocols of the burst's flows (tls, quic, http, ...)."),
    _f("transports", "list", (UPLOAD_BURST,), "Transport protocols of the burst (tcp, udp)."),
    _f("dest_ips", "list", (UPLOAD_BURST,),
       "Every address of the destination's organisation the burst used."),
    _f("encrypted", "bool", (UPLOAD_BURST,),
       "True when every service is tls, quic, dtls or ssh; false when any is not (plain http) or "
       "UDP carried the burst without QUIC or DTLS (unknown UDP counts as unencrypted); unknown "
       "when no service was identified over TCP only (a TLS handshake may predate the capture)."),
    _f("ts_start", "float", (UPLOAD_BURST,), "When the burst started."),
    _f("ts_end", "float", (UPLOAD_BURST,), "When the burst ended (equal to ``ts``)."),
    _f("first_ever", "bool", (DEVICE_SEEN,),
       "False when the store knew the device from an earlier run (so it is not new)."),
    _f("new_org", "bool", (DESTINATION_CONTACTED,),
       "True when no earlier destination of this device had the same organisation."),
    _f("name", "str", (NAME_CONTACTED,), "The server name looked up or connected to."),
    _f("source", "str", (NAME_CONTACTED,),
       "Where the name was seen: dns (query), sni (TLS/QUIC) or http (Host header)."),
    _f("flow.uid", "str", (FLOW_END,), "The flow's unique id (as in Zeek's conn.log)."),
    _f("flow.proto", "str", (FLOW_END,), "Transport protocol: tcp, udp, icmp..."),
    _f("flow.service", "str", (FLOW_END,), "Application protocol identified, if any."),
    _f("flow.orig_ip", "str", (FLOW_END,), "Address of the side that sent first."),
    _f("flow.orig_port", "int", (FLOW_END,), "Port of the side that sent first."),
    _f("flow.resp_ip", "str", (FLOW_END,), "Address of the responding side."),
    _f("flow.resp_port", "int", (FLOW_END,), "Port of the responding side."),
    _f("flow.orig_mac", "str", (FLOW_END,), "MAC address of the originator, when seen."),
    _f("flow.resp_mac", "str", (FLOW_END,), "MAC address of the responder, when seen."),
    _f("flow.first_ts", "float", (FLOW_END,), "Time of the flow's first packet."),
    _f("flow.last_ts", "float", (FLOW_END,), "Time of the flow's last packet."),
    _f("flow.duration", "float", (FLOW_END,), "Seconds from first to last packet."),
    _f("flow.orig_bytes", "int", (FLOW_END,), "Payload bytes sent by the originator."),
    _f("flow.resp_bytes", "int", (FLOW_END,), "Payload bytes sent by the responder."),
    _f("flow.orig_pkts", "int", (FLOW_END,), "Packets sent by the originator."),
    _f("flow.resp_pkts", "int", (FLOW_END,), "Packets sent by the responder."),
    _f("flow.orig_ip_bytes", "int", (FLOW_END,), "IP bytes sent by the originator."),
    _f("flow.resp_ip_bytes", "int", (FLOW_END,), "IP bytes sent by the responder."),
    _f("flow.state", "str", (FLOW_END,), "Connection state, as Zeek's conn_state (S0, SF...)."),
    _f("flow.history", "str", (FLOW_END,), "Connection history letters, as Zeek's."),
    _f("flow.local_orig", "bool", (FLOW_END,), "True when the originator is in the home."),
    _f("flow.local_resp", "bool", (FLOW_END,), "True when the responder is in the home."),
    _f("flow.server_name", "str", (FLOW_END,), "SNI, HTTP Host or the DNS name of resp_ip."),
    _f("flow.device_mac", "str", (FLOW_END,), "MAC of the flow's home side (as device.mac)."),
    _f("flow.end_reason", "str", (FLOW_END,), "Why it ended: idle, active, evicted, shutdown."),
    _f("flow.bytes_up", "int", (FLOW_END,), "Payload bytes sent by the home side."),
    _f("flow.bytes_down", "int", (FLOW_END,), "Payload bytes received by the home side."),
)
# fmt: on

#: Event name -> {field name: Field} of the fields that event carries.
EVENT_FIELDS: dict[str, dict[str, Field]] = {
    event: {f.name: f for f in FIELDS if event in f.events} for event in EVENTS
}

#: Suffix of the derived field a matching ``|indicator`` condition sets (``name.indicator``):
#: the name of the indicator list that matched, for messages and the alert's record.
INDICATOR_SUFFIX = ".indicator"


def _device(device: Device, out: dict[str, Any]) -> None:
    out["device.mac"] = device.mac
    out["device.name"] = device.display_name
    out["device.label"] = device.label
    out["device.category"] = device.user_category or device.category
    out["device.vendor"] = device.vendor
    out["device.hostname"] = device.hostname
    out["device.randomized"] = device.randomized


def _dest(dest: Destination, out: dict[str, Any]) -> None:
    out["dest.ip"] = dest.ip
    out["dest.name"] = dest.name
    out["dest.country"] = dest.country
    out["dest.org"] = dest.org
    out["dest.asn"] = dest.asn
    out["dest.asn_org"] = dest.asn_org
    out["dest.jurisdiction"] = dest.jurisdiction
    out["dest.foreign"] = dest.foreign
    out["dest.local"] = dest.local


def _encrypted(services: list[str], transports: list[str]) -> bool | None:
    if any(s not in ENCRYPTED_SERVICES for s in services):
        return False
    if "udp" in transports and not any(s in _ENCRYPTED_UDP for s in services):
        return False
    return True if services else None


def _upload_burst(event: UploadBurst) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": event.ts_end}
    _device(event.device, out)
    _dest(event.destination, out)
    services = [str(s).lower() for s in event.services]
    out["shape"] = event.shape
    out["bytes_up"] = event.bytes_up
    out["bytes_down"] = event.bytes_down
    out["packets_up"] = event.packets_up
    out["duration_s"] = event.duration_s
    out["mean_kbps"] = event.mean_kbps
    out["peak_kbps"] = event.peak_kbps
    out["audio_seconds"] = event.audio_seconds
    out["services"] = services
    out["transports"] = [str(t).lower() for t in event.transports]
    out["dest_ips"] = list(event.dest_ips)
    out["encrypted"] = _encrypted(services, out["transports"])
    out["ts_start"] = event.ts_start
    out["ts_end"] = event.ts_end
    return out


def _device_seen(event: DeviceSeen) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": event.ts}
    _device(event.device, out)
    out["first_ever"] = event.first_ever
    return out


def _destination_contacted(event: DestinationContacted) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": event.ts}
    _device(event.device, out)
    _dest(event.destination, out)
    out["new_org"] = event.new_org
    return out


def _name_contacted(event: NameContacted) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": event.ts}
    _device(event.device, out)
    out["name"] = event.name
    out["source"] = event.source
    out["dest.ip"] = event.dest_ip
    return out


def _flow_end(event: FlowEnd) -> dict[str, Any]:
    flow = event.flow
    out: dict[str, Any] = {"flow." + k: v for k, v in flow.to_record().items()}
    out["ts"] = flow.last_ts
    out["flow.end_reason"] = flow.end_reason
    out["flow.bytes_up"] = flow.bytes_up
    out["flow.bytes_down"] = flow.bytes_down
    out["device.mac"] = flow.device_mac
    out["dest.ip"] = flow.remote_ip
    return out


_FLATTEN: dict[str, Callable[[Any], dict[str, Any]]] = {
    UPLOAD_BURST: _upload_burst,
    DEVICE_SEEN: _device_seen,
    DESTINATION_CONTACTED: _destination_contacted,
    NAME_CONTACTED: _name_contacted,
    FLOW_END: _flow_end,
}


def flatten(event: Event) -> dict[str, Any]:
    """The flattened record of a supported event (see the module guarantees).

    Raises KeyError for an event type no rule can listen to (not in :data:`EVENTS`).
    """
    return _FLATTEN[event.event_name](event)


def fields_markdown() -> str:
    """The field table as Markdown, one section per event."""
    lines = []
    for event in EVENTS:
        lines += ["", f"### `{event}`", "", "| field | type | meaning |", "|---|---|---|"]
        for f in EVENT_FIELDS[event].values():
            doc = f.doc.replace("``", "`").replace("|", "\\|")
            lines.append(f"| `{f.name}` | {f.kind} | {doc} |")
    lines += [
        "",
        f"A `|indicator` condition that matches on a field also sets `<field>{INDICATOR_SUFFIX}`"
        " (for example `name.indicator`): the name of the indicator list that matched.",
    ]
    return "\n".join(lines).lstrip("\n") + "\n"
