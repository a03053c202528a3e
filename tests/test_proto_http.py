"""monitor.protocols.http: request heads from real captures (frame by frame against tshark)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import Malformed
from monitor.protocols.http import WINDOW, HttpRequest, parse_http_request
from tests.conftest import require_tool
from tests.pcaputil import captures, mutations, segments, tshark_layers

DATA = Path(__file__).parent / "data"


def requests(path: Path) -> dict[int, HttpRequest]:
    found = {}
    for segment in segments(path, "tcp"):
        request = parse_http_request(segment.payload)
        if request is not None:
            found[segment.frame] = request
    return found


def test_only_method_host_and_user_agent_are_kept() -> None:
    assert [f.name for f in dataclasses.fields(HttpRequest)] == ["method", "host", "user_agent"]


def test_dlink_hub_fetches_with_wget() -> None:
    hub = set(requests(DATA / "iot/iotsentinel_D-LinkHomeHub_Setup-C-3-STA.pcap").values())
    assert HttpRequest("GET", "api.dch.dlink.com", "Wget/1.13 (linux-uclibc)") in hub
    cam = set(requests(DATA / "iot/iotsentinel_D-LinkCam_Setup-A-2-STA.pcap").values())
    assert HttpRequest("POST", "10.10.10.37", "ksoap2-android/2.6.0+") in cam


def test_xiaodu_plug_requests_by_address_without_user_agent() -> None:
    plug = set(requests(DATA / "iot/lifecycle_xiaodu_plug_full.pcap").values())
    assert HttpRequest("GET", "111.63.96.109", None) in plug
    assert {r.method for r in plug} == {"GET"}


def test_head_split_over_segments_yields_what_the_first_holds() -> None:
    aria = requests(DATA / "iot/iotsentinel_Aria_Setup-C-1-STA.pcap")
    assert set(aria.values()) == {HttpRequest("GET", None, None), HttpRequest("POST", None, None)}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n", ("GET", "example.com", None)),
        (b"GET / HTTP/1.0\r\nhost: [2001:db8::1]:80\r\n\r\n", ("GET", "2001:db8::1", None)),
        (
            b"PUT /x HTTP/1.1\nHOST: a.example.\nUser-Agent: Dalvik/2.1\n\n",
            ("PUT", "a.example", "Dalvik/2.1"),
        ),
        (b"SUBSCRIBE /evt HTTP/1.1\r\nHost: 10.0.0.2:49153\r\n", ("SUBSCRIBE", "10.0.0.2", None)),
        (
            b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: cut-by-the-seg",
            ("GET", "a.example", None),
        ),
        (b"GET / HTTP/1.1\r\nHost:\r\n User-Agent: folded\r\n\r\n", ("GET", None, None)),
        (b"GET / HTTP/1.1\r\n\r\nHost: body.example\r\n", ("GET", None, None)),
        (
            b"GET / HTTP/1.1\r\nX: " + b"x" * WINDOW + b"\r\nHost: late.example\r\n",
            ("GET", None, None),
        ),
    ],
    ids=["port", "ipv6", "lf-trailing-dot", "gena", "cut-line", "empty-folded", "body", "window"],
)
def test_request_heads(payload: bytes, expected: tuple[str, str | None, str | None]) -> None:
    assert parse_http_request(payload) == HttpRequest(*expected)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"DESCRIBE rtsp://cam/ RTSP/1.0\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01",
        b"GET",
        b"MKCOL /dav/x",
        b"GET /a b c",
    ],
    ids=["empty", "response", "lowercase", "rtsp", "http2", "tls", "no-space", "cut-odd", "cut-3"],
)
def test_not_a_request_start(payload: bytes) -> None:
    assert parse_http_request(payload) is None


def test_broken_header_line() -> None:
    with pytest.raises(Malformed):
        parse_http_request(b"GET / HTTP/1.1\r\nHost: a\r\n: no name\r\n\r\n")


@pytest.mark.tshark
@pytest.mark.parametrize("path", captures("iot", "protocols"), ids=lambda p: p.name)
def test_frames_match_tshark(path: Path) -> None:
    """Each request tshark finds starts in a segment we parse with the same method; when its
    head fits that segment, Host and User-Agent agree too; we find no other request (tshark
    skips retransmitted segments, so they are left out)."""
    tshark = require_tool("tshark")
    expected: dict[int, tuple[str, str | None, str | None] | str] = {}
    retransmitted = set()
    for frame, layers in tshark_layers(tshark, path).items():
        if "tcp.analysis.retransmission" in layers:
            retransmitted.add(frame)  # tshark does not dissect these again
        if "http.request.method" not in layers or "tcp" not in layers["frame.protocols"][0]:
            continue
        method = layers["http.request.method"][0]
        if "tcp.segment" in layers:  # reassembled: only the first segment's method is certain
            expected[min(int(n) for n in layers["tcp.segment"])] = method
            continue
        host = layers.get("http.host", [""])[0].lower().rsplit(":", 1)[0] or None
        expected[frame] = (method, host, layers.get("http.user_agent", [None])[0])
    got = {frame: r for frame, r in requests(path).items() if frame not in retransmitted}
    assert got.keys() == expected.keys()
    for frame, request in got.items():
        want = expected[frame]
        if isinstance(want, str):
            assert request.method == want
        else:
            assert (request.method, request.host, request.user_agent) == want


@pytest.mark.parametrize("path", captures("malformed"), ids=lambda p: p.name)
def test_malformed_captures_raise_only_malformed(path: Path) -> None:
    for segment in segments(path):
        with contextlib.suppress(Malformed):
            parse_http_request(segment.payload)


def _seeds() -> list[bytes]:
    path = DATA / "iot/iotsentinel_HueBridge_Setup-A-2-STA.pcap"
    heads = [s.payload for s in segments(path, "tcp") if s.payload[:4] in (b"GET ", b"POST")]
    return heads[:40]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutations(_seeds())))
def test_any_bytes_give_a_request_none_or_malformed(payload: bytes) -> None:
    try:
        result = parse_http_request(payload)
    except Malformed:
        return
    assert result is None or isinstance(result, HttpRequest)
