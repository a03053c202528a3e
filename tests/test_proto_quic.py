"""QUIC Initial decryption and ClientHello assembly, against RFC vectors and tshark."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import Malformed
from monitor.protocols.quic import (
    QUIC_V1,
    QUIC_V2,
    QuicClientHelloAssembler,
    QuicInitial,
    client_initial_keys,
    is_quic_initial_start,
    parse_frames,
    parse_initial,
)
from monitor.protocols.tls import MAX_HELLO_BYTES, MAX_SEGMENTS, ClientHello
from tests.conftest import DATA, require_tool
from tests.tlsutil import (
    alpn,
    client_hello,
    extension,
    first_per_stream,
    packets,
    server_name,
    tshark_hellos,
)

CAPTURES = sorted((DATA / "protocols").glob("*.pcap*")) + sorted((DATA / "iot").glob("*.pcap*"))
MALFORMED = sorted((DATA / "malformed").glob("*.pcap*"))
PROTOCOLS = DATA / "protocols"
RFC_DCID = bytes.fromhex("8394c8f03e515708")
HELLO = client_hello(
    [0x1301], [extension(0, server_name(b"quic.example")), extension(0x10, alpn(b"h3"))]
)


def varint(value: int) -> bytes:
    for size, prefix in ((1, 0), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * size - 2):
            return (value | prefix << (8 * size - 8)).to_bytes(size)
    raise ValueError(value)


def crypto(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def seal_initial(
    plaintext: bytes,
    dcid: bytes = RFC_DCID,
    *,
    version: int = QUIC_V1,
    key_dcid: bytes | None = None,
    packet_number: int = 0,
    pn_len: int = 2,
) -> bytes:
    """A client Initial protected as RFC 9001 §5 says, with cryptography's primitives."""
    key, iv, hp = client_initial_keys(version, key_dcid or dcid)
    plaintext = plaintext.ljust(4, b"\x00")  # room for the header protection sample
    first = 0xC0 | (0 if version == QUIC_V1 else 0x10) | (pn_len - 1)
    header = (
        bytes([first])
        + version.to_bytes(4)
        + bytes([len(dcid)])
        + dcid
        + b"\x03scd"  # source connection id
        + b"\x00"  # no token
        + (0x4000 | pn_len + len(plaintext) + 16).to_bytes(2)
        + packet_number.to_bytes(pn_len)
    )
    nonce = (int.from_bytes(iv) ^ packet_number).to_bytes(12)
    packet = bytearray(header + AESGCM(key).encrypt(nonce, plaintext, header))
    pn_offset = len(header) - pn_len
    sample = bytes(packet[pn_offset + 4 : pn_offset + 20])
    mask = Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(sample)
    packet[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        packet[pn_offset + i] ^= mask[1 + i]
    return bytes(packet)


def client_datagrams(path: Path) -> list[bytes]:
    """The client's UDP payloads of the first QUIC connection in a capture."""
    first = next(p for p in packets(path) if p.proto == "udp" and is_quic_initial_start(p.payload))
    return [p.payload for p in packets(path) if p.flow == first.flow and p.from_orig]


def assembled(path: Path) -> dict[int, tuple[ClientHello, int]]:
    """QUIC ClientHellos by completing frame, with the datagrams it took."""
    assemblers: dict[tuple[object, bool], QuicClientHelloAssembler] = {}
    found = {}
    for packet in packets(path):
        if packet.proto == "udp":
            assembler = assemblers.setdefault(
                (packet.flow, packet.from_orig), QuicClientHelloAssembler()
            )
            hello = assembler.feed(packet.payload)
            if hello is not None:
                found[packet.frame] = (hello, assembler.datagrams)
    return found


def initial_or_malformed(data: bytes) -> list[QuicInitial]:
    try:
        return parse_initial(data)
    except Malformed:
        return []


# --- keys -------------------------------------------------------------------------------------


def test_client_keys_match_rfc9001_appendix_a() -> None:
    key, iv, hp = client_initial_keys(QUIC_V1, RFC_DCID)
    assert key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert hp.hex() == "9f50449e04a0e810283a1e9933adedd2"


def test_client_keys_match_rfc9369_appendix_a() -> None:
    key, iv, hp = client_initial_keys(QUIC_V2, RFC_DCID)
    assert key.hex() == "8b1a0bc121284290a29e0971b5cd045d"
    assert iv.hex() == "91f73e2351d8fa91660e909f"
    assert hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9"


# --- real captures ----------------------------------------------------------------------------


@pytest.mark.tshark
@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: path.name)
def test_every_field_equals_tshark(path: Path) -> None:
    tshark = require_tool("tshark")
    expected = {
        frame: hello
        for frame, hello in first_per_stream(tshark_hellos(tshark, path)).items()
        if hello.stream.startswith("udp")
    }
    got = {frame: hello for frame, (hello, _) in assembled(path).items()}
    assert sorted(got) == sorted(expected)
    for frame, hello in got.items():
        want = expected[frame]
        assert (hello.sni, hello.alpn) == (want.sni, want.alpn)
        assert hello.cipher_suites == want.cipher_suites
        assert hello.extensions == want.extensions
        assert hello.signature_algorithms == want.signature_algorithms
        assert hello.supported_versions == want.supported_versions
        assert hello.groups == want.groups
        assert hello.ja4.startswith("q")
        if want.ja4 is not None:  # Wireshark 4.2+
            assert hello.ja4 == want.ja4


@pytest.mark.parametrize(
    ("name", "sni", "datagrams"),
    [
        ("zeek_quic_chromium_fragmented_initial.pcap", "www.google.de", 1),
        ("ndpi_quic_ch_multi_packets.pcapng", None, 2),
        ("zeek_quicv2_http3.pcap", None, 1),
        ("zeek_quic_firefox_google.pcap", "www.google.com", 1),
        ("tcpdump_quic_handshake.pcap", "localhost", 1),
    ],
)
def test_named_quic_captures(name: str, sni: str | None, datagrams: int) -> None:
    ((hello, used),) = assembled(PROTOCOLS / name).values()
    assert (hello.sni, used) == (sni, datagrams)
    assert "h3" in hello.alpn or "h3-34" in hello.alpn


def test_chromium_spreads_the_hello_over_crypto_frames_out_of_order() -> None:
    datagram = client_datagrams(PROTOCOLS / "zeek_quic_chromium_fragmented_initial.pcap")[0]
    (initial,) = parse_initial(datagram)
    offsets = [offset for offset, _ in initial.crypto]
    assert len(offsets) > 1 and offsets != sorted(offsets)
    assert initial.packet_number == 1 and len(initial.dcid) == 8


def test_multi_packet_hello_needs_both_datagrams() -> None:
    first, second, *_ = client_datagrams(PROTOCOLS / "ndpi_quic_ch_multi_packets.pcapng")
    assembler = QuicClientHelloAssembler()
    assert assembler.feed(first) is None and not assembler.done
    hello = assembler.feed(second)
    assert hello is not None and hello.ja4.startswith("q00i0307h4_")  # TLS 1.3 draft versions
    assert assembler.feed(second) is None  # exactly once


def test_quic_v2_is_decrypted() -> None:
    (initial, *_) = parse_initial(client_datagrams(PROTOCOLS / "zeek_quicv2_http3.pcap")[0])
    assert initial.version == QUIC_V2 and initial.crypto


def test_gquic_is_skipped_without_error() -> None:
    payloads = [p.payload for p in packets(PROTOCOLS / "tcpdump_gquic.pcap") if p.proto == "udp"]
    assert payloads
    for payload in payloads:
        assert parse_initial(payload) == []
        assert not is_quic_initial_start(payload)
    assert assembled(PROTOCOLS / "tcpdump_gquic.pcap") == {}


def test_server_initials_are_left_out() -> None:
    path = PROTOCOLS / "tcpdump_quic_handshake.pcap"
    first = next(p for p in packets(path) if p.proto == "udp")
    server = [p.payload for p in packets(path) if p.flow == first.flow and not p.from_orig]
    assert any(is_quic_initial_start(payload) for payload in server)
    assert all(parse_initial(payload) == [] for payload in server)


# --- parse_initial and parse_frames -----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x40" + bytes(30),  # short header
        b"\xc0\x00\x00\x00\x00\x08" + bytes(20),  # version negotiation
        b"\xc9Q046\x08" + bytes(30),  # gQUIC Q046 long header
        b"\xcb\xff\x00\x00\x1d" + bytes(30),  # draft-29: not decoded
        b"\xf0\x00\x00\x00\x01\x08" + bytes(30),  # v1 Retry
    ],
    ids=["empty", "short", "version-negotiation", "gquic", "draft", "retry"],
)
def test_not_a_client_initial_gives_an_empty_list(payload: bytes) -> None:
    assert parse_initial(payload) == []


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc0\x00\x00\x00\x01\x15" + bytes(40),  # DCID of 21 bytes
        b"\xc0\x00\x00\x00\x01\x00",  # no SCID length
        b"\xc0\x00\x00\x00\x01\x00\x00\x00\x44",  # length varint cut
        b"\xc0\x00\x00\x00\x01\x00\x00\x00\x40\x30" + bytes(10),  # longer than the datagram
        b"\xc0\x00\x00\x00\x01\x00\x00\x00\x05" + bytes(5),  # no room for the sample
        b"\xc0\x00\x00\x00\x01\x00\x00\x3f" + bytes(10),  # token longer than the datagram
    ],
)
def test_broken_long_headers_raise_malformed(payload: bytes) -> None:
    with pytest.raises(Malformed):
        parse_initial(payload)


def test_sealed_initial_round_trips_with_all_frame_kinds() -> None:
    plaintext = (
        b"\x01"  # PING
        + b"\x02\x05\x00\x01\x00\x02\x01"  # ACK: largest 5, 1 extra range
        + b"\x03\x05\x00\x00\x00\x01\x02\x03"  # ACK with ECN counts
        + crypto(40, HELLO[40:])
        + b"\x00\x00\x00"  # PADDING
        + crypto(0, HELLO[:40])
        + b"\x1c\x00\x06\x02hi"  # CONNECTION_CLOSE (transport) with a reason
        + b"\x1d\x00\x00"  # CONNECTION_CLOSE (application)
        + b"\x08\x00"  # a STREAM frame cannot be in an Initial: the walk ends
        + crypto(999, b"never read")
    )
    datagram = seal_initial(plaintext, packet_number=7) + seal_initial(b"\x01", packet_number=8)
    first, second = parse_initial(datagram)
    assert (first.version, first.dcid, first.scid, first.packet_number) == (
        QUIC_V1,
        RFC_DCID,
        b"scd",
        7,
    )
    assert first.crypto == ((40, HELLO[40:]), (0, HELLO[:40]))
    assert second.packet_number == 8 and second.crypto == ()


def test_coalesced_handshake_packet_is_skipped() -> None:
    handshake = b"\xe0\x00\x00\x00\x01\x00\x00\x05" + bytes(5)
    assert len(parse_initial(seal_initial(crypto(0, HELLO)) + handshake + bytes(30))) == 1


@pytest.mark.parametrize(
    "plaintext",
    [
        b"\x06\x00\x05abc",  # CRYPTO data cut
        b"\x06\x00",  # CRYPTO length missing
        b"\x02\x05\x00\xbf\xff\xff\xff\xff\xff\xff\xff\x00",  # 2**62 ACK ranges
        b"\x03\x05\x00\x00\x00\x01\x02",  # ECN counts cut
        b"\x1c\x00\x06\x09hi",  # reason cut
        b"\x06\x80",  # varint cut
    ],
)
def test_broken_frames_raise_malformed(plaintext: bytes) -> None:
    with pytest.raises(Malformed):
        parse_frames(plaintext)


# --- the assembler ----------------------------------------------------------------------------


def test_crypto_reordered_across_datagrams_and_dcid_switch() -> None:
    assembler = QuicClientHelloAssembler()
    assert assembler.feed(seal_initial(crypto(30, HELLO[30:60]))) is None
    assert assembler.dcid == RFC_DCID
    # the client moved to the server's connection id; keys stay those of the original DCID
    later = seal_initial(crypto(60, HELLO[60:]) + crypto(0, HELLO[:35]), b"srv", key_dcid=RFC_DCID)
    hello = assembler.feed(later)
    assert hello is not None and hello.sni == "quic.example" and hello.alpn == ("h3",)
    assert assembler.done and not assembler.failed and assembler.hello is hello


def test_retry_restarts_under_the_new_dcid() -> None:
    assembler = QuicClientHelloAssembler()
    assembler.feed(seal_initial(crypto(0, b"\x01\x00\x10\x00" + bytes(100))))  # never completes
    hello = assembler.feed(seal_initial(crypto(0, HELLO), b"retrydcid"))
    assert hello is not None and assembler.dcid == b"retrydcid"


def test_datagrams_that_do_not_open_are_counted_then_give_up() -> None:
    assembler = QuicClientHelloAssembler()
    for _ in range(MAX_SEGMENTS - 1):
        assert assembler.feed(b"\x40junk") is None
    assert not assembler.done
    assembler.feed(b"\x40junk")
    assert assembler.done and assembler.failed
    assert assembler.feed(seal_initial(crypto(0, HELLO))) is None


@pytest.mark.parametrize(
    "plaintext",
    [
        crypto(0, b"\x02\x00\x00\x04abcd"),  # a ServerHello first
        crypto(MAX_HELLO_BYTES, b"x"),  # beyond the limit
        crypto(0, b"\x01\x01\x00\x00"),  # declares a ClientHello longer than the limit
        crypto(0, b"\x01\x00\x00\x05" + bytes(5)),  # complete but broken
        b"\x06\x00\x09abc",  # broken frame
    ],
    ids=["server-hello", "offset", "long", "broken-hello", "broken-frame"],
)
def test_broken_crypto_gives_up(plaintext: bytes) -> None:
    assembler = QuicClientHelloAssembler()
    assert assembler.feed(seal_initial(plaintext)) is None
    assert assembler.done and assembler.failed


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MALFORMED + CAPTURES, ids=lambda path: path.name)
def test_every_udp_payload_of_every_capture_is_safe(path: Path) -> None:
    for packet in packets(path):
        if packet.proto == "udp":
            initial_or_malformed(packet.payload)
    assembled(path)


REAL_DATAGRAMS = [
    client_datagrams(PROTOCOLS / name)[0]
    for name in ("zeek_quic_chromium_fragmented_initial.pcap", "zeek_quicv2_http3.pcap")
] + [seal_initial(crypto(0, HELLO)) + seal_initial(b"\x01", packet_number=1)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"\xc0", b"\xd0", b"\xe0", b""]))
def test_random_bytes_never_raise_anything_but_malformed(data: bytes, head: bytes) -> None:
    for version in (b"\x00\x00\x00\x01", b"\x6b\x33\x43\xcf"):
        initial_or_malformed(head + version + data if head else data)
    with contextlib.suppress(Malformed):
        parse_frames(data)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(REAL_DATAGRAMS),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
    st.integers(0, 1 << 16),
)
def test_mutated_real_initials_never_raise_anything_but_malformed(
    original: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(original)
    for index, value in flips:
        data[index % 64] = value  # the header and the start of the protected payload
    datagram = bytes(data[:cut])
    initial_or_malformed(datagram)
    QuicClientHelloAssembler().feed(datagram)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_authenticated_plaintext_is_walked_safely(plaintext: bytes) -> None:
    """The keys are public, so an attacker can seal any frames: the walk must hold."""
    datagram = seal_initial(plaintext)
    initial_or_malformed(datagram)
    QuicClientHelloAssembler().feed(datagram)
