"""The packet loop: frames -> headers -> flows -> protocol observations -> events.

This is the only code that runs per packet. It decodes headers (:mod:`monitor.decode`), updates
the flow table and each flow's per-second bins, and hands the first payload packets of a flow to
the protocol parsers, turning what they find into events for the handler chain. Everything else
(devices, names, detection, rules, the store) is a handler and never runs per packet.

Guarantees: every frame a source yields is counted exactly once as ``decoded``, ``malformed`` or
``skipped`` (unsupported link type); a parser failure is counted in ``malformed_payloads`` and
never stops the loop; time only moves forward (a frame stamped earlier than the current second is
accounted to the current second) and a flow's ``last_ts`` never goes back, so no duration is
negative when the capture's clock jumps back; :meth:`Pipeline.finish` ends every flow (one
FlowEnd each), emits the last Ticks and then :class:`~monitor.events.Shutdown`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from monitor.decode import (
    KIND_ARP,
    KIND_IP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    UnsupportedLinkType,
    decode,
)
from monitor.errors import Malformed
from monitor.events import (
    AddressObserved,
    CaptureStats,
    ClientHelloObserved,
    DhcpObserved,
    DnsObserved,
    FlowEnd,
    FlowStart,
    HandlerChain,
    HttpRequestObserved,
    MdnsObserved,
    Shutdown,
    SsdpObserved,
    Tick,
)
from monitor.flows import FlowTable, HomeNetworks, close_bin, ip_text, mac_text
from monitor.model import Flow
from monitor.protocols.dhcp import parse_dhcp
from monitor.protocols.dns import parse_dns
from monitor.protocols.http import parse_http_request
from monitor.protocols.mdns import parse_mdns
from monitor.protocols.ssdp import parse_ssdp
from monitor.reassembly import HelloTracker

_SWEEP_EVERY_S = 5
_MAX_FRAGMENT_KEYS = 8192
_HTTP_METHODS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN")
_SERVICE_PORTS = frozenset({1883, 1900, 3478, 5228, 5353, 8008, 8009, 8080, 8443, 8883})
_NDP_NS = 135
_NDP_NA = 136


class Pipeline:
    """Runs packet sources through the decoder and flow table into a handler chain."""

    def __init__(
        self,
        chain: HandlerChain,
        *,
        home: HomeNetworks,
        idle_timeout_tcp: float = 300.0,
        idle_timeout_udp: float = 60.0,
        active_timeout: float = 3600.0,
        max_flows: int = 50_000,
        bin_seconds: int = 180,
    ) -> None:
        self.chain = chain
        self.home = home
        self.table = FlowTable(
            home=home,
            idle_timeout_tcp=idle_timeout_tcp,
            idle_timeout_udp=idle_timeout_udp,
            active_timeout=active_timeout,
            max_flows=max_flows,
            bin_seconds=bin_seconds,
        )
        self.bin_seconds = bin_seconds
        self.hellos = HelloTracker()
        self.packets = 0
        self.decoded = 0
        self.malformed = 0
        self.skipped: Counter[int] = Counter()
        self.non_ip = 0
        self.fragments = 0
        self.fragments_unmatched = 0
        self.bytes = 0
        self.malformed_payloads: Counter[str] = Counter()
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.started = time.monotonic()
        self.sources: list[Any] = []
        self._second = -1
        self._next_sweep = 0
        self._active: set[Flow] = set()
        self._fragments: dict[tuple, tuple[int, int]] = {}
        self._finished = False
        self._want_dns = chain.wants(DnsObserved)
        self._want_mdns = chain.wants(MdnsObserved)
        self._want_dhcp = chain.wants(DhcpObserved)
        self._want_ssdp = chain.wants(SsdpObserved)
        self._want_http = chain.wants(HttpRequestObserved)
        self._want_hello = chain.wants(ClientHelloObserved)
        self._want_address = chain.wants(AddressObserved)
        self._want_flow_start = chain.wants(FlowStart)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, source: Iterable, progress: Callable[[int], None] | None = None) -> None:
        """Read every frame of ``source`` (see :mod:`monitor.capture`); ``progress`` is called
        with the packet count every 65536 frames."""
        self.sources.append(source)
        emit = self.chain.emit
        table = self.table
        flows = table.flows
        active = self._active
        inspect = self._inspect
        on_other = self._on_other
        packets = self.packets
        decoded = self.decoded
        nbytes = self.bytes
        second = self._second
        last_ts = None
        try:
            for item in source:
                if item is None:  # a live source saying "nothing arrived": wall clock moves on
                    now = time.time()
                    if int(now) > second >= 0:
                        self._second = second
                        self.packets, self.decoded, self.bytes = packets, decoded, nbytes
                        self._rollover(int(now), now)
                        second = self._second
                    continue
                ts, linktype, frame = item
                packets += 1
                if not packets & 0xFFFF and progress is not None:
                    progress(packets)
                try:
                    d = decode(linktype, frame)
                except Malformed:
                    self.malformed += 1
                    continue
                except UnsupportedLinkType:
                    self.skipped[linktype] += 1
                    continue
                decoded += 1
                last_ts = ts
                sec = int(ts)
                if sec > second:
                    if second < 0:  # the first packet: the clock starts here
                        self.first_ts = ts
                        self._next_sweep = sec + _SWEEP_EVERY_S
                    self._second = second
                    # The counters live in locals here; handlers of the Tick read them.
                    self.packets, self.decoded, self.bytes = packets, decoded, nbytes
                    self._rollover(sec, ts)
                    second = self._second
                if d[0] != KIND_IP:
                    on_other(d, ts)
                    continue
                (
                    _k,
                    smac,
                    dmac,
                    src,
                    dst,
                    proto,
                    sport,
                    dport,
                    ip_len,
                    pay_len,
                    pay_off,
                    flags,
                    seq,
                    fragment,
                ) = d
                nbytes += ip_len
                if fragment is not None:
                    ports = self._fragment(fragment, sport, dport)
                    if ports is None:
                        continue
                    sport, dport = ports
                key = (proto, src, sport, dst, dport)
                flow = flows.get(key)
                from_orig = True
                if flow is None:
                    flow = flows.get((proto, dst, dport, src, sport))
                    if flow is not None:
                        from_orig = False
                    elif _sent_by_server(proto, flags, sport, dport):
                        # Caught mid-conversation (or SYN+ACK first): the client is the receiver.
                        from_orig = False
                        flow = table.add((proto, dst, dport, src, sport), ts, dmac, smac, self._end)
                        if self._want_flow_start:
                            emit(FlowStart(flow))
                    else:
                        flow = table.add(key, ts, smac, dmac, self._end)
                        if self._want_flow_start:
                            emit(FlowStart(flow))
                if ts > flow.last_ts:  # a clock jumping back never makes a duration negative
                    flow.last_ts = ts
                if from_orig:
                    flow.orig_pkts += 1
                    flow.orig_bytes += pay_len
                    flow.orig_ip_bytes += ip_len
                else:
                    flow.resp_pkts += 1
                    flow.resp_bytes += pay_len
                    flow.resp_ip_bytes += ip_len
                if flags & 0x07:
                    _tcp_history(flow, flags, from_orig)
                if pay_len > 0:
                    if flow.device_ip is not None:
                        if flow.bin_sec != second:
                            if flow.bin_sec >= 0:
                                close_bin(flow, self.bin_seconds)
                            flow.bin_sec = second
                            active.add(flow)
                        if from_orig == flow.device_is_orig:
                            flow.bin_bytes_up += pay_len
                            flow.bin_pkts_up += 1
                        else:
                            flow.bin_bytes_down += pay_len
                    if flow.inspect_left > 0 and (fragment is None or fragment[1] == 0):
                        inspect(flow, from_orig, frame, pay_off, proto, sport, dport, seq, ts, smac)
                elif proto == PROTO_ICMPV6 and self._want_address and sport in (_NDP_NS, _NDP_NA):
                    self._ndp(frame, pay_off, sport, src, smac, ts)
        finally:
            self.packets = packets
            self.decoded = decoded
            self.bytes = nbytes
            self._second = second
            if last_ts is not None:
                self.last_ts = last_ts

    # -- per-packet helpers (only for the packets that need them) ----------------------------

    def _fragment(self, fragment: tuple, sport: int, dport: int) -> tuple[int, int] | None:
        """Ports for a fragment: the first fragment records them, later ones look them up."""
        self.fragments += 1
        frag_key, offset, _more = fragment
        if offset == 0:
            if len(self._fragments) >= _MAX_FRAGMENT_KEYS:
                self._fragments.clear()
            self._fragments[frag_key] = (sport, dport)
            return sport, dport
        ports = self._fragments.get(frag_key)
        if ports is None:
            self.fragments_unmatched += 1
        return ports

    def _inspect(
        self,
        flow: Flow,
        from_orig: bool,
        frame: bytes,
        pay_off: int,
        proto: int,
        sport: int,
        dport: int,
        seq: int,
        ts: float,
        smac: bytes,
    ) -> None:
        """Hand a payload to the protocol parser its ports or first bytes point to."""
        payload = frame[pay_off:]
        if not payload:
            return
        try:
            if proto == PROTO_UDP:
                if sport == 53 or dport == 53:
                    flow.service = "dns"
                    if self._want_dns:
                        self._dns(flow, from_orig, payload, ts)
                    return  # DNS flows stay inspectable: every message names something
                if sport == 5353 or dport == 5353:
                    flow.service = "mdns"
                    if self._want_mdns:
                        announcement = parse_mdns(payload)
                        if announcement is not None:
                            self.chain.emit(
                                MdnsObserved(
                                    ts, mac_text(smac), _src_ip(flow, from_orig), announcement
                                )
                            )
                    return
                if sport in (67, 68) or dport in (67, 68):
                    flow.service = "dhcp"
                    if self._want_dhcp:
                        message = parse_dhcp(payload)
                        if message is not None:
                            self.chain.emit(DhcpObserved(ts, mac_text(smac), message))
                    return
                if sport == 1900 or dport == 1900:
                    flow.service = "ssdp"
                    if self._want_ssdp:
                        message = parse_ssdp(payload)
                        if message is not None:
                            self.chain.emit(
                                SsdpObserved(ts, mac_text(smac), _src_ip(flow, from_orig), message)
                            )
                    return
                flow.inspect_left -= 1
                if from_orig and payload[0] & 0xC0 == 0xC0:
                    hello = self.hellos.on_udp(flow.key, from_orig, payload)
                    if hello is not None:
                        self._hello(flow, "quic", hello, ts)
                return
            if proto == PROTO_TCP:
                flow.inspect_left -= 1
                if not from_orig:
                    return
                hello = self.hellos.on_tcp(flow.key, from_orig, seq, payload)
                if hello is not None:
                    self._hello(flow, "tls", hello, ts)
                elif payload[:4] in _HTTP_METHODS and self._want_http:
                    request = parse_http_request(payload)
                    if request is not None:
                        flow.service = flow.service or "http"
                        self.chain.emit(HttpRequestObserved(ts, flow, request))
                return
            flow.inspect_left = 0
        except Malformed:
            self.malformed_payloads[flow.service or f"{flow.proto}/{min(sport, dport)}"] += 1

    def _hello(self, flow: Flow, transport: str, hello: Any, ts: float) -> None:
        flow.service = transport
        flow.inspect_left = 0
        if self._want_hello:
            self.chain.emit(ClientHelloObserved(ts, flow, transport, hello))

    def _dns(self, flow: Flow, from_orig: bool, payload: bytes, ts: float) -> None:
        message = parse_dns(payload)
        if message is None:
            return
        # The client is the side that asked: the sender of a query, the receiver of a response.
        client_is_orig = from_orig != message.is_response
        if client_is_orig:
            client_mac, client_ip, server_ip = flow.orig_mac, flow.orig_ip, flow.resp_ip
        else:
            client_mac, client_ip, server_ip = flow.resp_mac, flow.resp_ip, flow.orig_ip
        self.chain.emit(DnsObserved(ts, client_mac, client_ip, server_ip, message))

    def _on_other(self, d: tuple, ts: float) -> None:
        if d[0] == KIND_ARP:
            if self._want_address:
                sender_ip = ip_text(d[3])
                sender_mac = mac_text(d[6])
                if sender_mac and sender_ip != "0.0.0.0":
                    self.chain.emit(AddressObserved(ts, sender_mac, sender_ip, "arp"))
        else:
            self.non_ip += 1

    def _ndp(
        self, frame: bytes, off: int, icmp_type: int, src: bytes, smac: bytes, ts: float
    ) -> None:
        """Neighbour solicitation/advertisement: bind the sender's address to its MAC."""
        # ICMPv6 body after type/code/checksum: 4 reserved/flags bytes then the target address.
        target = frame[off + 4 : off + 20] if len(frame) >= off + 20 else b""
        if icmp_type == _NDP_NA and len(target) == 16:
            ip = ip_text(target)
        elif any(src):
            ip = ip_text(src)
        else:
            return
        mac = mac_text(smac)
        if mac:
            self.chain.emit(AddressObserved(ts, mac, ip, "ndp"))

    # -- time --------------------------------------------------------------------------------

    def _rollover(self, sec: int, ts: float) -> None:
        """Close the current second: Tick with its active flows, sweep timeouts."""
        closed = self._second
        active = list(self._active)
        self._active.clear()
        for flow in active:
            close_bin(flow, self.bin_seconds)
        emit = self.chain.emit
        if closed >= 0:
            emit(Tick(float(closed + 1), closed, active))
            if sec - closed > 1:
                emit(Tick(float(sec), sec - 1, []))
        self._second = sec
        if sec >= self._next_sweep:
            self._next_sweep = sec + _SWEEP_EVERY_S
            for flow in self.table.expire(ts):
                self._end(flow)

    def _end(self, flow: Flow) -> None:
        self._active.discard(flow)
        self.hellos.forget(flow.key)
        self.chain.emit(FlowEnd(flow))

    def finish(self) -> None:
        """End of capture: close the last second, end every flow, then Shutdown. Idempotent."""
        if self._finished:
            return
        self._finished = True
        if self._second >= 0:
            self._rollover(self._second + 1, float(self._second + 1))
        for flow in self.table.drain():
            self._end(flow)
        last = float(self._second) if self._second >= 0 else time.time()
        self.chain.emit(CaptureStats(last, self.stats()))
        self.chain.emit(Shutdown(last))

    # -- figures -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters of the run so far (the ``summary`` record of ``micwatch analyze``)."""
        seconds = time.monotonic() - self.started
        source_stats: dict[str, int] = Counter()
        for source in self.sources:
            stats = getattr(source, "stats", None)
            if stats is not None:
                source_stats.update(stats())
        return {
            "packets": self.packets,
            "decoded": self.decoded,
            "malformed": self.malformed,
            "skipped": sum(self.skipped.values()),
            "skipped_linktypes": {str(k): v for k, v in sorted(self.skipped.items())},
            "non_ip": self.non_ip,
            "fragments": self.fragments,
            "fragments_unmatched": self.fragments_unmatched,
            "malformed_payloads": dict(self.malformed_payloads),
            "bytes": self.bytes,
            "flows": self.table.created,
            "flows_active": len(self.table),
            "flows_evicted": self.table.evicted,
            "handler_errors": sum(self.chain.errors.values()),
            "capture": dict(source_stats),
            "seconds": round(seconds, 3),
            "pps": round(self.packets / seconds, 1) if seconds > 0 else 0.0,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def _sent_by_server(proto: int, flags: int, sport: int, dport: int) -> bool:
    """Whether the first packet seen of a flow came from its server (Zeek's heuristic): a TCP
    SYN+ACK, or, without a SYN, a packet from a well-known port to an ephemeral one."""
    if proto == PROTO_TCP and flags & TCP_SYN:
        return bool(flags & TCP_ACK)
    if proto not in (PROTO_TCP, PROTO_UDP):
        return False
    return sport < 1024 <= dport or (sport in _SERVICE_PORTS and dport not in _SERVICE_PORTS)


def _tcp_history(flow: Flow, flags: int, from_orig: bool) -> None:
    """Zeek-style history letters: S (SYN), h (SYN+ACK), F (FIN), R (RST); upper case for orig."""
    if flags & TCP_SYN:
        letter = "h" if flags & TCP_ACK and not from_orig else "S" if from_orig else "s"
    elif flags & TCP_RST:
        letter = "R" if from_orig else "r"
    elif flags & TCP_FIN:
        letter = "F" if from_orig else "f"
    else:
        return
    if letter not in flow.history:
        flow.history += letter


def _src_ip(flow: Flow, from_orig: bool) -> str:
    return flow.orig_ip if from_orig else flow.resp_ip
