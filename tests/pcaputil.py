"""Test helpers: a capture file's UDP/TCP payloads (dpkt) and tshark's view of the same file.

Deliberately independent of :mod:`monitor.capture`/:mod:`monitor.decode` so protocol-parser
tests feed real packets without depending on the production decoder. Guarantees of
:func:`segments`: one :class:`Segment` per unfragmented (or first-fragment) IPv4/IPv6 UDP or TCP
packet, in file order, numbered like tshark's ``frame.number``; packets it cannot decode (other
link types, garbage headers, later IP fragments) are skipped, never raised.
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt
from hypothesis import strategies as st

_ETHERNET, _NULL, _RAW, _LOOP, _RAW_BSD, _IPV4, _IPV6, _SLL, _SLL2, _WLAN, _RADIOTAP = (
    1, 0, 101, 108, 12, 228, 229, 113, 276, 105, 127
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Segment:
    """One transport payload: ``proto`` is ``"udp"`` or ``"tcp"``; ``frame`` counts from 1."""

    frame: int
    ts: float
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


def _network_layer(linktype: int, frame: bytes) -> dpkt.Packet | None:
    if linktype == _ETHERNET:
        return dpkt.ethernet.Ethernet(frame).data
    if linktype == _SLL:
        return dpkt.sll.SLL(frame).data
    if linktype == _SLL2:
        return dpkt.sll2.SLL2(frame).data
    if linktype in (_WLAN, _RADIOTAP):
        wlan = dpkt.radiotap.Radiotap(frame).data if linktype == _RADIOTAP else frame
        if not isinstance(wlan, dpkt.ieee80211.IEEE80211):
            wlan = dpkt.ieee80211.IEEE80211(wlan)
        if wlan.type != dpkt.ieee80211.DATA_TYPE or wlan.wep:
            return None
        return dpkt.llc.LLC(wlan.data).data
    if linktype in (_NULL, _LOOP):
        frame = frame[4:]
    elif linktype not in (_RAW, _RAW_BSD, _IPV4, _IPV6):
        return None
    version = frame[0] >> 4 if frame else 0
    if version == 4:
        return dpkt.ip.IP(frame)
    return dpkt.ip6.IP6(frame) if version == 6 else None


def _segment(frame: int, ts: float, ip: dpkt.Packet) -> Segment | None:
    if isinstance(ip, dpkt.ip.IP):
        if ip.offset:
            return None
        family = socket.AF_INET
    elif isinstance(ip, dpkt.ip6.IP6):
        family = socket.AF_INET6
    else:
        return None
    transport = ip.data
    if isinstance(transport, dpkt.udp.UDP):
        proto = "udp"
    elif isinstance(transport, dpkt.tcp.TCP):
        proto = "tcp"
    else:
        return None
    return Segment(
        frame=frame,
        ts=float(ts),
        proto=proto,
        src=socket.inet_ntop(family, ip.src),
        dst=socket.inet_ntop(family, ip.dst),
        sport=transport.sport,
        dport=transport.dport,
        payload=bytes(transport.data),
    )


def segments(path: Path, proto: str | None = None) -> Iterator[Segment]:
    """Every decodable UDP/TCP segment in ``path`` (pcap or pcapng), optionally one ``proto``."""
    with path.open("rb") as fh:
        reader = dpkt.pcap.UniversalReader(fh)
        linktype = reader.datalink() & 0xFFFF  # upper bits may carry the FCS length
        for number, (ts, frame) in enumerate(reader, start=1):
            try:
                segment = _segment(number, ts, _network_layer(linktype, frame))
            except (dpkt.UnpackError, ValueError, IndexError, AttributeError):
                continue
            if segment is not None and (proto is None or segment.proto == proto):
                yield segment


def udp_payloads(path: Path, port: int | None = None) -> Iterator[Segment]:
    """UDP segments of ``path``; with ``port``, only those with that source or destination."""
    for segment in segments(path, "udp"):
        if port is None or port in (segment.sport, segment.dport):
            yield segment


def captures(*folders: str) -> list[Path]:
    """The capture files under ``tests/data/<folder>``, sorted by name."""
    data = Path(__file__).parent / "data"
    return sorted(path for folder in folders for path in (data / folder).glob("*.pcap*"))


TSHARK_FILTER = "dns || mdns || dhcp || http.request || ssdp || tcp.analysis.retransmission"
TSHARK_FIELDS = (
    "frame.protocols",
    "udp.srcport",
    "udp.dstport",
    "dns.qry.name",
    "dns.a",
    "dns.aaaa",
    "dns.cname",
    "dhcp.hw.mac_addr",
    "dhcp.option.dhcp",
    "dhcp.option.hostname",
    "dhcp.option.vendor_class_id",
    "dhcp.option.request_list_item",
    "http.request.method",
    "http.host",
    "http.user_agent",
    "http.server",
    "tcp.segment",
    "tcp.analysis.retransmission",
)


@functools.cache
def tshark_layers(tshark: str, path: Path) -> dict[int, dict[str, list[str]]]:
    """tshark's ``TSHARK_FIELDS`` for each frame matching ``TSHARK_FILTER``, by frame number.

    One tshark run per file, cached for the test session and shared by the protocol tests.
    """
    command = [tshark, "-n", "-r", str(path), "-Y", TSHARK_FILTER, "-T", "json"]
    for field in ("frame.number", *TSHARK_FIELDS):
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    frames: dict[int, dict[str, list[str]]] = {}
    for packet in json.loads(output or "[]"):
        layers = packet["_source"]["layers"]
        frames[int(layers.pop("frame.number")[0])] = layers
    return frames


def mutations(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Hypothesis strategy: a seed payload with a few bytes flipped, cut, inserted or duplicated."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(data)))
            match draw(st.sampled_from(("flip", "cut", "insert", "repeat"))):
                case "flip" if at < len(data):
                    data[at] = draw(st.integers(0, 255))
                case "cut":
                    del data[at:]
                case "insert":
                    data[at:at] = draw(st.binary(min_size=1, max_size=8))
                case "repeat":
                    data[at:at] = data[at : at + draw(st.integers(1, 64))]
        return bytes(data)

    return mutate()
