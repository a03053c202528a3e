"""The device inventory: every device in the home, keyed by MAC, with what its traffic says.

Guarantees: a device exists for every unicast MAC that sent traffic from a home address (links
without MACs key the device ``ip:<address>``); a device the store already knew starts with the
facts, the user's label and category and the guess of earlier runs;
:class:`~monitor.events.DeviceSeen` fires once per device and run, before any
:class:`~monitor.events.DeviceUpdated` for it; ``DeviceUpdated`` fires only when an identifying
fact actually changed and names the changed fields; :class:`~monitor.events.DestinationContacted`
fires once per device and remote address, once the destination has a name (from DNS, SNI or
Host) or its flow ended, so its organisation is known when it can be; its ``new_org`` counts the
organisations of earlier runs too. Every per-device collection is capped, so hostile traffic
cannot grow memory without bound; strings from the network are cut to 255 characters. The
inventory holds at most ``max_devices`` devices (``flows.max_devices``): when a new one comes
and it is full, the eighth seen longest ago are forgotten (:data:`EVICT_SHARE`), at most once
every :data:`EVICT_EVERY_S` seconds of capture time (until then newcomers are ignored, so a
flood of spoofed MACs costs no more than before it filled the inventory); a flood therefore
never locks a real new device out for longer than it lasts. A forgotten device seen again is
not "first ever" (no second "new device" alert) for at least :data:`_MAX_CONTACTS` later
evictions.
What "once per run" remembers is bounded too: a (device, address), (device, organisation) or
(device, name) pair is remembered for at least :data:`_MAX_CONTACTS` newer pairs after its last
use; a pair forgotten counts as new again.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from operator import attrgetter

from monitor.enrich import Enricher
from monitor.events import (
    AddressObserved,
    ClientHelloObserved,
    DestinationContacted,
    DeviceSeen,
    DeviceUpdated,
    DhcpObserved,
    DnsObserved,
    Event,
    FlowEnd,
    FlowStart,
    HttpRequestObserved,
    MdnsObserved,
    NameContacted,
    SsdpObserved,
)
from monitor.flows import HomeNetworks
from monitor.model import DEVICE_SET_FIELDS, Destination, Device, Flow
from monitor.names import NameTable
from monitor.vendors import VendorTable, is_randomized

_MAX_TEXT = 255
_CAPS = {
    "ips": 16,
    "mdns_names": 32,
    "services": 64,
    "ssdp_servers": 16,
    "user_agents": 16,
    "domains": 1000,
    "tls_fingerprints": 32,
    "mdns_txt": 32,
}
#: The default of ``flows.max_devices``: the most devices one inventory holds.
MAX_DEVICES = 4096
#: Share of the devices forgotten at once when the inventory is full (the ones seen longest
#: ago): one pass over the inventory makes room for many newcomers.
EVICT_SHARE = 8
#: Seconds of capture time between two evictions.
EVICT_EVERY_S = 10.0
_LAST_SEEN = attrgetter("last_seen")
#: Pairs remembered by each of the "first time in this run" sets (see the module docstring
#: and :class:`_Recent`): about 2 MB each when full.
_MAX_CONTACTS = 16384


def _clean(text: str | None) -> str | None:
    """At most 255 characters, control characters turned into spaces, stripped; None if empty."""
    if text is None:
        return None
    text = text[:_MAX_TEXT]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text.strip() or None


_ZERO_MAC = "00:00:00:00:00:00"


def _is_unicast_mac(mac: str) -> bool:
    return int(mac[:2], 16) & 1 == 0


def _is_server_name(name: str) -> bool:
    """A DNS name worth listing: dotted, not reverse-DNS or mDNS, not an address literal."""
    if "." not in name or name.endswith((".arpa", ".local")) or len(name) > 253:
        return False
    return not (name.replace(".", "").isdigit() or ":" in name)


def _restore(device: Device, stored: dict) -> None:
    """What an earlier run knew: the identifying facts (within the caps), the user's label and
    category, and the last guess (so classification starts from everything seen, not from this
    run's packets alone)."""
    for field in ("hostname", "dhcp_fingerprint", "dhcp_vendor_class"):
        if stored.get(field) and getattr(device, field) is None:
            setattr(device, field, stored[field])
    for field in DEVICE_SET_FIELDS:
        collection = getattr(device, field)
        for value in list(stored.get(field) or ())[: _CAPS[field] - len(collection)]:
            collection.add(value)
    for key, value in list((stored.get("mdns_txt") or {}).items())[: _CAPS["mdns_txt"]]:
        device.mdns_txt.setdefault(key, value)
    device.label = stored.get("label")
    device.user_category = stored.get("user_category")
    device.category = stored.get("category_guess") or "unknown"
    device.confidence = stored.get("confidence") or 0.0
    device.name = stored.get("name")
    device.evidence = list(stored.get("evidence") or [])
    device.first_seen = min(device.first_seen, stored.get("first_seen") or device.first_seen)


class _Recent:
    """Remembers keys: each for at least ``size`` and at most ``2 * size`` newer keys after
    its last use. It holds two generations of the keys' hashes, not the keys (a pair of
    strings costs about 150 bytes, its hash about 60): a hash collision, about one in 10^10
    when full, would only make an unseen key count as seen."""

    __slots__ = ("_new", "_old", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._new: set[int] = set()
        self._old: set[int] = set()

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is remembered; a hit counts as a use."""
        digest = hash(key)
        if digest in self._new:
            return True
        if digest in self._old:
            self._keep(digest)
            return True
        return False

    def add(self, key: Hashable) -> bool:
        """Remember ``key`` (as just used); True when it was not remembered before."""
        if key in self:
            return False
        self._keep(hash(key))
        return True

    def _keep(self, digest: int) -> None:
        self._new.add(digest)
        if len(self._new) >= self.size:
            self._old, self._new = self._new, set()


class DeviceInventory:
    """Holds devices and emits device events; see the module docstring."""

    def __init__(
        self,
        *,
        vendors: VendorTable,
        enricher: Enricher,
        names: NameTable,
        home: HomeNetworks,
        emit: Callable[[Event], None],
        known: dict[str, dict] | None = None,
        known_orgs: Callable[[str], set[str]] | None = None,
        max_devices: int = MAX_DEVICES,
    ) -> None:
        self.vendors = vendors
        self.enricher = enricher
        self.names = names
        self.home = home
        self.emit = emit
        self.known = known or {}
        self.known_orgs = known_orgs
        self.max_devices = max_devices
        self.devices: dict[str, Device] = {}
        # (device key, address), (device key, organisation or address), (device key, name).
        self._contacted = _Recent(_MAX_CONTACTS)
        self._orgs = _Recent(_MAX_CONTACTS)
        self._named = _Recent(_MAX_CONTACTS)
        # (device key, address) of flows waiting for a name before DestinationContacted: at
        # most one per flow in the flow table.
        self._pending: set[tuple[str, str]] = set()
        self._evicted = _Recent(_MAX_CONTACTS)
        self._next_eviction = float("-inf")

    # -- device bookkeeping ------------------------------------------------------------------

    def _evict(self) -> None:
        """Forget the share of devices seen longest ago (see the module docstring)."""
        count = max(1, len(self.devices) // EVICT_SHARE)
        gone = set()
        for device in heapq.nsmallest(count, self.devices.values(), key=_LAST_SEEN):
            del self.devices[device.mac]
            self._evicted.add(device.mac)
            gone.add(device.mac)
        # Their flows waiting for a name will find no device when they end.
        self._pending = {pair for pair in self._pending if pair[0] not in gone}

    def device(self, mac: str | None, ts: float, ip: str | None = None) -> Device | None:
        """The device for ``mac`` (or ``ip:<ip>`` without a MAC), created on first sight."""
        if mac is None or mac == _ZERO_MAC:
            # No MAC on this link (raw IP, loopback) or an anonymised one: key by address.
            if ip is None:
                return None
            mac = None
            key = "ip:" + ip
        elif _is_unicast_mac(mac):
            key = mac
        else:
            return None
        device = self.devices.get(key)
        if device is None:
            if len(self.devices) >= self.max_devices:
                if ts < self._next_eviction:
                    return None
                self._next_eviction = ts + EVICT_EVERY_S
                self._evict()
            device = Device(mac=key, first_seen=ts, last_seen=ts)
            if mac is not None:
                device.vendor = self.vendors.lookup(mac)
                device.randomized = is_randomized(mac)
            if ip is not None:
                device.ips.add(ip)
            stored = self.known.get(key)
            if stored is not None:
                _restore(device, stored)
                if self.known_orgs is not None:
                    for org in self.known_orgs(key):
                        self._orgs.add((key, org))
            self.devices[key] = device
            first_ever = stored is None and key not in self._evicted
            self.emit(DeviceSeen(ts, device, first_ever=first_ever))
        else:
            if ts > device.last_seen:
                device.last_seen = ts
            if ip is not None and ip not in device.ips and len(device.ips) < _CAPS["ips"]:
                device.ips.add(ip)
                self.emit(DeviceUpdated(ts, device, frozenset({"ips"})))
        return device

    def _add(self, device: Device, field: str, value: str | None, changed: set[str]) -> None:
        value = _clean(value)
        if value is None:
            return
        collection = getattr(device, field)
        if value not in collection and len(collection) < _CAPS[field]:
            collection.add(value)
            changed.add(field)

    def _set(self, device: Device, field: str, value: str | None, changed: set[str]) -> None:
        value = _clean(value)
        if value is not None and getattr(device, field) != value:
            setattr(device, field, value)
            changed.add(field)

    def _updated(self, device: Device, ts: float, changed: set[str]) -> None:
        if changed:
            self.emit(DeviceUpdated(ts, device, frozenset(changed)))

    def _contact_name(
        self,
        device: Device,
        name: str,
        source: str,
        ts: float,
        dest_ip: str | None,
        changed: set[str],
    ) -> None:
        name = name.lower().rstrip(".")
        if not _is_server_name(name):
            return
        self._add(device, "domains", name, changed)
        if self._named.add((device.mac, name)):
            self.emit(NameContacted(ts, device, name, source, dest_ip))

    # -- destinations ------------------------------------------------------------------------

    def _flow_device(self, flow: Flow) -> Device | None:
        if flow.device_ip is None or not self.home.is_home_text(flow.device_ip):
            return None
        return self.device(flow.device_mac, flow.last_ts, flow.device_ip)

    def _contact(self, device: Device, ip: str, ts: float) -> None:
        self._pending.discard((device.mac, ip))
        if not self._contacted.add((device.mac, ip)):
            return
        destination = self.enricher.destination(ip, self.names.names(ip, ts))
        new_org = self._orgs.add((device.mac, destination.org or destination.ip))
        self.emit(DestinationContacted(ts, device, destination, new_org))

    def destination(self, ip: str, ts: float) -> Destination:
        """The enriched destination for ``ip`` with its current names."""
        return self.enricher.destination(ip, self.names.names(ip, ts))

    # -- event handlers ----------------------------------------------------------------------

    def on_flow_start(self, event: FlowStart) -> None:
        flow = event.flow
        device = self._flow_device(flow)
        if device is None:
            return
        remote = flow.remote_ip
        if self.home.is_home_text(remote):
            # LAN to LAN: the other side is a device too.
            other_mac = flow.resp_mac if flow.device_is_orig else flow.orig_mac
            self.device(other_mac, flow.first_ts, remote)
        # Multicast and broadcast groups are contacted too (enriched as local), so that every
        # destination the store holds carries its flags.
        pair = (device.mac, remote)
        if pair in self._pending or pair in self._contacted:
            return
        if flow.server_name or flow.proto not in ("tcp", "udp"):
            self._contact(device, remote, flow.first_ts)
        else:
            self._pending.add(pair)

    def on_flow_end(self, event: FlowEnd) -> None:
        flow = event.flow
        device = self._flow_device(flow)
        if device is None:
            return
        device.bytes_up += flow.bytes_up
        device.bytes_down += flow.bytes_down
        if (device.mac, flow.remote_ip) in self._pending:
            self._contact(device, flow.remote_ip, flow.last_ts)

    def on_client_hello_observed(self, event: ClientHelloObserved) -> None:
        flow = event.flow
        device = self._flow_device(flow)
        if device is None:
            return
        changed: set[str] = set()
        hello = event.hello
        if hello.ja4:
            self._add(device, "tls_fingerprints", hello.ja4, changed)
        if hello.sni:
            self._contact_name(device, hello.sni, "sni", event.ts, flow.remote_ip, changed)
        self._updated(device, event.ts, changed)
        if (device.mac, flow.remote_ip) in self._pending:
            self._contact(device, flow.remote_ip, event.ts)

    def on_http_request_observed(self, event: HttpRequestObserved) -> None:
        flow = event.flow
        device = self._flow_device(flow)
        if device is None:
            return
        changed: set[str] = set()
        request = event.request
        self._add(device, "user_agents", request.user_agent, changed)
        if request.host:
            self._contact_name(device, request.host, "http", event.ts, flow.remote_ip, changed)
        self._updated(device, event.ts, changed)
        if (device.mac, flow.remote_ip) in self._pending:
            self._contact(device, flow.remote_ip, event.ts)

    def on_dns_observed(self, event: DnsObserved) -> None:
        if not self.home.is_home_text(event.client_ip):
            return
        device = self.device(event.client_mac, event.ts, event.client_ip)
        if device is None:
            return
        changed: set[str] = set()
        for question in event.message.questions:
            self._contact_name(device, question.name, "dns", event.ts, None, changed)
        self._updated(device, event.ts, changed)

    def on_dhcp_observed(self, event: DhcpObserved) -> None:
        message = event.message
        mac = message.client_mac or event.src_mac
        device = self.device(mac, event.ts)
        if device is None:
            return
        changed: set[str] = set()
        if message.op == 1 or device.hostname is None:
            # The client's own name; a server's reply may echo the name it assigned.
            self._set(device, "hostname", message.hostname, changed)
        if message.op == 1:
            if message.param_request_list:
                self._set(device, "dhcp_fingerprint", message.fingerprint, changed)
            self._set(device, "dhcp_vendor_class", message.vendor_class, changed)
        for ip in (
            message.yiaddr if message.op == 2 and message.message_type == 5 else None,
            message.ciaddr,
        ):
            if ip and ip != "0.0.0.0" and self.home.is_home_text(ip):
                self._add(device, "ips", ip, changed)
        self._updated(device, event.ts, changed)

    def on_mdns_observed(self, event: MdnsObserved) -> None:
        announcement = event.announcement
        if not announcement.is_response:
            return
        device = self.device(event.src_mac, event.ts, event.src_ip)
        if device is None:
            return
        changed: set[str] = set()
        for name in (*announcement.hostnames, *announcement.instances):
            self._add(device, "mdns_names", name, changed)
        for service in announcement.services:
            self._add(device, "services", service, changed)
        for key, value in announcement.txt.items():
            value = _clean(value)
            if (
                value
                and device.mdns_txt.get(key) != value
                and (key in device.mdns_txt or len(device.mdns_txt) < _CAPS["mdns_txt"])
            ):
                device.mdns_txt[key] = value
                changed.add("mdns_txt")
        self._updated(device, event.ts, changed)

    def on_ssdp_observed(self, event: SsdpObserved) -> None:
        device = self.device(event.src_mac, event.ts, event.src_ip)
        if device is None:
            return
        changed: set[str] = set()
        message = event.message
        if message.kind == "M-SEARCH":
            self._add(device, "user_agents", message.user_agent, changed)
        else:
            self._add(device, "ssdp_servers", message.server, changed)
        self._updated(device, event.ts, changed)

    def on_address_observed(self, event: AddressObserved) -> None:
        if self.home.is_home_text(event.ip) and event.ip not in ("0.0.0.0", "::"):
            self.device(event.mac, event.ts, event.ip)
