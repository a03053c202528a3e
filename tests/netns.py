"""Test hosts in network namespaces: two namespaces joined by a veth pair.

Traffic in these tests never leaves the namespaces the test creates. Every namespace and link is
removed when the context ends, even after a failure.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Pair:
    """Host ``a`` (the home device side, where micwatch captures) and host ``b`` (the server)."""

    ns_a: str
    ns_b: str
    if_a: str
    if_b: str
    ip_a: str
    ip_b: str
    remote_b: str

    def cmd(self, ns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]


@contextmanager
def veth_pair(subnet: int = 7, mtu: int = 1500) -> Iterator[Pair]:
    """A pair of namespaces: ``a`` on 10.199.N.1/24, ``b`` on 10.199.N.2/24 and, as a "remote"
    server outside a's network, 198.18.N.10 (a benchmarking range, routed over the veth). A
    larger ``mtu`` lets a replay send the oversized frames that segmentation offload leaves in
    real captures."""
    tag = uuid.uuid4().hex[:6]
    pair = Pair(
        f"mwa{tag}",
        f"mwb{tag}",
        f"mwa{tag}",
        f"mwb{tag}",
        f"10.199.{subnet}.1",
        f"10.199.{subnet}.2",
        f"198.18.{subnet}.10",
    )
    ip("netns", "add", pair.ns_a)
    try:
        ip("netns", "add", pair.ns_b)
        ip(
            "link",
            "add",
            pair.if_a,
            "netns",
            pair.ns_a,
            "type",
            "veth",
            "peer",
            "name",
            pair.if_b,
            "netns",
            pair.ns_b,
        )
        ip("-n", pair.ns_a, "addr", "add", f"{pair.ip_a}/24", "dev", pair.if_a)
        ip("-n", pair.ns_b, "addr", "add", f"{pair.ip_b}/24", "dev", pair.if_b)
        ip("-n", pair.ns_b, "addr", "add", f"{pair.remote_b}/32", "dev", pair.if_b)
        for ns, dev in ((pair.ns_a, pair.if_a), (pair.ns_b, pair.if_b)):
            ip("-n", ns, "link", "set", dev, "mtu", str(mtu), "up")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", pair.ns_a, "route", "add", f"198.18.{subnet}.0/24", "via", pair.ip_b)
        yield pair
    finally:
        for ns in (pair.ns_a, pair.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
