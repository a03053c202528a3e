#!/usr/bin/env python3
"""Generate a deterministic, realistic home-network capture for the micwatch benchmark.

``python bench/gen_home_traffic.py [--packets N] [--seed S] OUT.pcap`` writes a classic pcap
(Ethernet link type, microsecond timestamps) of exactly ``N`` packets (default 400,000) seen on
a /24 home LAN: a router at 192.168.1.1 serving DHCP and DNS, and 16 devices with stable MACs
whose OUIs are real vendors' (the iPhone uses a randomised, locally administered MAC).

What is in it, all built with :mod:`struct` (no scapy; nothing is ever sent):

* DHCP DISCOVER/OFFER/REQUEST/ACK with hostnames (option 12), parameter lists (55), vendor
  classes (60) and client identifiers (61), renewals; ARP; NTP.
* mDNS announcements (``_googlecast._tcp`` with ``md=``, ``_hap._tcp``, ``_airplay._tcp``...)
  and queries; SSDP NOTIFY and M-SEARCH.
* DNS queries and answers (A and AAAA, CNAME chains) for every name then contacted.
* TLS 1.3 over TCP 443: three-way handshake, a real-looking ClientHello (SNI equal to the name
  looked up, ALPN, supported_versions, key_share); Chromium-like stacks add GREASE and a
  post-quantum X25519MLKEM768 share of 1,216 bytes, so their ClientHello spans two TCP
  segments; the server's flight, application data, FIN.
* QUIC v1: client Initials really protected with the Initial keys derived from the DCID
  (HKDF-SHA256 with the v1 salt, AES-128-GCM, AES-ECB header protection), post-quantum
  ClientHellos spread over two Initial packets; the server's Initial (decryptable too), opaque
  Handshake packets, then short-header packets.
* Bulk downloads over HTTPS and plain HTTP (Host, User-Agent): MTU-sized segments downstream,
  an ACK every second segment upstream; they make most of the packets. A QUIC video stream
  downstream, a camera's UDP video upstream.
* Voice-like bursts from the smart speaker: 3-8 s at 15-30 kB/s upstream in TLS records of
  300-1,400 bytes on its long-lived connection to an Alexa-like name, then a reply downstream.

IPv4 header, TCP and UDP checksums are all computed (valid). Timestamps are non-decreasing and
span ``N / 450`` seconds (at least 60, at most 1,200: ~15 minutes by default). The same
``--packets`` and ``--seed`` give the same bytes. Names and addresses are illustrative: realistic,
not a recording of any household. Below ~1,000 packets the fixed background traffic alone
exceeds ``N`` and the capture is cut at ``N`` packets.
"""

from __future__ import annotations

import argparse
import heapq
import hmac
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from operator import itemgetter
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Item = tuple[int, str, bytes]
"""One packet: (timestamp in microseconds since the epoch, kind, Ethernet frame)."""
Peer = tuple[bytes, bytes, int]
"""One end of a packet: (MAC, IPv4 address, port)."""

KINDS = ("arp", "dhcp", "dns", "mdns", "ssdp", "ntp", "tcp", "quic", "udp")
"""Packet kinds counted in :class:`Summary` (``tcp`` includes TLS and HTTP, ``udp`` the
camera's video)."""

START_US = 1_741_975_200 * 1_000_000  # 2025-03-14 18:00:00 UTC
SECOND, MS = 1_000_000, 1_000
MSS = 1448  # 1500 - 20 (IPv4) - 32 (TCP with the timestamp option)
CAMERA_PORT = 32761
QUIC_V1_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
GREASE = tuple(0x0A0A + 0x1010 * i for i in range(16))
_ETH, _IP = struct.Struct("!6s6sH"), struct.Struct("!BBHHHBBH4s4s")
_TCP, _UDP = struct.Struct("!HHIIBBHHH"), struct.Struct("!HHHH")
_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s6s10x64x128xI")
_SYN, _FIN, _PSH, _ACK = 0x02, 0x01, 0x08, 0x10


def mac(text: str) -> bytes:
    """``"aa:bb:..."`` as 6 bytes."""
    return bytes.fromhex(text.replace(":", ""))


def ip4(text: str) -> bytes:
    """A dotted IPv4 address as 4 bytes."""
    return bytes(int(part) for part in text.split("."))


ROUTER_MAC, ROUTER_IP = mac("38:10:d5:a4:c2:01"), ip4("192.168.1.1")  # AVM (FRITZ!Box)
BROADCAST = (b"\xff" * 6, b"\xff" * 4)
MDNS = (mac("01:00:5e:00:00:fb"), ip4("224.0.0.251"), 5353)
SSDP = (mac("01:00:5e:7f:ff:fa"), ip4("239.255.255.250"), 1900)


# -- checksummed frames ------------------------------------------------------------------------


def _wsum(data: bytes) -> int:
    """``data`` as one integer congruent (mod 0xFFFF) to the sum of its 16-bit words."""
    value = int.from_bytes(data, "big")
    return value << 8 if len(data) & 1 else value


def _fold(total: int) -> int:
    """The Internet checksum of words whose sum is congruent to ``total`` (mod 0xFFFF)."""
    return 0xFFFF - (total % 0xFFFF or 0xFFFF)


def ipv4_frame(src: Peer, dst: Peer, proto: int, l4: bytes, ttl: int, ident: int) -> bytes:
    """An Ethernet frame carrying ``l4`` in IPv4, header checksum valid, padded to 60 bytes."""
    flags = 0x4000 if dst[1][0] < 224 and dst[1] != BROADCAST[1] else 0  # DF unless multicast
    total = 20 + len(l4)
    words = 0x4500 + total + ident + flags + (ttl << 8 | proto)
    csum = _fold(words + int.from_bytes(src[1], "big") + int.from_bytes(dst[1], "big"))
    ip = _IP.pack(0x45, 0, total, ident, flags, ttl, proto, csum, src[1], dst[1])
    frame = _ETH.pack(dst[0], src[0], 0x0800) + ip + l4
    return frame if len(frame) >= 60 else frame + bytes(60 - len(frame))


def tcp_segment(src: Peer, dst: Peer, seq: int, ack: int, flags: int, opts: bytes,
                payload: bytes, psum: int | None = None) -> bytes:  # fmt: skip
    """A TCP header with ``opts`` and ``payload``, checksum over the pseudo-header included
    (``psum``: the payload's precomputed :func:`_wsum`)."""
    hlen = 20 + len(opts)
    head = _TCP.pack(src[2], dst[2], seq, ack, hlen << 2, flags, 502, 0, 0) + opts
    total = _wsum(head) + (_wsum(payload) if psum is None else psum) + 6 + hlen + len(payload)
    total += int.from_bytes(src[1], "big") + int.from_bytes(dst[1], "big")
    return head[:16] + _fold(total).to_bytes(2, "big") + head[18:] + payload


def udp_datagram(src: Peer, dst: Peer, payload: bytes) -> bytes:
    """A UDP header and ``payload`` with its checksum (a computed 0 is sent as 0xFFFF)."""
    length = 8 + len(payload)
    head = _UDP.pack(src[2], dst[2], length, 0)
    total = _wsum(head) + _wsum(payload) + 17 + length
    total += int.from_bytes(src[1], "big") + int.from_bytes(dst[1], "big")
    return head[:6] + (_fold(total) or 0xFFFF).to_bytes(2, "big") + payload


# -- the home ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """One device: addressing, DHCP identity, what it announces and which names it contacts.

    ``tls`` is its ClientHello style: ``chrome-pq`` (GREASE and a post-quantum key share),
    ``chrome`` (GREASE), ``apple`` or ``iot``. ``mdns`` holds (service, instance, port, TXT
    strings); ``ssdp`` a SERVER string; ``web`` names visited over TLS, ``quic`` over QUIC;
    ``weight`` how busy it is.
    """

    key: str
    mac: bytes
    ip: bytes
    hostname: str
    params: bytes
    vendor_class: str | None
    ttl: int
    tls: str
    web: tuple[str, ...]
    quic: tuple[str, ...] = ()
    weight: float = 1.0
    mdns: tuple[tuple[str, str, int, tuple[str, ...]], ...] = ()
    ssdp: str | None = None
    ntp: str = "pool.ntp.org"

    def peer(self, port: int = 0) -> Peer:
        """This device as one end of a packet."""
        return self.mac, self.ip, port


def _dev(key: str, mac_text: str, last: int, hostname: str, params: str, vendor: str | None,
         ttl: int, tls: str, web: str, quic: str = "", weight: float = 1.0, mdns: tuple = (),
         ssdp: str | None = None, ntp: str = "pool.ntp.org") -> Device:  # fmt: skip
    return Device(key, mac(mac_text), ip4(f"192.168.1.{last}"), hostname,
                  bytes(int(p) for p in params.split(",")), vendor, ttl, tls, tuple(web.split()),
                  tuple(quic.split()), weight, mdns, ssdp, ntp)  # fmt: skip


_CAST = (
    "id=4f1c2d8e9a7b6c5d4e3f2a1b0c9d8e7f",
    "cd=7A3C1E9B5D2F4A6C8E0B1D3F5A7C9E1B",
    "rm=",
    "ve=05",
    "ic=/setup/icon.png",
    "ca=199172",
    "st=0",
    "bs=FA8FCA7E21D3",
    "nf=1",
    "rs=",
)
_HAP = ("c#=4", "ff=2", "pv=1.1", "s#=1", "sf=0")
DEVICES: tuple[Device, ...] = (
    _dev("echo", "44:65:0d:3f:2a:1b", 21, "amazon-3f2a1b9c4", "1,3,6,15,28,33,42", None, 64, "iot",
         "device-metrics-us.amazon.com api.amazonalexa.com arcus-uswest.amazon.com "
         "msh.amazon.com fireoscaptiveportal.com", weight=1.2),
    _dev("nest", "f4:f5:d8:6e:91:0c", 22, "Google-Nest-Mini", "1,3,6,15,28,33", None, 64, "chrome",
         "www.googleapis.com play.googleapis.com clients3.google.com", "www.google.com", 0.8,
         (("_googlecast._tcp", "Google-Nest-Mini-4f1c2d8e", 8009,
           (*_CAST, "md=Google Nest Mini", "fn=Kitchen speaker")),), ntp="time.google.com"),
    _dev("chromecast", "54:60:09:b2:7d:44", 23, "Chromecast", "1,3,6,15,28,33", None, 64, "chrome",
         "clients1.google.com www.gstatic.com android.googleapis.com",
         "youtubei.googleapis.com i.ytimg.com", 1.0,
         (("_googlecast._tcp", "Chromecast-9c2e51f0", 8009,
           (*_CAST, "md=Chromecast", "fn=Living Room TV")),), ntp="time.google.com"),
    _dev("appletv", "c0:95:6d:1e:5a:30", 24, "Living-Room", "1,121,3,6,15,108,114,119,252", None,
         64, "apple", "gateway.icloud.com gsp-ssl.ls.apple.com init.itunes.apple.com "
         "play.itunes.apple.com", weight=0.8,
         mdns=(("_airplay._tcp", "Living Room", 7000,
                ("acl=0", "deviceid=C0:95:6D:1E:5A:30", "features=0x4A7FDFD5,0xBC157FDE",
                 "model=AppleTV11,1", "srcvers=775.3.1", "osvers=18.3", "protovers=1.1")),
               ("_companion-link._tcp", "Living Room", 49153, ("rpMac=0", "rpFl=0x36782"))),
         ntp="time.apple.com"),
    _dev("iphone", "da:a1:19:5e:3c:77", 25, "Annas-iPhone", "1,121,3,6,15,108,114,119,252", None,
         64, "apple", "www.instagram.com graph.instagram.com api.whatsapp.net gateway.icloud.com "
         "mask.icloud.com", "scontent.cdninstagram.com www.google.com", 1.6, ntp="time.apple.com"),
    _dev("macbook", "f0:18:98:42:8c:19", 26, "MacBook-Pro", "1,121,3,6,15,108,114,119,252,95,44,46",
         None, 64, "chrome-pq", "github.com api.github.com www.wikipedia.org "
         "news.ycombinator.com mail.google.com", "www.youtube.com fonts.gstatic.com www.google.com",
         1.6, ntp="time.apple.com"),
    _dev("laptop", "a4:c3:f0:7b:2d:9e", 27, "DESKTOP-7K2L9QF",
         "1,3,6,15,31,33,43,44,46,47,119,121,249,252", "MSFT 5.0", 128, "chrome-pq",
         "login.live.com settings-win.data.microsoft.com www.bing.com edge.microsoft.com "
         "outlook.office365.com", "www.google.com www.youtube.com cloudflare-quic.com", 1.4,
         ntp="time.windows.com"),
    _dev("tv", "8c:79:f5:63:b0:2a", 28, "Samsung-TV", "1,3,6,12,15,28,42", "udhcp 1.30.1", 64,
         "iot", "www.netflix.com nrdp.prod.cloud.netflix.com log-config.samsungacr.com "
         "api.samsungcloud.com", weight=0.9, ssdp="Tizen/6.5 UPnP/1.0 Samsung UPnP SDK/1.0"),
    _dev("sonos", "b8:e9:37:0a:6f:12", 29, "Sonos-B8E9370A6F12", "1,3,6,12,15,28,42", None, 64,
         "iot", "msmetrics.ws.sonos.com api.ws.sonos.com api.spotify.com", weight=0.5,
         mdns=(("_sonos._tcp", "Sonos-B8E9370A6F12", 1443,
                ("info=/api/v1/players/RINCON_B8E9370A6F1201400/info", "vers=3")),),
         ssdp="Linux UPnP/1.0 Sonos/80.1-55014 (ZPS33)"),
    _dev("camera", "2c:aa:8e:91:c4:5d", 30, "WYZEC3", "1,3,6,12,15,28,42", "udhcp 1.24.2", 64,
         "iot", "api.wyzecam.com wyze-mars-asrv.wyzecam.com", weight=0.6),
    _dev("hue", "00:17:88:6c:21:9f", 31, "Philips-hue", "1,3,6,12,15,28,42", None, 64, "iot",
         "ws.meethue.com diag.meethue.com", weight=0.4,
         mdns=(("_hue._tcp", "Hue Bridge - 6C219F", 443,
                ("bridgeid=001788fffe6c219f", "modelid=BSB002")),
               ("_hap._tcp", "Hue Bridge 6C219F", 8080,
                (*_HAP, "id=7A:2B:C3:9D:4E:11", "md=BSB002", "ci=2"))),
         ssdp="Hue/1.0 UPnP/1.0 IpBridge/1.62.0"),
    _dev("plug", "50:c7:bf:0e:77:a3", 32, "HS100", "1,3,6,12,15,28,42", None, 64, "iot",
         "n-devs.tplinkcloud.com use1-api.tplinkra.com", weight=0.3),
    _dev("meross", "ec:fa:bc:3a:1f:2c", 33, "Meross_Smart_Plug", "1,3,28,6", None, 255, "iot",
         "mqtt-eu-2.meross.com", weight=0.3,
         mdns=(("_hap._tcp", "Smart Plug 3A1F", 80,
                (*_HAP, "id=3A:1F:2C:55:90:AB", "md=MSS110", "ci=7")),)),
    _dev("pi", "e4:5f:01:2b:6d:80", 34, "raspberrypi", "1,121,33,3,6,12,15,26,28,51,54,58,59,119",
         None, 64, "iot", "api.github.com pypi.org files.pythonhosted.org", weight=0.5,
         ntp="2.debian.pool.ntp.org"),
    _dev("netatmo", "70:ee:50:1a:92:3c", 35, "Netatmo-Personal-Weather-Station", "1,3,28,6",
         None, 255, "iot", "netcom.netatmo.net", weight=0.3),
    _dev("printer", "3c:2a:f4:81:0d:5e", 36, "BRW3C2AF4810D5E", "1,3,6,15,44,46,47,12", None, 64,
         "iot", "", weight=0.0,
         mdns=(("_ipp._tcp", "Brother HL-L2350DW series", 631,
                ("txtvers=1", "rp=ipp/print", "ty=Brother HL-L2350DW series",
                 "pdl=application/pdf,image/urf")),)),
)  # fmt: skip
BY_KEY = {device.key: device for device in DEVICES}

# Where each organisation's servers are: name suffixes -> address prefixes they resolve into.
_ORGS = (
    (("amazon.com", "amazonalexa.com", "fireoscaptiveportal.com", "wyzecam.com", "tplinkra.com",
      "tplinkcloud.com"), ("52.94.", "54.239.", "3.248.")),
    (("google.com", "googleapis.com", "gstatic.com", "googlevideo.com", "youtube.com",
      "ytimg.com"), ("142.250.", "172.217.", "216.58.")),
    (("apple.com", "icloud.com"), ("17.253.", "17.248.", "17.57.")),
    (("microsoft.com", "live.com", "bing.com", "office365.com"), ("13.107.", "20.190.")),
    (("netflix.com", "nflxvideo.net"), ("45.57.", "198.38.")),
    (("instagram.com", "cdninstagram.com", "whatsapp.net"), ("157.240.", "31.13.")),
    (("github.com", "pypi.org", "pythonhosted.org", "debian.org", "wikipedia.org"),
     ("140.82.", "151.101.", "185.199.")),
    (("cloudflare-quic.com", "ycombinator.com", "meethue.com"), ("104.16.", "104.18.")),
    (("meross.com",), ("47.91.",)),
    (("ntp.org",), ("5.9.", "85.214.", "195.201.", "162.159.")),
)  # fmt: skip


# -- DNS-shaped messages (DNS, mDNS) -----------------------------------------------------------

Record = tuple[str, int, int, int, bytes | str | tuple[int, int, int, str]]
"""(name, type, class, TTL, data): data is raw bytes, a name, or SRV (prio, weight, port, name)."""


def _encode_name(buf: bytearray, name: str, table: dict[str, int]) -> None:
    labels = name.split(".")
    for i in range(len(labels)):
        suffix = ".".join(labels[i:])
        if suffix in table:
            buf += struct.pack("!H", 0xC000 | table[suffix])
            return
        if len(buf) < 0x3FFF:
            table[suffix] = len(buf)
        label = labels[i].encode()
        buf += bytes([len(label)]) + label
    buf.append(0)


def dns_message(ident: int, flags: int, questions: list[tuple[str, int]], answers: list[Record],
                qclass: int = 1) -> bytes:  # fmt: skip
    """A DNS message with name compression; ``questions`` are (name, type)."""
    buf = bytearray(struct.pack("!6H", ident, flags, len(questions), len(answers), 0, 0))
    table: dict[str, int] = {}
    for name, qtype in questions:
        _encode_name(buf, name, table)
        buf += struct.pack("!HH", qtype, qclass)
    for name, rtype, rclass, ttl, data in answers:
        _encode_name(buf, name, table)
        buf += struct.pack("!HHIH", rtype, rclass, ttl, 0)
        start = len(buf)
        if isinstance(data, bytes):
            buf += data
        elif isinstance(data, str):
            _encode_name(buf, data, table)
        else:
            buf += struct.pack("!HHH", *data[:3])
            _encode_name(buf, data[3], table)
        struct.pack_into("!H", buf, start - 2, len(buf) - start)
    return bytes(buf)


def txt(strings: tuple[str, ...]) -> bytes:
    """TXT record data."""
    return b"".join(bytes([len(s.encode())]) + s.encode() for s in strings)


# -- TLS and QUIC ------------------------------------------------------------------------------


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _u16s(values: list[int], size: int = 2) -> bytes:
    return (2 * len(values)).to_bytes(size, "big") + struct.pack(f"!{len(values)}H", *values)


def _vec(data: bytes, size: int = 2) -> bytes:
    return len(data).to_bytes(size, "big") + data


def varint(value: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000, section 16)."""
    if value < 0x40:
        return bytes([value])
    return (
        struct.pack("!H", 0x4000 | value) if value < 0x4000 else struct.pack("!I", 1 << 31 | value)
    )


_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
_SUITES = {
    "chrome": [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
               0xC014, 0x009C, 0x009D, 0x002F, 0x0035],
    "apple": [0x1301, 0x1302, 0x1303, 0xC02C, 0xC02B, 0xCCA9, 0xC030, 0xC02F, 0xCCA8, 0xC00A,
              0xC009, 0xC014, 0xC013],
    "iot": [0x1302, 0x1303, 0x1301, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC02B, 0xC02F, 0x009F,
            0x009E, 0xC024, 0xC028, 0xC023, 0xC027, 0x00FF],
}  # fmt: skip


def client_hello(rng: random.Random, sni: str, style: str, quic: bytes | None = None) -> bytes:
    """A TLS 1.3 ClientHello handshake message in a stack's ``style``; for QUIC, ``quic`` is
    the quic_transport_parameters extension body."""
    grease, pq, tcp = style.startswith("chrome"), style == "chrome-pq", quic is None
    g1, g2, g3 = rng.sample(GREASE, 3)
    pre = [g1] if grease else []
    suites = pre + (_SUITES[style.removesuffix("-pq")] if tcp else [0x1301, 0x1302, 0x1303])
    alpn = ("h2", "http/1.1") if style != "iot" else ("http/1.1",)
    alpn = alpn if tcp else ("h3",)
    shares = [(g1, b"\x00")] if grease else []
    shares += [(0x11EC, rng.randbytes(1216))] if pq else []
    shares += [(0x001D, rng.randbytes(32))]
    versions = ([g3] if grease else []) + [0x0304] + ([0x0303] if tcp else [])
    name = sni.encode()
    exts = [_ext(g2, b"")] if grease else []
    exts += [_ext(0, _vec(b"\x00" + _vec(name))), _ext(23, b"")]
    exts += [_ext(0xFF01, b"\x00")] if tcp else []
    exts += [_ext(10, _u16s(pre + ([0x11EC] if pq else []) + [0x001D, 0x0017, 0x0018]))]
    exts += [_ext(11, b"\x01\x00"), _ext(35, b"")] if tcp else []
    exts += [_ext(16, _vec(b"".join(_vec(p.encode(), 1) for p in alpn)))]
    exts += [_ext(5, b"\x01\x00\x00\x00\x00"), _ext(13, _u16s(_SIGALGS)), _ext(18, b"")]
    exts += [_ext(51, _vec(b"".join(struct.pack("!H", g) + _vec(k) for g, k in shares)))]
    exts += [_ext(45, b"\x01\x01"), _ext(43, _u16s(versions, 1))]
    exts += [_ext(27, b"\x02\x00\x02")] if grease else []
    exts += [] if tcp else [_ext(0x39, quic)]
    exts += [_ext(g3, b"\x00")] if grease else []
    session = rng.randbytes(32) if tcp else b""
    body = b"\x03\x03" + rng.randbytes(32) + _vec(session, 1) + _u16s(suites) + b"\x01\x00"
    body += _vec(b"".join(exts))
    return b"\x01" + _vec(body, 3)


def server_hello(rng: random.Random, session: bytes, pq: bool) -> bytes:
    """A TLS 1.3 ServerHello choosing the client's best key share (ML-KEM when offered)."""
    group, size = (0x11EC, 1120) if pq else (0x001D, 32)
    exts = _ext(43, b"\x03\x04") + _ext(51, struct.pack("!HH", group, size) + rng.randbytes(size))
    body = b"\x03\x03" + rng.randbytes(32) + _vec(session, 1) + b"\x13\x01\x00" + _vec(exts)
    return b"\x02" + _vec(body, 3)


def tls_record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    """One TLS record."""
    return struct.pack("!BHH", content_type, version, len(body)) + body


def app_data(rng: random.Random, size: int) -> bytes:
    """About ``size`` bytes of encrypted application data, in records of at most 16 kB."""
    sizes = [16_401] * (size // 16_401) + ([size % 16_401] if size % 16_401 > 5 else [])
    return b"".join(tls_record(0x17, rng.randbytes(n - 5)) for n in sizes)


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    info = struct.pack("!HB", length, 6 + len(label)) + b"tls13 " + label + b"\x00"
    return hmac.new(secret, info + b"\x01", sha256).digest()[:length]  # one HKDF-Expand block


def initial_keys(dcid: bytes, server: bool) -> tuple[bytes, bytes, bytes]:
    """QUIC v1 Initial (key, iv, hp) of one side, derived from the client's first DCID."""
    initial = hmac.new(QUIC_V1_SALT, dcid, sha256).digest()  # HKDF-Extract
    secret = _expand_label(initial, b"server in" if server else b"client in", 32)
    labels = ((b"quic key", 16), (b"quic iv", 12), (b"quic hp", 16))
    key, iv, hp = (_expand_label(secret, label, n) for label, n in labels)
    return key, iv, hp


def quic_initial(dcid: bytes, scid: bytes, pn: int, frames: bytes,
                 keys: tuple[bytes, bytes, bytes], pad_to: int = 0) -> bytes:  # fmt: skip
    """A protected Initial packet, filled with PADDING frames up to ``pad_to`` bytes."""
    key, iv, hp = keys
    cids = _vec(dcid, 1) + _vec(scid, 1)
    frames += bytes(max(0, pad_to - (10 + len(cids)) - len(frames) - 16))
    header = b"\xc1\x00\x00\x00\x01" + cids + struct.pack("!BHH", 0, 0x4012 + len(frames), pn)
    sealed = AESGCM(key).encrypt(
        (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big"), frames, header
    )
    mask = Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(sealed[2:18])
    protected = (int.from_bytes(header[-2:], "big") ^ int.from_bytes(mask[1:3], "big")) & 0xFFFF
    return (
        bytes([header[0] ^ mask[0] & 0x0F]) + header[1:-2] + protected.to_bytes(2, "big") + sealed
    )


def quic_handshake(rng: random.Random, dcid: bytes, scid: bytes, size: int) -> bytes:
    """A Handshake packet of ``size`` bytes: unreadable without the handshake keys."""
    head = bytes([0xE0 | rng.getrandbits(4)]) + b"\x00\x00\x00\x01" + _vec(dcid, 1) + _vec(scid, 1)
    rest = size - len(head) - 2
    return head + struct.pack("!H", 0x4000 | rest) + rng.randbytes(rest)


def quic_transport_params(scid: bytes) -> bytes:
    """A plausible client quic_transport_parameters extension body."""
    params = [(1, 30000), (3, 1472), (4, 15728640), (5, 6291456), (6, 6291456), (8, 100)]
    body = [varint(k) + _vec(varint(v), 1) for k, v in params]
    return b"".join(body) + b"\x0f" + _vec(scid, 1)


# -- the traffic builder -----------------------------------------------------------------------


@dataclass
class Summary:
    """What a run wrote: packets by kind and the names a parser should find in them."""

    packets: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    first_ts: float = 0.0
    last_ts: float = 0.0
    dns_names: set[str] = field(default_factory=set)
    tls_snis: set[str] = field(default_factory=set)
    quic_snis: set[str] = field(default_factory=set)
    dhcp_hostnames: set[str] = field(default_factory=set)
    http_hosts: set[str] = field(default_factory=set)
    split_tls_hellos: int = 0
    split_quic_hellos: int = 0
    voice_bursts: list[tuple[str, float, float, int]] = field(default_factory=list)


Reply = tuple[int, bytes]
"""When the last DNS answer arrived, and the address to contact."""


class Home:
    """Builds the traffic: small exchanges into :attr:`items`, big flows as lazy iterators.

    One :class:`random.Random` drives everything, so a seed gives the same capture.
    """

    def __init__(self, seed: int, duration_s: float) -> None:
        self.rng = random.Random(seed)
        self.duration = int(duration_s * SECOND)
        self.end = START_US + self.duration
        self.items: list[Item] = []
        self.lazy: list[Iterator[Item]] = []
        self.summary = Summary()
        self.gw = (ROUTER_MAC, ROUTER_IP, 53)
        self._dns: dict[str, tuple[list[str], list[bytes], bytes, int]] = {}
        self._cache: dict[tuple[str, str], int] = {}
        self._ident: dict[bytes, int] = {}
        self._ports: dict[bytes, int] = {}

    def ident(self, ip: bytes) -> int:
        """The next IPv4 identification of host ``ip``."""
        value = self._ident.get(ip, self.rng.randrange(0x10000))
        self._ident[ip] = (value + 1) & 0xFFFF
        return value

    def port(self, ip: bytes) -> int:
        """The next ephemeral port of host ``ip``."""
        value = self._ports.get(ip) or self.rng.randrange(32768, 60000)
        self._ports[ip] = value + 1 if value < 60999 else 32768
        return value

    def when(self, lo: float, hi: float) -> int:
        """A random time within the given fractions of the capture."""
        return START_US + int(self.duration * self.rng.uniform(lo, hi))

    def remote_ttl(self) -> int:
        """The TTL of a packet from the Internet as it reaches the home."""
        return self.rng.choice((64, 128, 255)) - self.rng.randrange(8, 20)

    def udp(self, out: list[Item], t: int, kind: str, src: Peer, dst: Peer, payload: bytes,
            ttl: int = 64) -> None:  # fmt: skip
        """Append one UDP packet."""
        l4 = udp_datagram(src, dst, payload)
        out.append((t, kind, ipv4_frame(src, dst, 17, l4, ttl, self.ident(src[1]))))

    def records(self, name: str) -> tuple[list[str], list[bytes], bytes, int]:
        """``name``'s (CNAME chain, IPv4 addresses, IPv6 address, TTL), made up once."""
        if name not in self._dns:
            rng = self.rng
            prefixes = next((p for s, p in _ORGS if name.endswith(s)), ("93.184.", "23.62."))
            chain: list[str] = []
            for _ in range(rng.choice((0, 0, 1, 1, 2))):
                base = chain[-1] if chain else name
                number = rng.randrange(1000, 9999)
                suffixes = ("edgekey.net", "akadns.net", "cdn.cloudflare.net", "")
                suffix = rng.choice(suffixes)
                chain.append(f"{base}.{suffix}" if suffix else f"e{number}.dscb.akamaiedge.net")
            v4 = [ip4(f"{rng.choice(prefixes)}{rng.randrange(1, 255)}.{rng.randrange(1, 255)}")
                  for _ in range(rng.choice((1, 1, 2, 4)))]  # fmt: skip
            v6 = bytes.fromhex("2a001450400108") + rng.randbytes(9)
            self._dns[name] = (chain, v4, v6, rng.choice((20, 30, 60, 60, 300, 3600)))
        return self._dns[name]

    def resolve(self, out: list[Item], t: int, dev: Device, name: str, aaaa: bool = True) -> Reply:
        """Ask the router for ``name`` (A, AAAA) unless ``dev`` has it cached.

        Returns when the last answer arrived and the address to contact.
        """
        chain, v4, v6, ttl = self.records(name)
        if self._cache.get((dev.key, name), 0) > t:
            return t, v4[0]
        if dev.tls != "iot":  # embedded resolvers often keep no cache
            self._cache[(dev.key, name)] = t + ttl * SECOND
        self.summary.dns_names.add(name)
        rng, done = self.rng, t
        for qtype, addresses in ((1, v4), (28, [v6])) if aaaa else ((1, v4),):
            qid, me = rng.randrange(0x10000), dev.peer(self.port(dev.ip))
            self.udp(out, t, "dns", me, self.gw, dns_message(qid, 0x0100, [(name, qtype)], []))
            answers: list[Record] = []
            owner = name
            for target in chain:
                answers.append((owner, 5, 1, ttl, target))
                owner = target
            answers += [(owner, qtype, 1, ttl, address) for address in addresses]
            cached = rng.random() < 0.6
            delay = rng.randrange(200, 900) if cached else rng.randrange(8, 60) * MS
            reply = dns_message(qid, 0x8180, [(name, qtype)], answers)
            self.udp(out, t + delay, "dns", self.gw, me, reply)
            done = max(done, t + delay)
            t += rng.randrange(50, 400)
        return done, v4[0]

    def arp(self, out: list[Item], t: int, op: int, sender: Peer, target: Peer) -> None:
        """Append one ARP request (``op`` 1, broadcast) or reply (2), padded to 60 bytes."""
        tha = target[0] if op == 2 else bytes(6)
        body = struct.pack(
            "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sender[0], sender[1], tha, target[1]
        )
        dst = target[0] if op == 2 else BROADCAST[0]
        out.append((t, "arp", _ETH.pack(dst, sender[0], 0x0806) + body + bytes(18)))

    def dhcp(self, out: list[Item], t: int, dev: Device, renew: bool = False) -> None:
        """DISCOVER, OFFER, REQUEST, ACK (a joining device) or REQUEST, ACK (a renewal)."""
        rng, xid = self.rng, self.rng.randrange(1 << 32)
        self.summary.dhcp_hostnames.add(dev.hostname)
        zero = bytes(4)
        server, client = (ROUTER_MAC, ROUTER_IP, 67), dev.peer(68)

        def bootp(msg: int) -> bytes:
            options = [(53, bytes([msg]))]
            if msg in (1, 3):
                options += [(61, b"\x01" + dev.mac), (57, b"\x05\xdc")]
                options += [(50, dev.ip), (54, ROUTER_IP)] if msg == 3 and not renew else []
                options += [(12, dev.hostname.encode())]
                options += [(60, dev.vendor_class.encode())] if dev.vendor_class else []
                options += [(55, dev.params)]
            else:
                options += [
                    (54, ROUTER_IP),
                    (51, struct.pack("!I", 864000)),
                    (1, b"\xff\xff\xff\0"),
                ]
                options += [(3, ROUTER_IP), (6, ROUTER_IP), (15, b"fritz.box")]
            raw = b"".join(bytes([code, len(value)]) + value for code, value in options) + b"\xff"
            op, ciaddr = (1 if msg in (1, 3) else 2), (dev.ip if renew else zero)
            yiaddr, siaddr = (zero, zero) if op == 1 else (dev.ip, ROUTER_IP)
            head = _BOOTP.pack(op, 1, 6, 0, xid, 3 * (op == 1), 0, ciaddr, yiaddr, siaddr, zero,
                               dev.mac, 0x63825363)  # fmt: skip
            return head + raw + bytes(max(0, 60 - len(raw)))

        if renew:
            steps = [(client, server, 3), (server, client, 5)]
        else:
            anyone = (dev.mac, zero, 68)
            steps = [(anyone, (*BROADCAST, 67), 1), (server, client, 2)]
            steps += [(anyone, (*BROADCAST, 67), 3), (server, client, 5)]
        for src, dst, msg in steps:
            self.udp(out, t, "dhcp", src, dst, bootp(msg), dev.ttl if src[2] == 68 else 64)
            t += rng.randrange(1, 30) * MS

    def mdns_announce(self, out: list[Item], t: int, dev: Device) -> None:
        """An mDNS response announcing each of ``dev``'s services (PTR, SRV, TXT) and its A."""
        host = f"{dev.hostname}.local"
        answers: list[Record] = []
        for service, instance, port, strings in dev.mdns:
            full = f"{instance}.{service}.local"
            answers += [(f"{service}.local", 12, 1, 4500, full)]
            answers += [(full, 33, 0x8001, 120, (0, 0, port, host))]
            answers += [(full, 16, 0x8001, 4500, txt(strings))]
            answers += [("_services._dns-sd._udp.local", 12, 1, 4500, f"{service}.local")]
        answers.append((host, 1, 0x8001, 120, dev.ip))
        self.udp(out, t, "mdns", dev.peer(5353), MDNS, dns_message(0, 0x8400, [], answers), 255)

    def ssdp(self, out: list[Item], t: int, dev: Device) -> None:
        """SSDP NOTIFY ssdp:alive for the root device, the device's uuid and its type."""
        uuid = f"uuid:{sha256(dev.mac).hexdigest()[:8]}-4a2b-9c1d-8e7f-{dev.mac.hex()}"
        where = ".".join(str(b) for b in dev.ip)
        for nt in ("upnp:rootdevice", uuid, "urn:schemas-upnp-org:device:MediaRenderer:1"):
            usn = uuid if nt == uuid else f"{uuid}::{nt}"
            text = (
                "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800"
                f"\r\nLOCATION: http://{where}:1400/xml/device_description.xml\r\nNT: {nt}\r\n"
                f"NTS: ssdp:alive\r\nSERVER: {dev.ssdp}\r\nUSN: {usn}\r\n\r\n"
            )
            self.udp(out, t, "ssdp", dev.peer(1900), SSDP, text.encode(), 4)
            t += self.rng.randrange(100, 4000)

    def ntp(self, out: list[Item], t: int, dev: Device) -> None:
        """Resolve the device's NTP server, then one NTP request and reply."""
        t, address = self.resolve(out, t, dev, dev.ntp, aaaa=False)
        era = t // SECOND + 2_208_988_800
        me = dev.peer(123 if dev.key in ("pi", "macbook", "laptop") else self.port(dev.ip))
        server = (ROUTER_MAC, address, 123)
        request = struct.pack("!BBbb9I2I", 0x23, 0, 6, -20, *([0] * 9), era, 0)
        reply = struct.pack("!BBbbII4s8I", 0x24, 2, 6, -24, 16, 400, b"\xc0\x35\x67\x6c",
                            era - 50, 0, era, 0, era, 1 << 30, era, 1 << 31)  # fmt: skip
        self.udp(out, t + 500, "ntp", me, server, request, dev.ttl)
        back = t + 500 + self.rng.randrange(8, 40) * MS
        self.udp(out, back, "ntp", server, me, reply, self.remote_ttl())


class Tcp:
    """One TCP connection from a LAN device to a server, appending its packets to ``out``.

    Sequence and acknowledgment numbers, timestamp options and IP identifications are
    consistent; the receiver of data acknowledges every second segment (the device at once,
    the server a round trip later, as seen from the home).
    """

    def __init__(self, home: Home, out: list[Item], dev: Device, server: bytes, port: int,
                 rtt: int) -> None:  # fmt: skip
        rng = home.rng
        self.home, self.out, self.dev, self.rtt = home, out, dev, rtt
        self.ends = (dev.peer(home.port(dev.ip)), (ROUTER_MAC, server, port))
        self.seq = [rng.randrange(1 << 32), rng.randrange(1 << 32)]  # device, server
        self.clock = [rng.randrange(1 << 31), rng.randrange(1 << 31)]
        self.ttl = (dev.ttl, home.remote_ttl())

    def emit(self, t: int, up: bool, flags: int, payload: bytes = b"", psum: int | None = None,
             ack: int | None = None) -> None:  # fmt: skip
        """Append one segment, from the device if ``up``, sent at ``t``."""
        me = 0 if up else 1
        src, dst = self.ends if up else self.ends[::-1]
        tsval = (self.clock[me] + t // MS) & 0xFFFFFFFF
        tsecr = (self.clock[1 - me] + (t - self.rtt // 2) // MS) & 0xFFFFFFFF
        if flags & _SYN:
            opts = struct.pack(
                "!BBHBBBBII4B", 2, 4, 1460, 4, 2, 8, 10, tsval, tsecr * me, 1, 3, 3, 7
            )
        else:
            opts = struct.pack("!BBBBII", 1, 1, 8, 10, tsval, tsecr)
        ack_no = (self.seq[1 - me] if ack is None else ack) if flags & _ACK else 0
        l4 = tcp_segment(src, dst, self.seq[me], ack_no, flags, opts, payload, psum)
        self.out.append(
            (t, "tcp", ipv4_frame(src, dst, 6, l4, self.ttl[me], self.home.ident(src[1])))
        )
        self.seq[me] = (self.seq[me] + len(payload) + bool(flags & (_SYN | _FIN))) & 0xFFFFFFFF

    def handshake(self, t: int) -> int:
        """SYN, SYN/ACK, ACK; returns when the device's ACK left."""
        self.emit(t, True, _SYN)
        self.emit(t + self.rtt, False, _SYN | _ACK)
        self.emit(t + self.rtt + 60, True, _ACK)
        return t + self.rtt + 60

    def send(self, t: int, up: bool, data: bytes, gap: int = 120) -> int:
        """``data`` in MSS-sized segments about ``gap`` us apart, each second one (and the last)
        acknowledged; returns when the last segment left."""
        rng, me = self.home.rng, 0 if up else 1
        count = (len(data) + MSS - 1) // MSS
        for i in range(count):
            self.emit(t, up, _ACK | (_PSH if i == count - 1 else 0), data[i * MSS : (i + 1) * MSS])
            if i % 2 or i == count - 1:
                self.emit(
                    t + (self.rtt if up else rng.randrange(40, 300)), not up, _ACK, ack=self.seq[me]
                )
            if i < count - 1:
                t += gap + rng.randrange(gap)
        return t

    def close(self, t: int) -> int:
        """FIN from the device, FIN from the server, the last ACK."""
        self.emit(t, True, _FIN | _ACK)
        self.emit(t + self.rtt, False, _FIN | _ACK)
        self.emit(t + self.rtt + 80, True, _ACK)
        return t + self.rtt + 80


def tls_setup(home: Home, out: list[Item], t: int, dev: Device, name: str) -> tuple[Tcp, int]:
    """DNS, TCP handshake, ClientHello, the server's TLS 1.3 flight, the device's Finished."""
    rng = home.rng
    t, server = home.resolve(out, t, dev, name)
    conn = Tcp(home, out, dev, server, 443, rng.randrange(8, 90) * MS)
    t = conn.handshake(t + rng.randrange(100, 900))
    hello = client_hello(rng, name, dev.tls)
    home.summary.tls_snis.add(name)
    home.summary.split_tls_hellos += len(hello) + 5 > MSS
    t = conn.send(t + 200, True, tls_record(0x16, hello, 0x0301))
    flight = tls_record(0x16, server_hello(rng, hello[39 : 39 + hello[38]], dev.tls == "chrome-pq"))
    flight += tls_record(0x14, b"\x01") + app_data(rng, rng.randrange(2400, 4800))
    t = conn.send(t + conn.rtt, False, flight, gap=90) + rng.randrange(300, 3000)
    return conn, conn.send(t, True, tls_record(0x14, b"\x01") + app_data(rng, 58))


def web_session(home: Home, t: int, dev: Device, name: str) -> None:
    """A short HTTPS visit: set-up, one to five request/response rounds, FIN (or left open)."""
    rng = home.rng
    conn, t = tls_setup(home, home.items, t, dev, name)
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        t = conn.send(t + rng.randrange(200, 5000), True, app_data(rng, rng.randrange(90, 700)))
        size = min(90_000, int(rng.lognormvariate(7.5, 1.4)) + 40)
        t = conn.send(t + conn.rtt, False, app_data(rng, size)) + rng.randrange(5, 800) * MS
    if rng.random() < 0.8:
        conn.close(t)


QuicStart = tuple[int, Callable[[int, bool, int], None]]
"""When a QUIC handshake is done, and ``send(t, up, size)`` adding a short-header packet."""


def quic_session(home: Home, out: list[Item], t: int, dev: Device, name: str) -> QuicStart:
    """A QUIC v1 connection's handshake: client Initial(s), the server's Initial and Handshake
    packets, the device's Initial ACK and Handshake, its first 1-RTT packet.

    Returns when the handshake is done and a function adding short-header packets to ``out``.
    """
    rng = home.rng
    t, address = home.resolve(out, t, dev, name)
    me, server = dev.peer(home.port(dev.ip)), (ROUTER_MAC, address, 443)
    rtt, ttl = rng.randrange(8, 60) * MS, home.remote_ttl()
    dcid, server_cid = rng.randbytes(8), rng.randbytes(8)
    client_cid = b"" if dev.tls.startswith("chrome") else rng.randbytes(8)
    client_keys, server_keys = initial_keys(dcid, False), initial_keys(dcid, True)

    def send(when: int, up: bool, payload: bytes) -> None:
        home.udp(out, when, "quic", me if up else server, server if up else me, payload,
                 dev.ttl if up else ttl)  # fmt: skip

    hello = client_hello(rng, name, dev.tls, quic_transport_params(client_cid))
    home.summary.quic_snis.add(name)
    room = 1250 - 11 - 2 - len(dcid) - len(client_cid) - 16 - 5  # header, tag, CRYPTO header
    pieces = [hello[i : i + room] for i in range(0, len(hello), room)]
    home.summary.split_quic_hellos += len(pieces) > 1
    t += rng.randrange(100, 900)
    for pn, piece in enumerate(pieces):
        frames = b"\x06" + varint(pn * room) + varint(len(piece)) + piece
        send(t, True, quic_initial(dcid, client_cid, pn, frames, client_keys, pad_to=1250))
        t += rng.randrange(20, 200)
    sh = server_hello(rng, b"", dev.tls == "chrome-pq")
    frames = b"\x02" + varint(len(pieces) - 1) + b"\x00\x00" + varint(len(pieces) - 1)  # ACK
    initial = quic_initial(
        client_cid, server_cid, 0, frames + b"\x06\x00" + varint(len(sh)) + sh, server_keys
    )
    if len(initial) < 1150:
        initial += quic_handshake(rng, client_cid, server_cid, 1252 - len(initial))
    t += rtt
    send(t, False, initial)
    for size in (1252, rng.randrange(300, 1100)):
        t += rng.randrange(30, 300)
        send(t, False, quic_handshake(rng, client_cid, server_cid, size))
    finished = quic_handshake(rng, server_cid, client_cid, 90)
    ack = quic_initial(server_cid, client_cid, len(pieces), b"\x02\x00\x00\x00\x00", client_keys,
                       pad_to=1250 - len(finished))  # fmt: skip
    t += rng.randrange(500, 3000)
    send(t, True, ack + finished)

    def short(when: int, up: bool, size: int) -> None:
        cid = server_cid if up else client_cid
        send(
            when, up, bytes([0x40 | rng.getrandbits(6)]) + cid + rng.randbytes(size - 1 - len(cid))
        )

    t += rng.randrange(100, 500)
    short(t, True, rng.randrange(60, 400))
    return t + rtt, short


def quic_visit(home: Home, t: int, dev: Device, name: str) -> None:
    """A QUIC page or API visit: handshake, a short response, the device's ACKs."""
    rng = home.rng
    t, short = quic_session(home, home.items, t, dev, name)
    for i in range(rng.choice((2, 4, 6, 10, 18))):
        short(t, False, rng.randrange(900, 1350) if rng.random() < 0.8 else rng.randrange(60, 300))
        if i % 3 == 2:
            short(t + rng.randrange(200, 2000), True, rng.randrange(40, 80))
        t += rng.randrange(100, 3000)
    short(t + rng.randrange(1000, 20000), True, rng.randrange(40, 80))


# -- activities --------------------------------------------------------------------------------


def link_local(home: Home) -> None:
    """DHCP joins and renewals, ARP, mDNS, SSDP and NTP of every device over the capture."""
    rng, out, end = home.rng, home.items, home.end
    early = min(60 * SECOND, home.duration // 5)
    router = (ROUTER_MAC, ROUTER_IP, 0)
    for dev in DEVICES:
        t = START_US + rng.randrange(early)
        home.dhcp(out, t, dev)
        t += 200 * MS
        home.arp(out, t, 1, dev.peer(), dev.peer())  # announcement
        if dev.key in ("laptop", "macbook", "iphone"):
            home.dhcp(out, home.when(0.4, 0.9), dev, renew=True)
        for i in range(2 if dev.mdns else 0):
            home.mdns_announce(out, t + (i + 1) * SECOND, dev)
        tick = t + rng.randrange(5, 40) * SECOND
        while tick < end:  # the router refreshing its ARP entry
            home.arp(out, tick, 1, router, dev.peer())
            home.arp(out, tick + rng.randrange(2, 40) * MS, 2, dev.peer(), router)
            tick += rng.randrange(100, 300) * SECOND
        tick = t + rng.randrange(1, 20) * SECOND
        while dev.ssdp and tick < end:
            home.ssdp(out, tick, dev)
            tick += rng.randrange(120, 240) * SECOND
        tick = t + rng.randrange(1, 30) * SECOND
        while tick < end:
            home.ntp(out, tick, dev)
            tick += rng.randrange(240, 900) * SECOND
    phone, laptop = BY_KEY["iphone"], BY_KEY["laptop"]
    search = (
        b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n'
        b"ST: ssdp:all\r\nUSER-AGENT: Microsoft Edge/131.0 Windows\r\n\r\n"
    )
    services = [(f"{s}.local", 12) for s in ("_googlecast._tcp", "_airplay._tcp", "_hap._tcp")]
    tick = START_US + rng.randrange(early)
    while tick < end:  # the phone browsing for speakers and TVs (they answer); a PC's M-SEARCH
        home.udp(out, tick, "mdns", phone.peer(5353), MDNS, dns_message(0, 0, services, []), 255)
        for dev in DEVICES:
            if dev.mdns:
                home.mdns_announce(out, tick + rng.randrange(20, 120) * MS, dev)
        later = tick + rng.randrange(1, 5) * SECOND
        home.udp(out, later, "ssdp", laptop.peer(home.port(laptop.ip)), SSDP, search, 1)
        tick += rng.randrange(60, 180) * SECOND


_SITES = ("wikipedia.org", "reddit.com", "nytimes.com", "bbc.co.uk", "spiegel.de", "lemonde.fr",
          "stackoverflow.com", "doubleclick.net", "googlesyndication.com", "criteo.com",
          "outbrain.com", "taboola.com", "jsdelivr.net", "amazon-adsystem.com", "twitter.com",
          "linkedin.com", "zoom.us", "slack.com", "dropbox.com", "spotify.com", "duckduckgo.com",
          "booking.com", "ebay.de", "zalando.de", "theguardian.com", "imdb.com", "twitch.tv",
)  # fmt: skip


def long_tail(rng: random.Random) -> str:
    """One of the many names a browsing person reaches once: sites, CDNs, ad servers."""
    pick = rng.random()
    if pick < 0.2:
        return f"d{rng.randbytes(7).hex()[:13]}.cloudfront.net"
    if pick < 0.3:
        city = rng.choice(("fra", "ams", "cdg", "muc"))
        return f"scontent-{city}{rng.randrange(1, 6)}-1.xx.fbcdn.net"
    prefix = rng.choice(("www", "api", "static", "cdn", "img", "ads", "assets", "m"))
    return f"{prefix}.{rng.choice(_SITES)}"


def browsing(home: Home, budget_tls: int, budget_quic: int) -> None:
    """Short HTTPS and QUIC visits, weighted by device, until each packet budget is spent.

    The first TLS visit and the first QUIC visit are from post-quantum stacks (ClientHello over
    two segments, over two Initials) whatever the budget.
    """
    rng, out = home.rng, home.items
    for budget, visit, first in ((budget_tls, web_session, "www.bing.com"),
                                 (budget_quic, quic_visit, "www.youtube.com")):  # fmt: skip
        devices = [d for d in DEVICES if (d.web if visit is web_session else d.quic) and d.weight]
        start = len(out)
        visit(home, home.when(0.05, 0.3), BY_KEY["laptop"], first)
        while len(out) - start < budget:
            dev = rng.choices(devices, [d.weight for d in devices])[0]
            names = dev.web if visit is web_session else dev.quic
            tail = visit is web_session and dev.tls != "iot" and rng.random() < 0.4
            visit(home, home.when(0.02, 0.98), dev, long_tail(rng) if tail else rng.choice(names))


def speaker(home: Home) -> None:
    """The smart speaker's long-lived connection: keep-alives, and a few voice requests (each
    3-8 s at 15-30 kB/s upstream in 300-1,400-byte records, then the reply downstream)."""
    rng, dev = home.rng, BY_KEY["echo"]
    start = START_US + rng.randrange(2, 20) * SECOND
    conn, t = tls_setup(home, home.items, start, dev, "avs-alexa-14-na.amazon.com")
    bursts = max(1, min(6, home.duration // (150 * SECOND)))
    for i in range(bursts):
        slot = START_US + int(home.duration * (i + rng.uniform(0.25, 0.6)) / bursts)
        while t + 30 * SECOND < slot:  # keep-alive pings (HTTP/2 PING in a record each way)
            t = conn.send(t + rng.randrange(25, 35) * SECOND, True, app_data(rng, 60))
            t = conn.send(t + conn.rtt, False, app_data(rng, 45))
        t = conn.send(max(t, slot), True, app_data(rng, rng.randrange(500, 700)))  # wake word
        seconds, rate = rng.uniform(3, 8), rng.uniform(15_000, 30_000)
        begin, sent = t, 0
        while t - begin < seconds * SECOND:
            size = rng.randrange(300, 1401)
            conn.send(t, True, tls_record(0x17, rng.randbytes(size - 5)))
            sent += size
            t = begin + int(sent / rate * SECOND)
        home.summary.voice_bursts.append((dev.key, begin / SECOND, t / SECOND, sent))
        reply = app_data(rng, rng.randrange(20_000, 80_000))
        t = conn.send(t + rng.randrange(300, 800) * MS, False, reply, gap=400)
        t += rng.randrange(1, 5) * SECOND


def bulk(home: Home, dev: Device, name: str, packets: int, start: int, pps: float,
         agent: str | None = None) -> Iterator[Item]:  # fmt: skip
    """A download of exactly ``packets`` packets over HTTPS (or HTTP with User-Agent ``agent``):
    MSS-sized segments downstream, the device's ACK after every second one."""
    rng, prologue = home.rng, []
    if agent:
        t, server = home.resolve(prologue, start, dev, name)
        conn = Tcp(home, prologue, dev, server, 80, rng.randrange(8, 60) * MS)
        t = conn.handshake(t + 300)
        path = f"/debian/pool/main/{rng.choice('lmnps')}/pkg{rng.randrange(1000)}/data.deb"
        request = f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: {agent}\r\n\r\n"
        t = conn.send(t + 200, True, request.encode())
        left = packets - len(prologue) - 2 - 3  # the response head and its ACK, the FIN exchange
        length = MSS * (left // 3 * 2 + min(2, left % 3))
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.debian.binary-package\r\n"
        t = conn.send(t + conn.rtt, False, f"{head}Content-Length: {length}\r\n\r\n".encode())
        home.summary.http_hosts.add(name)
    else:
        conn, t = tls_setup(home, prologue, start, dev, name)
        t = conn.send(t + 300, True, app_data(rng, rng.randrange(200, 500)))
    prologue.sort(key=itemgetter(0))
    yield from prologue
    t = max(t, prologue[-1][0]) + conn.rtt
    left, gap = packets - len(prologue) - 3, int(SECOND / pps * 1.5)
    chunks = [rng.randbytes(MSS) for _ in range(8)]
    sums = [_wsum(chunk) for chunk in chunks]
    conn.out = out = []
    i = 0
    while left > 0:  # two segments down (one at the very end), the device's ACK up
        for _ in range(min(2, left)):
            conn.emit(t, False, _ACK, chunks[i & 7], sums[i & 7])
            left, i = left - 1, i + 1
            t += rng.randrange(gap // 4, gap)
        if left > 0:
            conn.emit(t - gap // 4 + rng.randrange(30, gap // 4), True, _ACK)
            left -= 1
        yield from out
        out.clear()
        t += rng.randrange(gap // 2) + (0 if i & 255 else rng.randrange(5, 40) * MS)
    conn.close(t + 200)
    yield from out


def camera_stream(home: Home, packets: int, start: int) -> Iterator[Item]:
    """The camera's live view: ~20 frames/s of 1-8 UDP datagrams upstream, a control datagram
    downstream each second; exactly ``packets`` packets."""
    rng, dev, out = home.rng, BY_KEY["camera"], []
    t, address = home.resolve(out, start, dev, "wyze-mars-asrv.wyzecam.com")
    yield from sorted(out, key=itemgetter(0))
    left, control = packets - len(out), t
    out.clear()
    me, server, ttl = dev.peer(home.port(dev.ip)), (ROUTER_MAC, address, CAMERA_PORT), 52
    while left > 0:
        for _ in range(min(left, rng.choice((1, 2, 2, 3, 4, 8)))):
            video = b"\x04\x02\x19\x0a" + rng.randbytes(rng.randrange(900, 1300))
            home.udp(out, t, "udp", me, server, video, dev.ttl)
            left -= 1
            t += rng.randrange(80, 400)
        if t >= control and left > 0:
            home.udp(out, t, "udp", server, me, b"\x04\x02\x19\x2a" + rng.randbytes(64), ttl)
            left, control = left - 1, t + SECOND
        yield from out
        out.clear()
        t += rng.randrange(35, 65) * MS


def video_stream(home: Home, packets: int, start: int, pps: float) -> Iterator[Item]:
    """The TV stick's video over QUIC: every few seconds a chunk of full-size packets, an ACK
    upstream every sixth; exactly ``packets`` packets."""
    rng, out = home.rng, []
    name = "rr3---sn-4g5e6nzz.googlevideo.com"
    t, short = quic_session(home, out, start, BY_KEY["chromecast"], name)
    out.sort(key=itemgetter(0))
    yield from out
    t, left = max(t, out[-1][0]), packets - len(out)
    out.clear()  # ``short`` appends here
    chunk = int(rng.uniform(2, 5) * SECOND)
    while left > 0:
        begin = t
        for i in range(min(left, max(1, int(pps * chunk / SECOND)))):
            up = i % 6 == 5
            short(t + 40 * up, up, rng.randrange(40, 70) if up else rng.randrange(1200, 1351))
            left -= 1
            t += rng.randrange(60, 300)
            yield from out
            out.clear()
        t = max(t, begin + chunk)


_DOWNLOADS = (
    ("macbook", "swcdn.apple.com", None),
    ("laptop", "tlu.dl.delivery.mp.microsoft.com", "Microsoft-Delivery-Optimization/10.0"),
    ("tv", "ipv4-c001-fra001-ix.1.oca.nflxvideo.net", None),
    ("pi", "deb.debian.org", "Debian APT-HTTP/1.3 (2.6.1)"),
    ("iphone", "video.cdninstagram.com", None),
    ("appletv", "vod-ak-aoc.tv.apple.com", None),
)


def generate(packets: int = 400_000, seed: int = 1) -> tuple[Iterator[Item], Summary]:
    """The capture's packets in time order (exactly ``packets``) and its :class:`Summary`.

    Background traffic is built first; video and downloads fill the rest of the budget. The
    summary's counts and the names of the lazily built flows are complete once the iterator
    is exhausted (by :func:`write_pcap`).
    """
    duration_s = min(1200.0, max(60.0, packets / 450))
    home = Home(seed, duration_s)
    rng = home.rng
    link_local(home)
    speaker(home)
    browsing(home, int(packets * 0.09), int(packets * 0.04))
    home.items.sort(key=itemgetter(0))
    left = max(0, packets - len(home.items))
    video = int(left * 0.18) if left > 600 else 0
    if video:
        camera = min(video // 3, int(duration_s * 40))
        home.lazy.append(camera_stream(home, camera, home.when(0.1, 0.3)))
        pps = (video - camera) / (duration_s * 0.5)
        home.lazy.append(video_stream(home, video - camera, home.when(0.05, 0.35), pps))
        left -= video
    weights = [rng.uniform(0.2, 1.0) for _ in range(max(1, min(60, left // 6000)))]
    sizes = [int(left * w / sum(weights)) for w in weights]
    sizes[-1] = left - sum(sizes[:-1])
    for i, size in enumerate(sizes):
        key, name, agent = _DOWNLOADS[i % len(_DOWNLOADS)]
        pps = rng.uniform(600, 3000)
        start = START_US + int(rng.uniform(0, max(0, home.duration - size / pps * SECOND * 1.2)))
        if size > 0:
            home.lazy.append(bulk(home, BY_KEY[key], name, size, start, pps, agent))
    merged = heapq.merge(iter(home.items), *home.lazy, key=itemgetter(0))
    return _counted(merged, packets, home.summary), home.summary


def _counted(items: Iterator[Item], limit: int, summary: Summary) -> Iterator[Item]:
    kinds = summary.kinds
    for item in items:
        if summary.packets == limit:
            return
        if not summary.packets:
            summary.first_ts = item[0] / SECOND
        summary.packets += 1
        kinds[item[1]] += 1
        summary.last_ts = item[0] / SECOND
        yield item


def write_pcap(path: Path, items: Iterator[Item]) -> int:
    """Write ``items`` as a classic pcap (Ethernet, microseconds); returns the count written."""
    record = struct.Struct("<IIII").pack
    count = 0
    with path.open("wb", buffering=1 << 20) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, _, frame in items:
            fh.write(record(ts // SECOND, ts % SECOND, len(frame), len(frame)) + frame)
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    """Command line: write the capture; a one-line summary goes to standard error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, metavar="OUT.pcap")
    parser.add_argument("--packets", type=int, default=400_000, help="packets (default 400000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args(argv)
    if args.packets < 1:
        parser.error("--packets must be positive")
    began = time.perf_counter()
    items, summary = generate(args.packets, args.seed)
    written = write_pcap(args.out, items)
    kinds = " ".join(f"{kind}={summary.kinds[kind]}" for kind in KINDS if summary.kinds[kind])
    print(
        f"{args.out}: {written} packets over {summary.last_ts - summary.first_ts:.0f} s ({kinds});"
        f" {len(summary.dns_names)} names looked up, {summary.split_tls_hellos} TLS and "
        f"{summary.split_quic_hellos} QUIC ClientHellos split in two, "
        f"{len(summary.voice_bursts)} voice bursts; {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
