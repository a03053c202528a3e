"""monitor.protocols.mdns: device announcements from real captures, the TXT whitelist, queries."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import Malformed
from monitor.protocols.dns import parse_dns
from monitor.protocols.mdns import MAX_TXT_VALUE, TXT_KEYS, MdnsAnnouncement, parse_mdns
from tests.conftest import require_tool
from tests.pcaputil import captures, mutations, tshark_layers, udp_payloads
from tests.test_proto_dns import header, question, record, wire

DATA = Path(__file__).parent / "data"
ANNOUNCE = 0x8400


def announcements(path: Path) -> list[tuple[str, MdnsAnnouncement]]:
    """(source address, announcement) of every parsable mDNS packet in a capture."""
    found = []
    for segment in udp_payloads(path, 5353):
        with contextlib.suppress(Malformed):
            announcement = parse_mdns(segment.payload)
            if announcement is not None:
                found.append((segment.src, announcement))
    return found


def test_google_nest_mini_announces_googlecast_without_identifiers() -> None:
    path = DATA / "iot/echo349_home_wifi.pcapng"
    nest = [a for _, a in announcements(path) if a.txt.get("md") == "Google Nest Mini"]
    assert nest, "the Nest Mini's TXT record is in this capture"
    for announcement in nest:
        assert "_googlecast._tcp" in announcement.services
        assert any(i.startswith("google-nest-mini-") for i in announcement.instances)
        assert set(announcement.txt) <= TXT_KEYS
        assert announcement.hostnames == ("c9af0fe6-1d83-f630-2773-ab3d1968776f.local",)
    raw_txt = set()
    for segment in udp_payloads(path, 5353):
        message = parse_dns(segment.payload)
        for r in message.answers + message.additionals:
            if r.rtype == 16 and "googlecast" in r.name:
                raw_txt.update(string.partition("=")[0] for string in r.value)
    assert {"id", "cd", "bs", "rs"} <= raw_txt  # present on the wire, dropped by the whitelist
    assert not {"id", "cd", "bs", "rs"} & set(nest[0].txt)


def test_dlink_camera_and_hue_bridge() -> None:
    cam = announcements(DATA / "iot/iotsentinel_D-LinkCam_Setup-A-2-STA.pcap")
    hostnames = {h for _, a in cam for h in a.hostnames}
    assert {"dcs-935l.local", "dcs-935l-b0c554255b0e.local"} <= hostnames
    assert {s for _, a in cam for s in a.services} == {"_dhnap._tcp", "_http._tcp"}
    assert "d-link hnap service" in {i for _, a in cam for i in a.instances}
    hue = [a for _, a in announcements(DATA / "iot/iotsentinel_HueBridge_Setup-A-2-STA.pcap")]
    assert {("philips-hue.local", "10.10.10.6")} <= {x for a in hue for x in a.addresses}
    assert {a.txt.get("md") for a in hue if a.is_response} == {"BSB002"}
    assert {i for a in hue for i in a.instances} == {"philips hue - 2476ff"}


def test_zeek_trace_hostname_addresses_and_queries() -> None:
    found = announcements(DATA / "protocols/zeek_mdns.pcap")
    responses = [a for _, a in found if a.is_response]
    assert {h for a in responses for h in a.hostnames} == {"johanna-qemu-virtual-machine.local"}
    assert ("johanna-qemu-virtual-machine.local", "10.0.2.7") in {
        x for a in responses for x in a.addresses
    }
    assert {"_ipp._tcp.local", "_ipps._tcp.local"} <= {q for _, a in found for q in a.queries}


def test_query_known_answers_are_not_attributed_to_the_sender() -> None:
    msg = header(qd=1, an=2, flags=0) + question(wire("_googlecast._tcp.local"), 12)
    msg += record(wire("_googlecast._tcp.local"), 12, wire("other._googlecast._tcp.local"))
    msg += record(wire("other.local"), 1, bytes([10, 0, 0, 9]))
    assert parse_mdns(msg) == MdnsAnnouncement(
        False, (), (), (), (), {}, ("_googlecast._tcp.local",)
    )


def test_dns_sd_rules() -> None:
    txt = b"".join(
        bytes([len(s)]) + s
        for s in (
            b"MD=Speaker",
            b"md=second",
            b"id=0a1b2c",
            b"serialNumber=X1",
            b"fn=" + b"n" * 200,
        )
    )
    records = [
        record(wire("_services._dns-sd._udp.local"), 12, wire("_spotify-connect._tcp.local")),
        record(wire("_printer._sub._http._tcp.local"), 12, wire("Office._http._tcp.local")),
        record(wire("Kitchen._googlecast._tcp.local"), 33, b"\0\0\0\0\x1f\x49" + wire("k.local")),
        record(wire("Kitchen._googlecast._tcp.local"), 16, txt),
        record(wire("4.3.2.1.in-addr.arpa"), 12, wire("k.local")),
        record(wire("k.local"), 28, bytes(15) + b"\1"),
        record(wire("router.lan"), 1, bytes([10, 0, 0, 1])),
    ]
    announcement = parse_mdns(header(an=len(records), flags=ANNOUNCE) + b"".join(records))
    assert announcement == MdnsAnnouncement(
        is_response=True,
        hostnames=("k.local",),
        addresses=(("k.local", "::1"),),
        services=("_spotify-connect._tcp", "_http._tcp", "_googlecast._tcp"),
        instances=("office", "kitchen"),
        txt={"md": "Speaker", "fn": "n" * MAX_TXT_VALUE},
        queries=(),
    )


def test_not_dns_and_broken() -> None:
    assert parse_mdns(struct.pack("!6H", 0, 7 << 11, 0, 0, 0, 0)) is None
    with pytest.raises(Malformed):
        parse_mdns(header(qd=1))


@pytest.mark.tshark
@pytest.mark.parametrize("path", captures("iot", "protocols"), ids=lambda p: p.name)
def test_queries_and_addresses_match_tshark(path: Path) -> None:
    tshark = require_tool("tshark")
    queries: set[str] = set()
    addresses: set[str] = set()
    for layers in tshark_layers(tshark, path).values():
        protocols = layers["frame.protocols"][0].split(":")
        if "mdns" not in protocols or "icmp" in protocols or "icmpv6" in protocols:
            continue
        queries.update(q.lower() for q in layers.get("dns.qry.name", []))
        addresses.update(layers.get("dns.a", []) + layers.get("dns.aaaa", []))
    found = announcements(path)
    assert {q for _, a in found for q in a.queries} == queries
    assert {ip for _, a in found for _, ip in a.addresses} <= addresses


@pytest.mark.parametrize("path", captures("malformed"), ids=lambda p: p.name)
def test_malformed_captures_raise_only_malformed(path: Path) -> None:
    for segment in udp_payloads(path):
        with contextlib.suppress(Malformed):
            parse_mdns(segment.payload)


def _seeds() -> list[bytes]:
    paths = [DATA / "iot/echo349_home_wifi.pcapng", DATA / "protocols/zeek_mdns.pcap"]
    return [s.payload for p in paths for s in udp_payloads(p, 5353)][:200]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutations(_seeds())))
def test_any_bytes_give_an_announcement_none_or_malformed(payload: bytes) -> None:
    try:
        result = parse_mdns(payload)
    except Malformed:
        return
    assert result is None or isinstance(result, MdnsAnnouncement)
