"""The fast header path against frames built with scapy and against broken frames."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from monitor.decode import (
    KIND_ARP,
    KIND_IP,
    KIND_OTHER,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    UnsupportedLinkType,
    decode,
)
from monitor.errors import Malformed

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def v4(text: str) -> bytes:
    return socket.inet_aton(text)


def v6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def test_ethernet_qinq_ipv4_options_tcp() -> None:
    frame = bytes(
        Ether(src=MAC_A, dst=MAC_B)
        / Dot1AD(vlan=10)
        / Dot1Q(vlan=20)
        / IP(src="192.168.1.5", dst="8.8.8.8", options=[IPOption_RR()])
        / TCP(sport=40000, dport=443, flags="PA", seq=1234)
        / Raw(b"x" * 100)
    )
    d = decode(LINKTYPE_ETHERNET, frame)
    kind, smac, dmac, src, dst, proto, sport, dport, ip_len, pay_len, pay_off, flags, seq, frag = d
    assert kind == KIND_IP
    assert smac.hex(":") == MAC_A and dmac.hex(":") == MAC_B
    assert (src, dst) == (v4("192.168.1.5"), v4("8.8.8.8"))
    assert (proto, sport, dport, seq, frag) == (6, 40000, 443, 1234, None)
    assert pay_len == 100 and frame[pay_off : pay_off + pay_len] == b"x" * 100
    assert flags & 0x18 == 0x18
    assert ip_len == len(frame) - 14 - 8  # all but Ethernet and the two VLAN tags
    assert pay_off == 14 + 8 + 24 + 20  # IPv4 header with a 4-byte option, then TCP


def test_ipv6_extension_headers_udp() -> None:
    frame = bytes(
        Ether(src=MAC_A, dst=MAC_B)
        / IPv6(src="fd00::5", dst="2001:db8::1")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / UDP(sport=5000, dport=443)
        / Raw(b"q" * 37)
    )
    d = decode(LINKTYPE_ETHERNET, frame)
    assert d[0] == KIND_IP and d[5] == 17 and (d[6], d[7]) == (5000, 443)
    assert (d[3], d[4]) == (v6("fd00::5"), v6("2001:db8::1"))
    assert d[9] == 37 and frame[d[10] : d[10] + 37] == b"q" * 37


def test_ipv6_fragments_first_and_later() -> None:
    first = bytes(
        IPv6(src="fd00::5", dst="2001:db8::1")
        / IPv6ExtHdrFragment(id=7, m=1, offset=0)
        / UDP(sport=5000, dport=443)
        / Raw(b"a" * 64)
    )
    d = decode(LINKTYPE_RAW, first)
    assert (d[6], d[7]) == (5000, 443) and d[13] is not None and d[13][1] == 0
    later = bytes(
        IPv6(src="fd00::5", dst="2001:db8::1", nh=44)
        / IPv6ExtHdrFragment(id=7, m=0, offset=9, nh=17)
        / Raw(b"b" * 40)
    )
    d2 = decode(LINKTYPE_RAW, later)
    assert d2[13][0] == d[13][0] and d2[13][1] == 72 and d2[9] == 40


def test_ipv4_fragment_keys_match() -> None:
    first = bytes(
        IP(src="10.0.0.1", dst="1.1.1.1", id=99, flags="MF")
        / UDP(sport=1, dport=2)
        / Raw(b"z" * 16)
    )
    later = bytes(IP(src="10.0.0.1", dst="1.1.1.1", id=99, frag=3, proto=17) / Raw(b"y" * 8))
    a, b = decode(LINKTYPE_RAW, first), decode(LINKTYPE_RAW, later)
    assert a[13][0] == b[13][0] and b[13][1] == 24 and b[6] == 0


def test_linux_cooked_v1_and_v2_carry_source_mac() -> None:
    inner = IP(src="192.168.1.9", dst="9.9.9.9") / UDP(sport=1234, dport=53) / Raw(b"d" * 12)
    sll = bytes(
        CookedLinux(
            pkttype=4,
            lladdrtype=1,
            lladdrlen=6,
            src=bytes.fromhex("020000000009") + b"\0\0",
            proto=0x0800,
        )
        / inner
    )
    d = decode(LINKTYPE_LINUX_SLL, sll)
    assert d[1].hex(":") == "02:00:00:00:00:09" and d[7] == 53
    body = bytes(inner)
    sll2 = (
        b"\x08\x00\x00\x00"
        + (3).to_bytes(4, "big")
        + b"\x00\x01"
        + b"\x04\x06"
        + bytes.fromhex("0200000000090000")
        + body
    )
    d2 = decode(LINKTYPE_LINUX_SLL2, sll2)
    assert d2[1].hex(":") == "02:00:00:00:00:09" and d2[3] == v4("192.168.1.9")


def test_null_loopback_both_byte_orders() -> None:
    body = bytes(IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=1, dport=443) / Raw(b"x"))
    assert decode(LINKTYPE_NULL, (2).to_bytes(4, "little") + body)[5] == 17
    assert decode(LINKTYPE_NULL, (2).to_bytes(4, "big") + body)[5] == 17


def test_arp_and_other_ethertypes() -> None:
    arp = bytes(
        Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=MAC_A, psrc="192.168.1.5", pdst="192.168.1.1")
    )
    d = decode(LINKTYPE_ETHERNET, arp)
    assert d[0] == KIND_ARP and d[3] == v4("192.168.1.5") and d[6].hex(":") == MAC_A
    lldp = bytes(Ether(src=MAC_A, dst=MAC_B, type=0x88CC) / Raw(b"\0" * 20))
    assert decode(LINKTYPE_ETHERNET, lldp)[0] == KIND_OTHER


def test_declared_length_counts_even_when_snaplen_cut_the_frame() -> None:
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="1.1.1.1") / TCP() / Raw(b"p" * 1400))
    d = decode(LINKTYPE_ETHERNET, frame[:96])
    assert d[8] == 1440 and d[9] == 1400


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00" * 13,
        bytes(Ether(type=0x0800)) + b"\x45\x00",
        bytes(Ether() / IP(ihl=4, src="1.1.1.1", dst="2.2.2.2")),
        bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", proto=6))[:34] + b"\x00" * 10,
        bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP(dataofs=2)),
        bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", len=20, proto=17) / UDP()),
        bytes(Ether(type=0x86DD)) + b"\x60" + b"\0" * 20,
        bytes(Ether() / IPv6(nh=0, plen=8)) + b"\x00\xff" + b"\0" * 6,
    ],
)
def test_broken_headers_raise_malformed(frame: bytes) -> None:
    with pytest.raises(Malformed):
        decode(LINKTYPE_ETHERNET, frame)


def test_unsupported_link_type() -> None:
    with pytest.raises(UnsupportedLinkType):
        decode(127, b"\x00" * 40)
