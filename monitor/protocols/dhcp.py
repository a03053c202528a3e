"""BOOTP/DHCPv4 messages (RFC 2131/2132), hand-parsed.

Why not dpkt: ``dpkt.dhcp`` does not check the magic cookie (it reads BOOTP vendor data as DHCP
options), returns the partial value of an option cut by the end of the packet, raises
``IndexError`` (outside its exception hierarchy) for an option without its length byte, copies
the rest of the buffer once per option and does not join split options (RFC 3396); the fixed
header plus a TLV walk is shorter than the wrapping it would need.

Guarantees of :func:`parse_dhcp`: returns a :class:`DhcpMessage`, ``None`` when the first byte is
not a BOOTP op (1 request, 2 reply), or raises :class:`~monitor.errors.Malformed`; nothing else
escapes. Options are read only after the magic cookie 63 82 53 63 (otherwise the message is plain
BOOTP and every option field is empty); the walk consumes at least one byte per step, so work is
linear in the payload. Option 52 (overload of sname/file) is not followed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from monitor.errors import Malformed

MAGIC_COOKIE = b"\x63\x82\x53\x63"
_FIXED = 236  # op .. file, RFC 2131 figure 1
_OPTIONS = _FIXED + len(MAGIC_COOKIE)
_PAD, _END = 0, 255
HOSTNAME, REQUESTED_IP, MESSAGE_TYPE, SERVER_ID, PARAMS, VENDOR_CLASS, CLIENT_ID, MUD_URL = (
    12, 50, 53, 54, 55, 60, 61, 161
)  # fmt: skip
_WANTED = frozenset(
    {HOSTNAME, REQUESTED_IP, MESSAGE_TYPE, SERVER_ID, PARAMS, VENDOR_CLASS, CLIENT_ID, MUD_URL}
)


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """The identifying parts of a DHCPv4 message.

    ``client_mac`` is chaddr as lowercase colon hex when htype is Ethernet (1) with hlen 6, else
    ``""``. String options are decoded as UTF-8 (undecodable bytes replaced) with NULs removed;
    an option whose length does not fit its type (an address that is not 4 bytes, a message type
    that is not 1 byte) is reported as ``None``. ``client_id`` is the hex of option 61.
    """

    op: int
    message_type: int | None
    xid: int
    client_mac: str
    ciaddr: str
    yiaddr: str
    hostname: str | None
    requested_ip: str | None
    param_request_list: tuple[int, ...]
    vendor_class: str | None
    client_id: str | None
    mud_url: str | None
    server_id: str | None

    @property
    def fingerprint(self) -> str:
        """Option 55 as Fingerbank writes it: the requested option codes joined by commas."""
        return ",".join(map(str, self.param_request_list))


def parse_dhcp(payload: bytes) -> DhcpMessage | None:
    """Parse a BOOTP/DHCPv4 message (UDP payload, ports 67/68).

    Raises :class:`Malformed` when the fixed header is shorter than 236 bytes or an option's
    length runs past the end of the payload.
    """
    if not payload or payload[0] not in (1, 2):
        return None
    if len(payload) < _FIXED:
        raise Malformed(f"BOOTP header of {len(payload)} bytes, 236 needed")
    htype, hlen = payload[1], payload[2]
    options = _options(payload) if payload[_FIXED:_OPTIONS] == MAGIC_COOKIE else {}
    message_type = options.get(MESSAGE_TYPE)
    client_id = options.get(CLIENT_ID)
    return DhcpMessage(
        op=payload[0],
        message_type=message_type[0] if message_type and len(message_type) == 1 else None,
        xid=int.from_bytes(payload[4:8], "big"),
        client_mac=payload[28:34].hex(":") if htype == 1 and hlen == 6 else "",
        ciaddr=socket.inet_ntoa(payload[12:16]),
        yiaddr=socket.inet_ntoa(payload[16:20]),
        hostname=_text(options.get(HOSTNAME)),
        requested_ip=_address(options.get(REQUESTED_IP)),
        param_request_list=tuple(options.get(PARAMS, b"")),
        vendor_class=_text(options.get(VENDOR_CLASS)),
        client_id=client_id.hex() if client_id is not None else None,
        mud_url=_text(options.get(MUD_URL)),
        server_id=_address(options.get(SERVER_ID)),
    )


def _options(payload: bytes) -> dict[int, bytes]:
    """The wanted options; repeated instances are concatenated (RFC 3396)."""
    found: dict[int, list[bytes]] = {}
    pos, size = _OPTIONS, len(payload)
    while pos < size:
        code = payload[pos]
        if code == _END:
            break
        if code == _PAD:
            pos += 1
            continue
        if pos + 1 >= size:
            raise Malformed(f"option {code} has no length byte")
        start = pos + 2
        pos = start + payload[pos + 1]
        if pos > size:
            raise Malformed(f"option {code} runs past the end of the message")
        if code in _WANTED:
            found.setdefault(code, []).append(payload[start:pos])
    return {code: b"".join(parts) for code, parts in found.items()}


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace").replace("\x00", "")


def _address(value: bytes | None) -> str | None:
    return socket.inet_ntoa(value) if value is not None and len(value) == 4 else None
