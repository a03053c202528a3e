"""SSDP (UPnP discovery over UDP 1900): the headers that identify a device's software.

Guarantees of :func:`parse_ssdp`: returns an :class:`SsdpMessage`, ``None`` when the start line
is not ``M-SEARCH * HTTP/1.x``, ``NOTIFY * HTTP/1.x`` or an ``HTTP/1.x`` status line, or raises
:class:`~monitor.errors.Malformed` for a broken header line; nothing else escapes. The bounds of
:func:`monitor.protocols.http.read_head` apply (4 KiB, 64 header lines, 512-character values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.protocols.http import read_head

_START = re.compile(r"(M-SEARCH|NOTIFY) \* HTTP/1\.[0-9]|HTTP/1\.[0-9] [0-9]{3}( .*)?")
_WANTED = frozenset({"server", "user-agent", "st", "nt", "nts", "usn", "location"})


@dataclass(frozen=True, slots=True)
class SsdpMessage:
    """``kind`` is ``"M-SEARCH"``, ``"NOTIFY"`` or ``"RESPONSE"``; a header absent or empty is
    ``None``. Header names are matched case-insensitively; the first occurrence wins."""

    kind: str
    server: str | None
    user_agent: str | None
    st: str | None
    nt: str | None
    nts: str | None
    usn: str | None
    location: str | None


def parse_ssdp(payload: bytes) -> SsdpMessage | None:
    """Parse one SSDP datagram."""
    head = read_head(payload, _START, _WANTED, complete=True)
    if head is None:
        return None
    match, headers = head
    return SsdpMessage(
        kind=match.group(1) or "RESPONSE",
        server=headers.get("server") or None,
        user_agent=headers.get("user-agent") or None,
        st=headers.get("st") or None,
        nt=headers.get("nt") or None,
        nts=headers.get("nts") or None,
        usn=headers.get("usn") or None,
        location=headers.get("location") or None,
    )
