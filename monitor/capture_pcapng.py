"""pcapng reader: sections, interfaces and the three kinds of packet block.

Reads section header blocks in either byte order (each new section may change it and resets the
interface list), interface description blocks (link type, snaplen, ``if_tsresol`` in powers of
10 or 2, ``if_tsoffset``), enhanced, simple and obsolete packet blocks; every other block is
skipped. Interfaces of one file may have different link types; each record carries its own.

Guarantees are those of :mod:`monitor.pcapfile` readers: no exception on bad input; a block with
an impossible length, a packet block naming an unknown interface or larger than its block, a
captured length beyond :data:`~monitor.pcapfile.MAX_RECORD`, or a block cut off by the end of
the data ends the file and is counted in ``tally.truncated``.

Timestamps: ``ticks / units_per_second + if_tsoffset`` (exactly rounded, so microsecond and
nanosecond stamps match tshark). A simple packet block has no timestamp of its own and gets the
previous packet's (0.0 before any).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from monitor.pcapfile import (
    MAX_RECORD,
    PCAPNG_BYTE_ORDERS,
    PCAPNG_MAGIC,
    Record,
    Tally,
    refill,
)

MAX_BLOCK = 16 << 20
"""Largest block accepted (16 MiB); a longer one is taken for corruption."""

_BLOCK_SECTION = 0x0A0D0D0A
_BLOCK_INTERFACE = 1
_BLOCK_OBSOLETE_PACKET = 2
_BLOCK_SIMPLE_PACKET = 3
_BLOCK_ENHANCED_PACKET = 6
# Smallest valid total length of the blocks whose fixed fields are read.
_MIN_LENGTH = {
    _BLOCK_SECTION: 28,
    _BLOCK_INTERFACE: 20,
    _BLOCK_OBSOLETE_PACKET: 32,
    _BLOCK_SIMPLE_PACKET: 16,
    _BLOCK_ENHANCED_PACKET: 32,
}
_OPT_END = 0
_OPT_TSRESOL = 9
_OPT_TSOFFSET = 14

# One interface: (link type, snaplen, timestamp units per second, timestamp offset in seconds).
_Interface = tuple[int, int, int, int]

# Per byte order: unpackers of the block header, enhanced and obsolete packet block fields.
_UNPACK = {
    order: (
        struct.Struct(order + "II").unpack_from,
        struct.Struct(order + "IIII").unpack_from,
        struct.Struct(order + "HHIII").unpack_from,
    )
    for order in PCAPNG_BYTE_ORDERS.values()
}


def read_pcapng(chunks: Iterator[bytes], tally: Tally) -> Iterator[Record]:
    """Yield the records of a pcapng stream delivered as ``chunks`` (see module guarantees)."""
    buf, pos, end = b"", 0, 0
    order = "<"
    header, enhanced, obsolete = _UNPACK[order]
    interfaces: list[_Interface] = []
    ts = 0.0
    while not tally.stopped:
        if end - pos < 12:
            buf = refill(buf[pos:], 12, chunks)
            pos, end = 0, len(buf)
            if end < 12:
                tally.end_of_data(end)
                return
        if buf[pos : pos + 4] == PCAPNG_MAGIC:
            order = PCAPNG_BYTE_ORDERS.get(buf[pos + 8 : pos + 12], "")
            interfaces = []
            if not order:
                tally.truncated += 1
                return
            header, enhanced, obsolete = _UNPACK[order]
        btype, blen = header(buf, pos)
        if blen % 4 or not _MIN_LENGTH.get(btype, 12) <= blen <= MAX_BLOCK:
            tally.truncated += 1
            return
        if end - pos < blen:
            buf = refill(buf[pos:], blen, chunks)
            pos, end = 0, len(buf)
            if end < blen:
                tally.end_of_data(end)
                return
        if btype == _BLOCK_ENHANCED_PACKET:
            iface, hi, lo, caplen = enhanced(buf, pos + 8)
            start = pos + 28
        elif btype == _BLOCK_OBSOLETE_PACKET:
            iface, _drops, hi, lo, caplen = obsolete(buf, pos + 8)
            start = pos + 28
        elif btype == _BLOCK_SIMPLE_PACKET:
            wire = struct.unpack_from(order + "I", buf, pos + 8)[0]
            snaplen = interfaces[0][1] if interfaces else 0
            iface, hi, lo, start = 0, None, 0, pos + 12
            caplen = min(wire, blen - 16, snaplen or wire)
        else:
            if btype == _BLOCK_INTERFACE:
                interfaces.append(_interface(buf, pos, blen, order))
            pos += blen
            continue
        if iface >= len(interfaces) or caplen > pos + blen - 4 - start or caplen > MAX_RECORD:
            tally.truncated += 1
            return
        linktype, _snaplen, units, offset = interfaces[iface]
        if hi is not None:
            ts = ((hi << 32) | lo) / units + offset
        tally.packets += 1
        tally.bytes += caplen
        yield ts, linktype, buf[start : start + caplen]
        pos += blen


def _interface(block: bytes, pos: int, blen: int, order: str) -> _Interface:
    """Parse the interface description block at ``pos``; options running past it are ignored."""
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", block, pos + 8)
    units, offset = 10**6, 0
    pos, stop = pos + 16, pos + blen - 4
    while pos + 4 <= stop:
        code, length = struct.unpack_from(order + "HH", block, pos)
        if code == _OPT_END or pos + 4 + length > stop:
            break
        if code == _OPT_TSRESOL and length >= 1:
            value = block[pos + 4]
            units = 2 ** (value & 0x7F) if value & 0x80 else 10**value
        elif code == _OPT_TSOFFSET and length >= 8:
            offset = struct.unpack_from(order + "q", block, pos + 4)[0]
        pos += 4 + ((length + 3) & ~3)
    return linktype, snaplen, units, offset
