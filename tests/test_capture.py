"""Tests of the capture sources: files (plain, gzip, several, standard input) and live capture.

Live tests run in two network namespaces this module creates (a veth link between them,
10.199.0.0/30 inside them only) and delete afterwards; no traffic leaves them.
"""

from __future__ import annotations

import ctypes
import gzip
import io
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.capture import PacketSource, open_files, open_live
from monitor.capture_live import linktype_of
from monitor.errors import CaptureError
from monitor.pcapfile import LINKTYPE_ETHERNET, LINKTYPE_RAW, write_pcap
from tests.conftest import DATA, require_root, require_tool

PCAPNG = DATA / "iot/ndpi_sonos.pcapng"  # 61 packets
PCAP = DATA / "protocols/zeek_dhcp.pcap"  # 9 packets
FRAME = bytes.fromhex("ffffffffffff0200000000010800") + bytes(46)


def records(paths: list[str], **kwargs: object) -> list[tuple[float, int, bytes]]:
    with open_files(paths, **kwargs) as source:  # type: ignore[arg-type]
        return [item for item in source if item is not None]


# --- files -----------------------------------------------------------------------------------


def test_several_files_are_read_one_after_another() -> None:
    source = open_files([str(PCAP), str(PCAPNG), str(PCAP)])
    assert source.name == str(PCAP)
    names = []
    items = []
    for item in source:
        items.append(item)
        names.append(source.name)
    assert items == records([str(PCAP)]) + records([str(PCAPNG)]) + records([str(PCAP)])
    assert names == [str(PCAP)] * 9 + [str(PCAPNG)] * 61 + [str(PCAP)] * 9
    assert source.stats() == {
        "packets": 79,
        "bytes": sum(len(frame) for _, _, frame in items),
        "truncated": 0,
        "files": 3,
    }
    assert list(source) == []  # a source is read once


def test_format_is_detected_by_magic_never_extension(tmp_path: Path) -> None:
    misnamed = DATA / "malformed/ndpi_fuzz_2020_02_16.pcap"  # pcapng named .pcap
    assert len(records([str(misnamed)])) == 366
    renamed = tmp_path / "capture.txt"
    renamed.write_bytes(PCAPNG.read_bytes())
    assert records([str(renamed)]) == records([str(PCAPNG)])


def test_gzip_compressed_capture_gives_the_same_packets(tmp_path: Path) -> None:
    plain = PCAPNG.read_bytes()
    one = tmp_path / "one.pcapng.gz"
    one.write_bytes(gzip.compress(plain))
    members = tmp_path / "members.bin"  # several gzip members in a row, as `cat a.gz b.gz`
    members.write_bytes(gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]))
    expected = records([str(PCAPNG)])
    assert records([str(one)]) == expected
    assert records([str(members)]) == expected


def test_gzip_bomb_is_streamed_in_bounded_chunks(tmp_path: Path) -> None:
    """300 MB of zero-length records compress to 300 kB; memory stays bounded."""
    path = tmp_path / "bomb.pcap.gz"
    write_pcap(tmp_path / "head.pcap", [])
    header = (tmp_path / "head.pcap").read_bytes()
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(header)
        block = bytes(16 * 65536)
        for _ in range(3):
            out.write(block)
    with open_files([str(path)]) as source:
        assert sum(1 for _ in source) == 3 * 65536
        assert source.stats()["truncated"] == 0


def test_damaged_gzip_ends_the_file_counted(tmp_path: Path) -> None:
    big = DATA / "iot/echo349_home_wifi.pcapng"  # 3658 packets
    packed = gzip.compress(big.read_bytes(), compresslevel=1)
    middle = len(packed) // 2
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[:middle])
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(packed[:middle] + bytes(500) + packed[middle + 500 :])
    for path in (cut, corrupt):
        with open_files([str(path), str(PCAP)]) as source:
            items = list(source)
            stats = source.stats()
        assert 1000 < len(items) - 9 < 3658
        assert items[-9:] == records([str(PCAP)])  # the next file is still read
        assert (stats["truncated"], stats["files"]) == (1, 2)


def test_trailing_garbage_after_gzip_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "garbage.gz"
    path.write_bytes(gzip.compress(PCAP.read_bytes()) + b"not gzip")
    with open_files([str(path)]) as source:
        assert list(source) == records([str(PCAP)])
        assert source.stats()["truncated"] == 1


def test_stdin_as_a_file_object() -> None:
    data = PCAPNG.read_bytes()
    got = records([str(PCAP), "-"], stdin=io.BytesIO(gzip.compress(data)))
    assert got == records([str(PCAP), str(PCAPNG)])


def test_stdin_piped_into_a_process() -> None:
    script = (
        "from monitor.capture import open_files\n"
        "s = open_files(['-'])\n"
        "print(sum(len(f) for _, _, f in s), s.stats()['packets'], s.name)\n"
    )
    with PCAPNG.open("rb") as stdin:
        out = subprocess.run(
            [sys.executable, "-c", script], stdin=stdin, capture_output=True, text=True, timeout=60
        )
    total = sum(len(frame) for _, _, frame in records([str(PCAPNG)]))
    assert out.stdout.split() == [str(total), "61", "-"], out.stderr


def test_stdin_pipe_is_streamed_without_waiting_for_more_data() -> None:
    """The first record comes out while the writer still holds the pipe open."""
    read_end, write_end = os.pipe()
    data = PCAP.read_bytes()
    first_record_end = 24 + 16 + int.from_bytes(data[32:36], "little")
    got_first = threading.Event()

    def writer() -> None:
        with os.fdopen(write_end, "wb") as out:
            out.write(data[:first_record_end])
            out.flush()
            got_first.wait(10)
            out.write(data[first_record_end:])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with os.fdopen(read_end, "rb") as stdin, open_files(["-"], stdin=stdin) as source:
            items = []
            for item in source:
                items.append(item)
                got_first.set()
                if len(items) == 1:
                    assert thread.is_alive()  # the rest was not written yet
    finally:
        got_first.set()
        thread.join(10)
    assert items == records([str(PCAP)])


def test_stop_from_a_signal_handler_ends_the_wait_on_a_quiet_pipe() -> None:
    read_end, write_end = os.pipe()
    data = PCAP.read_bytes()
    os.write(write_end, data[:400])  # header, some records, then silence
    closed: list[bool] = []

    def close_writer() -> None:  # ends a broken wait with EOF
        closed.append(True)
        os.close(write_end)

    backstop = threading.Timer(5, close_writer)
    backstop.start()
    with os.fdopen(read_end, "rb") as stdin, open_files(["-"], stdin=stdin) as source:
        started = time.monotonic()
        with watchdog(source, 0.3):
            items = list(source)
        elapsed = time.monotonic() - started
    backstop.cancel()
    backstop.join()
    if not closed:
        os.close(write_end)
    assert items == records([str(PCAP)])[: len(items)]
    assert len(items) >= 1
    assert 0.25 < elapsed < 1.5
    assert source.stats()["truncated"] == 0  # stopped, not damaged


def test_checking_an_input_reads_only_its_first_bytes() -> None:
    stdin = io.BytesIO(DATA.joinpath("iot/echo349_home_wifi.pcapng").read_bytes())
    source = open_files(["-"], stdin=stdin)
    assert 12 <= stdin.tell() <= 4096
    assert sum(1 for _ in source) == 3658


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "{} is empty, not a pcap or pcapng capture"),
        (
            b"GET / HTTP/1.1\r\n\r\n",
            "{} is not a pcap or pcapng capture (it starts with 47 45 54 20",
        ),
        (
            gzip.compress(b"hello"),
            "{} is gzip-compressed but what it holds is not a pcap or pcapng",
        ),
        (gzip.compress(b""), "{} is gzip-compressed but what it holds is empty, not a pcap"),
        (b"\x1f\x8b\x08\x00" + bytes(30), "{} is a damaged gzip file, not a readable capture"),
    ],
)
def test_not_a_capture_is_refused_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "trace.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as caught:
        open_files([str(PCAP), str(path)])
    assert str(caught.value).startswith(message.format(path))


def test_missing_or_unreadable_input_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    with pytest.raises(CaptureError, match=f"^{missing}: no such capture file$"):
        open_files([str(PCAP), str(missing)])
    with pytest.raises(CaptureError, match=f"^{tmp_path} is a directory, not a capture file$"):
        open_files([str(tmp_path)])
    with pytest.raises(CaptureError, match="only once"):
        open_files(["-", "-"], stdin=io.BytesIO())
    with pytest.raises(CaptureError, match="no capture file given"):
        open_files([])
    with pytest.raises(CaptureError, match=r"^- is empty"):
        open_files(["-"], stdin=io.BytesIO())


def test_stop_ends_file_iteration_at_the_next_record() -> None:
    source = open_files([str(PCAPNG), str(PCAP)])
    iterator = iter(source)
    first = [next(iterator) for _ in range(5)]
    source.stop()
    assert list(iterator) == []
    assert source.stats() == {
        "packets": 5,
        "bytes": sum(len(frame) for _, _, frame in first),
        "truncated": 0,
        "files": 1,
    }


def test_close_releases_the_open_file() -> None:
    source = open_files([str(PCAPNG)])
    iterator = iter(source)
    next(iterator)
    source.close()
    assert list(iterator) == []
    assert source.stats()["truncated"] == 0


# --- live ------------------------------------------------------------------------------------

_CLONE_NEWNET = 0x40000000


@contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the calling thread in network namespace ``name``; sockets made here stay in it."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/ns/net") as home, open(f"/run/netns/{name}") as target:
        if libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
        try:
            yield
        finally:
            libc.setns(home.fileno(), _CLONE_NEWNET)


@pytest.fixture(scope="module")
def veth() -> Iterator[tuple[str, str]]:
    """Namespaces (A, B) joined by veth mwcap0 (A, 10.199.0.1) -- mwcap1 (B, 10.199.0.2)."""
    require_root()
    ip = require_tool("ip")
    ns_a, ns_b = f"mwcapA{os.getpid()}", f"mwcapB{os.getpid()}"

    def run(*args: str) -> None:
        subprocess.run([ip, *args], check=True, capture_output=True, timeout=30)

    try:
        run("netns", "add", ns_a)
        run("netns", "add", ns_b)
        run("-n", ns_a, "link", "add", "mwcap0", "type", "veth", "peer", "name", "mwcap1",
            "netns", ns_b)  # fmt: skip
        run("-n", ns_a, "addr", "add", "10.199.0.1/30", "dev", "mwcap0")
        run("-n", ns_b, "addr", "add", "10.199.0.2/30", "dev", "mwcap1")
        run("-n", ns_a, "link", "set", "mwcap0", "up")
        run("-n", ns_b, "link", "set", "mwcap1", "up")
        run("-n", ns_a, "link", "add", "mwdown0", "type", "veth", "peer", "name", "mwdown1")
        yield ns_a, ns_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=30)


@contextmanager
def watchdog(source: PacketSource, seconds: float) -> Iterator[None]:
    """Stop ``source`` from a SIGALRM handler after ``seconds``, so a broken test cannot hang."""
    previous = signal.signal(signal.SIGALRM, lambda *_: source.stop())
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _send(ns: str, port: int, payloads: list[bytes]) -> None:
    with netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for payload in payloads:
            sock.sendto(payload, ("10.199.0.1", port))


@pytest.mark.live
def test_live_capture_gets_every_packet_then_heartbeats(veth: tuple[str, str]) -> None:
    ns_a, ns_b = veth
    with netns(ns_a):
        source = open_live(
            "mwcap0", bpf_filter="udp dst port 9999", buffer_size=1 << 20, idle_interval=0.2
        )
    with source:
        assert (source.name, source.linktype) == ("mwcap0", LINKTYPE_ETHERNET)
        _send(ns_b, 9998, [b"warm-up"])  # resolves ARP; filtered out
        time.sleep(0.2)
        count = 300
        _send(ns_b, 9999, [b"micwatch-%d" % i for i in range(count)])
        _send(ns_b, 9998, [b"filtered-out"] * 20)
        frames, beats = [], []
        with watchdog(source, 15):
            for item in source:
                if item is not None:
                    frames.append(item)
                elif len(frames) == count:
                    beats.append(time.monotonic())
                    if len(beats) == 4:
                        break
        stats = source.stats()
    payloads = sorted(frame[42:] for _, _, frame in frames)
    assert payloads == sorted(b"micwatch-%d" % i for i in range(count))
    assert {linktype for _, linktype, _ in frames} == {LINKTYPE_ETHERNET}
    assert all(abs(ts - time.time()) < 30 for ts, _, _ in frames)
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert all(0.15 < gap < 0.6 for gap in gaps), gaps
    assert stats["packets"] == count
    assert stats["bytes"] == sum(len(frame) for _, _, frame in frames)
    assert stats["kernel_received"] >= count
    assert stats["kernel_dropped"] == stats["if_dropped"] == 0
    assert source.stats() == stats  # still readable after close


@pytest.mark.live
def test_live_packet_is_handed_on_promptly_while_idle(veth: tuple[str, str]) -> None:
    """Even with a long idle interval, a packet is not held back until the next heartbeat."""
    ns_a, ns_b = veth
    with netns(ns_a):
        source = open_live("mwcap0", bpf_filter="udp dst port 9997", idle_interval=3.0)
    with netns(ns_b):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        sock.sendto(b"prompt", ("10.199.0.1", 9997))

    sock.sendto(b"warm-up", ("10.199.0.1", 9996))  # resolves ARP; filtered out
    timer = threading.Timer(0.5, send)
    with source, sock, watchdog(source, 10):
        timer.start()
        item = next(iter(source))
        received = time.monotonic()
    timer.join()
    assert item is not None and item[2].endswith(b"prompt")
    assert received - sent[0] < 0.5


@pytest.mark.live
def test_live_stop_from_a_signal_handler_ends_iteration(veth: tuple[str, str]) -> None:
    with netns(veth[0]):
        source = open_live("mwcap0", bpf_filter="udp dst port 9999", idle_interval=0.2)
    with source:
        started = time.monotonic()
        with watchdog(source, 0.5):
            items = list(source)
        elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 1.5
    assert 1 <= len(items) <= 4
    assert set(items) == {None}


@pytest.mark.live
def test_live_open_errors_are_plain_english(veth: tuple[str, str]) -> None:
    with netns(veth[0]):
        with pytest.raises(CaptureError) as missing:
            open_live("eth9")
        with pytest.raises(CaptureError) as down:
            open_live("mwdown0")
        with pytest.raises(CaptureError) as bad_filter:
            open_live("mwcap0", bpf_filter="udp port nine")
    assert str(missing.value).startswith("interface eth9 does not exist; available: ")
    assert "mwcap0" in str(missing.value)
    assert str(down.value) == "interface mwdown0 is down; bring it up with: ip link set mwdown0 up"
    assert str(bad_filter.value).startswith("invalid capture filter 'udp port nine': ")


@pytest.mark.live
def test_live_interface_removed_while_capturing_raises(veth: tuple[str, str]) -> None:
    ip = require_tool("ip")
    ns_a = veth[0]
    subprocess.run([ip, "-n", ns_a, "link", "add", "mwgone0", "type", "veth", "peer", "name",
                    "mwgone1"], check=True, timeout=30)  # fmt: skip
    subprocess.run([ip, "-n", ns_a, "link", "set", "mwgone0", "up"], check=True, timeout=30)
    with netns(ns_a):
        source = open_live("mwgone0", idle_interval=0.1)
    with source:
        iterator = iter(source)
        assert next(iterator) is None
        subprocess.run([ip, "-n", ns_a, "link", "del", "mwgone0"], check=True, timeout=30)
        with pytest.raises(CaptureError, match=r"^capture on interface mwgone0 failed: "):
            for _ in range(50):
                next(iterator)


@pytest.mark.live
def test_live_capture_without_privileges_is_refused() -> None:
    require_root()
    capsh = require_tool("capsh")
    script = (
        "from monitor.capture import open_live\n"
        "from monitor.errors import CaptureError\n"
        "try:\n    open_live('lo')\nexcept CaptureError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [capsh, "--drop=cap_net_raw,cap_net_admin", "--", "-c", f'"$0" -c "{script}"',
         sys.executable],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == (
        "permission denied: run as root or grant CAP_NET_RAW and CAP_NET_ADMIN"
    ), out.stderr


def test_dlt_values_map_to_file_link_types() -> None:
    assert linktype_of(12) == linktype_of(14) == LINKTYPE_RAW  # DLT_RAW (Linux, OpenBSD)
    assert linktype_of(1) == LINKTYPE_ETHERNET
    assert linktype_of(276) == 276
