"""The flow table: bidirectional flows keyed by their 5-tuple, with timeouts and a hard size cap.

Guarantees: a flow is in the table from its first packet until it ends by idle timeout, active
timeout, eviction (the table is over ``max_flows``) or shutdown; every ended flow is returned
exactly once by :meth:`FlowTable.expire`, :meth:`FlowTable.evict` or :meth:`FlowTable.drain`, with
``end_reason`` set and its final Zeek-style ``state`` computed. The table never holds more than
``max_flows`` flows after :meth:`FlowTable.add`: eviction removes the least recently active tenth.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections import deque
from collections.abc import Callable, Iterator

from monitor.decode import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from monitor.model import Flow

PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp", PROTO_ICMPV6: "icmp6"}

FlowKey = tuple  # (proto, src_bytes, sport, dst_bytes, dport)


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
        self._cache: dict[bytes, bool] = {}
        self._text_cache: dict[str, bool] = {}

    def is_home(self, raw: bytes) -> bool:
        cached = self._cache.get(raw)
        if cached is None:
            address = ipaddress.ip_address(raw)
            cached = any(address in net for net in self.networks if net.version == address.version)
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[raw] = cached
        return cached

    def is_home_text(self, ip: str) -> bool:
        """:meth:`is_home` for an address in text form (False for text that is no address)."""
        cached = self._text_cache.get(ip)
        if cached is None:
            try:
                cached = self.is_home(ipaddress.ip_address(ip).packed)
            except ValueError:
                cached = False
            if len(self._text_cache) > 65536:
                self._text_cache.clear()
            self._text_cache[ip] = cached
        return cached

    @staticmethod
    @functools.lru_cache(maxsize=65536)
    def is_multicast_text(ip: str) -> bool:
        """True for multicast and the IPv4 limited broadcast address."""
        try:
            return ipaddress.ip_address(ip).is_multicast or ip == "255.255.255.255"
        except ValueError:
            return False

    def is_local(self, raw: bytes) -> bool:
        if self.is_home(raw):
            return True
        address = ipaddress.ip_address(raw)
        return bool(
            address.is_multicast
            or address.is_loopback
            or address.is_link_local
            or (address.version == 4 and raw == b"\xff\xff\xff\xff")
        )


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
        self._mac_names: dict[bytes, str | None] = {}

    def __len__(self) -> int:
        return len(self.flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows.values())

    def _mac(self, raw: bytes) -> str | None:
        name = self._mac_names.get(raw)
        if name is None and raw:
            if len(self._mac_names) > 65536:
                self._mac_names.clear()
            name = self._mac_names[raw] = mac_text(raw)
        return name

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
        flow = Flow(
            uid=f"C{self.created:x}",
            key=key,
            proto=PROTO_NAMES.get(proto, str(proto)),
            orig_ip=ip_text(src),
            orig_port=sport,
            resp_ip=ip_text(dst),
            resp_port=dport,
            orig_mac=self._mac(src_mac),
            resp_mac=self._mac(dst_mac),
            ts=ts,
            local_orig=self.home.is_home(src),
            local_resp=self.home.is_local(dst),
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
        oldest = sorted(self.flows.items(), key=lambda item: item[1].last_ts)[:count]
        ended = []
        for key, flow in oldest:
            del self.flows[key]
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
