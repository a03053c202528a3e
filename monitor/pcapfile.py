"""Capture file formats: the classic pcap reader and writer, format detection, link types.

Readers consume an iterator of byte chunks (any sizes, as read from a file, a pipe or a gzip
stream; they never seek) and yield ``(ts_seconds, linktype, frame_bytes)`` records.

Guarantees of every reader here and in :mod:`monitor.capture_pcapng`:

* it never raises on bad input: a record whose length is absurd (beyond
  :data:`MAX_RECORD`), a record cut off by the end of the data, or a corrupt structure ends the
  file, and the problem is counted in ``tally.truncated`` (once per file);
* a record whose captured length exceeds the file's snaplen is still returned, as tshark does;
* ``tally.packets`` and ``tally.bytes`` (captured bytes) count exactly what was yielded, at
  every moment, and the reader returns at the next record once ``tally.stopped`` is set.

The pcap link type field is masked to its low 16 bits: the high bits carry FCS-length flags.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

# Link-layer header types (https://www.tcpdump.org/linktypes.html), as stored in capture files.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

MAX_RECORD = 256 * 1024
"""Largest captured length accepted for one record (Wireshark's standard maximum, 256 KiB)."""

Record = tuple[float, int, bytes]
"""One packet: timestamp in seconds since the epoch, link type, captured frame bytes."""

# pcap global-header magic (as the first four bytes of the file) -> (struct byte order, tick).
PCAP_MAGICS: dict[bytes, tuple[str, float]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
# pcapng section header byte-order magic (as found in the file) -> struct byte order.
PCAPNG_BYTE_ORDERS = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}


class Tally:
    """Counters a reader keeps while it runs, and the flag that asks it to stop.

    ``truncated`` counts inputs that ended on something that could not be read: a cut-off
    record, an absurd length, a corrupt block or a damaged compressed stream.
    """

    __slots__ = ("bytes", "packets", "stopped", "truncated")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.truncated = 0
        self.stopped = False

    def end_of_data(self, leftover: int) -> None:
        """Note that the data ended with ``leftover`` unread bytes (a problem unless stopped)."""
        if leftover and not self.stopped:
            self.truncated += 1


def detect_format(head: bytes) -> Literal["pcap", "pcapng"] | None:
    """The capture format that ``head`` (the first 12 bytes or more of a file) starts, if any.

    Detection is by magic number only: a pcap global-header magic (microsecond or nanosecond,
    either byte order), or a pcapng section header block with a valid byte-order magic.
    """
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC and head[8:12] in PCAPNG_BYTE_ORDERS:
        return "pcapng"
    return None


def refill(rest: bytes, need: int, chunks: Iterator[bytes]) -> bytes:
    """``rest`` followed by as few chunks as give it ``need`` bytes; shorter only at the end.

    Joins once, so a large record spread over many small pipe reads costs linear time.
    """
    if len(rest) >= need:
        return rest
    parts = [rest]
    have = len(rest)
    for chunk in chunks:
        parts.append(chunk)
        have += len(chunk)
        if have >= need:
            break
    return b"".join(parts)


def read_pcap(chunks: Iterator[bytes], tally: Tally) -> Iterator[Record]:
    """Yield the records of a classic pcap stream delivered as ``chunks`` (see module guarantees).

    The stream must start with a pcap magic (:func:`detect_format`). Timestamps are
    ``seconds + fraction * tick`` where the tick is 1 µs or 1 ns according to the magic.
    """
    buf = refill(b"", 24, chunks)
    if len(buf) < 24:
        tally.end_of_data(len(buf))
        return
    order, tick = PCAP_MAGICS[buf[:4]]
    linktype = struct.unpack_from(order + "I", buf, 20)[0] & 0xFFFF
    unpack_record = struct.Struct(order + "IIII").unpack_from
    pos, end = 24, len(buf)
    while True:
        need = 16
        # The tally is brought up to date once per buffer, not per record (the hot loop), and
        # ``stop`` is honoured between records (checked once per buffer and on resumption).
        start_packets, start_pos = tally.packets, pos
        count = 0
        try:
            while end - pos >= 16:
                sec, frac, incl, _orig = unpack_record(buf, pos)
                if incl > MAX_RECORD:
                    tally.truncated += 1
                    return
                nxt = pos + 16 + incl
                if nxt > end:
                    need = 16 + incl
                    break
                count += 1
                yield sec + frac * tick, linktype, buf[pos + 16 : nxt]
                pos = nxt
                if tally.stopped:
                    return
        finally:
            tally.packets = start_packets + count
            tally.bytes += pos - start_pos - 16 * count
        buf = refill(buf[pos:], need, chunks)
        pos, end = 0, len(buf)
        if end < need:
            tally.end_of_data(end)
            return


def pcap_header(
    linktype: int = LINKTYPE_ETHERNET,
    *,
    snaplen: int = 262144,
    nanosecond: bool = False,
    byteorder: Literal["<", ">"] = "<",
) -> bytes:
    """The global header of a classic pcap file or stream (version 2.4)."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    return struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(
    ts: float, frame: bytes, *, nanosecond: bool = False, byteorder: Literal["<", ">"] = "<"
) -> bytes:
    """One classic pcap record: ``frame`` whole (incl_len = orig_len = len(frame)) at ``ts``
    rounded to the microsecond (or nanosecond)."""
    units = 10**9 if nanosecond else 10**6
    sec = int(ts // 1)
    frac = round((ts - sec) * units)
    if frac >= units:
        sec, frac = sec + 1, frac - units
    return struct.pack(byteorder + "IIII", sec, frac, len(frame), len(frame)) + frame


def write_pcap(
    path: str | os.PathLike[str],
    packets: Iterable[tuple[float, bytes]],
    linktype: int = LINKTYPE_ETHERNET,
    *,
    snaplen: int = 262144,
    nanosecond: bool = False,
    byteorder: Literal["<", ">"] = "<",
) -> int:
    """Write ``(ts_seconds, frame_bytes)`` packets to a classic pcap file; return their number.

    Guarantee: :func:`read_pcap` (and tshark) read back the same frames, with timestamps equal
    to the given ones rounded to the microsecond (or nanosecond with ``nanosecond=True``).
    Frames are written whole (incl_len = orig_len = len(frame)), even beyond ``snaplen``.
    """
    count = 0
    form = {"nanosecond": nanosecond, "byteorder": byteorder}
    with Path(path).open("wb") as out:
        out.write(pcap_header(linktype, snaplen=snaplen, **form))
        for ts, frame in packets:
            out.write(pcap_record(ts, frame, **form))
            count += 1
    return count
