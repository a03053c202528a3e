"""HelloTracker: every ClientHello of the real captures, as tshark sees them, within bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.protocols.tls import ClientHello
from monitor.reassembly import HelloTracker
from tests.conftest import DATA, require_tool
from tests.tlsutil import first_per_stream, packets, tshark_hellos

CAPTURES = sorted((DATA / "protocols").glob("*.pcap*")) + sorted((DATA / "iot").glob("*.pcap*"))
KYBER = DATA / "protocols" / "zeek_tls_chrome_kyber_big_clienthello.pcap"
QUIC_FRAGMENTED = DATA / "protocols" / "zeek_quic_chromium_fragmented_initial.pcap"
HUGE = DATA / "protocols" / "ndpi_tls_huge_clienthello.pcapng"


def tracked(path: Path, tracker: HelloTracker | None = None) -> dict[int, ClientHello]:
    """The ClientHellos a tracker finds in a capture, by the frame that completed them."""
    tracker = tracker or HelloTracker()
    found = {}
    for packet in packets(path):
        if packet.proto == "tcp":
            hello = tracker.on_tcp(packet.flow, packet.from_orig, packet.seq, packet.payload)
        else:
            hello = tracker.on_udp(packet.flow, packet.from_orig, packet.payload)
        if hello is not None:
            found[packet.frame] = hello
    return found


def client_packets(path: Path, proto: str) -> list[tuple[int, bytes]]:
    """(seq, payload) of the client side of the first flow of ``proto`` that carries data."""
    chosen = [p for p in packets(path) if p.proto == proto and p.from_orig and p.payload]
    return [(p.seq, p.payload) for p in chosen if p.flow == chosen[0].flow]


@pytest.mark.tshark
@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: path.name)
def test_sni_and_alpn_equal_tshark(path: Path) -> None:
    tshark = require_tool("tshark")
    everything = tshark_hellos(tshark, path)
    # One ClientHello per flow direction: the first of each conversation (a second follows a
    # HelloRetryRequest). SSLv2-format hellos (old OpenSSL in D-Link devices) have no SNI or
    # ALPN and are not TLS records: the tracker does not report them.
    expected = {f: (h.sni, h.alpn) for f, h in first_per_stream(everything).items()}
    got = {frame: (hello.sni, hello.alpn) for frame, hello in tracked(path).items()}
    assert got == expected
    assert {h.sni for h in everything.values()} - {None} == {sni for sni, _ in got.values()} - {
        None
    }


def test_tracker_finds_the_hard_cases() -> None:
    assert [h.sni for h in tracked(KYBER).values()] == ["lh3.google.com"]
    assert [h.sni for h in tracked(QUIC_FRAGMENTED).values()] == ["www.google.de"]
    assert [len(h.cipher_suites) for h in tracked(HUGE).values()] == [18]


@pytest.fixture(scope="module")
def huge() -> list[tuple[int, bytes]]:
    """The client segments of a ClientHello of 11 KiB sent in 12 segments (then more data)."""
    return client_packets(HUGE, "tcp")


def test_each_direction_yields_once_then_costs_nothing(huge: list[tuple[int, bytes]]) -> None:
    tracker = HelloTracker()
    results = [tracker.on_tcp("flow", True, seq, payload) for seq, payload in huge]
    assert [i for i, hello in enumerate(results) if hello is not None] == [11]
    assert len(tracker) == 0 and tracker.found == 1
    assert all(tracker.on_tcp("flow", True, seq, payload) is None for seq, payload in huge)
    assert len(tracker) == 0 and tracker.found == 1


def test_a_flow_that_starts_otherwise_is_settled_at_once(huge: list[tuple[int, bytes]]) -> None:
    tracker = HelloTracker()
    assert tracker.on_tcp("http", True, 1, b"GET / HTTP/1.1\r\n\r\n") is None
    assert tracker.on_udp("dns", True, b"\x12\x34\x01\x00\x00\x01") is None
    assert len(tracker) == 0
    assert all(tracker.on_tcp("http", True, seq, payload) is None for seq, payload in huge)
    assert tracker.found == 0 and len(tracker) == 0


def test_directions_and_protocols_are_tracked_apart(huge: list[tuple[int, bytes]]) -> None:
    tracker = HelloTracker()
    tracker.on_tcp("flow", False, 1, b"GET / HTTP/1.1\r\n\r\n")  # settles the other direction
    tracker.on_udp("flow", True, b"\x00")  # settles UDP under the same flow key
    assert sum(tracker.on_tcp("flow", True, seq, p) is not None for seq, p in huge) == 1


def test_pending_assemblers_are_capped_oldest_dropped(huge: list[tuple[int, bytes]]) -> None:
    tracker = HelloTracker(max_pending=3)
    (seq, first), *rest = huge
    for flow in range(4):
        assert tracker.on_tcp(flow, True, seq, first) is None
    assert len(tracker) == 3 and tracker.evicted == 1
    found = {
        flow: sum(tracker.on_tcp(flow, True, s, p) is not None for s, p in rest)
        for flow in range(4)
    }
    assert found == {0: 0, 1: 1, 2: 1, 3: 1}  # the evicted flow is settled, not restarted


def test_forget_releases_a_flow(huge: list[tuple[int, bytes]]) -> None:
    tracker = HelloTracker()
    tracker.on_tcp("flow", True, *huge[0])
    assert len(tracker) == 1
    tracker.forget("flow")
    tracker.forget("never seen")
    assert len(tracker) == 0
    assert sum(tracker.on_tcp("flow", True, seq, payload) is not None for seq, payload in huge) == 1


def test_settled_memory_is_bounded(huge: list[tuple[int, bytes]]) -> None:
    tracker = HelloTracker(max_settled=2)
    for flow in range(3):
        tracker.on_tcp(flow, True, 1, b"not tls")
    tracker.on_tcp(2, True, *huge[0])  # still settled: ignored
    assert len(tracker) == 0
    tracker.on_tcp(0, True, *huge[0])  # forgotten as settled: a handshake record starts anew
    assert len(tracker) == 1


def test_failures_are_counted() -> None:
    tracker = HelloTracker()
    server_hello = b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03"
    assert tracker.on_tcp("flow", False, 1, server_hello) is None
    assert tracker.failed == 1 and len(tracker) == 0
