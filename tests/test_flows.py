"""The flow table: direction, timeouts, eviction under a flood, Zeek-style states."""

from __future__ import annotations

import socket

from monitor.flows import FlowTable, HomeNetworks, close_bin, conn_state


def raw(ip: str) -> bytes:
    return socket.inet_aton(ip)


def table(max_flows: int = 1000) -> FlowTable:
    return FlowTable(
        home=HomeNetworks(),
        idle_timeout_tcp=300,
        idle_timeout_udp=60,
        active_timeout=3600,
        max_flows=max_flows,
        bin_seconds=5,
    )


def add(t: FlowTable, sport: int, ts: float, proto: int = 17):
    key = (proto, raw("192.168.1.10"), sport, raw("203.0.113.7"), 443)
    return t.add(key, ts, b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\xfe", lambda f: ended.append(f))


ended: list = []


def test_new_flow_knows_its_home_device() -> None:
    t = table()
    flow = add(t, 40000, 100.0)
    assert flow.orig_ip == "192.168.1.10" and flow.resp_ip == "203.0.113.7"
    assert flow.local_orig and not flow.local_resp and flow.device_is_orig
    assert flow.device_mac == "02:00:00:00:00:01" and flow.remote_ip == "203.0.113.7"
    assert flow.uid == "C1" and flow.proto == "udp"


def test_inbound_flow_puts_the_device_on_the_responder_side() -> None:
    t = table()
    key = (6, raw("198.51.100.4"), 5555, raw("192.168.1.20"), 8080)
    flow = t.add(key, 1.0, b"\x02\0\0\0\0\x09", b"\x02\0\0\0\0\x20", lambda f: None)
    assert not flow.device_is_orig and flow.device_ip == "192.168.1.20"
    assert flow.device_mac == "02:00:00:00:00:20" and flow.remote_ip == "198.51.100.4"


def test_idle_timeouts_differ_for_tcp_and_udp() -> None:
    t = table()
    udp = add(t, 1, 0.0, proto=17)
    tcp = add(t, 2, 0.0, proto=6)
    assert t.expire(30.0) == []
    gone = t.expire(61.0)
    assert gone == [udp] and udp.end_reason == "idle" and len(t) == 1
    assert t.expire(301.0) == [tcp]


def test_active_timeout_ends_a_busy_flow() -> None:
    t = table()
    flow = add(t, 1, 0.0)
    flow.last_ts = 3601.0
    assert t.expire(3601.5) == [flow] and flow.end_reason == "active"


def test_flood_is_capped_by_evicting_the_least_recently_active() -> None:
    t = table(max_flows=100)
    ended.clear()
    keep = add(t, 1, 0.0)
    for port in range(2, 1002):
        flow = add(t, port, float(port))
        keep.last_ts = float(port)  # the first flow stays busy
        assert len(t) <= 100
        assert flow in t.flows.values()
    assert keep in t.flows.values()
    assert t.evicted == len(ended) > 900
    assert all(f.end_reason == "evicted" for f in ended)


def test_drain_ends_everything_once() -> None:
    t = table()
    flows = [add(t, p, 1.0) for p in range(1, 6)]
    drained = t.drain()
    assert sorted(f.uid for f in drained) == sorted(f.uid for f in flows)
    assert len(t) == 0 and t.drain() == []


def test_bins_close_into_a_bounded_ring() -> None:
    t = table()
    flow = add(t, 1, 0.0)
    for second in range(10):
        flow.bin_sec = second
        flow.bin_bytes_up = 100 + second
        flow.bin_pkts_up = 1
        close_bin(flow, 5)
    assert [b[0] for b in flow.bins] == [5, 6, 7, 8, 9]
    assert flow.bins[-1] == (9, 109, 0, 1) and flow.bin_sec == -1


def test_conn_states() -> None:
    t = table()
    flow = add(t, 1, 0.0, proto=6)
    for history, state in [
        ("S", "S0"),
        ("Sh", "S1"),
        ("ShFf", "SF"),
        ("Sr", "REJ"),
        ("ShR", "RSTO"),
        ("Shr", "RSTR"),
        ("", "OTH"),
    ]:
        flow.history = history
        assert conn_state(flow) == state, history
    udp = add(t, 2, 0.0)
    udp.orig_pkts = 1
    assert conn_state(udp) == "S0"
    udp.resp_pkts = 1
    assert conn_state(udp) == "SF"


def test_home_networks_from_lan_prefixes() -> None:
    home = HomeNetworks(["10.9.0.0/16"])
    assert home.is_home(raw("10.9.3.4")) and not home.is_home(raw("192.168.1.1"))
    assert home.is_local(raw("224.0.0.251")) and home.is_local(raw("255.255.255.255"))
    assert home.is_home_text("10.9.0.1") and not home.is_home_text("not an address")
