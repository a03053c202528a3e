"""The capture interface's own networks: what "the home" is when capturing live.

Guarantee: :func:`interface_networks` returns the IPv4 and IPv6 prefixes configured on the
interface (as ``address/prefixlen`` network strings), or an empty list when it cannot tell; it
never raises for a missing ``ip`` command or an unknown interface.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess


def interface_networks(interface: str) -> list[str]:
    """Networks configured on ``interface`` according to ``ip -j addr show``."""
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
        return []
    networks = []
    for entry in entries:
        for info in entry.get("addr_info", []):
            try:
                network = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
            except (KeyError, ValueError):
                continue
            if not network.is_loopback:
                networks.append(str(network))
    return networks
