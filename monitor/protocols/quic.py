"""QUIC Initial packets (v1, RFC 9000/9001; v2, RFC 9369): decryption and ClientHello assembly.

A client's first flight is protected with keys anyone can derive from the Destination Connection
ID of its first Initial packet, so a passive observer reads the TLS ClientHello inside the
CRYPTO frames. Other versions (gQUIC ``Q0xx``, drafts), version negotiation, Retry, 0-RTT,
Handshake and short-header packets are recognised and skipped.

Guarantees: :func:`parse_initial` and :func:`parse_frames` are pure, read only within their
input and raise nothing but :class:`~monitor.errors.Malformed`; key derivations are cached for
the last :data:`KEY_CACHE` connection IDs; :class:`QuicClientHelloAssembler` never raises and
keeps at most :data:`~monitor.protocols.tls.MAX_HELLO_BYTES` of CRYPTO data over at most
:data:`~monitor.protocols.tls.MAX_SEGMENTS` datagrams.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from monitor.errors import Malformed
from monitor.protocols.tls import (
    MAX_HELLO_BYTES,
    MAX_SEGMENTS,
    ClientHello,
    StreamBuffer,
    parse_client_hello,
)

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF
KEY_CACHE = 1024
"""How many connection IDs' Initial keys stay cached."""

_MAX_CID = 20
_TAG = 16
_SAMPLE = 16


@dataclass(frozen=True, slots=True)
class _Version:
    salt: bytes
    label: str  # prefix of the key, iv and hp labels
    initial_type: int  # long-header packet type of Initial
    retry_type: int


_VERSIONS = {
    QUIC_V1: _Version(bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), "quic", 0, 3),
    QUIC_V2: _Version(bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), "quicv2", 1, 0),
}


@dataclass(frozen=True, slots=True)
class QuicInitial:
    """One decrypted client Initial packet.

    ``packet_number`` is the packet number as sent (truncated encoding; client Initials start
    at 0, so it is the full number for any realistic handshake); ``crypto`` lists the
    ``(offset, data)`` of its CRYPTO frames in packet order.
    """

    version: int
    dcid: bytes
    scid: bytes
    packet_number: int
    crypto: tuple[tuple[int, bytes], ...]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The variable-length integer at ``pos`` (RFC 9000 §16) and the next position."""
    if pos >= len(buf):
        raise Malformed("QUIC varint runs past the end")
    size = 1 << (buf[pos] >> 6)
    if pos + size > len(buf):
        raise Malformed("QUIC varint runs past the end")
    value = int.from_bytes(buf[pos : pos + size]) & ((1 << (8 * size - 2)) - 1)
    return value, pos + size


def _expand_label(secret: bytes, label: str, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1) with an empty context."""
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2) + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(SHA256(), length, info).derive(secret)


def client_initial_keys(version: int, dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, iv, hp) protecting the client's Initial packets (RFC 9001 §5.2, RFC 9369 §3.3).

    Raises:
        KeyError: ``version`` is not QUIC v1 or v2.
    """
    spec = _VERSIONS[version]
    client_secret = _expand_label(HKDF.extract(SHA256(), spec.salt, dcid), "client in", 32)
    return (
        _expand_label(client_secret, f"{spec.label} key", 16),
        _expand_label(client_secret, f"{spec.label} iv", 12),
        _expand_label(client_secret, f"{spec.label} hp", 16),
    )


@lru_cache(maxsize=KEY_CACHE)
def _ciphers(version: int, dcid: bytes) -> tuple[AESGCM, Cipher, bytes]:
    key, iv, hp = client_initial_keys(version, dcid)
    return AESGCM(key), Cipher(algorithms.AES(hp), modes.ECB()), iv


def parse_frames(plaintext: bytes) -> tuple[tuple[int, bytes], ...]:
    """The ``(offset, data)`` CRYPTO frames of a decrypted Initial payload.

    Walks PADDING, PING, ACK (with or without ECN counts), CRYPTO and CONNECTION_CLOSE frames;
    any other frame type ends the walk (it cannot be in an Initial packet).

    Raises:
        Malformed: a frame runs past the end of the payload.
    """
    frames = []
    pos, end = 0, len(plaintext)
    while pos < end:
        frame_type = plaintext[pos]
        if frame_type == 0x00:
            stripped = plaintext[pos:].lstrip(b"\x00")
            pos = end - len(stripped)
        elif frame_type == 0x01:
            pos += 1
        elif frame_type in (0x02, 0x03):
            _, pos = _varint(plaintext, pos + 1)  # largest acknowledged
            _, pos = _varint(plaintext, pos)  # ack delay
            ranges, pos = _varint(plaintext, pos)
            _, pos = _varint(plaintext, pos)  # first range
            if ranges > (end - pos) // 2:
                raise Malformed("QUIC ACK range count runs past the end")
            for _ in range(2 * ranges + (3 if frame_type == 0x03 else 0)):
                _, pos = _varint(plaintext, pos)
        elif frame_type == 0x06:
            offset, pos = _varint(plaintext, pos + 1)
            length, pos = _varint(plaintext, pos)
            if pos + length > end:
                raise Malformed("QUIC CRYPTO frame runs past the end")
            frames.append((offset, plaintext[pos : pos + length]))
            pos += length
        elif frame_type in (0x1C, 0x1D):
            _, pos = _varint(plaintext, pos + 1)  # error code
            if frame_type == 0x1C:
                _, pos = _varint(plaintext, pos)  # offending frame type
            length, pos = _varint(plaintext, pos)
            if pos + length > end:
                raise Malformed("QUIC CONNECTION_CLOSE reason runs past the end")
            pos += length
        else:
            break
    return tuple(frames)


def _decrypt(
    version: int, key_dcid: bytes, packet: bytes, pn_offset: int
) -> tuple[int, bytes] | None:
    """(packet number, plaintext) of one protected Initial, or None if the keys do not fit."""
    if pn_offset + 4 + _SAMPLE > len(packet):
        raise Malformed("QUIC Initial too short for its header protection sample")
    aead, hp, iv = _ciphers(version, key_dcid)
    encryptor = hp.encryptor()
    mask = encryptor.update(packet[pn_offset + 4 : pn_offset + 4 + _SAMPLE])
    first = packet[0] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    packet_number = int.from_bytes(packet[pn_offset : pn_offset + pn_len]) ^ int.from_bytes(
        mask[1 : 1 + pn_len]
    )
    header = bytes([first]) + packet[1:pn_offset] + packet_number.to_bytes(pn_len)
    nonce = (int.from_bytes(iv) ^ packet_number).to_bytes(12)
    ciphertext = packet[pn_offset + pn_len :]
    if len(ciphertext) < _TAG:
        raise Malformed("QUIC Initial shorter than its AEAD tag")
    try:
        return packet_number, aead.decrypt(nonce, ciphertext, header)
    except InvalidTag:
        return None


def parse_initial(udp_payload: bytes, key_dcid: bytes | None = None) -> list[QuicInitial]:
    """The client Initial packets of one UDP datagram (coalesced packets included), decrypted.

    Keys come from ``key_dcid`` (the DCID of the client's first Initial) or, when ``None``,
    from each packet's own DCID. Returns ``[]`` for anything that is not QUIC v1/v2 with a long
    header (short header, version negotiation, gQUIC and other versions); Initials that do
    not decrypt with the client keys (server Initials) are left out. The walk stops at the
    first packet it cannot delimit (Retry, unknown version, short header).

    Raises:
        Malformed: a v1/v2 long-header packet whose fields do not fit the datagram.
    """
    payload = bytes(udp_payload)
    initials = []
    pos = 0
    while len(payload) - pos >= 5 and payload[pos] & 0x80:
        version = int.from_bytes(payload[pos + 1 : pos + 5])
        spec = _VERSIONS.get(version)
        if spec is None:
            break
        if len(payload) - pos < 7:
            raise Malformed("QUIC long header cut before its connection ids")
        packet_type = (payload[pos] >> 4) & 0x03
        if packet_type == spec.retry_type:
            break
        dcid_len = payload[pos + 5]
        if dcid_len > _MAX_CID:
            raise Malformed("QUIC destination connection id longer than 20 bytes")
        dcid = payload[pos + 6 : pos + 6 + dcid_len]
        cursor = pos + 6 + dcid_len
        if cursor >= len(payload) or payload[cursor] > _MAX_CID:
            raise Malformed("QUIC source connection id missing or longer than 20 bytes")
        scid = payload[cursor + 1 : cursor + 1 + payload[cursor]]
        cursor += 1 + payload[cursor]
        if packet_type == spec.initial_type:
            token_len, cursor = _varint(payload, cursor)
            cursor += token_len
        length, cursor = _varint(payload, cursor)
        end = cursor + length
        if end > len(payload):
            raise Malformed("QUIC long-header packet runs past the datagram")
        if packet_type == spec.initial_type:
            packet = payload[pos:end]
            opened = _decrypt(version, dcid if key_dcid is None else key_dcid, packet, cursor - pos)
            if opened is not None:
                number, plaintext = opened
                initials.append(QuicInitial(version, dcid, scid, number, parse_frames(plaintext)))
        pos = end
    return initials


def is_quic_initial_start(udp_payload: bytes) -> bool:
    """Cheap test: could ``udp_payload`` begin with a QUIC v1/v2 Initial packet?"""
    if len(udp_payload) < 7 or not udp_payload[0] & 0x80:
        return False
    spec = _VERSIONS.get(int.from_bytes(udp_payload[1:5]))
    return spec is not None and (udp_payload[0] >> 4) & 0x03 == spec.initial_type


class QuicClientHelloAssembler:
    """Rebuilds the ClientHello from the client's Initial packets of one QUIC connection.

    Feed the client's UDP payloads in arrival order. Keys come from the DCID of the first
    client Initial (the original DCID) and stay in use when the client switches to the server's
    connection ID. CRYPTO data is joined by offset (frames may be split, reordered, repeated
    and spread over datagrams, as Chromium does) until the ClientHello message is complete.
    After a Retry the client starts again with keys from a new DCID: an Initial that only opens
    with its own DCID restarts the assembly under that DCID.

    Guarantees: :meth:`feed` never raises; it returns the :class:`ClientHello`
    (``transport="quic"``) exactly once, then :attr:`done` is true and :attr:`hello` holds it.
    It gives up (:attr:`done` and :attr:`failed` true, buffers released) on a broken packet or
    ClientHello, CRYPTO data past :data:`MAX_HELLO_BYTES`, a first handshake message that is
    not a ClientHello, or no complete ClientHello within :data:`MAX_SEGMENTS` datagrams.
    """

    def __init__(self) -> None:
        self.done = False
        self.failed = False
        self.hello: ClientHello | None = None
        self.dcid: bytes | None = None
        self.datagrams = 0
        self._crypto = StreamBuffer()

    def feed(self, udp_payload: bytes) -> ClientHello | None:
        """Add one client datagram; the ClientHello when it is complete."""
        if self.done:
            return None
        self.datagrams += 1
        try:
            initials = self._open(udp_payload)
            for initial in initials:
                for offset, data in initial.crypto:
                    if not self._crypto.add(offset, data):
                        raise Malformed("QUIC CRYPTO data beyond the limit")
            hello = self._hello()
        except Malformed:
            return self._finish(None)
        if hello is not None or self.datagrams >= MAX_SEGMENTS:
            return self._finish(hello)
        return None

    def _open(self, udp_payload: bytes) -> list[QuicInitial]:
        if self.dcid is None:
            initials = parse_initial(udp_payload)
            if initials:
                self.dcid = initials[0].dcid
            return initials
        initials = parse_initial(udp_payload, self.dcid)
        if not initials and is_quic_initial_start(udp_payload):
            initials = parse_initial(udp_payload)
            if initials:  # after a Retry: new original DCID, the ClientHello starts over
                self.dcid = initials[0].dcid
                self._crypto = StreamBuffer()
        return initials

    def _hello(self) -> ClientHello | None:
        data = self._crypto.data
        if len(data) < 4:
            return None
        if data[0] != 1:
            raise Malformed("first QUIC handshake message is not a ClientHello")
        need = 4 + int.from_bytes(data[1:4])
        if need > MAX_HELLO_BYTES:
            raise Malformed("ClientHello longer than the limit")
        if len(data) < need:
            return None
        return parse_client_hello(bytes(data[:need]), transport="quic")

    def _finish(self, hello: ClientHello | None) -> ClientHello | None:
        self.done = True
        self.failed = hello is None
        self.hello = hello
        self._crypto = StreamBuffer(0)
        return hello
