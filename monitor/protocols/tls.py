"""TLS ClientHello: the parser, and its reassembly from TCP segments and TLS records.

The ClientHello is the one TLS message that names the destination in clear (SNI) and describes
the client (ALPN, versions, ciphers: the JA4 fingerprint). Only these fields are kept; key shares,
session tickets and all other bytes are dropped once parsed.

Guarantees: :func:`parse_client_hello` is pure, reads only within its input, and raises nothing
but :class:`~monitor.errors.Malformed`; :class:`ClientHelloAssembler` never raises, holds at most
:data:`MAX_HELLO_BYTES` of stream and :data:`MAX_SEGMENTS` segments, then gives up.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from monitor.errors import Malformed
from monitor.protocols.ja4 import ja4

MAX_HELLO_BYTES = 64 * 1024
"""The most stream (TCP) or CRYPTO (QUIC) bytes kept while waiting for one ClientHello."""
MAX_SEGMENTS = 16
"""The most TCP segments (or QUIC datagrams) an assembler reads before giving up."""
MAX_PIECES = 256
"""The most out-of-order pieces a :class:`StreamBuffer` holds waiting for a gap to fill."""

_HANDSHAKE_RECORD = 22
_CLIENT_HELLO = 1
_MAX_RECORD = 1 << 14
_EXT_SNI = 0x0000
_EXT_GROUPS = 0x000A
_EXT_SIGALGS = 0x000D
_EXT_ALPN = 0x0010
_EXT_VERSIONS = 0x002B
_EXT_ECH = 0xFE0D
_TYPE_LENGTH = struct.Struct(">HH")


@dataclass(frozen=True, slots=True)
class ClientHello:
    """The metadata of one ClientHello. Code point tuples are in wire order, GREASE included.

    ``sni`` is the first host_name, lowercased (with ECH, the outer, visible name), ``None``
    when absent or empty; ``alpn`` holds the protocol names decoded as Latin-1 (lossless);
    ``ech`` is true when the encrypted_client_hello extension (0xfe0d) is present; ``ja4`` is
    FoxIO's JA4 fingerprint (see :mod:`monitor.protocols.ja4`).
    """

    sni: str | None
    alpn: tuple[str, ...]
    legacy_version: int
    supported_versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    groups: tuple[int, ...]
    ech: bool
    ja4: str


def _vector(buf: bytes, pos: int, width: int) -> tuple[bytes, int]:
    """The length-prefixed vector at ``pos`` (length field ``width`` bytes) and the next pos."""
    start = pos + width
    if start > len(buf):
        raise Malformed("TLS vector length runs past the end")
    end = start + int.from_bytes(buf[pos:start])
    if end > len(buf):
        raise Malformed("TLS vector runs past the end")
    return buf[start:end], end


def _u16s(raw: bytes) -> tuple[int, ...]:
    if len(raw) % 2:
        raise Malformed("odd length for a list of 16-bit code points")
    return struct.unpack(f">{len(raw) // 2}H", raw)


def _server_name(data: bytes) -> str | None:
    names, _ = _vector(data, 0, 2)
    pos = 0
    while pos < len(names):
        name_type = names[pos]
        name, pos = _vector(names, pos + 1, 2)
        if name_type == 0:
            return name.decode("utf-8", "replace").lower() or None
    return None


def _alpn(data: bytes) -> tuple[bytes, ...]:
    protocols, _ = _vector(data, 0, 2)
    names = []
    pos = 0
    while pos < len(protocols):
        name, pos = _vector(protocols, pos, 1)
        names.append(name)
    return tuple(names)


def _extensions(block: bytes) -> tuple[tuple[int, ...], dict[int, bytes]]:
    """Extension types in order, and the data of the first occurrence of each type."""
    types = []
    first: dict[int, bytes] = {}
    pos, size = 0, len(block)
    while pos < size:
        if pos + 4 > size:
            raise Malformed("TLS extension header runs past the end")
        ext_type, length = _TYPE_LENGTH.unpack_from(block, pos)
        end = pos + 4 + length
        if end > size:
            raise Malformed("TLS extension runs past the end")
        types.append(ext_type)
        if ext_type not in first:
            first[ext_type] = block[pos + 4 : end]
        pos = end
    return tuple(types), first


def parse_client_hello(handshake: bytes, transport: str = "tls") -> ClientHello:
    """Parse one handshake message (4-byte header: type 1, 24-bit length) as a ClientHello.

    ``transport`` is ``tls`` (TCP, after record reassembly) or ``quic`` (CRYPTO frames); it
    only changes the JA4 prefix. Bytes after the message are ignored.

    Raises:
        Malformed: not a ClientHello, truncated, longer than :data:`MAX_HELLO_BYTES`, or a
            vector that does not fit.
    """
    if len(handshake) < 4 or handshake[0] != _CLIENT_HELLO:
        raise Malformed("not a TLS ClientHello message")
    length = int.from_bytes(handshake[1:4])
    if 4 + length > MAX_HELLO_BYTES:
        raise Malformed("ClientHello longer than the limit")
    if len(handshake) < 4 + length:
        raise Malformed("truncated ClientHello")
    body = bytes(handshake[4 : 4 + length])
    if len(body) < 35:
        raise Malformed("ClientHello shorter than its fixed fields")
    legacy_version = body[0] << 8 | body[1]
    session_id, pos = _vector(body, 34, 1)
    if len(session_id) > 32:
        raise Malformed("ClientHello session id longer than 32 bytes")
    suites, pos = _vector(body, pos, 2)
    _, pos = _vector(body, pos, 1)  # compression methods
    ext_types: tuple[int, ...] = ()
    ext_data: dict[int, bytes] = {}
    if pos < len(body):
        block, _ = _vector(body, pos, 2)
        ext_types, ext_data = _extensions(block)

    sni = _server_name(ext_data[_EXT_SNI]) if _EXT_SNI in ext_data else None
    alpn = _alpn(ext_data[_EXT_ALPN]) if _EXT_ALPN in ext_data else ()
    versions = _u16s(_vector(ext_data[_EXT_VERSIONS], 0, 1)[0]) if _EXT_VERSIONS in ext_data else ()
    sigalgs = _u16s(_vector(ext_data[_EXT_SIGALGS], 0, 2)[0]) if _EXT_SIGALGS in ext_data else ()
    groups = _u16s(_vector(ext_data[_EXT_GROUPS], 0, 2)[0]) if _EXT_GROUPS in ext_data else ()
    cipher_suites = _u16s(suites)
    return ClientHello(
        sni=sni,
        alpn=tuple(name.decode("latin-1") for name in alpn),
        legacy_version=legacy_version,
        supported_versions=versions,
        cipher_suites=cipher_suites,
        extensions=ext_types,
        signature_algorithms=sigalgs,
        groups=groups,
        ech=_EXT_ECH in ext_data,
        ja4=ja4(
            transport=transport,
            legacy_version=legacy_version,
            supported_versions=versions,
            cipher_suites=cipher_suites,
            extensions=ext_types,
            alpn_first=alpn[0] if alpn else None,
            signature_algorithms=sigalgs,
        ),
    )


class StreamBuffer:
    """The in-order start of a byte stream rebuilt from ``(offset, bytes)`` pieces.

    Pieces may arrive out of order, overlap or repeat; on overlap the bytes already held win.
    Guarantees: :attr:`data` is the longest contiguous prefix from offset 0; nothing at or
    beyond ``limit`` is accepted; at most ``limit`` bytes in :data:`MAX_PIECES` pieces wait
    for a gap to fill. :meth:`add` returns ``False`` (and keeps nothing) when a piece breaks
    these bounds.
    """

    def __init__(self, limit: int = MAX_HELLO_BYTES) -> None:
        self.limit = limit
        self.data = bytearray()
        self._pending: dict[int, bytes] = {}
        self._pending_bytes = 0

    def add(self, offset: int, piece: bytes) -> bool:
        """Place ``piece`` at ``offset``; ``False`` when it is out of bounds."""
        if offset < 0 or offset + len(piece) > self.limit:
            return False
        have = len(self.data)
        if offset <= have:
            if offset + len(piece) > have:
                self.data += piece[have - offset :]
                self._drain()
            return True
        held = self._pending.get(offset)
        if held is None and len(self._pending) >= MAX_PIECES:
            return False
        grow = len(piece) - len(held or b"")
        if grow > 0:
            if self._pending_bytes + grow > self.limit:
                return False
            self._pending_bytes += grow
            self._pending[offset] = piece
        return True

    def _drain(self) -> None:
        while self._pending:
            ready = sorted(offset for offset in self._pending if offset <= len(self.data))
            if not ready:
                return
            for offset in ready:
                piece = self._pending.pop(offset)
                self._pending_bytes -= len(piece)
                if offset + len(piece) > len(self.data):
                    self.data += piece[len(self.data) - offset :]


class ClientHelloAssembler:
    """Rebuilds the ClientHello from one TCP direction (the client's segments).

    Feed every payload-carrying segment in arrival order. The stream is taken to start at the
    first segment fed, which must begin with a TLS handshake record (content type 22, version
    3.x); bytes before it are ignored. Retransmissions and out-of-order segments are placed by
    sequence number (modulo 2**32). Handshake records are unwrapped and their fragments joined
    until the whole ClientHello message is present.

    Guarantees: :meth:`feed` never raises; it returns the :class:`ClientHello` exactly once,
    then :attr:`done` is true and :attr:`hello` holds it. It gives up (:attr:`done` and
    :attr:`failed` true, buffers released) when the stream is not a TLS handshake, the first
    handshake message is not a ClientHello or is malformed, a record is not a handshake record,
    or no ClientHello is complete within :data:`MAX_HELLO_BYTES` of stream or
    :data:`MAX_SEGMENTS` segments.
    """

    def __init__(self) -> None:
        self.done = False
        self.failed = False
        self.hello: ClientHello | None = None
        self.segments = 0
        self._base: int | None = None
        self._stream = StreamBuffer()
        self._record_pos = 0
        self._handshake = bytearray()

    def feed(self, seq: int, payload: bytes) -> ClientHello | None:
        """Add one segment (``seq`` = its TCP sequence number); the ClientHello when complete."""
        if self.done or not payload:
            return None
        self.segments += 1
        if self._base is None:
            if not is_tls_handshake_start(payload):
                return self._finish(None)
            self._base = seq
        offset = (seq - self._base) & 0xFFFFFFFF
        if offset >= 1 << 31:  # starts before the base: keep what reaches past it
            payload = payload[(1 << 32) - offset :]
            offset = 0
        if not self._stream.add(offset, payload):
            return self._finish(None)
        try:
            hello = self._advance()
        except Malformed:
            return self._finish(None)
        if hello is not None or self.segments >= MAX_SEGMENTS:
            return self._finish(hello)
        return None

    def _advance(self) -> ClientHello | None:
        data = self._stream.data
        pos = self._record_pos
        while len(data) - pos >= 5:
            length = data[pos + 3] << 8 | data[pos + 4]
            if data[pos] != _HANDSHAKE_RECORD or data[pos + 1] != 3 or length > _MAX_RECORD:
                raise Malformed("not a TLS handshake record")
            if pos + 5 + length > len(data):
                break
            self._handshake += data[pos + 5 : pos + 5 + length]
            pos += 5 + length
        self._record_pos = pos
        handshake = self._handshake
        if len(handshake) < 4:
            return None
        if handshake[0] != _CLIENT_HELLO:
            raise Malformed("first handshake message is not a ClientHello")
        need = 4 + int.from_bytes(handshake[1:4])
        if need > MAX_HELLO_BYTES:
            raise Malformed("ClientHello longer than the limit")
        if len(handshake) < need:
            return None
        return parse_client_hello(handshake)

    def _finish(self, hello: ClientHello | None) -> ClientHello | None:
        self.done = True
        self.failed = hello is None
        self.hello = hello
        self._stream = StreamBuffer(0)
        self._handshake = bytearray()
        return hello


def is_tls_handshake_start(payload: bytes) -> bool:
    """Cheap test: could ``payload`` begin a TLS handshake record (type 22, version 3.x)?"""
    return len(payload) >= 3 and payload[0] == _HANDSHAKE_RECORD and payload[1] == 3
