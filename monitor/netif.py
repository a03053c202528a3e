"""The capture interface's own networks: what "the home" is when capturing live.

Guarantee: :func:`interface_networks` returns the IPv4 and IPv6 prefixes configured on the
interface (as ``address/prefixlen`` network strings), or an empty list when it cannot tell, and
:func:`link_info` the interface's entry or None; neither raises for a missing ``ip`` command or
an unknown interface.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess


def link_info(interface: str) -> dict | None:
    """What ``ip -j addr show dev INTERFACE`` says of the interface (flags, addresses), or None
    when it cannot tell."""
    try:
        result = subprocess.run(
            ["ip", "-j", "addr", "show", "dev", interface],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        entries = json.loads(result.stdout or "[]")
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError):
        return None
    return entries[0] if entries else None


def interface_networks(interface: str) -> list[str]:
    """Networks configured on ``interface`` according to ``ip -j addr show``."""
    networks = []
    for info in (link_info(interface) or {}).get("addr_info", []):
        try:
            network = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
        except (KeyError, ValueError):
            continue
        if not network.is_loopback:
            networks.append(str(network))
    return networks
