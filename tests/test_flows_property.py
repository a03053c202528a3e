"""Property tests of the pipeline's flow accounting: whatever the packets, memory stays under
the cap and every flow ends exactly once with its packets all counted."""

from __future__ import annotations

import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import FlowEnd, FlowStart, HandlerChain
from monitor.flows import HomeNetworks
from monitor.pipeline import Pipeline

HOSTS = [socket.inet_aton(f"192.168.1.{n}") for n in (2, 3)] + [
    socket.inet_aton(f"203.0.113.{n}") for n in (1, 2, 3)
]


def frame(src: bytes, dst: bytes, proto: int, sport: int, dport: int, payload: int) -> bytes:
    """Ethernet + IPv4 + a bare TCP or UDP header + ``payload`` zero bytes."""
    l4 = (
        struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x18, 0, 0, 0)
        if proto == 6
        else struct.pack("!HHHH", sport, dport, 8 + payload, 0)
    )
    total = 20 + len(l4) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, proto, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + l4 + bytes(payload)


packet = st.tuples(
    st.sampled_from(HOSTS),
    st.sampled_from(HOSTS),
    st.sampled_from([6, 17]),
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 1400),
    st.floats(0, 3),
)


class Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []
        self.packets = 0

    def on_flow_start(self, event: FlowStart) -> None:
        self.started.append(event.flow.uid)

    def on_flow_end(self, event: FlowEnd) -> None:
        self.ended.append(event.flow.uid)
        self.packets += event.flow.orig_pkts + event.flow.resp_pkts


@settings(max_examples=60, deadline=None)
@given(st.lists(packet, min_size=1, max_size=300), st.integers(100, 150))
def test_every_flow_ends_once_and_memory_stays_capped(packets, cap) -> None:
    recorder = Recorder()
    pipeline = Pipeline(
        HandlerChain([recorder]),
        home=HomeNetworks(),
        max_flows=cap,
        idle_timeout_tcp=5,
        idle_timeout_udp=2,
    )
    ts = 1000.0
    source = []
    for src, dst, proto, sport, dport, size, gap in packets:
        ts += gap
        source.append((ts, 1, frame(src, dst, proto, sport, dport, size)))
    peak = 0

    def tracking():
        nonlocal peak
        for item in source:
            yield item
            peak = max(peak, len(pipeline.table))

    pipeline.run(tracking())
    pipeline.finish()
    assert peak <= cap
    assert sorted(recorder.started) == sorted(recorder.ended)
    assert len(set(recorder.ended)) == len(recorder.ended)
    assert recorder.packets == pipeline.decoded == len(packets)
