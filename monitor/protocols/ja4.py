"""JA4 TLS client fingerprint (FoxIO, https://github.com/FoxIO-LLC/ja4, technical details).

``{t|q}{version}{d|i}{ciphers:02}{extensions:02}{alpn}_{hash(ciphers)}_{hash(extensions_sigalgs)}``

Guarantees: GREASE values (RFC 8701, ``0x?a?a``) are ignored everywhere; counts are capped at
99; the version is the highest non-GREASE ``supported_versions`` entry, else the legacy
version; ``d`` when the SNI extension is present; a hash part is twelve ``0`` when its input is
empty. Pure and total: it never raises on any integer tuples and byte strings.
"""

from __future__ import annotations

from hashlib import sha256

_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_EXT_SNI = 0x0000
_EXT_ALPN = 0x0010
_EMPTY_HASH = "000000000000"


GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
"""The sixteen GREASE code points 0x0a0a, 0x1a1a ... 0xfafa (RFC 8701)."""


def _hash(text: str) -> str:
    return sha256(text.encode()).hexdigest()[:12] if text else _EMPTY_HASH


def _alpn_code(first: bytes | None) -> str:
    if not first:
        return "00"
    head, tail = chr(first[0]), chr(first[-1])
    if head.isascii() and head.isalnum() and tail.isascii() and tail.isalnum():
        return head + tail
    hexed = first.hex()
    return hexed[0] + hexed[-1]


def ja4(
    *,
    transport: str,
    legacy_version: int,
    supported_versions: tuple[int, ...],
    cipher_suites: tuple[int, ...],
    extensions: tuple[int, ...],
    alpn_first: bytes | None,
    signature_algorithms: tuple[int, ...],
) -> str:
    """The JA4 string of a ClientHello given its fields as on the wire (GREASE included).

    ``transport`` is ``quic`` (prefix ``q``), anything else means TLS over TCP (``t``);
    ``alpn_first`` is the raw first ALPN protocol name, ``None`` without ALPN.
    """
    versions = [v for v in supported_versions if v not in GREASE]
    version = _VERSIONS.get(max(versions) if versions else legacy_version, "00")
    ciphers = [c for c in cipher_suites if c not in GREASE]
    exts = [e for e in extensions if e not in GREASE]
    part_a = (
        f"{'q' if transport == 'quic' else 't'}{version}{'d' if _EXT_SNI in exts else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_alpn_code(alpn_first)}"
    )
    part_b = _hash(",".join(f"{c:04x}" for c in sorted(ciphers)))
    hashed_exts = ",".join(f"{e:04x}" for e in sorted(exts) if e not in (_EXT_SNI, _EXT_ALPN))
    sigalgs = ",".join(f"{s:04x}" for s in signature_algorithms if s not in GREASE)
    part_c = _hash(f"{hashed_exts}_{sigalgs}" if sigalgs else hashed_exts)
    return f"{part_a}_{part_b}_{part_c}"
