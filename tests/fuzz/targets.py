"""Fuzz targets: one function per parser, each with the only exceptions its contract allows.

A target takes arbitrary bytes and calls the code under test the way the pipeline does. It lets
through (ignores) the exceptions the parser's documented guarantee allows, typically
:class:`~monitor.errors.Malformed`, and nothing else: any other exception, or a broken invariant
(checked with ``raise AssertionError``), is a crash that libFuzzer records.

Seeds are real payloads cut out of the captures in ``tests/data`` (:func:`seeds`), so the fuzzer
starts from DNS, mDNS, DHCP, SSDP, HTTP, TLS and QUIC messages as devices send them.

Multi-part inputs (segments for the TLS assembler, datagrams for the QUIC assembler) are framed
as ``[2-byte big-endian length][bytes]`` repeated (:func:`split_frames`); for TCP each frame
starts with a 4-byte sequence number.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.capture_pcapng import read_pcapng
from monitor.decode import SUPPORTED_LINKTYPES, UnsupportedLinkType, decode
from monitor.errors import Malformed
from monitor.pcapfile import Record, Tally, detect_format, read_pcap
from monitor.protocols.dhcp import parse_dhcp
from monitor.protocols.dns import parse_dns, resolve_chain
from monitor.protocols.http import parse_http_request
from monitor.protocols.mdns import parse_mdns
from monitor.protocols.quic import QuicClientHelloAssembler, parse_frames, parse_initial
from monitor.protocols.ssdp import parse_ssdp
from monitor.protocols.tls import ClientHelloAssembler, StreamBuffer, parse_client_hello

DATA = Path(__file__).resolve().parent.parent / "data"
REGRESSIONS = DATA / "regressions"
_LINKTYPES = [*sorted(SUPPORTED_LINKTYPES), 105, 127, 9999]  # plus some micwatch does not read


def split_frames(data: bytes) -> Iterator[bytes]:
    """The ``[u16 length][bytes]`` frames of ``data``; a short last frame is kept as it is."""
    pos = 0
    while pos + 2 <= len(data):
        length = data[pos] << 8 | data[pos + 1]
        yield data[pos + 2 : pos + 2 + length]
        pos += 2 + length


def join_frames(parts: list[bytes]) -> bytes:
    """The inverse of :func:`split_frames` (each part cut to 65535 bytes)."""
    return b"".join(struct.pack("!H", len(p[:65535])) + p[:65535] for p in parts)


def _parser(parse: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        with contextlib.suppress(Malformed):
            parse(data)

    return target


def fuzz_dns(data: bytes) -> None:
    """``parse_dns`` and the CNAME chain walk raise nothing but ``Malformed``."""
    try:
        message = parse_dns(data)
    except Malformed:
        return
    if message is not None:
        resolve_chain(message)


def fuzz_tls_hello(data: bytes) -> None:
    """``parse_client_hello`` (JA4 included) raises nothing but ``Malformed``."""
    for transport in ("tls", "quic"):
        with contextlib.suppress(Malformed):
            parse_client_hello(data, transport)


def fuzz_quic_initial(data: bytes) -> None:
    """``parse_initial`` (header walk, decryption, frame parsing) raises only ``Malformed``."""
    with contextlib.suppress(Malformed):
        parse_initial(data)


def fuzz_quic_frames(data: bytes) -> None:
    """A decrypted Initial payload: ``parse_frames``, CRYPTO data joined by offset, then the
    ClientHello parser, as the QUIC assembler does after decryption; only ``Malformed``.

    (Fuzzed datagrams almost never pass AEAD decryption, so ``quic_initial`` alone cannot reach
    this code.)"""
    try:
        frames = parse_frames(data)
    except Malformed:
        return
    stream = StreamBuffer()
    for offset, piece in frames:
        stream.add(offset, piece)
    if stream.data[:1] == b"\x01":
        with contextlib.suppress(Malformed):
            parse_client_hello(bytes(stream.data), "quic")


def _varint(value: int) -> bytes:
    """``value`` as a QUIC variable-length integer (2 or 4 bytes)."""
    if value < 1 << 14:
        return struct.pack("!H", 0x4000 | value)
    return struct.pack("!I", 0x80000000 | value)


def _crypto_frames(hello: bytes) -> bytes:
    """A plausible Initial payload carrying ``hello``: an ACK, the hello in two CRYPTO frames
    (second half first), a PING and PADDING."""
    half = len(hello) // 2
    ack = b"\x02" + _varint(0) + _varint(0) + _varint(0) + _varint(0)
    late = b"\x06" + _varint(half) + _varint(len(hello) - half) + hello[half:]
    early = b"\x06" + _varint(0) + _varint(half) + hello[:half]
    return ack + late + early + b"\x01" + b"\x00" * 16


def fuzz_tls_assembler(data: bytes) -> None:
    """``ClientHelloAssembler.feed`` never raises and yields at most one ClientHello."""
    assembler = ClientHelloAssembler()
    found = 0
    for frame in split_frames(data):
        seq = int.from_bytes(frame[:4]) if len(frame) >= 4 else 0
        if assembler.feed(seq, frame[4:]) is not None:
            found += 1
    if found > 1 or (found == 1 and assembler.hello is None):
        raise AssertionError("assembler returned more than one ClientHello")


def fuzz_quic_assembler(data: bytes) -> None:
    """``QuicClientHelloAssembler.feed`` never raises and yields at most one ClientHello."""
    assembler = QuicClientHelloAssembler()
    found = sum(assembler.feed(frame) is not None for frame in split_frames(data))
    if found > 1:
        raise AssertionError("assembler returned more than one ClientHello")


def fuzz_decode(data: bytes) -> None:
    """``decode`` raises only ``Malformed`` or ``UnsupportedLinkType``; offsets stay in range."""
    if not data:
        return
    linktype = _LINKTYPES[data[0] % len(_LINKTYPES)]
    frame = data[1:]
    try:
        decoded = decode(linktype, frame)
    except (Malformed, UnsupportedLinkType):
        return
    if decoded[0] == 0 and (decoded[9] < 0 or decoded[10] < 0):  # KIND_IP
        raise AssertionError(f"negative payload length or offset: {decoded}")


def _records(data: bytes) -> list[Record]:
    """Read ``data`` as a capture file in chunks whose size its last byte picks."""
    step = (data[-1] if data else 0) % 61 + 1
    chunks = iter([data[i : i + step] for i in range(0, len(data), step)])
    tally = Tally()
    kind = detect_format(data[:12])
    if kind == "pcap":
        records = list(read_pcap(chunks, tally))
    elif kind == "pcapng":
        records = list(read_pcapng(chunks, tally))
    else:
        return []
    if tally.packets != len(records) or tally.bytes != sum(len(r[2]) for r in records):
        raise AssertionError("tally disagrees with the records yielded")
    return records


def fuzz_capture(data: bytes) -> None:
    """The pcap/pcapng readers never raise, keep an exact tally, and their frames decode safely."""
    for _ts, linktype, frame in _records(data):
        with contextlib.suppress(Malformed, UnsupportedLinkType):
            decode(linktype, frame)


@dataclass(frozen=True)
class Target:
    """A fuzz target and which payloads from the test captures seed it."""

    function: Callable[[bytes], None]
    udp_ports: frozenset[int] = frozenset()
    tcp_ports: frozenset[int] = frozenset()


TARGETS: dict[str, Target] = {
    "dns": Target(fuzz_dns, udp_ports=frozenset({53})),
    "mdns": Target(_parser(parse_mdns), udp_ports=frozenset({5353})),
    "dhcp": Target(_parser(parse_dhcp), udp_ports=frozenset({67, 68})),
    "ssdp": Target(_parser(parse_ssdp), udp_ports=frozenset({1900})),
    "http": Target(_parser(parse_http_request), tcp_ports=frozenset({80, 8080})),
    "tls_hello": Target(fuzz_tls_hello, tcp_ports=frozenset({443})),
    "quic_initial": Target(fuzz_quic_initial, udp_ports=frozenset({443})),
    "quic_frames": Target(fuzz_quic_frames, tcp_ports=frozenset({443})),
    "tls_assembler": Target(fuzz_tls_assembler, tcp_ports=frozenset({443})),
    "quic_assembler": Target(fuzz_quic_assembler, udp_ports=frozenset({443})),
    "decode": Target(fuzz_decode),
    "capture": Target(fuzz_capture),
}

SEED_CAPTURES = (
    "iot/iotsentinel_D-LinkCam_Setup-A-2-STA.pcap",
    "iot/iotsentinel_D-LinkHomeHub_Setup-C-3-STA.pcap",
    "iot/lifecycle_xiaodu_plug_setup.pcap",
    "iot/echo349_home_wifi.pcapng",
    "protocols/zeek_mdns.pcap",
    "protocols/zeek_dhcp.pcap",
    "protocols/zeek_quic_firefox_google.pcap",
    "protocols/zeek_quic_chromium_fragmented_initial.pcap",
    "protocols/ndpi_tls_huge_clienthello.pcapng",
    "protocols/zeek_linux_sll2.pcap",
    "malformed/zeek_dns_corrupt.pcap",
)


def _read(path: Path) -> list[Record]:
    data = path.read_bytes()
    tally = Tally()
    reader = read_pcap if detect_format(data[:12]) == "pcap" else read_pcapng
    return list(reader(iter([data]), tally))


def seeds(name: str, limit: int = 64) -> list[bytes]:
    """Up to ``limit`` distinct seed inputs for target ``name``, cut from the test captures."""
    target = TARGETS[name]
    out: dict[bytes, None] = {}
    streams: dict[tuple, list[bytes]] = {}
    for rel in SEED_CAPTURES:
        for _ts, linktype, frame in _read(DATA / rel):
            if name == "decode":
                index = _LINKTYPES.index(linktype) if linktype in _LINKTYPES else 0
                out[bytes([index]) + frame[:512]] = None
                continue
            try:
                d = decode(linktype, frame)
            except (Malformed, UnsupportedLinkType):
                continue
            if d[0] != 0 or d[9] <= 0:
                continue
            payload = frame[d[10] : d[10] + d[9]]
            ports = target.udp_ports if d[5] == 17 else target.tcp_ports if d[5] == 6 else ()
            if d[6] not in ports and d[7] not in ports:
                continue
            if name in ("tls_assembler", "quic_assembler"):
                prefix = struct.pack("!I", d[12]) if d[5] == 6 else b""
                streams.setdefault((d[3], d[4], d[6], d[7]), []).append(prefix + payload)
            elif name == "tls_hello":
                if payload[:1] == b"\x16" and payload[5:6] == b"\x01":
                    out[payload[5:]] = None
            elif name == "quic_frames":
                if payload[:1] == b"\x16" and payload[5:6] == b"\x01":
                    out[_crypto_frames(payload[5:])] = None
            else:
                out[payload] = None
    for parts in streams.values():
        out[join_frames(parts[:8])] = None
    if name == "capture":
        for rel in (*SEED_CAPTURES[:4], "malformed/ndpi_dhcp_fuzz.pcapng"):
            out[(DATA / rel).read_bytes()[:4096]] = None
    return list(out)[:limit]


def regressions(name: str) -> list[Path]:
    """The saved crash inputs of target ``name`` (``tests/data/regressions/<name>/*``)."""
    folder = REGRESSIONS / name
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
