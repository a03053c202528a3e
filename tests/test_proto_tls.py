"""TLS ClientHello parser, JA4 and TCP reassembly, against tshark and FoxIO's JA4 spec."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import Malformed
from monitor.protocols.ja4 import ja4
from monitor.protocols.tls import (
    MAX_HELLO_BYTES,
    MAX_PIECES,
    MAX_SEGMENTS,
    ClientHello,
    ClientHelloAssembler,
    StreamBuffer,
    parse_client_hello,
)
from tests.conftest import DATA, require_tool
from tests.tlsutil import (
    alpn,
    client_hello,
    extension,
    first_per_stream,
    packets,
    records,
    server_name,
    tshark_hellos,
    u16_vector,
)

CAPTURES = sorted((DATA / "protocols").glob("*.pcap*")) + sorted((DATA / "iot").glob("*.pcap*"))
MALFORMED = sorted((DATA / "malformed").glob("*.pcap*"))
KYBER = DATA / "protocols" / "zeek_tls_chrome_kyber_big_clienthello.pcap"
HUGE = DATA / "protocols" / "ndpi_tls_huge_clienthello.pcapng"
ECH = [DATA / "protocols" / "zeek_tls13_ech.pcap", DATA / "protocols" / "ndpi_tls_ech.pcapng"]
GREASE = 0x2A2A

# FoxIO JA4 technical details, worked example: JA4_r lists the sorted ciphers, the sorted
# extensions without SNI and ALPN, and the signature algorithms in wire order.
SPEC_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013]
SPEC_CIPHERS += [0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
SPEC_EXTENSIONS = [0x0005, 0x000A, 0x000B, 0x000D, 0x0012, 0x0015, 0x0017, 0x001B, 0x0023]
SPEC_EXTENSIONS += [0x002B, 0x002D, 0x0033, 0x4469, 0xFF01]
SPEC_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
SPEC_JA4 = "t13d1516h2_8daaf6152771_e5627efa2ab1"


def spec_hello(order_seed: int = 0) -> bytes:
    """A ClientHello with the spec example's code points, GREASE added, extensions shuffled."""
    special = {
        0x000D: u16_vector(SPEC_SIGALGS),
        0x002B: u16_vector([GREASE, 0x0304, 0x0303], width=1),
        0x000A: u16_vector([GREASE, 0x001D, 0x0017]),
    }
    exts = [extension(t, special.get(t, b"")) for t in SPEC_EXTENSIONS]
    exts += [extension(0x0000, server_name(b"Example.COM")), extension(0x0010, alpn(b"h2"))]
    random.Random(order_seed).shuffle(exts)
    exts = [extension(GREASE, b""), *exts, extension(0x1A1A, b"\x00")]
    return client_hello([GREASE, *SPEC_CIPHERS], exts)


def assembled(path: Path) -> dict[int, ClientHello]:
    """ClientHellos over TCP by the frame that completed them: one assembler per direction."""
    assemblers: dict[tuple[object, bool], ClientHelloAssembler] = {}
    found = {}
    for packet in packets(path):
        if packet.proto == "tcp" and packet.payload:
            key = (packet.flow, packet.from_orig)
            hello = assemblers.setdefault(key, ClientHelloAssembler()).feed(
                packet.seq, packet.payload
            )
            if hello is not None:
                found[packet.frame] = hello
    return found


def first_hello_bytes(path: Path) -> bytes:
    """The raw ClientHello message of a capture whose first client segment holds all of it."""
    payload = next(p.payload for p in packets(path) if p.proto == "tcp" and p.payload)
    return payload[5 : 5 + int.from_bytes(payload[6:9]) + 4]


def parses_or_malformed(data: bytes, transport: str = "tls") -> ClientHello | None:
    try:
        return parse_client_hello(data, transport)
    except Malformed:
        return None


# --- against tshark ---------------------------------------------------------------------------


@pytest.mark.tshark
@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: path.name)
def test_every_field_equals_tshark(path: Path) -> None:
    tshark = require_tool("tshark")
    expected = {
        frame: hello
        for frame, hello in first_per_stream(tshark_hellos(tshark, path)).items()
        if hello.stream.startswith("tcp")
    }
    got = assembled(path)
    assert sorted(got) == sorted(expected)
    for frame, hello in got.items():
        want = expected[frame]
        assert hello.sni == want.sni
        assert hello.alpn == want.alpn
        assert hello.legacy_version == want.legacy_version
        assert hello.cipher_suites == want.cipher_suites
        assert hello.extensions == want.extensions
        assert hello.signature_algorithms == want.signature_algorithms
        assert hello.supported_versions == want.supported_versions
        assert hello.groups == want.groups
        if want.ja4 is not None:  # Wireshark 4.2+
            assert hello.ja4 == want.ja4


def test_kyber_clienthello() -> None:
    (hello,) = assembled(KYBER).values()
    assert hello.sni == "lh3.google.com"
    assert 0x6399 in hello.groups  # X25519Kyber768Draft00
    assert hello.alpn == ("h2", "http/1.1")
    # Chrome's JA4 as FoxIO's README gives it (quoted from memory: this tshark has no JA4)
    assert hello.ja4 == "t13d1516h2_8daaf6152771_02713d6af862"


def test_huge_clienthello_over_twelve_segments() -> None:
    assembler = ClientHelloAssembler()
    client = [p for p in packets(HUGE) if p.proto == "tcp" and p.from_orig and p.payload]
    results = [assembler.feed(p.seq, p.payload) for p in client[:13]]
    assert [i for i, hello in enumerate(results) if hello is not None] == [11]
    assert assembler.done and not assembler.failed and assembler.segments == 12
    assert assembler.hello is results[11]
    assert assembler.hello.sni is None and assembler.hello.ja4.startswith("t13i1811h2_")


@pytest.mark.parametrize("path", ECH, ids=lambda path: path.name)
def test_ech_reports_the_outer_sni(path: Path) -> None:
    hellos = list(assembled(path).values())
    assert hellos and all(h.ech and h.sni and 0xFE0D in h.extensions for h in hellos)
    assert {h.sni for h in hellos} <= {"cloudflare-ech.com", "performance.radar.cloudflare.com"}


# --- the parser -------------------------------------------------------------------------------


def test_spec_example_fields_and_ja4() -> None:
    hello = parse_client_hello(spec_hello())
    assert hello.sni == "example.com"
    assert hello.alpn == ("h2",)
    assert hello.legacy_version == 0x0303
    assert hello.supported_versions == (GREASE, 0x0304, 0x0303)
    assert hello.cipher_suites == (GREASE, *SPEC_CIPHERS)
    assert hello.signature_algorithms == tuple(SPEC_SIGALGS)
    assert hello.groups == (GREASE, 0x001D, 0x0017)
    assert hello.extensions[0] == GREASE and hello.extensions[-1] == 0x1A1A
    assert not hello.ech
    assert hello.ja4 == SPEC_JA4


@pytest.mark.parametrize("seed", range(5))
def test_ja4_ignores_extension_order_and_grease(seed: int) -> None:
    assert parse_client_hello(spec_hello(seed)).ja4 == SPEC_JA4


def test_ja4_over_quic_starts_with_q() -> None:
    assert parse_client_hello(spec_hello(), transport="quic").ja4 == "q" + SPEC_JA4[1:]


def test_ja4_raw_parts_follow_the_spec() -> None:
    ciphers = ",".join(f"{c:04x}" for c in sorted(SPEC_CIPHERS))
    exts = ",".join(f"{e:04x}" for e in sorted(SPEC_EXTENSIONS))
    sigalgs = ",".join(f"{s:04x}" for s in SPEC_SIGALGS)
    _, part_b, part_c = SPEC_JA4.split("_")
    assert hashlib.sha256(ciphers.encode()).hexdigest()[:12] == part_b
    assert hashlib.sha256(f"{exts}_{sigalgs}".encode()).hexdigest()[:12] == part_c


def _ja4(**fields: object) -> str:
    base: dict[str, object] = {
        "transport": "tls",
        "legacy_version": 0x0303,
        "supported_versions": (),
        "cipher_suites": (0x1301,),
        "extensions": (0x000D,),
        "alpn_first": None,
        "signature_algorithms": (),
    }
    return ja4(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("alpn_first", "code"),
    [
        (None, "00"),
        (b"", "00"),
        (b"h", "hh"),
        (b"http/1.1", "h1"),
        (b"\xab", "ab"),
        (b"\xab\xcd\xef", "af"),
        (b"0\xab", "3b"),
        (b"\xaa", "aa"),
    ],
)
def test_ja4_alpn_code(alpn_first: bytes | None, code: str) -> None:
    assert _ja4(alpn_first=alpn_first).split("_")[0][-2:] == code


def test_ja4_version_count_and_empty_rules() -> None:
    assert _ja4(legacy_version=0x0301)[:3] == "t10"
    assert _ja4(legacy_version=0x0300)[:3] == "ts3"
    assert _ja4(legacy_version=0x1234)[:3] == "t00"
    assert _ja4(supported_versions=(0x0A0A, 0x0303, 0x0304))[:3] == "t13"
    assert _ja4(extensions=(0x0000,))[3] == "d"
    assert _ja4(extensions=())[3] == "i"
    many = _ja4(cipher_suites=tuple(range(1, 200)), extensions=tuple(range(1, 150)))
    assert many.split("_")[0][4:8] == "9999"
    assert _ja4(cipher_suites=(0x0A0A,)).split("_")[1] == "000000000000"
    assert _ja4(extensions=(0x0000, 0x0010)).split("_")[2] == "000000000000"
    no_sigalgs = hashlib.sha256(b"000d").hexdigest()[:12]  # no trailing "_"
    assert _ja4().split("_")[2] == no_sigalgs


def test_minimal_hello_without_extensions() -> None:
    body = client_hello([0x002F], [])[4:-2]  # no extensions block at all
    hello = parse_client_hello(b"\x01" + len(body).to_bytes(3) + body)
    assert hello.extensions == () and hello.sni is None and hello.ja4.startswith("t12i0100")


def test_sni_keeps_only_the_first_host_name_and_ignores_empty() -> None:
    other = b"\x01\x00\x03abc"  # a name type other than host_name comes first
    entry = b"\x00\x00\x07ExA.mPl"
    data = (len(other) + len(entry)).to_bytes(2) + other + entry
    assert parse_client_hello(client_hello([1], [extension(0, data)])).sni == "exa.mpl"
    empty = parse_client_hello(client_hello([1], [extension(0, server_name(b""))]))
    assert empty.sni is None and empty.ja4[3] == "d"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x00\x00",
        b"\x02" + client_hello([1], [])[1:],  # ServerHello type
        client_hello([1], [])[:-5],  # truncated
        client_hello([1], [extension(0, b"\x00\x05\x00\x00\x09ab")]),  # SNI runs past
        client_hello([1], [extension(0x10, b"\x00\x03\x05h2")]),  # ALPN entry runs past
        client_hello([1], [extension(0x2B, b"\x03\x03\x04\x03")]),  # odd versions list
        client_hello([1], [b"\x00\x0d\x00"]),  # extension header cut
        b"\x01\x00\x00\x26" + bytes(34) + b"\x21" + bytes(3),  # session id of 33 bytes
        b"\x01\x01\x00\x00" + bytes(MAX_HELLO_BYTES),  # longer than the cap
    ],
)
def test_malformed_hellos_raise_malformed(data: bytes) -> None:
    with pytest.raises(Malformed):
        parse_client_hello(data)


# --- the TCP assembler ------------------------------------------------------------------------


def segments_of(stream: bytes, sizes: list[int], isn: int = 1000) -> list[tuple[int, bytes]]:
    """Cut ``stream`` into segments of the given sizes (the last takes the rest)."""
    out, pos = [], 0
    for size in [*sizes, len(stream)]:
        if pos >= len(stream):
            break
        out.append(((isn + pos) & 0xFFFFFFFF, stream[pos : pos + size]))
        pos += size
    return out


def feed_all(assembler: ClientHelloAssembler, segments: list[tuple[int, bytes]]) -> list[bool]:
    return [assembler.feed(seq, payload) is not None for seq, payload in segments]


def test_hello_split_across_records_and_segments() -> None:
    hello = spec_hello()
    stream = records(hello, size=100)  # handshake fragmented over several records
    assembler = ClientHelloAssembler()
    got = feed_all(assembler, segments_of(stream, [3, 200, 2, 150]))  # record header cut too
    assert got[-1] and sum(got) == 1
    assert assembler.hello == parse_client_hello(hello)


def test_out_of_order_retransmitted_and_overlapping_segments() -> None:
    stream = records(spec_hello())
    (s0, p0), (s1, p1), (s2, p2), (s3, p3) = segments_of(stream, [60, 60, 60])
    assembler = ClientHelloAssembler()
    feed = [(s0, p0), (s2, p2), (s0, p0), (s2 - 10, stream[110:140]), (s3, p3)]
    assert not any(feed_all(assembler, feed))
    assert not assembler.done
    assert assembler.feed(s1, p1) is not None
    assert assembler.hello is not None and assembler.hello.ja4 == SPEC_JA4


def test_sequence_numbers_wrap() -> None:
    stream = records(spec_hello())
    segments = segments_of(stream, [50, 50], isn=0xFFFFFFF0)
    assert feed_all(ClientHelloAssembler(), segments)[-1]


def test_a_segment_before_the_first_is_trimmed() -> None:
    stream = records(spec_hello())
    assembler = ClientHelloAssembler()
    assembler.feed(5000, stream[:80])
    assert assembler.feed(4990, b"x" * 10 + stream[:100]) is None
    assert assembler.feed(5100, stream[100:]) is not None


def test_empty_payloads_are_ignored() -> None:
    assembler = ClientHelloAssembler()
    assert assembler.feed(1, b"") is None
    assert assembler.segments == 0 and not assembler.done


@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\n",
        b"\x17\x03\x03\x00\x10",  # application data
        b"\x16\x02\x00",  # not version 3.x
        b"\x16\x03",  # too short to tell
        b"\x80\x7d\x01\x03\x01",  # SSLv2-format ClientHello
    ],
)
def test_not_a_tls_handshake_gives_up_at_once(first: bytes) -> None:
    assembler = ClientHelloAssembler()
    assert assembler.feed(1, first) is None
    assert assembler.done and assembler.failed and assembler.hello is None
    assert assembler.feed(1, records(spec_hello())) is None


@pytest.mark.parametrize(
    "stream",
    [
        records(b"\x02" + spec_hello()[1:]),  # ServerHello
        records(spec_hello())[:5] + b"\x15" + records(spec_hello())[6:],  # alert in the middle
        b"\x16\x03\x01\x40\x01" + bytes(20),  # record longer than 2**14
        records(b"\x01\xff\xff\xff" + bytes(10)),  # declares 16 MiB
        records(spec_hello()[:38] + b"\xff" + spec_hello()[39:]),  # session id of 255 bytes
    ],
    ids=["server-hello", "alert", "long-record", "long-hello", "broken-inside"],
)
def test_broken_streams_give_up(stream: bytes) -> None:
    assembler = ClientHelloAssembler()
    assert not any(feed_all(assembler, segments_of(stream, [40])))
    assert assembler.done and assembler.failed


def test_gives_up_after_sixteen_segments() -> None:
    big = client_hello([1], [extension(0x15, bytes(20000))])
    assembler = ClientHelloAssembler()
    got = feed_all(assembler, segments_of(records(big), [100] * 40))
    assert not any(got)
    assert assembler.done and assembler.failed and assembler.segments == MAX_SEGMENTS


def test_gives_up_beyond_the_byte_limit() -> None:
    assembler = ClientHelloAssembler()
    assembler.feed(0, records(spec_hello())[:50])
    assert assembler.feed(MAX_HELLO_BYTES, b"x") is None
    assert assembler.done and assembler.failed


def test_stream_buffer_joins_pieces_in_any_order() -> None:
    data = bytes(range(200))
    buffer = StreamBuffer(limit=200)
    for offset, size in [(150, 50), (20, 30), (0, 10), (10, 15), (45, 105), (0, 200)]:
        assert buffer.add(offset, data[offset : offset + size])
    assert buffer.data == data


def test_stream_buffer_refuses_what_breaks_its_bounds() -> None:
    buffer = StreamBuffer(limit=100)
    assert not buffer.add(90, bytes(11))  # past the limit
    assert not buffer.add(-1, b"x")
    assert buffer.add(50, bytes(40)) and buffer.add(10, bytes(45))  # 85 bytes wait
    assert not buffer.add(5, bytes(20))  # 105 bytes would wait
    assert buffer.add(0, bytes(5)) and len(buffer.data) == 5  # nothing of the refused piece
    many = StreamBuffer(limit=10 * MAX_PIECES)
    assert all(many.add(2 + 2 * i, b"x") for i in range(MAX_PIECES))
    assert not many.add(1, b"x")  # one piece too many waiting
    assert many.add(2, b"xy")  # a longer copy of a waiting piece replaces it
    assert many.add(0, b"ab") and many.data == b"abxyx"  # up to the gap at 5


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MALFORMED + CAPTURES, ids=lambda path: path.name)
def test_every_payload_of_every_capture_is_safe(path: Path) -> None:
    assemblers: dict[tuple[object, bool], ClientHelloAssembler] = {}
    for packet in packets(path):
        payload = packet.payload
        parses_or_malformed(payload)
        parses_or_malformed(payload[5:])  # as if after a record header
        if packet.proto == "tcp":
            key = (packet.flow, packet.from_orig)
            assemblers.setdefault(key, ClientHelloAssembler()).feed(packet.seq, payload)


REAL = [first_hello_bytes(KYBER), first_hello_bytes(ECH[0]), spec_hello()]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_malformed(data: bytes) -> None:
    parses_or_malformed(data)
    parses_or_malformed(b"\x01" + len(data).to_bytes(3) + data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(REAL),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8),
    st.integers(0, 1 << 16),
)
def test_mutated_real_hellos_never_raise_anything_but_malformed(
    original: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(original)
    for index, value in flips:
        data[index % len(data)] = value
    hello = parses_or_malformed(bytes(data[: max(cut, 4)]))
    assert hello is None or isinstance(hello.ja4, str)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(0, 0xFFFF), max_size=8),
    st.lists(
        st.tuples(st.sampled_from([0, 10, 13, 16, 43, 0xFE0D, 0x1A1A]), st.binary(max_size=24)),
        max_size=8,
    ),
    st.binary(max_size=5),
)
def test_well_framed_hellos_with_random_insides_never_raise_anything_but_malformed(
    ciphers: list[int], exts: list[tuple[int, bytes]], junk: bytes
) -> None:
    """Every vector inside a correctly framed message: SNI, ALPN, versions, groups, sigalgs."""
    hello = parses_or_malformed(client_hello(ciphers, [*(extension(*e) for e in exts), junk]))
    if hello is not None:
        assert hello.extensions == tuple(t for t, _ in exts)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(REAL),
    st.lists(st.tuples(st.integers(-100, 1 << 17), st.binary(max_size=300)), max_size=20),
)
def test_assembler_never_raises(original: bytes, extra: list[tuple[int, bytes]]) -> None:
    assembler = ClientHelloAssembler()
    stream = records(original, size=500)
    segments = segments_of(stream, [300] * 30)
    segments[1:1] = [(1000 + offset, data) for offset, data in extra]
    for seq, payload in segments:
        assembler.feed(seq, payload)
        assert assembler.segments <= MAX_SEGMENTS
    assert assembler.done or assembler.segments < MAX_SEGMENTS
