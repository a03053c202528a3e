"""monitor.protocols.dhcp: option rules on hand-built messages, captures compared with tshark."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import Malformed
from monitor.protocols.dhcp import MAGIC_COOKIE, DhcpMessage, parse_dhcp
from tests.conftest import require_tool
from tests.pcaputil import captures, mutations, tshark_layers, udp_payloads

DATA = Path(__file__).parent / "data"
MAC = bytes.fromhex("b827ebb853c8")


def bootp(options: bytes = b"", *, op: int = 1, htype: int = 1, hlen: int = 6) -> bytes:
    fixed = bytes([op, htype, hlen, 0]) + (0xDEADBEEF).to_bytes(4, "big") + bytes(4)
    fixed += bytes([192, 168, 1, 7]) + bytes([192, 168, 1, 8]) + bytes(8)
    fixed += MAC + bytes(10) + bytes(64 + 128)
    assert len(fixed) == 236
    return fixed + MAGIC_COOKIE + options


def opt(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def dhcp_ports(path: Path) -> list:
    return [s for s in udp_payloads(path) if {67, 68} & {s.sport, s.dport}]


def test_request_with_every_kept_option() -> None:
    options = (
        opt(53, b"\x03")
        + b"\x00\x00"  # pads
        + opt(12, b"DCS-935L\x00")
        + opt(50, bytes([192, 168, 1, 20]))
        + opt(55, bytes([1, 3, 6, 15]))
        + opt(60, b"udhcp 1.22.1")
        + opt(61, b"\x01" + MAC)
        + opt(161, b"https://mud.example/dcs")
        + opt(54, bytes([192, 168, 1, 1]))
        + b"\xff"
        + opt(12, b"after-end")
    )
    message = parse_dhcp(bootp(options))
    assert message == DhcpMessage(
        op=1,
        message_type=3,
        xid=0xDEADBEEF,
        client_mac="b8:27:eb:b8:53:c8",
        ciaddr="192.168.1.7",
        yiaddr="192.168.1.8",
        hostname="DCS-935L",
        requested_ip="192.168.1.20",
        param_request_list=(1, 3, 6, 15),
        vendor_class="udhcp 1.22.1",
        client_id="01b827ebb853c8",
        mud_url="https://mud.example/dcs",
        server_id="192.168.1.1",
    )
    assert message.fingerprint == "1,3,6,15"


def test_split_options_are_joined_and_odd_lengths_ignored() -> None:
    options = opt(55, bytes([1, 3])) + opt(52, b"\x03") + opt(55, bytes([6])) + opt(53, b"\1\1")
    message = parse_dhcp(bootp(options + opt(50, b"\1\2\3") + opt(12, b"caf\xe9\x00")))
    assert message is not None
    assert message.fingerprint == "1,3,6"
    assert message.message_type is None and message.requested_ip is None
    assert message.hostname == "caf\ufffd"


def test_bootp_without_cookie_and_other_hardware() -> None:
    plain = bootp(opt(12, b"ignored"))[:236] + b"\x01\x02\x03\x04" + opt(12, b"ignored")
    message = parse_dhcp(plain)
    assert message is not None and message.hostname is None and message.param_request_list == ()
    assert parse_dhcp(bootp()[:236]) is not None
    assert parse_dhcp(bootp(htype=6)).client_mac == ""
    assert parse_dhcp(bootp(hlen=16)).client_mac == ""
    assert parse_dhcp(bootp(op=2)).op == 2


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        (b"", None),
        (b"\x03" + bytes(300), None),
        (b"GET / HTTP/1.1\r\n", None),
        (bootp()[:235], Malformed),
        (bootp(b"\x0c"), Malformed),
        (bootp(b"\x0c\x05abc"), Malformed),
    ],
    ids=["empty", "op-3", "text", "short", "no-length", "past-end"],
)
def test_not_dhcp_and_broken(payload: bytes, outcome: object) -> None:
    if outcome is Malformed:
        with pytest.raises(Malformed):
            parse_dhcp(payload)
    else:
        assert parse_dhcp(payload) is None


def test_known_devices() -> None:
    cam = [
        parse_dhcp(s.payload)
        for s in dhcp_ports(DATA / "iot/iotsentinel_D-LinkCam_Setup-A-2-STA.pcap")
    ]
    assert {(m.hostname, m.vendor_class) for m in cam if m.hostname} == {
        ("DCS-935L", "udhcp 1.22.1")
    }
    xiaobai = DATA / "iot/lifecycle_xiaobaiY2cam_setup.pcap"
    assert "chuangmi_camera_060a02" in {parse_dhcp(s.payload).hostname for s in dhcp_ports(xiaobai)}
    mud = parse_dhcp(dhcp_ports(DATA / "protocols/tcpdump_dhcp_mud.pcap")[0].payload)
    assert mud.mud_url == "https://mudctl.example.com/.well-known/mud/v1/rasbp101"
    assert mud.client_id == "01b827ebb853c8" and mud.message_type == 3


def test_bad_cookie_keeps_no_options() -> None:
    messages = [
        parse_dhcp(s.payload) for s in dhcp_ports(DATA / "malformed/zeek_dhcp_bad_cookie.pcap")
    ]
    assert [m.message_type for m in messages] == [1, None, None, None, 1]


@pytest.mark.tshark
@pytest.mark.parametrize("path", captures("iot", "protocols"), ids=lambda p: p.name)
def test_options_match_tshark_frame_by_frame(path: Path) -> None:
    tshark = require_tool("tshark")
    expected = {}
    for frame, layers in tshark_layers(tshark, path).items():
        protocols = layers["frame.protocols"][0].split(":")
        if "dhcp" not in protocols or "icmp" in protocols:
            continue
        expected[frame] = (
            layers.get("dhcp.option.hostname", [None])[0],
            layers.get("dhcp.option.vendor_class_id", [None])[0],
            tuple(int(item) for item in layers.get("dhcp.option.request_list_item", [])),
            int(layers["dhcp.option.dhcp"][0]) if "dhcp.option.dhcp" in layers else None,
            layers["dhcp.hw.mac_addr"][0] if "dhcp.hw.mac_addr" in layers else "",
        )
    got = {}
    for segment in dhcp_ports(path):
        message = parse_dhcp(segment.payload)
        if message is not None:
            got[segment.frame] = (
                message.hostname,
                message.vendor_class,
                message.param_request_list,
                message.message_type,
                message.client_mac,
            )
    assert got == expected


@pytest.mark.parametrize("path", captures("malformed"), ids=lambda p: p.name)
def test_malformed_captures_raise_only_malformed(path: Path) -> None:
    for segment in udp_payloads(path):
        with contextlib.suppress(Malformed):
            parse_dhcp(segment.payload)


def test_fuzzed_captures_end_in_malformed() -> None:
    (fuzz,) = dhcp_ports(DATA / "malformed/ndpi_dhcp_fuzz.pcapng")
    with pytest.raises(Malformed, match="option 60"):
        parse_dhcp(fuzz.payload)
    for name in ("tcpdump_bootp_asan.pcap", "tcpdump_bootp_asan2.pcap"):
        (segment,) = dhcp_ports(DATA / "malformed" / name)
        assert parse_dhcp(segment.payload) is None  # the fuzzer's op byte is not 1 or 2


def _seeds() -> list[bytes]:
    paths = captures("protocols") + captures("iot")[:8]
    seeds = [s.payload for p in paths for s in dhcp_ports(p)][:100]
    return [*seeds, bootp(opt(55, b"\1\3"))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutations(_seeds())))
def test_any_bytes_give_a_message_none_or_malformed(payload: bytes) -> None:
    try:
        result = parse_dhcp(payload)
    except Malformed:
        return
    assert result is None or isinstance(result, DhcpMessage)
