"""The fast header path: link layer, IPv4/IPv6 and TCP/UDP headers with ``struct`` at fixed offsets.

:func:`decode` turns one captured frame into a flat tuple (:data:`Decoded`) without building
objects per layer and without copying the payload: it returns the payload's offset and declared
length, and the caller slices the frame only for the few packets a protocol parser needs.

Guarantees: a frame whose headers are broken (too short, bad version, lengths that contradict
each other) raises :class:`~monitor.errors.Malformed`; a frame of a link type micwatch does not
read raises :class:`UnsupportedLinkType`; nothing else is raised for any input. Byte counts come
from the IP header's declared lengths, so a capture cut short by its snaplen still counts what
was on the wire. Addresses stay raw bytes (4 or 16) and MACs raw 6-byte strings: text forms are
made only when a flow or device is created.
"""

from __future__ import annotations

import struct

from monitor.errors import Malformed
from monitor.pcapfile import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

# Link types as written in capture files (monitor.pcapfile); 12 and 14 are the raw-IP DLT values
# some BSD captures carry in files.
LINKTYPE_RAW_BSD = 12
LINKTYPE_RAW_OPENBSD = 14

SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW_BSD,
        LINKTYPE_RAW_OPENBSD,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100, 0x9200)

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

# Decoded kinds (first element of the tuple).
KIND_IP = 0
KIND_ARP = 1
KIND_OTHER = 2

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

#: (kind, src_mac, dst_mac, src, dst, proto, sport, dport, ip_len, payload_len, payload_offset,
#:  tcp_flags, tcp_seq, fragment) where ``fragment`` is None for an unfragmented packet, else
#:  (ip_id_key, offset, more_fragments). For ARP the tuple is (KIND_ARP, src_mac, dst_mac,
#:  sender_ip, target_ip, opcode, sender_mac, 0, ...). For other ethertypes, (KIND_OTHER, src_mac,
#:  dst_mac, ethertype, ...).
Decoded = tuple

_unpack_H = struct.Struct("!H").unpack_from
_unpack_HH = struct.Struct("!HH").unpack_from
_unpack_ipv4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_unpack_ipv6 = struct.Struct("!IHBB16s16s").unpack_from
_unpack_tcp = struct.Struct("!HHIIBB").unpack_from
_unpack_udp = struct.Struct("!HHH").unpack_from
_unpack_arp = struct.Struct("!HHBBH").unpack_from
# Ethernet + a 20-byte IPv4 header in one go: the common case's fast path.
_unpack_eth_ipv4 = struct.Struct("!6s6sHBBHHHBBH4s4s").unpack_from
_unpack_sll2 = struct.Struct("!HHIHBB").unpack_from
_unpack_sll = struct.Struct("!HHH").unpack_from
_EMPTY_MAC = b""

# IPv6 extension headers that may precede the transport header.
_IPV6_EXT = frozenset({0, 43, 60, 135, 139, 140})
_IPV6_FRAG = 44
_IPV6_AH = 51
_IPV6_NONE = 59
_MAX_EXT_HEADERS = 8


class UnsupportedLinkType(Exception):
    """The capture's link type is not one micwatch reads (802.11, PPP, NFLOG...)."""


def decode(linktype: int, frame: bytes) -> Decoded:
    """Decode one frame's headers. See the module docstring for the guarantees."""
    if linktype == LINKTYPE_ETHERNET and len(frame) >= 48:
        # Fast path: untagged Ethernet, IPv4 without options or fragments, TCP or UDP. Anything
        # else (or anything odd) takes the general path below, which checks it properly.
        (dst_mac, src_mac, ethertype, vihl, _tos, total_len, _id, frag, _ttl, proto, _sum, src,
         dst) = _unpack_eth_ipv4(frame, 0)  # fmt: skip
        if ethertype == ETH_IPV4 and vihl == 0x45 and not frag & 0x3FFF:
            if proto == PROTO_TCP:
                sport, dport, seq, _ack, data_off, flags = _unpack_tcp(frame, 34)
                thl = (data_off >> 4) * 4
                if 20 <= thl <= total_len - 20:
                    return (KIND_IP, src_mac, dst_mac, src, dst, proto, sport, dport, total_len,
                            total_len - 20 - thl, 34 + thl, flags, seq, None)  # fmt: skip
            elif proto == PROTO_UDP and total_len >= 28:
                sport, dport, _ulen = _unpack_udp(frame, 34)
                return (KIND_IP, src_mac, dst_mac, src, dst, proto, sport, dport, total_len,
                        total_len - 28, 42, 0, 0, None)  # fmt: skip
    src_mac = dst_mac = _EMPTY_MAC
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            raise Malformed("ethernet header truncated")
        dst_mac = frame[0:6]
        src_mac = frame[6:12]
        ethertype = _unpack_H(frame, 12)[0]
        offset = 14
        while ethertype in _VLAN_TAGS:
            if len(frame) < offset + 4:
                raise Malformed("VLAN tag truncated")
            ethertype = _unpack_H(frame, offset + 2)[0]
            offset += 4
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            raise Malformed("SLL header truncated")
        _pkttype, arphrd, addrlen = _unpack_sll(frame, 0)
        if arphrd == 1 and addrlen == 6:
            src_mac = frame[6:12]
        ethertype = _unpack_H(frame, 14)[0]
        offset = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            raise Malformed("SLL2 header truncated")
        ethertype, _res, _ifindex, arphrd, _pkttype, addrlen = _unpack_sll2(frame, 0)
        if arphrd == 1 and addrlen == 6:
            src_mac = frame[12:18]
        offset = 20
    elif linktype in (
        LINKTYPE_RAW,
        LINKTYPE_RAW_BSD,
        LINKTYPE_RAW_OPENBSD,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
    ):
        if not frame:
            raise Malformed("empty raw IP frame")
        version = frame[0] >> 4
        ethertype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
        if not ethertype:
            raise Malformed(f"raw frame with IP version {version}")
        offset = 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            raise Malformed("loopback header truncated")
        family = int.from_bytes(frame[0:4], "big" if linktype == LINKTYPE_LOOP else "little")
        if family > 0xFFFF:  # written in the other byte order by a foreign host
            family = int.from_bytes(frame[0:4], "little" if linktype == LINKTYPE_LOOP else "big")
        ethertype = ETH_IPV4 if family == 2 else ETH_IPV6 if family in (10, 24, 28, 30) else 0
        if not ethertype:
            return (KIND_OTHER, src_mac, dst_mac, family, None, 0, 0, 0, 0, 0, 0, 0, 0, None)
        offset = 4
    else:
        raise UnsupportedLinkType(linktype)

    if ethertype == ETH_IPV4:
        return _decode_ipv4(frame, offset, src_mac, dst_mac)
    if ethertype == ETH_IPV6:
        return _decode_ipv6(frame, offset, src_mac, dst_mac)
    if ethertype == ETH_ARP:
        return _decode_arp(frame, offset, src_mac, dst_mac)
    return (KIND_OTHER, src_mac, dst_mac, ethertype, None, 0, 0, 0, 0, 0, 0, 0, 0, None)


def _decode_ipv4(frame: bytes, offset: int, src_mac: bytes, dst_mac: bytes) -> Decoded:
    if len(frame) < offset + 20:
        raise Malformed("IPv4 header truncated")
    vihl, _tos, total_len, ip_id, frag, _ttl, proto, _sum, src, dst = _unpack_ipv4(frame, offset)
    if vihl >> 4 != 4:
        raise Malformed("not IPv4")
    ihl = (vihl & 0x0F) * 4
    if ihl < 20 or total_len < ihl:
        raise Malformed("IPv4 header length invalid")
    if len(frame) < offset + ihl:
        raise Malformed("IPv4 options truncated")
    l4 = offset + ihl
    l4_len = total_len - ihl
    frag_offset = (frag & 0x1FFF) * 8
    more = bool(frag & 0x2000)
    fragment = None
    if frag_offset or more:
        fragment = ((src, dst, ip_id, proto), frag_offset, more)
        if frag_offset:
            # Not the first fragment: no transport header here.
            return (
                KIND_IP,
                src_mac,
                dst_mac,
                src,
                dst,
                proto,
                0,
                0,
                total_len,
                l4_len,
                l4,
                0,
                0,
                fragment,
            )
    return _decode_l4(frame, l4, l4_len, proto, total_len, src, dst, src_mac, dst_mac, fragment)


def _decode_ipv6(frame: bytes, offset: int, src_mac: bytes, dst_mac: bytes) -> Decoded:
    if len(frame) < offset + 40:
        raise Malformed("IPv6 header truncated")
    vtf, payload_len, next_header, _hop, src, dst = _unpack_ipv6(frame, offset)
    if vtf >> 28 != 6:
        raise Malformed("not IPv6")
    total_len = payload_len + 40
    l4 = offset + 40
    remaining = payload_len
    fragment = None
    for _ in range(_MAX_EXT_HEADERS):
        if next_header in _IPV6_EXT:
            if len(frame) < l4 + 2 or remaining < 8:
                raise Malformed("IPv6 extension header truncated")
            ext_len = (frame[l4 + 1] + 1) * 8
        elif next_header == _IPV6_AH:
            if len(frame) < l4 + 2 or remaining < 8:
                raise Malformed("IPv6 AH truncated")
            ext_len = (frame[l4 + 1] + 2) * 4
        elif next_header == _IPV6_FRAG:
            if len(frame) < l4 + 8 or remaining < 8:
                raise Malformed("IPv6 fragment header truncated")
            frag = _unpack_H(frame, l4 + 2)[0]
            frag_offset = frag & 0xFFF8
            more = bool(frag & 1)
            ident = frame[l4 + 4 : l4 + 8]
            ext_len = 8
            fragment = ((src, dst, ident, frame[l4]), frag_offset, more)
            if frag_offset:
                return (
                    KIND_IP,
                    src_mac,
                    dst_mac,
                    src,
                    dst,
                    frame[l4],
                    0,
                    0,
                    total_len,
                    remaining - 8,
                    l4 + 8,
                    0,
                    0,
                    fragment,
                )
        else:
            break
        if ext_len > remaining:
            raise Malformed("IPv6 extension header longer than the payload")
        next_header = frame[l4]
        l4 += ext_len
        remaining -= ext_len
    else:
        raise Malformed("too many IPv6 extension headers")
    if next_header == _IPV6_NONE:
        remaining = 0
    return _decode_l4(
        frame, l4, remaining, next_header, total_len, src, dst, src_mac, dst_mac, fragment
    )


def _decode_l4(
    frame: bytes,
    l4: int,
    l4_len: int,
    proto: int,
    total_len: int,
    src: bytes,
    dst: bytes,
    src_mac: bytes,
    dst_mac: bytes,
    fragment: tuple | None,
) -> Decoded:
    if proto == PROTO_TCP:
        if len(frame) < l4 + 14:
            raise Malformed("TCP header truncated")
        sport, dport, seq, _ack, data_off, flags = _unpack_tcp(frame, l4)
        thl = (data_off >> 4) * 4
        if thl < 20 or thl > l4_len:
            raise Malformed("TCP header length invalid")
        return (
            KIND_IP,
            src_mac,
            dst_mac,
            src,
            dst,
            proto,
            sport,
            dport,
            total_len,
            l4_len - thl,
            l4 + thl,
            flags,
            seq,
            fragment,
        )
    if proto == PROTO_UDP:
        if len(frame) < l4 + 8:
            raise Malformed("UDP header truncated")
        if l4_len < 8:
            raise Malformed("UDP length invalid")
        sport, dport, _ulen = _unpack_udp(frame, l4)
        return (
            KIND_IP,
            src_mac,
            dst_mac,
            src,
            dst,
            proto,
            sport,
            dport,
            total_len,
            l4_len - 8,
            l4 + 8,
            0,
            0,
            fragment,
        )
    if proto in (PROTO_ICMP, PROTO_ICMPV6):
        if len(frame) < l4 + 4 or l4_len < 4:
            raise Malformed("ICMP header truncated")
        # Zeek's convention: ICMP type and code stand in for the ports.
        return (
            KIND_IP,
            src_mac,
            dst_mac,
            src,
            dst,
            proto,
            frame[l4],
            frame[l4 + 1],
            total_len,
            l4_len - 4,
            l4 + 4,
            0,
            0,
            fragment,
        )
    return (KIND_IP, src_mac, dst_mac, src, dst, proto, 0, 0, total_len, l4_len, l4, 0, 0, fragment)


def _decode_arp(frame: bytes, offset: int, src_mac: bytes, dst_mac: bytes) -> Decoded:
    if len(frame) < offset + 8:
        raise Malformed("ARP header truncated")
    htype, ptype, hlen, plen, opcode = _unpack_arp(frame, offset)
    if htype != 1 or ptype != ETH_IPV4 or hlen != 6 or plen != 4:
        return (KIND_OTHER, src_mac, dst_mac, ETH_ARP, None, 0, 0, 0, 0, 0, 0, 0, 0, None)
    body = offset + 8
    if len(frame) < body + 20:
        raise Malformed("ARP body truncated")
    sender_mac = frame[body : body + 6]
    sender_ip = frame[body + 6 : body + 10]
    target_ip = frame[body + 16 : body + 20]
    return (
        KIND_ARP,
        src_mac,
        dst_mac,
        sender_ip,
        target_ip,
        opcode,
        sender_mac,
        0,
        0,
        0,
        0,
        0,
        0,
        None,
    )
