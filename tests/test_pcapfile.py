"""Tests of the capture file readers (pcap, pcapng) and the pcap writer.

Oracles: capinfos/tshark on the real captures of tests/data (counts, timestamps, lengths), the
packet counts in tests/data/README.md for the malformed set, and captures built here.
"""

from __future__ import annotations

import functools
import itertools
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.capture_pcapng import read_pcapng
from monitor.pcapfile import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    MAX_RECORD,
    Record,
    Tally,
    detect_format,
    read_pcap,
    write_pcap,
)
from tests.conftest import DATA, require_tool

ETH_FRAME = bytes.fromhex("ffffffffffff0200000000010800") + bytes(46)
RAW_FRAME = bytes.fromhex("4500001c00000000401100000a0000010a000002") + bytes(8)
SLL_FRAME = bytes(14) + b"\x08\x00" + RAW_FRAME


def read_file(path: Path, chunk: int = 1 << 20) -> tuple[list[Record], Tally]:
    """All records of a pcap or pcapng file read in chunks of ``chunk`` bytes, and the tally."""
    data = path.read_bytes()
    tally = Tally()
    chunks = iter([data[i : i + chunk] for i in range(0, len(data), chunk)])
    reader = read_pcap if detect_format(data[:12]) == "pcap" else read_pcapng
    return list(reader(chunks, tally)), tally


def tshark_fields(path: Path) -> list[tuple[str, int]]:
    """(frame.time_epoch, frame.cap_len) of every frame, as tshark reads them."""
    tshark = require_tool("tshark")
    out = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.cap_len"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [(ts, int(cap)) for ts, cap in (line.split("\t") for line in out.splitlines())]


def same_microsecond(ours: float, theirs: str) -> bool:
    return round(ours * 1e6) == round(float(theirs) * 1e6)


# --- pcapng blocks, built by hand ------------------------------------------------------------


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    size = len(body) + 12
    return struct.pack(order + "II", btype, size) + body + struct.pack(order + "I", size)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(
    order: str, linktype: int, snaplen: int = 0, tsresol: int | None = None, tsoffset: int = 0
) -> bytes:
    options = b""
    if tsresol is not None:
        options += struct.pack(order + "HH", 9, 1) + _pad(bytes([tsresol]))
    if tsoffset:
        options += struct.pack(order + "HHq", 14, 8, tsoffset)
    if options:
        options += struct.pack(order + "HH", 0, 0)
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options)


def epb(order: str, iface: int, ticks: int, frame: bytes, caplen: int | None = None) -> bytes:
    caplen = len(frame) if caplen is None else caplen
    head = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, caplen, len(frame))
    return block(order, 6, head + frame)


def opb(order: str, iface: int, ticks: int, frame: bytes) -> bytes:
    head = struct.pack(
        order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)
    )
    return block(order, 2, head + frame)


def spb(order: str, frame: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(frame)) + frame)


def mixed_pcapng() -> bytes:
    """Two sections (little- then big-endian), three interfaces, every packet block kind.

    Interface 0: Ethernet, nanoseconds; interface 1: raw IP, 2^-10 s ticks, offset 1000 s;
    a name resolution block to skip; second section: Linux SLL, default microseconds.
    """
    le, be = "<", ">"
    return (
        shb(le)
        + idb(le, LINKTYPE_ETHERNET, 0, tsresol=9)
        + idb(le, LINKTYPE_RAW, 0, tsresol=0x8A, tsoffset=1000)
        + epb(le, 0, 1_700_000_000_123_456_789, ETH_FRAME)
        + block(le, 4, bytes(4))
        + epb(le, 1, (1_700_000_000 << 10) + 512, RAW_FRAME)
        + opb(le, 0, 1_700_000_001_000_000_500, ETH_FRAME)
        + spb(le, ETH_FRAME)
        + shb(be)
        + idb(be, LINKTYPE_LINUX_SLL)
        + epb(be, 0, 1_700_000_002_654_321, SLL_FRAME)
    )


MIXED_EXPECTED = [
    (1_700_000_000.123456789, LINKTYPE_ETHERNET, ETH_FRAME),
    (1_700_001_000.5, LINKTYPE_RAW, RAW_FRAME),
    (1_700_000_001.0000005, LINKTYPE_ETHERNET, ETH_FRAME),
    (1_700_000_001.0000005, LINKTYPE_ETHERNET, ETH_FRAME),  # simple packet: previous ts
    (1_700_000_002.654321, LINKTYPE_LINUX_SLL, SLL_FRAME),
]


# --- real captures ---------------------------------------------------------------------------


def _captures(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (DATA / folder).iterdir())


@pytest.mark.tshark
def test_packet_counts_match_capinfos_on_iot_and_protocol_captures() -> None:
    capinfos = require_tool("capinfos")
    files = _captures("iot", "protocols")
    out = subprocess.run(
        [capinfos, "-T", "-r", "-c", "-M", *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    rows = (line.split("\t") for line in out.splitlines())
    expected = {Path(name).name: int(count) for name, count in rows}
    assert len(expected) == len(files) > 60
    for path in files:
        records, tally = read_file(path)
        assert (path.name, len(records), tally.truncated) == (path.name, expected[path.name], 0)
        assert tally.packets == len(records)
        assert tally.bytes == sum(len(frame) for _, _, frame in records)


@functools.cache
def _manifest_counts() -> dict[str, int]:
    """Packet counts of the capture manifest in tests/data/README.md."""
    counts = {}
    for line in (DATA / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 7 and cells[2] in {"iot", "protocols", "malformed"}:
            counts[cells[1]] = int(cells[7])
    return counts


@pytest.mark.parametrize("path", _captures("malformed"), ids=lambda p: p.name)
def test_malformed_captures_read_to_the_end_without_error(path: Path) -> None:
    records, tally = read_file(path, chunk=4096)
    assert len(records) == _manifest_counts()[path.name]
    assert tally.truncated == 0
    assert all(len(frame) <= MAX_RECORD for _, _, frame in records)


@pytest.mark.tshark
@pytest.mark.parametrize(
    "name",
    [
        "iot/echo349_home_wifi.pcapng",
        "protocols/zeek_pcapng_multi_interface.pcapng",
        "iot/iotsentinel_HueBridge_Setup-A-2-STA.pcap",
        "protocols/zeek_linux_sll2.pcap",
    ],
)
def test_timestamps_and_lengths_match_tshark(name: str) -> None:
    records, _ = read_file(DATA / name)
    theirs = tshark_fields(DATA / name)
    assert len(records) == len(theirs)
    for (ts, _, frame), (their_ts, their_len) in zip(records, theirs, strict=True):
        assert same_microsecond(ts, their_ts), (ts, their_ts)
        assert len(frame) == their_len


@pytest.mark.parametrize(
    ("name", "linktype"),
    [
        ("malformed/tcpdump_bootp_asan.pcap", 1),
        ("malformed/tcpdump_heap_overflow1.pcap", 101),
        ("malformed/tcpdump_80211_elements_oobr.pcap", 105),
        ("protocols/zeek_linux_sll2.pcap", 276),
    ],
)
def test_pcap_link_type_keeps_only_its_low_16_bits(name: str, linktype: int) -> None:
    records, _ = read_file(DATA / name)
    assert {lt for _, lt, _ in records} == {linktype}


def test_record_longer_than_snaplen_is_still_returned() -> None:
    """bootp_asan.pcap: snaplen 53, record incl_len 90 (tshark reads it)."""
    data = (DATA / "malformed/tcpdump_bootp_asan.pcap").read_bytes()
    assert struct.unpack_from("<I", data, 16)[0] == 53
    records, tally = read_file(DATA / "malformed/tcpdump_bootp_asan.pcap")
    assert [len(frame) for _, _, frame in records] == [90]
    assert tally.truncated == 0


# --- generated pcap --------------------------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_all_four_pcap_magics_round_trip(tmp_path: Path, nanosecond: bool, byteorder: str) -> None:
    packets = [(1_700_000_000.25 + i * 0.001001, ETH_FRAME[: 20 + i]) for i in range(40)]
    path = tmp_path / "gen.pcap"
    assert write_pcap(path, packets, nanosecond=nanosecond, byteorder=byteorder) == 40  # type: ignore[arg-type]
    records, tally = read_file(path, chunk=97)
    assert [(round(ts, 6), lt, fr) for ts, lt, fr in records] == [
        (round(ts, 6), LINKTYPE_ETHERNET, fr) for ts, fr in packets
    ]
    assert (tally.packets, tally.truncated) == (40, 0)


@pytest.mark.tshark
def test_nanosecond_pcap_timestamps_match_tshark(tmp_path: Path) -> None:
    path = tmp_path / "ns.pcap"
    stamps = [1_700_000_000.123456789, 1_700_000_000.999999999, 1_600_000_000.000000500]
    write_pcap(path, [(ts, RAW_FRAME) for ts in stamps], LINKTYPE_RAW, nanosecond=True)
    assert path.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    records, _ = read_file(path)
    theirs = tshark_fields(path)
    assert theirs[0][0].endswith(".123456717")  # the float's nanoseconds, as tshark sees them
    for (ts, lt, _), (their_ts, _) in zip(records, theirs, strict=True):
        assert lt == LINKTYPE_RAW
        assert same_microsecond(ts, their_ts)
        assert abs(ts - float(their_ts)) < 1e-6


def test_cut_off_record_ends_the_file_counted(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    write_pcap(path, [(1.0 + i, ETH_FRAME) for i in range(5)])
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - len(ETH_FRAME) - 10):
        path.write_bytes(data[:cut])
        records, tally = read_file(path, chunk=64)
        assert (len(records), tally.truncated, tally.packets) == (4, 1, 4)


def test_absurd_record_length_ends_the_file_counted(tmp_path: Path) -> None:
    path = tmp_path / "absurd.pcap"
    write_pcap(path, [(1.0, ETH_FRAME), (2.0, ETH_FRAME)])
    data = bytearray(path.read_bytes())
    second = 24 + 16 + len(ETH_FRAME)
    struct.pack_into("<I", data, second + 8, MAX_RECORD + 1)
    path.write_bytes(bytes(data) + bytes(MAX_RECORD + 10))  # long enough to hold it
    records, tally = read_file(path)
    assert (len(records), tally.truncated) == (1, 1)
    struct.pack_into("<I", data, second + 8, MAX_RECORD)  # the largest allowed is read
    path.write_bytes(bytes(data) + bytes(MAX_RECORD - len(ETH_FRAME)))
    records, tally = read_file(path)
    assert (len(records), len(records[1][2]), tally.truncated) == (2, MAX_RECORD, 0)


@pytest.mark.parametrize("size", [0, 10, 24])
def test_short_global_header(tmp_path: Path, size: int) -> None:
    path = tmp_path / "short.pcap"
    write_pcap(path, [])
    path.write_bytes(path.read_bytes()[:size])
    tally = Tally()
    assert list(read_pcap(iter([path.read_bytes()]), tally)) == []
    assert tally.truncated == (0 < size < 24)


def test_reader_returns_at_the_next_record_once_stopped(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    write_pcap(path, [(float(i), ETH_FRAME) for i in range(100)])
    tally = Tally()
    reader = read_pcap(iter([path.read_bytes()]), tally)
    assert [next(reader) for _ in range(3)][2][0] == 2.0
    tally.stopped = True
    assert list(reader) == []
    assert (tally.packets, tally.truncated) == (3, 0)


# --- generated pcapng ------------------------------------------------------------------------


def test_pcapng_sections_interfaces_and_packet_blocks(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(mixed_pcapng())
    records, tally = read_file(path)
    assert [(lt, fr) for _, lt, fr in records] == [(lt, fr) for _, lt, fr in MIXED_EXPECTED]
    for (ts, _, _), (want, _, _) in zip(records, MIXED_EXPECTED, strict=True):
        assert ts == pytest.approx(want, abs=1e-7)
    assert (tally.packets, tally.truncated) == (5, 0)


@pytest.mark.tshark
def test_pcapng_timestamps_match_tshark(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(mixed_pcapng())
    records, _ = read_file(path)
    theirs = tshark_fields(path)
    assert len(theirs) == len(records)
    for (ts, _, frame), (their_ts, their_len) in zip(records, theirs, strict=True):
        assert len(frame) == their_len
        if their_ts:  # tshark gives a simple packet block no time
            assert same_microsecond(ts, their_ts), (ts, their_ts)


def test_simple_packet_block_is_cut_to_the_interface_snaplen() -> None:
    data = shb("<") + idb("<", LINKTYPE_ETHERNET, snaplen=20) + spb("<", ETH_FRAME)
    tally = Tally()
    assert list(read_pcapng(iter([data]), tally)) == [(0.0, LINKTYPE_ETHERNET, ETH_FRAME[:20])]


@pytest.mark.parametrize(
    ("tail", "kept"),
    [
        (epb("<", 1, 5, ETH_FRAME), 1),  # interface 1 was never described
        (epb("<", 0, 5, ETH_FRAME, caplen=len(ETH_FRAME) + 8), 1),  # caplen beyond its block
        (epb("<", 0, 5, bytes(MAX_RECORD + 4)), 1),  # absurd caplen
        (struct.pack("<II", 6, 30) + bytes(30), 1),  # length not a multiple of 4
        (struct.pack("<II", 6, 1 << 30), 1),  # absurd block length
        (struct.pack("<II", 6, 16) + bytes(8), 1),  # packet block too short for its fields
        (epb("<", 0, 5, ETH_FRAME)[:-3], 1),  # cut off by the end of the file
        (shb("<")[:8] + b"\x01\x02\x03\x04" + shb("<")[12:], 1),  # bad byte-order magic
        (spb("<", ETH_FRAME), 2),  # a good block: nothing counted
    ],
)
def test_pcapng_damage_ends_the_file_counted(tail: bytes, kept: int) -> None:
    data = shb("<") + idb("<", LINKTYPE_ETHERNET) + epb("<", 0, 1, ETH_FRAME) + tail
    tally = Tally()
    assert len(list(read_pcapng(iter([data]), tally))) == kept
    assert tally.truncated == (kept == 1)


def test_simple_packet_block_without_interface_is_damage() -> None:
    tally = Tally()
    assert list(read_pcapng(iter([shb("<") + spb("<", ETH_FRAME)]), tally)) == []
    assert tally.truncated == 1


def test_empty_pcapng_section() -> None:
    records, tally = read_file(DATA / "malformed/tcpdump_empty.pcapng")
    assert (records, tally.truncated) == ([], 0)


def _split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return iter([data[a:b] for a, b in itertools.pairwise(edges)])


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=30))
def test_any_chunking_gives_the_same_records(cuts: list[int]) -> None:
    ng = mixed_pcapng()
    assert [r[1:] for r in read_pcapng(_split(ng, cuts), Tally())] == [
        r[1:] for r in MIXED_EXPECTED
    ]
    pcap = (DATA / "protocols/zeek_dhcp.pcap").read_bytes()
    whole = list(read_pcap(iter([pcap]), Tally()))
    assert list(read_pcap(_split(pcap, cuts), Tally())) == whole


def test_detect_format_by_magic_only() -> None:
    assert detect_format(b"\xd4\xc3\xb2\xa1" + bytes(8)) == "pcap"
    assert detect_format(b"\xa1\xb2\x3c\x4d" + bytes(8)) == "pcap"
    assert detect_format(shb(">")[:12]) == "pcapng"
    assert detect_format(b"\x0a\x0d\x0d\x0a" + bytes(8)) is None  # no byte-order magic
    assert detect_format(b"GET / HTTP/1.1\r\n") is None
