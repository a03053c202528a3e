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
cannot grow memory without bound; strings from the network are cut to 255 characters.
"""

from __future__ import annotations

from collections.abc import Callable

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
_MAX_DEVICES = 4096


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
    ) -> None:
        self.vendors = vendors
        self.enricher = enricher
        self.names = names
        self.home = home
        self.emit = emit
        self.known = known or {}
        self.known_orgs = known_orgs
        self.devices: dict[str, Device] = {}
        self._contacted: dict[str, set[str]] = {}
        self._orgs: dict[str, set[str]] = {}
        self._named: dict[str, set[str]] = {}
        self._pending: dict[tuple[str, str], float] = {}

    # -- device bookkeeping ------------------------------------------------------------------

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
            if len(self.devices) >= _MAX_DEVICES:
                return None
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
                    self._orgs[key] = self.known_orgs(key)
            self.devices[key] = device
            self.emit(DeviceSeen(ts, device, first_ever=stored is None))
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
        seen = self._named.setdefault(device.mac, set())
        if name not in seen and len(seen) < _CAPS["domains"]:
            seen.add(name)
            self.emit(NameContacted(ts, device, name, source, dest_ip))

    # -- destinations ------------------------------------------------------------------------

    def _flow_device(self, flow: Flow) -> Device | None:
        if flow.device_ip is None or not self.home.is_home_text(flow.device_ip):
            return None
        return self.device(flow.device_mac, flow.last_ts, flow.device_ip)

    def _contact(self, device: Device, ip: str, ts: float) -> None:
        self._pending.pop((device.mac, ip), None)
        contacted = self._contacted.setdefault(device.mac, set())
        if ip in contacted:
            return
        contacted.add(ip)
        destination = self.enricher.destination(ip, self.names.names(ip, ts))
        orgs = self._orgs.setdefault(device.mac, set())
        org_key = destination.org or destination.ip
        new_org = org_key not in orgs
        orgs.add(org_key)
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
        if (device.mac, remote) in self._pending or remote in self._contacted.get(device.mac, ()):
            return
        if flow.server_name or flow.proto not in ("tcp", "udp"):
            self._contact(device, remote, flow.first_ts)
        else:
            self._pending[(device.mac, remote)] = flow.first_ts

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
