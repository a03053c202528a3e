"""The flow table: bidirectional flows keyed by their 5-tuple, with timeouts and a hard size cap.

Guarantees: a flow is in the table from its first packet until it ends by idle timeout, active
timeout, eviction (the table is over ``max_flows``) or shutdown; every ended flow is returned
exactly once by :meth:`FlowTable.expire`, :meth:`FlowTable.evict` or :meth:`FlowTable.drain`, with
``end_reason`` set and its final Zeek-style ``state`` computed. The table never holds more than
``max_flows`` flows after :meth:`FlowTable.add`: eviction removes the least recently active tenth.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter

from monitor.decode import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from monitor.model import Flow

PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp", PROTO_ICMPV6: "icmp6"}

FlowKey = tuple  # (proto, src_bytes, sport, dst_bytes, dport)
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Entries of each cache of shared texts (MAC and home-address strings) before it starts over.
_MAX_SHARED_TEXTS = 8192

_LAST_TS = attrgetter("last_ts")


def ip_text(raw: bytes) -> str:
    """Text form of a raw 4- or 16-byte address."""
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    return socket.inet_ntop(socket.AF_INET6, raw)


def mac_text(raw: bytes) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from 6 raw bytes; None when there is no MAC."""
    if len(raw) != 6:
        return None
    return raw.hex(":")


def conn_state(flow: Flow) -> str:
    """Zeek-style conn_state from the flow's history letters (TCP) or packet counts (others)."""
    if flow.proto != "tcp":
        return "SF" if flow.orig_pkts and flow.resp_pkts else "S0"
    h = flow.history
    if "S" not in h:
        return "OTH"
    if "R" in h or "r" in h:
        if "h" not in h:
            return "REJ" if "r" in h else "RSTOS0"
        return "RSTO" if "R" in h else "RSTR"
    if "h" not in h:
        return "S0"
    if "F" in h and "f" in h:
        return "SF"
    if "F" in h:
        return "S2"
    if "f" in h:
        return "S3"
    return "S1"


class HomeNetworks:
    """Decides which addresses are "in the home".

    ``lan`` prefixes when given; else the private (RFC 1918, unique-local), link-local and
    "this network" (0.0.0.0/8, which anonymised captures use) ranges: the right guess for a
    capture file from a home network.
    ``is_home`` answers for a host inside the home; ``is_local`` also accepts multicast,
    broadcast and loopback, which belong to no remote party.
    """

    _PRIVATE = tuple(
        ipaddress.ip_network(n)
        for n in (
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "fc00::/7",
            "fe80::/10",
            "0.0.0.0/8",
            "::/128",
        )
    )

    # Ranges that belong to no remote party, beyond the home's own (``is_local``).
    _LOCAL_EXTRA = tuple(
        ipaddress.ip_network(n)
        for n in (
            "224.0.0.0/4",  # multicast
            "127.0.0.0/8",  # loopback
            "169.254.0.0/16",  # link-local
            "255.255.255.255/32",  # limited broadcast
            "ff00::/8",
            "::1/128",
            "fe80::/10",
        )
    )

    def __init__(self, lan: list[str] | None = None) -> None:
        if lan:
            always = [
                ipaddress.ip_network(n)
                for n in ("169.254.0.0/16", "fe80::/10", "0.0.0.0/32", "::/128")
            ]
            self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in lan) + tuple(
                always
            )
        else:
            self.networks = self._PRIVATE
        # Each range as (network as an integer, netmask as an integer), per address length, so
        # that a check is one int.from_bytes and a few ANDs: no ipaddress object, no cache.
        self._home = address_ranges(self.networks)
        self._local = address_ranges(self.networks + self._LOCAL_EXTRA)

    def is_home(self, raw: bytes) -> bool:
        """Whether the raw 4- or 16-byte address lies in one of :attr:`networks`."""
        return in_ranges(raw, self._home)

    def is_home_text(self, ip: str) -> bool:
        """:meth:`is_home` for an address in text form (False for text that is no address)."""
        raw = _packed(ip)
        return raw is not None and self.is_home(raw)

    @staticmethod
    def is_multicast_text(ip: str) -> bool:
        """True for multicast and the IPv4 limited broadcast address."""
        raw = _packed(ip)
        if raw is None:
            return False
        if len(raw) == 4:
            return raw[0] & 0xF0 == 0xE0 or raw == b"\xff\xff\xff\xff"
        return raw[0] == 0xFF

    def is_local(self, raw: bytes) -> bool:
        """:meth:`is_home`, or multicast, loopback, link-local or the IPv4 limited broadcast."""
        return in_ranges(raw, self._local)


#: Address length in bytes (4, 16) -> ((network, netmask) as integers, ...).
AddressRanges = dict[int, tuple[tuple[int, int], ...]]


def address_ranges(networks: Iterable[IPNetwork]) -> AddressRanges:
    """``networks`` as integer masks, for :func:`in_ranges`."""
    out: dict[int, list[tuple[int, int]]] = {4: [], 16: []}
    for net in networks:
        out[4 if net.version == 4 else 16].append((int(net.network_address), int(net.netmask)))
    return {size: tuple(ranges) for size, ranges in out.items()}


def in_ranges(raw: bytes, ranges: AddressRanges) -> bool:
    """Whether the raw 4- or 16-byte address lies in one of ``ranges``: the same answer as
    ``ipaddress`` membership, with one int.from_bytes and a few ANDs."""
    value = int.from_bytes(raw)
    # A loop, not any() over a generator: half the time, and this runs for every new flow.
    for net, mask in ranges.get(len(raw), ()):  # noqa: SIM110
        if value & mask == net:
            return True
    return False


def _shared_text(
    cache: dict[bytes, str | None], raw: bytes, make: Callable[[bytes], str | None]
) -> str | None:
    """``make(raw)``, the same string object for the same bytes while ``cache`` holds it
    (started over beyond :data:`_MAX_SHARED_TEXTS` entries); None for empty bytes."""
    text = cache.get(raw)
    if text is None and raw:
        if len(cache) >= _MAX_SHARED_TEXTS:
            cache.clear()
        text = cache[raw] = make(raw)
    return text


def _packed(ip: str) -> bytes | None:
    """The raw form of a text address (None for text that is no address), as
    ``ipaddress.ip_address(ip).packed``: inet_pton first, ipaddress for what it refuses (a
    scoped IPv6 address ``fe80::1%eth0``)."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except (OSError, ValueError):
        try:
            return ipaddress.ip_address(ip).packed
        except ValueError:
            return None


class FlowTable:
    """Flows by 5-tuple; see the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        home: HomeNetworks,
        idle_timeout_tcp: float,
        idle_timeout_udp: float,
        active_timeout: float,
        max_flows: int,
        bin_seconds: int,
    ) -> None:
        self.home = home
        self.idle_timeout_tcp = idle_timeout_tcp
        self.idle_timeout_udp = idle_timeout_udp
        self.active_timeout = active_timeout
        self.max_flows = max_flows
        self.bin_seconds = bin_seconds
        self.flows: dict[FlowKey, Flow] = {}
        self.created = 0
        self.evicted = 0
        # Text forms shared by every flow of the same MAC or home address (a home has a few
        # hundred of each); bounded, so spoofed MACs and addresses cannot grow them.
        self._mac_names: dict[bytes, str | None] = {}
        self._home_ips: dict[bytes, str | None] = {}

    def __len__(self) -> int:
        return len(self.flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows.values())

    def _mac(self, raw: bytes) -> str | None:
        return _shared_text(self._mac_names, raw, mac_text)

    def _home_ip(self, raw: bytes) -> str:
        return _shared_text(self._home_ips, raw, ip_text)  # type: ignore[return-value]

    def add(
        self,
        key: FlowKey,
        ts: float,
        src_mac: bytes,
        dst_mac: bytes,
        on_evict: Callable[[Flow], None],
    ) -> Flow:
        """Create the flow for a packet whose key (in either direction) is not in the table."""
        if len(self.flows) >= self.max_flows:
            for flow in self.evict():
                on_evict(flow)
        proto, src, sport, dst, dport = key
        self.created += 1
        home = self.home
        local_orig = home.is_home(src)
        resp_home = home.is_home(dst)
        flow = Flow(
            uid=f"C{self.created:x}",
            key=key,
            proto=PROTO_NAMES.get(proto) or str(proto),
            orig_ip=self._home_ip(src) if local_orig else ip_text(src),
            orig_port=sport,
            resp_ip=self._home_ip(dst) if resp_home else ip_text(dst),
            resp_port=dport,
            orig_mac=self._mac(src_mac),
            resp_mac=self._mac(dst_mac),
            ts=ts,
            local_orig=local_orig,
            local_resp=resp_home or home.is_local(dst),
        )
        self.flows[key] = flow
        return flow

    def _finish(self, flow: Flow, reason: str) -> Flow:
        flow.end_reason = reason
        flow.state = conn_state(flow)
        close_bin(flow, self.bin_seconds)
        return flow

    def expire(self, now: float) -> list[Flow]:
        """Remove and return flows idle past their timeout or active past the active timeout."""
        ended = []
        tcp_idle = self.idle_timeout_tcp
        udp_idle = self.idle_timeout_udp
        active = self.active_timeout
        for key, flow in list(self.flows.items()):
            idle = now - flow.last_ts
            if idle > (tcp_idle if flow.proto == "tcp" else udp_idle):
                del self.flows[key]
                ended.append(self._finish(flow, "idle"))
            elif now - flow.first_ts > active:
                del self.flows[key]
                ended.append(self._finish(flow, "active"))
        return ended

    def evict(self) -> list[Flow]:
        """Remove and return the least recently active tenth of the table (at least one flow)."""
        count = max(1, len(self.flows) // 10)
        oldest = sorted(self.flows.values(), key=_LAST_TS)[:count]
        ended = []
        for flow in oldest:
            del self.flows[flow.key]
            ended.append(self._finish(flow, "evicted"))
        self.evicted += len(ended)
        return ended

    def drain(self) -> list[Flow]:
        """Remove and return every flow (end of capture)."""
        ended = [self._finish(flow, "shutdown") for flow in self.flows.values()]
        self.flows.clear()
        return ended


def close_bin(flow: Flow, bin_seconds: int) -> None:
    """Move the flow's open one-second bin into its ring of closed bins."""
    if flow.bin_sec < 0:
        return
    if flow.bin_bytes_up or flow.bin_bytes_down:
        bins = flow.bins
        if bins is None:
            bins = flow.bins = deque(maxlen=bin_seconds)
        bins.append((flow.bin_sec, flow.bin_bytes_up, flow.bin_bytes_down, flow.bin_pkts_up))
    flow.bin_sec = -1
    flow.bin_bytes_up = flow.bin_bytes_down = flow.bin_pkts_up = 0
