"""monitor.protocols.ssdp: real device announcements, header rules, frames compared with tshark."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import Malformed
from monitor.protocols.http import MAX_LINES, MAX_VALUE
from monitor.protocols.ssdp import SsdpMessage, parse_ssdp
from tests.conftest import require_tool
from tests.pcaputil import captures, mutations, tshark_layers, udp_payloads

DATA = Path(__file__).parent / "data"


def messages(name: str) -> list[SsdpMessage]:
    found = [parse_ssdp(s.payload) for s in udp_payloads(DATA / "iot" / name, 1900)]
    return [m for m in found if m is not None]


def test_xiaodu_plug_searches_with_platinum_user_agent() -> None:
    assert set(messages("lifecycle_xiaodu_plug_setup.pcap")) == {
        SsdpMessage(
            kind="M-SEARCH",
            server=None,
            user_agent="UPnP/1.0 DLNADOC/1.50 Platinum/1.0.5.13",
            st="urn:schemas-upnp-org:device:MediaRenderer:1",
            nt=None,
            nts=None,
            usn=None,
            location=None,
        )
    }


def test_wemo_and_dlink_notify() -> None:
    wemo = messages("iotsentinel_WeMoSwitch_Setup-C-2-STA.pcap")
    assert {m.server for m in wemo if m.kind == "NOTIFY"} == {"Unspecified, UPnP/1.0, Unspecified"}
    assert "urn:Belkin:device:controllee:1" in {m.nt for m in wemo}
    assert {m.location for m in wemo if m.location} == {"http://10.10.10.252:49153/setup.xml"}
    cam = messages("iotsentinel_D-LinkCam_Setup-A-2-STA.pcap")
    assert "Linux,    UPnP/1.0 DCS-935L/1.0" in {m.server for m in cam}
    assert {m.nts for m in cam if m.kind == "NOTIFY"} == {"ssdp:alive", "ssdp:byebye"}


def test_response_case_insensitive_first_wins_bare_lf() -> None:
    payload = (
        b"HTTP/1.1 200 OK\n"
        b"server : Linux/3.14 UPnP/1.0 IpBridge/1.9.0\n"
        b"SERVER: second\n"
        b"St: upnp:rootdevice\n"
        b"uSn: uuid:2f402f80::upnp:rootdevice\n"
        b"Location:\thttp://10.0.0.2:80/description.xml  \n"
        b"NT:\n"
        b"EXT:"  # the datagram ends without a line end: still a complete line
    )
    assert parse_ssdp(payload) == SsdpMessage(
        kind="RESPONSE",
        server="Linux/3.14 UPnP/1.0 IpBridge/1.9.0",
        user_agent=None,
        st="upnp:rootdevice",
        nt=None,
        nts=None,
        usn="uuid:2f402f80::upnp:rootdevice",
        location="http://10.0.0.2:80/description.xml",
    )


def test_bounds_on_header_count_and_value_size() -> None:
    filler = b"".join(b"X-%d: y\r\n" % i for i in range(MAX_LINES - 1))
    late = b"NOTIFY * HTTP/1.1\r\n" + filler + b"SERVER: last counted\r\nNT: too late\r\n\r\n"
    message = parse_ssdp(late)
    assert message is not None and message.server == "last counted" and message.nt is None
    huge = parse_ssdp(b"NOTIFY * HTTP/1.1\r\nSERVER: " + b"s" * 2000 + b"\r\n\r\n")
    assert huge is not None and huge.server == "s" * MAX_VALUE


@pytest.mark.parametrize(
    "payload",
    [b"", b"GET / HTTP/1.1\r\n\r\n", b"HTTP/2 200\r\n\r\n", b"\x16\x03\x01\x02\x00", b"NOTIFY *"],
    ids=["empty", "get", "http2", "tls", "no-line-end"],
)
def test_not_ssdp(payload: bytes) -> None:
    assert parse_ssdp(payload) is None


def test_broken_header_line() -> None:
    with pytest.raises(Malformed):
        parse_ssdp(b"M-SEARCH * HTTP/1.1\r\nthis line has no colon\r\n\r\n")


@pytest.mark.tshark
@pytest.mark.parametrize("path", captures("iot", "protocols"), ids=lambda p: p.name)
def test_frames_match_tshark(path: Path) -> None:
    tshark = require_tool("tshark")
    expected = {}
    for frame, layers in tshark_layers(tshark, path).items():
        if "ssdp" not in layers["frame.protocols"][0].split(":"):
            continue
        kind = layers.get("http.request.method", ["RESPONSE"])[0]
        server = layers.get("http.server", [None])[0]
        expected[frame] = (kind, server, layers.get("http.user_agent", [None])[0])
    got = {}
    for segment in udp_payloads(path, 1900):
        message = parse_ssdp(segment.payload)
        if message is not None:
            got[segment.frame] = (message.kind, message.server, message.user_agent)
    assert got == expected


@pytest.mark.parametrize("path", captures("malformed"), ids=lambda p: p.name)
def test_malformed_captures_raise_only_malformed(path: Path) -> None:
    for segment in udp_payloads(path):
        with contextlib.suppress(Malformed):
            parse_ssdp(segment.payload)


def _seeds() -> list[bytes]:
    paths = [DATA / "iot/iotsentinel_D-LinkCam_Setup-A-2-STA.pcap"]
    return [s.payload for p in paths for s in udp_payloads(p, 1900)][:50]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutations(_seeds())))
def test_any_bytes_give_a_message_none_or_malformed(payload: bytes) -> None:
    try:
        result = parse_ssdp(payload)
    except Malformed:
        return
    assert result is None or isinstance(result, SsdpMessage)
