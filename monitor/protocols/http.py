"""The head of a plain HTTP/1.x request: method, Host and User-Agent only.

Privacy: the path, the body and every other header are never decoded or kept. Guarantees of
:func:`parse_http_request`: looks at no more than the first ``WINDOW`` bytes; returns an
:class:`HttpRequest`, ``None`` when the bytes do not start with an HTTP/1.x request line, or
raises :class:`~monitor.errors.Malformed`; nothing else escapes. A head cut by the end of the
segment (or of the window) yields the headers on its complete lines; a request line cut before
its end yields the method alone when it is a standard method followed by a space.

:func:`read_head` is shared with :mod:`monitor.protocols.ssdp` (HTTP over UDP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.errors import Malformed

WINDOW = 4096
"""Bytes of a segment looked at."""
MAX_LINES = 64
"""Header lines read at most; later lines are ignored."""
MAX_VALUE = 512
"""Header values are cut to this many characters."""

_REQUEST_LINE = re.compile(r"([A-Z][A-Z0-9_-]{0,23}) [^ ]+ HTTP/1\.[0-9]")
_CUT_REQUEST_LINE = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) [!-~]*(?: [!-~]{0,9})?"
)  # a request line the segment (or window) ends in: target and version may be partial
_WANTED = frozenset({"host", "user-agent"})


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """``host`` is lowercase without port, brackets or trailing dot; ``None`` when absent."""

    method: str
    host: str | None
    user_agent: str | None


def read_head(
    data: bytes, start: re.Pattern[str], wanted: frozenset[str], *, complete: bool
) -> tuple[re.Match[str], dict[str, str]] | None:
    """The start line's match and the ``wanted`` headers (lowercase names) of an HTTP-style head.

    Returns ``None`` when the start line is incomplete or does not fully match ``start``; only
    then are header lines read: at most ``WINDOW`` bytes and ``MAX_LINES`` lines, up to the blank
    line. Only complete lines count; with ``complete`` (a whole datagram) the end of ``data``
    also ends a line when it falls inside the window. The first occurrence of a header wins;
    values are stripped and cut to ``MAX_VALUE`` characters. Raises :class:`Malformed` for a
    header line without a name and colon.
    """
    window = data[:WINDOW]
    lines = window.split(b"\n", MAX_LINES + 1)
    if len(lines) <= MAX_LINES + 1 and not (complete and len(data) <= WINDOW):
        lines.pop()  # cut by the end of the segment or the window
    if not lines:
        return None
    match = start.fullmatch(lines[0].rstrip(b"\r").decode("utf-8", "replace"))
    if match is None:
        return None
    headers: dict[str, str] = {}
    for raw in lines[1 : MAX_LINES + 1]:
        line = raw.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            continue  # obsolete line folding: a continuation of a value we do not keep
        name, colon, value = line.partition(b":")
        name = name.strip()
        if not colon or not name:
            raise Malformed("header line without a name and colon")
        key = name.decode("ascii", "replace").lower()
        if key in wanted and key not in headers:
            headers[key] = value.strip().decode("utf-8", "replace")[:MAX_VALUE]
    return match, headers


def parse_http_request(payload: bytes) -> HttpRequest | None:
    """Parse the request head at the start of a TCP segment."""
    space = payload.find(b" ", 0, 26)
    if space < 1 or not payload[:space].isupper():
        return None
    if payload.find(b"\n", 0, WINDOW) < 0:
        cut = _CUT_REQUEST_LINE.fullmatch(payload[:WINDOW])
        return HttpRequest(cut.group(1).decode(), None, None) if cut else None
    head = read_head(payload, _REQUEST_LINE, _WANTED, complete=False)
    if head is None:
        return None
    match, headers = head
    return HttpRequest(
        method=match.group(1),
        host=_host(headers.get("host")),
        user_agent=headers.get("user-agent") or None,
    )


def _host(value: str | None) -> str | None:
    """``Host`` without port, IPv6 brackets or trailing dot, lowercase."""
    if not value:
        return None
    host = value.lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    else:
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit():
            host = name
    return host.rstrip(".") or None
