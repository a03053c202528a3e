"""Serving the dashboard with waitress, and the address it listens on by default.

Guarantees: :func:`default_host` never sends a packet (connecting a UDP socket only asks the
kernel which source address its routing table would use) and falls back to 127.0.0.1 when there
is no default route; :func:`make_server` binds before returning, so the URL it reports is live.
"""

from __future__ import annotations

import socket
from typing import Any

from flask import Flask
from waitress.server import create_server

DEFAULT_PORT = 8080
#: An address of TEST-NET-1 (RFC 5737): only used to ask which interface the default route uses.
_PROBE = ("192.0.2.1", 9)


def default_host() -> str:
    """The IPv4 address of the interface holding the default route, else 127.0.0.1."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(_PROBE)
        address = probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()
    return address if address and address != "0.0.0.0" else "127.0.0.1"


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port``, ``host`` or ``:port`` (empty parts: :func:`default_host`, 8080)."""
    if ":" in bind:
        host, _sep, port = bind.rpartition(":")
    else:
        host, port = bind, ""
    host = host.strip("[]") or default_host()
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"{bind!r} is not host:port") from None
    return host, number


def make_server(app: Flask, bind: str) -> Any:
    """A waitress server for ``app`` bound to ``bind``; call ``.run()`` to serve and
    ``.close()`` to stop. ``.url`` is where it answers."""
    host, port = parse_bind(bind)
    server = create_server(app, host=host, port=port, threads=4, ident="micwatch")
    bound_host, bound_port = server.socket.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    server.url = f"http://{shown}:{bound_port}/"
    return server
