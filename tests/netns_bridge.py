"""Test networks in namespaces: a home LAN on a bridge, and a chain of three hosts.

:func:`bridge_lan` builds a bridge in its own namespace joining host namespaces (by default
"device", "gateway" and "pi"), each on 10.197.N.0/24 with a fixed MAC; the gateway also holds an
"internet" address 198.18.N.10 (on its loopback: behind it, not on the LAN), and every other host's
default route points at the gateway. :func:`chain` builds "iot" -- "pi" -- "router" joined by
two veth pairs. Traffic never leaves the namespaces made here; every namespace is removed when
the context ends, even after a failure.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def in_ns(ns: str, *argv: str) -> list[str]:
    """``argv`` run inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *argv]


def sysctl(ns: str, name: str, value: str) -> None:
    subprocess.run(
        in_ns(ns, "sysctl", "-qw", f"{name}={value}"), check=True, capture_output=True, timeout=30
    )


def neighbour_mac(ns: str, address: str) -> str | None:
    """The MAC that namespace ``ns``'s ARP cache holds for ``address``, if any."""
    entries = json.loads(ip("-n", ns, "-j", "neigh", "show", address) or "[]")
    return entries[0].get("lladdr") if entries else None


@dataclass(frozen=True)
class Host:
    ns: str
    interface: str
    ip: str
    mac: str


@dataclass
class Lan:
    """The bridge namespace and its hosts by role; ``internet`` is behind the gateway."""

    bridge_ns: str
    hosts: dict[str, Host] = field(default_factory=dict)
    internet: str = ""

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]


@contextmanager
def _namespaces(names: list[str]) -> Iterator[None]:
    made: list[str] = []
    try:
        for name in names:
            ip("netns", "add", name)
            made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        yield
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@contextmanager
def bridge_lan(
    subnet: int = 7, roles: tuple[str, ...] = ("gateway", "device", "pi"), hub: bool = False
) -> Iterator[Lan]:
    """A LAN of ``roles`` on one bridge; the first role is the gateway (host .1). With ``hub``
    the bridge forgets MACs at once and floods every frame to every port, as a mirror port
    would show them."""
    tag = uuid.uuid4().hex[:5]
    bridge_ns = f"mwbr{tag}"
    names = {role: f"mw{role[:3]}{tag}" for role in roles}
    with _namespaces([bridge_ns, *names.values()]):
        ip("-n", bridge_ns, "link", "add", "br0", "type", "bridge")
        if hub:
            ip("-n", bridge_ns, "link", "set", "br0", "type", "bridge", "ageing_time", "0")
        ip("-n", bridge_ns, "link", "set", "br0", "up")
        lan = Lan(bridge_ns, internet=f"198.18.{subnet}.10")
        for number, role in enumerate(roles, start=1):
            ns = names[role]
            host = Host(
                ns,
                f"eth{tag}",
                f"10.197.{subnet}.{number}",
                f"02:00:00:{subnet:02x}:00:{number:02x}",
            )
            port = f"p{role[:3]}{tag}"
            ip(
                "link",
                "add",
                host.interface,
                "netns",
                ns,
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                bridge_ns,
            )
            ip("-n", bridge_ns, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "link", "set", host.interface, "address", host.mac, "up")
            ip("-n", ns, "addr", "add", f"{host.ip}/24", "dev", host.interface)
            lan.hosts[role] = host
        gateway = lan[roles[0]]
        ip("-n", gateway.ns, "addr", "add", f"{lan.internet}/32", "dev", "lo")
        for role in roles[1:]:
            ip("-n", lan[role].ns, "route", "add", "default", "via", gateway.ip)
        yield lan


@dataclass(frozen=True)
class Chain:
    """``iot`` (10.42.N.50) -- ``pi`` (wifi side 10.42.N.1, uplink 192.168.N.2) -- ``router``
    (192.168.N.1); the pi's default route is the router."""

    iot: str
    pi: str
    router: str
    pi_wifi: str
    pi_uplink: str
    iot_ip: str
    pi_wifi_ip: str
    pi_uplink_ip: str
    router_ip: str


@contextmanager
def chain(subnet: int = 7) -> Iterator[Chain]:
    """Three namespaces in a row (see :class:`Chain`); forwarding is left off in the pi."""
    tag = uuid.uuid4().hex[:5]
    made = Chain(
        f"mwiot{tag}",
        f"mwpi{tag}",
        f"mwrtr{tag}",
        f"wl{tag}",
        f"up{tag}",
        f"10.42.{subnet}.50",
        f"10.42.{subnet}.1",
        f"192.168.{subnet}.2",
        f"192.168.{subnet}.1",
    )
    with _namespaces([made.iot, made.pi, made.router]):
        ip(
            "link",
            "add",
            "wlan0",
            "netns",
            made.iot,
            "type",
            "veth",
            "peer",
            "name",
            made.pi_wifi,
            "netns",
            made.pi,
        )
        ip(
            "link",
            "add",
            "eth0",
            "netns",
            made.router,
            "type",
            "veth",
            "peer",
            "name",
            made.pi_uplink,
            "netns",
            made.pi,
        )
        for ns, dev, address in (
            (made.iot, "wlan0", made.iot_ip),
            (made.pi, made.pi_wifi, made.pi_wifi_ip),
            (made.pi, made.pi_uplink, made.pi_uplink_ip),
            (made.router, "eth0", made.router_ip),
        ):
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", made.iot, "route", "add", "default", "via", made.pi_wifi_ip)
        ip("-n", made.pi, "route", "add", "default", "via", made.router_ip)
        yield made
