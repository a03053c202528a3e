"""ARP on one interface, for interception: who we are, who the gateway is, who answers, and
sending ARP replies (through scapy).

Guarantees:

* :func:`local_link` and :func:`default_gateway` read the kernel's view (``ip -j``) of the
  network namespace the process runs in, and raise :class:`~monitor.errors.CaptureError` in
  plain words when the interface has no IPv4 address or no MAC;
* :func:`resolve` sends at most one ARP request per address asked, paced (about 500 a second),
  and waits a bounded time for the answers; it returns only addresses that answered;
* :class:`ArpSender` sends every frame with our own MAC as the Ethernet source, so a switch never
  learns another host's MAC on our port; only the ARP payload carries the claimed binding.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from dataclasses import dataclass
from typing import Any

from monitor.errors import CaptureError

logging.getLogger("scapy").setLevel(logging.ERROR)  # its warnings are not the user's business

_PACE_S = 0.002  # between ARP requests of a scan
_ANSWER_WAIT_S = 2.0


@dataclass(frozen=True)
class Binding:
    """One host on the link: its IPv4 address and true MAC (lower case)."""

    ip: str
    mac: str


@dataclass(frozen=True)
class LocalLink:
    """Our side of the link: the interface, its MAC, its IPv4 address and network."""

    interface: str
    mac: str
    ip: str
    network: ipaddress.IPv4Network


def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        result = subprocess.run(
            ["ip", "-j", *args], capture_output=True, text=True, timeout=5, check=False
        )
        return json.loads(result.stdout or "[]")
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError):
        return []


def local_link(interface: str) -> LocalLink:
    """Our MAC and first IPv4 address on ``interface`` (CaptureError if it has none)."""
    entries = _ip_json("addr", "show", "dev", interface)
    if not entries:
        raise CaptureError(f"interface {interface} does not exist")
    entry = entries[0]
    mac = str(entry.get("address", "")).lower()
    if len(mac) != 17:
        raise CaptureError(f"interface {interface} has no Ethernet address; ARP needs one")
    for info in entry.get("addr_info", []):
        if info.get("family") == "inet":
            network = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
            return LocalLink(interface, mac, info["local"], network)  # type: ignore[arg-type]
    raise CaptureError(
        f"interface {interface} has no IPv4 address; ARP interception needs one on the home network"
    )


def default_gateway(interface: str) -> str | None:
    """The IPv4 default route's next hop through ``interface``, if there is one."""
    for route in _ip_json("-4", "route", "show", "default", "dev", interface):
        if route.get("gateway"):
            return str(route["gateway"])
    return None


def resolve(interface: str, addresses: list[str]) -> list[Binding]:
    """The hosts among ``addresses`` that answer an ARP request on ``interface``."""
    if not addresses:
        return []
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    requests = [Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=address) for address in addresses]
    answered, _ = srp(
        requests, iface=interface, timeout=_ANSWER_WAIT_S, inter=_PACE_S, verbose=False
    )
    found: dict[str, Binding] = {}
    for _sent, reply in answered:
        arp = reply[ARP]
        if arp.op == 2 and arp.psrc in addresses:
            found.setdefault(arp.psrc, Binding(arp.psrc, str(arp.hwsrc).lower()))
    return [found[a] for a in addresses if a in found]


class ArpSender:
    """Sends ARP replies out of one interface through a raw socket kept open."""

    def __init__(self, link: LocalLink) -> None:
        import scapy.arch  # noqa: F401 - chooses the platform's raw socket for conf.L2socket
        from scapy.config import conf

        self._link = link
        self._socket = conf.L2socket(iface=link.interface)

    def claim(self, to: Binding, ip: str, mac: str) -> None:
        """Tell host ``to`` that ``ip`` is at ``mac`` (an unsolicited ARP reply, unicast)."""
        from scapy.layers.l2 import ARP, Ether

        frame = Ether(src=self._link.mac, dst=to.mac) / ARP(
            op=2, hwsrc=mac, psrc=ip, hwdst=to.mac, pdst=to.ip
        )
        self._socket.send(frame)

    def close(self) -> None:
        """Close the raw socket."""
        self._socket.close()
