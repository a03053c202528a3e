"""The shapes that cross a module boundary: Flow, Device and Destination.

Field names follow Zeek's conn.log for flows (``orig`` is the side that sent first) and
``../shared/DESIGN.md`` section 3 for devices and destinations. These objects hold metadata
only: addresses, counters, names and fingerprints, never payload bytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: One second of a flow's traffic as seen from the home device: (second, bytes_up, bytes_down,
#: packets_up). Bytes are transport payload bytes.
SecondBin = tuple[int, int, int, int]


class Flow:
    """One bidirectional transport conversation (a 5-tuple), like a line of Zeek's conn.log.

    Guarantees: ``orig_*`` is the endpoint that sent the first packet seen; byte counters are
    transport payload bytes (``*_ip_bytes`` count whole IP packets); ``bins`` holds at most
    ``bin_seconds`` closed one-second bins of upstream/downstream payload bytes relative to the
    home device (``device_mac``), and is only allocated once the flow carries payload, so that a
    flood of empty flows stays small.
    """

    __slots__ = (
        "bin_bytes_down",
        "bin_bytes_up",
        "bin_pkts_up",
        "bin_sec",
        "bins",
        "device_ip",
        "device_is_orig",
        "device_mac",
        "end_reason",
        "first_ts",
        "history",
        "inspect_left",
        "key",
        "last_ts",
        "local_orig",
        "local_resp",
        "orig_bytes",
        "orig_ip",
        "orig_ip_bytes",
        "orig_mac",
        "orig_pkts",
        "orig_port",
        "proto",
        "resp_bytes",
        "resp_ip",
        "resp_ip_bytes",
        "resp_mac",
        "resp_pkts",
        "resp_port",
        "server_name",
        "service",
        "state",
        "uid",
    )

    def __init__(
        self,
        uid: str,
        key: tuple,
        proto: str,
        orig_ip: str,
        orig_port: int,
        resp_ip: str,
        resp_port: int,
        orig_mac: str | None,
        resp_mac: str | None,
        ts: float,
        local_orig: bool,
        local_resp: bool,
    ) -> None:
        self.uid = uid
        self.key = key
        self.proto = proto
        self.orig_ip = orig_ip
        self.orig_port = orig_port
        self.resp_ip = resp_ip
        self.resp_port = resp_port
        self.orig_mac = orig_mac
        self.resp_mac = resp_mac
        self.first_ts = ts
        self.last_ts = ts
        self.orig_bytes = 0
        self.resp_bytes = 0
        self.orig_pkts = 0
        self.resp_pkts = 0
        self.orig_ip_bytes = 0
        self.resp_ip_bytes = 0
        self.state = "S0"
        self.history = ""
        self.service: str | None = None
        self.server_name: str | None = None
        self.local_orig = local_orig
        self.local_resp = local_resp
        # The home device is the local side; when both sides are local, the originator.
        self.device_is_orig = local_orig or not local_resp
        if self.device_is_orig:
            self.device_mac = orig_mac if local_orig else None
            self.device_ip = orig_ip if local_orig else None
        else:
            self.device_mac = resp_mac
            self.device_ip = resp_ip
        self.bins: deque[SecondBin] | None = None
        self.bin_sec = -1
        self.bin_bytes_up = 0
        self.bin_bytes_down = 0
        self.bin_pkts_up = 0
        self.end_reason: str | None = None
        # Payload packets still worth handing to protocol parsers: enough for a ClientHello
        # spread over 16 TCP segments (the reassembler's own limit).
        self.inspect_left = 16

    @property
    def remote_ip(self) -> str:
        """The address on the far side from the home device."""
        return self.resp_ip if self.device_is_orig else self.orig_ip

    @property
    def remote_port(self) -> int:
        """The port on the far side from the home device."""
        return self.resp_port if self.device_is_orig else self.orig_port

    @property
    def bytes_up(self) -> int:
        """Payload bytes sent by the home device."""
        return self.orig_bytes if self.device_is_orig else self.resp_bytes

    @property
    def bytes_down(self) -> int:
        """Payload bytes received by the home device."""
        return self.resp_bytes if self.device_is_orig else self.orig_bytes

    @property
    def duration(self) -> float:
        return self.last_ts - self.first_ts

    def seconds(self) -> list[SecondBin]:
        """Closed per-second bins plus the open one, oldest first."""
        out = list(self.bins) if self.bins else []
        if self.bin_sec >= 0 and (self.bin_bytes_up or self.bin_bytes_down):
            out.append((self.bin_sec, self.bin_bytes_up, self.bin_bytes_down, self.bin_pkts_up))
        return out

    def to_record(self) -> dict[str, Any]:
        """The conn.log-style record (JSON-ready) of this flow."""
        return {
            "uid": self.uid,
            "proto": self.proto,
            "service": self.service,
            "orig_ip": self.orig_ip,
            "orig_port": self.orig_port,
            "resp_ip": self.resp_ip,
            "resp_port": self.resp_port,
            "orig_mac": self.orig_mac,
            "resp_mac": self.resp_mac,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "duration": round(self.duration, 6),
            "orig_bytes": self.orig_bytes,
            "resp_bytes": self.resp_bytes,
            "orig_pkts": self.orig_pkts,
            "resp_pkts": self.resp_pkts,
            "orig_ip_bytes": self.orig_ip_bytes,
            "resp_ip_bytes": self.resp_ip_bytes,
            "state": self.state,
            "history": self.history,
            "local_orig": self.local_orig,
            "local_resp": self.local_resp,
            "server_name": self.server_name,
            "device_mac": self.device_mac,
        }


@dataclass(slots=True)
class Destination:
    """A remote endpoint a home device talks to, with where it is and who runs it.

    ``country`` is where the address is registered (ISO 3166 alpha-2, ``None`` when unknown);
    ``org`` is the registrable domain of its best name, or the ASN organisation;
    ``local`` is true for LAN, link-local, loopback and multicast addresses; ``foreign`` is true
    only when the country is known and outside the configured home set. ``best_name`` is the
    most recent best-ranked name the enricher was given.
    """

    ip: str
    names: set[str] = field(default_factory=set)
    country: str | None = None
    org: str | None = None
    asn: int | None = None
    asn_org: str | None = None
    jurisdiction: str | None = None
    local: bool = False
    foreign: bool = False
    best_name: str | None = None

    @property
    def name(self) -> str | None:
        """The best single name: what the device itself asked for (SNI, Host, the DNS query) as
        ranked by the name table, else any name seen."""
        if self.best_name:
            return self.best_name
        return min(self.names) if self.names else None

    def to_record(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "name": self.name,
            "names": sorted(self.names),
            "country": self.country,
            "org": self.org,
            "asn": self.asn,
            "asn_org": self.asn_org,
            "jurisdiction": self.jurisdiction,
            "local": self.local,
            "foreign": self.foreign,
        }


#: The Device fields that are sets of names (capped, merged across runs, stored as lists).
DEVICE_SET_FIELDS = (
    "ips",
    "mdns_names",
    "services",
    "ssdp_servers",
    "user_agents",
    "domains",
    "tls_fingerprints",
)


@dataclass(slots=True)
class Device:
    """A device in the home, keyed by MAC address (``ip:<addr>`` when the link has no MACs).

    ``randomized`` flags locally administered (private, rotating) MAC addresses. ``category`` is
    ``unknown`` until classification decides otherwise; ``label`` and ``user_category`` are the
    user's word and override any guess.
    """

    mac: str
    first_seen: float
    last_seen: float
    ips: set[str] = field(default_factory=set)
    vendor: str | None = None
    randomized: bool = False
    hostname: str | None = None
    dhcp_fingerprint: str | None = None
    dhcp_vendor_class: str | None = None
    mdns_names: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    mdns_txt: dict[str, str] = field(default_factory=dict)
    ssdp_servers: set[str] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    tls_fingerprints: set[str] = field(default_factory=set)
    category: str = "unknown"
    confidence: float = 0.0
    name: str | None = None
    evidence: list[str] = field(default_factory=list)
    label: str | None = None
    user_category: str | None = None
    bytes_up: int = 0
    bytes_down: int = 0

    @property
    def display_name(self) -> str:
        """What a household reads: the user's label, else the guessed name, else the hostname."""
        return self.label or self.name or self.hostname or self.mac

    def to_record(self) -> dict[str, Any]:
        return {
            "mac": self.mac,
            "ips": sorted(self.ips),
            "vendor": self.vendor,
            "randomized": self.randomized,
            "hostname": self.hostname,
            "dhcp_fingerprint": self.dhcp_fingerprint,
            "dhcp_vendor_class": self.dhcp_vendor_class,
            "mdns_names": sorted(self.mdns_names),
            "services": sorted(self.services),
            "mdns_txt": dict(sorted(self.mdns_txt.items())),
            "ssdp_servers": sorted(self.ssdp_servers),
            "user_agents": sorted(self.user_agents),
            "domains": sorted(self.domains),
            "tls_fingerprints": sorted(self.tls_fingerprints),
            "category": self.user_category or self.category,
            "confidence": self.confidence,
            "name": self.name,
            "evidence": list(self.evidence),
            "label": self.label,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


@dataclass
class Alert:
    """What a rule raised: which rule, how serious, when, about whom, and one sentence a household
    understands. ``event`` is the flattened record of the event that caused it (metadata only);
    ``suppressed_until`` is when the same suppression key may alert again."""

    rule: str
    level: str
    ts: float
    message: str
    device_mac: str | None
    dest: str | None
    event: dict[str, Any]
    suppression_key: str
    suppressed_until: float
    title: str = ""

    def to_record(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "level": self.level,
            "ts": self.ts,
            "device": self.device_mac,
            "dest": self.dest,
            "message": self.message,
            "suppressed_until": self.suppressed_until,
            "event": self.event,
        }
