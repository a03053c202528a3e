"""monitor.protocols.dns: hand-built messages for each rule, real captures compared with tshark."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import Malformed
from monitor.protocols.dns import (
    MAX_JUMPS,
    DnsMessage,
    DnsRecord,
    parse_dns,
    resolve_chain,
)
from tests.conftest import require_tool
from tests.pcaputil import captures, mutations, tshark_layers, udp_payloads

RESPONSE, QUERY = 0x8180, 0x0100


def wire(name: str) -> bytes:
    """``name`` in uncompressed wire format."""
    labels = [label.encode() for label in name.split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def header(qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0, flags: int = RESPONSE) -> bytes:
    return struct.pack("!6H", 0x1234, flags, qd, an, ns, ar)


def question(name: bytes, qtype: int = 1, qclass: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, qclass)


def record(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def alexa_response() -> bytes:
    """avs-alexa-4-na.amazon.com -> CNAME -> CNAME -> two A records, compressed like a server."""
    qname = wire("AVS-Alexa-4-NA.amazon.com.")
    msg = header(qd=1, an=4) + question(qname)
    first = len(msg) + 12  # rdata of the first CNAME starts after its owner pointer and tail
    msg += record(pointer(12), 5, b"\x03ext" + pointer(12 + 15), ttl=60)  # ext.amazon.com
    second = len(msg) + 12
    msg += record(pointer(first), 5, b"\x02d1\x0acloudfront\x03net\x00", ttl=300)
    msg += record(pointer(second), 1, bytes([52, 1, 2, 3]), ttl=20)
    msg += record(pointer(second), 1, bytes([52, 1, 2, 4]), ttl=40)
    return msg


def test_cname_chain_names_every_address_with_the_minimum_ttl() -> None:
    message = parse_dns(alexa_response())
    assert message is not None and message.is_response and not message.truncated
    assert message.questions[0].name == "avs-alexa-4-na.amazon.com"
    assert [r.value for r in message.answers] == [
        "ext.amazon.com",
        "d1.cloudfront.net",
        "52.1.2.3",
        "52.1.2.4",
    ]
    chain = {"avs-alexa-4-na.amazon.com", "ext.amazon.com", "d1.cloudfront.net"}
    assert resolve_chain(message) == {"52.1.2.3": (chain, 20), "52.1.2.4": (chain, 40)}


def test_resolve_chain_merges_repeated_addresses_and_ignores_queries() -> None:
    msg = header(an=3) + record(wire("a.example"), 1, bytes([10, 0, 0, 1]), ttl=50)
    msg += record(wire("b.example"), 1, bytes([10, 0, 0, 1]), ttl=30)
    msg += record(wire("c.example"), 5, wire("b.example"), ttl=70)
    message = parse_dns(msg)
    assert message is not None
    assert resolve_chain(message) == {"10.0.0.1": ({"a.example", "b.example", "c.example"}, 30)}
    query = parse_dns(header(an=1, flags=QUERY) + record(wire("a.example"), 1, b"\n\0\0\1"))
    assert query is not None and resolve_chain(query) == {}


def test_resolve_chain_terminates_on_a_cname_loop() -> None:
    msg = header(an=3) + record(wire("x.example"), 5, wire("y.example"), ttl=9)
    msg += record(wire("y.example"), 5, wire("x.example"))
    msg += record(wire("y.example"), 28, bytes(15) + b"\1")
    message = parse_dns(msg)
    assert message is not None
    assert resolve_chain(message) == {"::1": ({"x.example", "y.example"}, 9)}


@pytest.mark.parametrize(
    ("rtype", "rdata", "value"),
    [
        (28, bytes.fromhex("20010db8000000000000000000000001"), "2001:db8::1"),
        (12, wire("Printer.Local."), "printer.local"),
        (2, wire("ns1.example"), "ns1.example"),
        (33, struct.pack("!HHH", 0, 5, 8009) + wire("nest.local"), "0 5 8009 nest.local"),
        (16, b"\x05md=Hi\x00\x03a\xffb", ("md=Hi", "", "a\ufffdb")),
        (65, struct.pack("!H", 1) + wire("svc.example") + b"\x00\x01\x00\x02h2", "svc.example"),
        (64, struct.pack("!H", 1) + b"\x00", ""),
        (99, bytes(range(40)), bytes(range(32)).hex()),
        (13, b"", ""),
    ],
)
def test_record_values(rtype: int, rdata: bytes, value: str | tuple[str, ...]) -> None:
    message = parse_dns(header(an=1) + record(wire("o.example"), rtype, rdata))
    assert message is not None
    assert message.answers == (DnsRecord("o.example", rtype, 300, value, False),)


def test_address_records_outside_class_in_are_skipped() -> None:
    chaos = record(wire("o.example"), 1, b"\x01\x02", rclass=3)  # CHAOS A: not an IPv4 address
    message = parse_dns(header(an=2) + chaos + record(wire("o.example"), 1, b"\n\0\0\1"))
    assert message is not None
    assert [r.value for r in message.answers] == ["10.0.0.1"]


def test_mdns_class_bits_and_opt() -> None:
    msg = header(qd=1, an=1, ar=1, flags=0x8400) + question(wire("x.local"), 255, 0x8001)
    msg += record(wire("x.local"), 1, bytes([192, 168, 1, 2]), ttl=120, rclass=0x8001)
    msg += record(b"\0", 41, b"", ttl=0, rclass=0x8000 | 1232)
    message = parse_dns(msg)
    assert message is not None
    assert message.questions[0].unicast_response is True
    assert message.answers[0].cache_flush is True
    assert message.additionals[0].name == "" and message.additionals[0].cache_flush is False


def test_trailing_record_cut_keeps_the_answers_before_it() -> None:
    full = alexa_response()
    for cut in range(1, 14):
        message = parse_dns(full[:-cut])
        assert message is not None and message.truncated
        assert [r.value for r in message.answers][-1] == "52.1.2.3"
    huge_counts = header(qd=0, an=0xFFFF, ns=0xFFFF, ar=0xFFFF)
    assert parse_dns(huge_counts) == DnsMessage(0x1234, True, 0, 0, (), (), (), truncated=True)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        header()[:11],
        header(qd=1) + wire("cut.example")[:-3],
        header(qd=1) + wire("cut.example") + b"\x00",
        header(qd=2) + question(wire("one.example")),
        header(qd=1) + b"\x40abc\x00" + struct.pack("!HH", 1, 1),  # extended label type
        header(qd=1) + question((b"\x3f" + b"a" * 63) * 4 + b"\0"),
        header(an=1) + record(wire("a.example"), 1, bytes(5)),
        header(an=1) + record(wire("a.example"), 5, b"\x05short"),
        header(an=1) + record(wire("a.example"), 16, b"\x09too long"),
        header(an=1) + record(wire("a.example"), 33, b"\x00\x01"),
        header(an=1) + record(pointer(0x3FFF), 1, bytes(4)),
    ],
    ids=[
        "empty",
        "short-header",
        "cut-question-name",
        "cut-question-tail",
        "missing-question",
        "extended-label",
        "name-over-255",
        "a-rdlength",
        "cname-past-rdata",
        "txt-past-rdata",
        "srv-short",
        "pointer-past-end",
    ],
)
def test_broken_messages_raise_malformed(payload: bytes) -> None:
    with pytest.raises(Malformed):
        parse_dns(payload)


def test_unassigned_opcode_is_not_dns() -> None:
    assert parse_dns(header(flags=3 << 11)) is None
    assert parse_dns(b"\x00" * 2 + bytes([0x7A, 0]) + bytes(8)) is None


def test_compression_loops_raise_and_depth_is_bounded() -> None:
    loop = header(qd=1) + pointer(12) + struct.pack("!HH", 1, 1)
    with pytest.raises(Malformed, match="nest too deep"):
        parse_dns(loop)
    mutual = header(qd=2) + pointer(14) + pointer(12) + struct.pack("!HH", 1, 1)
    with pytest.raises(Malformed, match="nest too deep"):
        parse_dns(mutual)
    assert _pointer_chain(MAX_JUMPS).answers[1].name == "deep.example"
    with pytest.raises(Malformed, match="nest too deep"):
        _pointer_chain(MAX_JUMPS + 1)


def _pointer_chain(depth: int) -> DnsMessage:
    """A record whose owner is a chain of ``depth`` (>= 2) pointers ending at the question name."""
    msg = header(qd=1, an=2) + question(wire("deep.example"))
    table_start = len(msg) + 11  # rdata of an opaque record holding the pointer chain
    chain = pointer(12) + b"".join(pointer(table_start + 2 * i) for i in range(depth - 2))
    msg += record(b"\0", 99, chain)
    msg += record(pointer(table_start + len(chain) - 2), 1, b"\1" * 4)
    message = parse_dns(msg)
    assert message is not None
    return message


def test_capture_cname_chain_resolves_like_passive_dns() -> None:
    path = Path(__file__).parent / "data/protocols/zeek_radiotap.pcap"
    messages = [parse_dns(s.payload) for s in udp_payloads(path, 53)]
    response = next(m for m in messages if m is not None and m.is_response)
    names = {"captive.apple.com", "captive.apple.com.edgekey.net", "e7279.e9.akamaiedge.net"}
    assert resolve_chain(response) == {"23.196.236.203": (names, 20)}


TSHARK_EXCLUDED = {"<unknown extended label>", "<root>"}


@pytest.mark.tshark
@pytest.mark.parametrize("path", captures("iot", "protocols"), ids=lambda p: p.name)
def test_names_and_addresses_match_tshark(path: Path) -> None:
    tshark = require_tool("tshark")
    expected: dict[str, set[str]] = {"q": set(), "addr": set(), "cname": set()}
    for layers in tshark_layers(tshark, path).values():
        protocols = layers["frame.protocols"][0].split(":")
        ports = layers.get("udp.srcport", []) + layers.get("udp.dstport", [])
        if "dns" not in protocols or "icmp" in protocols or "icmpv6" in protocols:
            continue
        if "53" not in ports:
            continue
        for key, fields in (("q", ("dns.qry.name",)), ("addr", ("dns.a", "dns.aaaa"))):
            for field in fields:
                expected[key].update(v.lower() for v in layers.get(field, []))
        expected["cname"].update(v.lower() for v in layers.get("dns.cname", []))
    got: dict[str, set[str]] = {"q": set(), "addr": set(), "cname": set()}
    for segment in udp_payloads(path, 53):
        try:
            message = parse_dns(segment.payload)
        except Malformed:
            continue
        if message is None:
            continue
        got["q"].update(q.name for q in message.questions)
        for r in message.answers + message.additionals:
            if r.rtype in (1, 28):
                got["addr"].add(str(r.value))
            elif r.rtype == 5:
                got["cname"].add(str(r.value))
    for key in expected:
        expected[key] -= TSHARK_EXCLUDED
        got[key].discard("")
    assert got == expected


def test_known_capture_names() -> None:
    path = Path(__file__).parent / "data/iot/lifecycle_xiaobaiY2cam_setup.pcap"
    names = {q.name for s in udp_payloads(path, 53) for q in parse_dns(s.payload).questions}
    assert "business.smartcamera.api.io.mi.com" in names


@pytest.mark.parametrize("path", captures("malformed"), ids=lambda p: p.name)
def test_malformed_captures_raise_only_malformed(path: Path) -> None:
    for segment in udp_payloads(path):
        with contextlib.suppress(Malformed):
            parse_dns(segment.payload)


def test_malformed_capture_outcomes() -> None:
    folder = Path(__file__).parent / "data/malformed"
    (zlip,) = udp_payloads(folder / "tcpdump_dns_zlip1.pcap")
    with pytest.raises(Malformed, match="nest too deep"):
        parse_dns(zlip.payload)
    (deep,) = udp_payloads(folder / "zeek_dns_max_compression_depth.pcap")
    message = parse_dns(deep.payload)
    assert message is not None
    assert [r.value for r in message.answers] == [f"127.0.0.{i}" for i in range(1, 8)]


def _seeds() -> list[bytes]:
    paths = captures("iot")[:6] + captures("malformed")
    seeds = [s.payload for p in paths for s in udp_payloads(p, 53)][:300]
    return [*seeds, alexa_response()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutations(_seeds())))
def test_any_bytes_give_a_message_none_or_malformed(payload: bytes) -> None:
    try:
        result = parse_dns(payload)
    except Malformed:
        return
    assert result is None or isinstance(result, DnsMessage)
