"""Test helpers for the TLS and QUIC tests: capture payloads, tshark's view, hello builders.

:func:`packets` is independent of monitor.capture/decode: dpkt reads the pcap/pcapng records and
the link, IP, TCP and UDP headers are cut here by hand, so truncated and corrupt packets still
yield whatever payload they carry (the malformed tests need exactly those). Link types:
Ethernet (with VLAN tags), BSD loopback, raw IPv4/IPv6, Linux SLL and SLL2, PPP; other link
types (802.11, radiotap, NFLOG) and IP fragments are skipped. :func:`tshark_hellos` is the
reference; the builders at the end make ClientHello messages and records from their parts.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dpkt

_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_IPV4, _IPV6 = 0x0800, 0x86DD
_VLAN = {0x8100, 0x88A8, 0x9100}
_IPV6_EXTENSIONS = {0, 43, 60}


@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP or UDP payload; ``orig`` is the side that sent first, ``seq`` is 0 for UDP."""

    frame: int
    proto: str
    flow: tuple[str, bytes, int, bytes, int]
    from_orig: bool
    seq: int
    payload: bytes


def _link_to_ip(linktype: int, buf: bytes) -> bytes | None:
    if linktype in (101, 12, 14, 228, 229):
        return buf
    if linktype == 0:
        return buf[4:]
    if linktype == 9:
        if buf[:2] == b"\xff\x03":
            buf = buf[2:]
        proto = struct.unpack_from(">H", buf)[0]
        return buf[2:] if proto in (0x0021, 0x0057) else None
    if linktype == 1:
        ethertype, pos = struct.unpack_from(">H", buf, 12)[0], 14
        while ethertype in _VLAN:
            ethertype, pos = struct.unpack_from(">H", buf, pos + 2)[0], pos + 4
    elif linktype == 113:
        ethertype, pos = struct.unpack_from(">H", buf, 14)[0], 16
    elif linktype == 276:
        ethertype, pos = struct.unpack_from(">H", buf, 0)[0], 20
    else:
        return None
    return buf[pos:] if ethertype in (_IPV4, _IPV6) else None


def _ip_to_transport(ip: bytes) -> tuple[int, bytes, bytes, bytes] | None:
    """(protocol, src, dst, transport bytes as captured) or None for fragments."""
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        if struct.unpack_from(">H", ip, 6)[0] & 0x3FFF:
            return None
        return ip[9], ip[12:16], ip[16:20], ip[ihl : max(total, ihl)]
    if ip[0] >> 4 == 6:
        proto, pos = ip[6], 40
        end = 40 + struct.unpack_from(">H", ip, 4)[0]
        while proto in _IPV6_EXTENSIONS and pos < end:
            proto, pos = ip[pos], pos + (ip[pos + 1] + 1) * 8
        return proto, ip[8:24], ip[24:40], ip[pos:end]
    return None


def _records(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        magic = handle.read(4)
        handle.seek(0)
        reader = dpkt.pcapng.Reader(handle) if magic == _PCAPNG_MAGIC else dpkt.pcap.Reader(handle)
        linktype = reader.datalink() & 0xFFFF
        for _, buf in reader:
            yield linktype, bytes(buf)


def packets(path: Path) -> Iterator[Packet]:
    """Every TCP and UDP packet of the capture, with its payload as captured (maybe empty)."""
    first_sender: dict[tuple[str, bytes, int, bytes, int], tuple[bytes, int]] = {}
    for frame, (linktype, buf) in enumerate(_records(path), start=1):
        try:
            ip = _link_to_ip(linktype, buf)
            parts = _ip_to_transport(ip) if ip else None
            if parts is None or parts[0] not in (6, 17):
                continue
            proto_num, src, dst, seg = parts
            sport, dport = struct.unpack_from(">HH", seg)
            if proto_num == 6:
                proto, seq = "tcp", struct.unpack_from(">I", seg, 4)[0]
                payload = seg[(seg[12] >> 4) * 4 :]
            else:
                proto, seq = "udp", 0
                payload = seg[8 : max(struct.unpack_from(">H", seg, 4)[0], 8)]
        except (struct.error, IndexError):
            continue
        ends = sorted([(src, sport), (dst, dport)])
        flow = (proto, ends[0][0], ends[0][1], ends[1][0], ends[1][1])
        sender = first_sender.setdefault(flow, (src, sport))
        yield Packet(frame, proto, flow, sender == (src, sport), seq, payload)


@dataclass(frozen=True, slots=True)
class TsharkHello:
    """What tshark dissects from one ClientHello frame (code points as integers, wire order)."""

    stream: str
    sslv2: bool
    sni: str | None
    alpn: tuple[str, ...]
    legacy_version: int
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    supported_versions: tuple[int, ...]
    groups: tuple[int, ...]
    ja4: str | None


_TSHARK_FIELDS = (
    "frame.number",
    "tcp.stream",
    "udp.stream",
    "tls.record.version",
    "tls.handshake.extensions_server_name",
    "tls.handshake.extensions_alpn_str",
    "tls.handshake.version",
    "tls.handshake.ciphersuite",
    "tls.handshake.extension.type",
    "tls.handshake.sig_hash_alg",
    "tls.handshake.sig_hash_alg_len",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_supported_group",
)


@cache
def tshark_has_field(tshark: str, field: str) -> bool:
    """True when this tshark knows the display field (``tls.handshake.ja4`` needs 4.2+)."""
    listing = subprocess.run([tshark, "-G", "fields"], capture_output=True, text=True, check=True)
    return f"\t{field}\t" in listing.stdout


def _signature_algorithms(
    extensions: tuple[int, ...], algorithms: tuple[int, ...], lengths: tuple[int, ...]
) -> tuple[int, ...]:
    """The signature_algorithms list alone: tshark's field also holds the lists of
    delegated_credentials (0x22) and signature_algorithms_cert (0x32), in extension order."""
    lists = [e for e in extensions if e in (0x0D, 0x22, 0x32)]
    pos = 0
    for ext, length in zip(lists, lengths, strict=True):
        if ext == 0x0D:
            return algorithms[pos : pos + length // 2]
        pos += length // 2
    return ()


@cache
def tshark_hellos(tshark: str, path: Path) -> dict[int, TsharkHello]:
    """tshark's ClientHellos of a capture (TLS over TCP and QUIC), keyed by frame number.

    ``stream`` names tshark's TCP or UDP conversation (``"tcp 3"``) so callers can keep the
    first ClientHello of each (a second one follows a HelloRetryRequest).
    """
    fields = _TSHARK_FIELDS + (
        ("tls.handshake.ja4",) if tshark_has_field(tshark, "tls.handshake.ja4") else ()
    )
    command = [tshark, "-n", "-r", str(path), "-Y", "tls.handshake.type == 1", "-T", "fields"]
    for field in fields:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    hellos = {}
    for line in out.splitlines():
        values = line.split("\t")
        values += [""] * (len(fields) + 1 - len(values))

        def codes(text: str) -> tuple[int, ...]:
            return tuple(int(value, 0) for value in text.split(",") if value)

        extensions = codes(values[8])
        hellos[int(values[0])] = TsharkHello(
            stream=f"tcp {values[1]}" if values[1] else f"udp {values[2]}",
            sslv2="0x0002" in values[3].split(","),
            sni=values[4] or None,
            alpn=tuple(values[5].split(",")) if values[5] else (),
            legacy_version=int(values[6].split(",")[0], 0) if values[6] else 0,
            cipher_suites=codes(values[7]),
            extensions=extensions,
            signature_algorithms=_signature_algorithms(
                extensions, codes(values[9]), codes(values[10])
            ),
            supported_versions=codes(values[11]),
            groups=codes(values[12]),
            ja4=values[13] or None,
        )
    return hellos


def first_per_stream(hellos: dict[int, TsharkHello]) -> dict[int, TsharkHello]:
    """The first ClientHello of each conversation, SSLv2-format ones left out."""
    first: dict[str, int] = {}
    for frame, hello in sorted(hellos.items()):
        if not hello.sslv2:
            first.setdefault(hello.stream, frame)
    return {frame: hellos[frame] for frame in first.values()}


def extension(ext_type: int, data: bytes) -> bytes:
    """One TLS extension: type, 16-bit length, data."""
    return ext_type.to_bytes(2) + len(data).to_bytes(2) + data


def u16_vector(values: list[int], width: int = 2) -> bytes:
    """A vector of 16-bit code points with a ``width``-byte length prefix."""
    return (2 * len(values)).to_bytes(width) + b"".join(v.to_bytes(2) for v in values)


def server_name(name: bytes) -> bytes:
    """The server_name extension data naming one host."""
    entry = b"\x00" + len(name).to_bytes(2) + name
    return len(entry).to_bytes(2) + entry


def alpn(*names: bytes) -> bytes:
    """The ALPN extension data listing ``names``."""
    entries = b"".join(bytes([len(name)]) + name for name in names)
    return len(entries).to_bytes(2) + entries


def client_hello(
    ciphers: list[int], extensions: list[bytes], legacy_version: int = 0x0303
) -> bytes:
    """A ClientHello handshake message (4-byte header included) built from its parts."""
    block = b"".join(extensions)
    body = (
        legacy_version.to_bytes(2)
        + bytes(32)  # random
        + b"\x20"
        + bytes(range(32))  # session id
        + u16_vector(ciphers)
        + b"\x01\x00"  # compression: null
        + len(block).to_bytes(2)
        + block
    )
    return b"\x01" + len(body).to_bytes(3) + body


def records(handshake: bytes, size: int = 1 << 14) -> bytes:
    """``handshake`` wrapped in TLS handshake records of at most ``size`` bytes each."""
    chunks = [handshake[i : i + size] for i in range(0, len(handshake), size)]
    return b"".join(b"\x16\x03\x01" + len(c).to_bytes(2) + c for c in chunks)
