"""``micwatch doctor``: checks that a capture mode can work here, and says in plain words what to
fix.

Modes: ``live`` (capture on an interface that should see the home's traffic), ``mirror`` (the
same, on a switch's mirror port), ``intercept`` (ARP interception from an ordinary port) and
``ap`` (the Pi as the smart devices' access point).

Guarantees: every check yields one :class:`Check` whose ``status`` is ``ok``, ``fix`` (micwatch
cannot work as asked until it is fixed; ``fix`` says how) or ``note``; checks never raise for a
missing interface, tool or permission, they report it. Listening lasts ``seconds`` and counts
only frame headers (no payload is kept).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from monitor.errors import CaptureError
from monitor.netif import link_info

MODES = ("live", "mirror", "intercept", "ap")
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
_BROADCAST = b"\xff" * 6


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` ok, fix or note; ``text`` what was found; ``fix`` what to do."""

    status: Literal["ok", "fix", "note"]
    text: str
    fix: str = ""


@dataclass
class TrafficSeen:
    """What ``seconds`` of listening showed: frames, the MACs that sent them other than ours,
    and unicast frames between two other hosts (what only a hub, mirror port or the traffic's
    own path shows)."""

    frames: int = 0
    senders: set[str] = field(default_factory=set)
    between_others: int = 0


def has_capabilities(status_text: str) -> bool:
    """Whether the effective capabilities in a /proc/PID/status text include CAP_NET_RAW and
    CAP_NET_ADMIN."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            effective = int(line.split()[1], 16)
            wanted = (1 << CAP_NET_RAW) | (1 << CAP_NET_ADMIN)
            return effective & wanted == wanted
    return False


def listen(interface: str, seconds: float, own_mac: str) -> TrafficSeen:
    """Count the frames seen on ``interface`` for ``seconds`` (CaptureError if it cannot)."""
    from monitor.capture import open_live

    ours = bytes.fromhex(own_mac.replace(":", ""))
    seen = TrafficSeen()
    source = open_live(interface, snaplen=64, idle_interval=0.2)
    end = time.monotonic() + seconds
    try:
        for item in source:
            if time.monotonic() >= end:
                break
            if item is None:
                continue
            frame = item[2]
            if len(frame) < 14:
                continue
            seen.frames += 1
            destination, sender = frame[:6], frame[6:12]
            if sender != ours:
                seen.senders.add(sender.hex(":"))
                if destination != ours and not destination[0] & 1:
                    seen.between_others += 1
    finally:
        source.close()
    return seen


def _forwarding(interface: str) -> str:
    try:
        return Path(f"/proc/sys/net/ipv4/conf/{interface}/forwarding").read_text().strip()
    except OSError:
        return "?"


def _traffic_checks(mode: str, interface: str, seconds: float, mac: str) -> list[Check]:
    try:
        seen = listen(interface, seconds, mac)
    except CaptureError as exc:
        return [Check("fix", f"cannot capture on {interface}: {exc}", "see the message above")]
    summary = (
        f"in {seconds:g}s {interface} saw {seen.frames} frames from {len(seen.senders)} other "
        f"device(s), {seen.between_others} of them between two other devices"
    )
    if mode == "ap":
        status = "ok" if seen.senders else "note"
        return [Check(status, summary + " (devices on the access point talk to the Pi)")]
    if seen.between_others:
        return [Check("ok", summary + ": it sees other devices' traffic")]
    if mode == "intercept":
        return [Check("note", summary + ": as expected before interception starts")]
    advice = (
        "it sees only its own traffic and broadcasts, as on any switch port: set up the "
        "switch's mirror (SPAN) port to copy the router's port to this one, or use "
        "--capture-intercept, or make the Pi the smart devices' access point (micwatch setup ap)"
    )
    if mode == "mirror":
        advice = (
            "no traffic between other devices arrived: check that the switch mirrors the "
            "router's port (both directions) to the port this interface is plugged into"
        )
    return [Check("fix", summary, advice)]


def run_checks(mode: str, interface: str, seconds: float = 5.0) -> list[Check]:
    """Every check of ``mode`` on ``interface``, in the order a user would fix them."""
    checks: list[Check] = []
    if os.geteuid() == 0:
        checks.append(Check("ok", "running as root"))
    elif has_capabilities(Path("/proc/self/status").read_text()):
        checks.append(Check("ok", "has the CAP_NET_RAW and CAP_NET_ADMIN capabilities"))
    else:
        checks.append(
            Check(
                "fix",
                "not root and without CAP_NET_RAW/CAP_NET_ADMIN: it cannot capture",
                "run with sudo, or as the micwatch service (which has those capabilities)",
            )
        )
        return checks
    if not interface:
        checks.append(Check("fix", "no interface given", "give one with -i IFACE (e.g. eth0)"))
        return checks
    link = link_info(interface)
    if link is None:
        checks.append(
            Check("fix", f"interface {interface} does not exist", "list them with: ip link")
        )
        return checks
    if "UP" not in link.get("flags", []):
        checks.append(
            Check("fix", f"{interface} is down", f"bring it up: sudo ip link set {interface} up")
        )
        return checks
    checks.append(Check("ok", f"{interface} exists and is up"))
    ipv4 = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
    checks.extend(_mode_checks(mode, interface, ipv4))
    checks.extend(_traffic_checks(mode, interface, seconds, str(link.get("address", ""))))
    return checks


def _mode_checks(mode: str, interface: str, ipv4: list[dict]) -> list[Check]:
    checks: list[Check] = []
    if mode == "intercept":
        from monitor.intercept import IPV6_WARNING, LARGEST_PREFIX
        from monitor.intercept_arp import default_gateway

        if not ipv4:
            return [Check("fix", f"{interface} has no IPv4 address", "connect it to the home LAN")]
        prefix = int(ipv4[0]["prefixlen"])
        if prefix < LARGEST_PREFIX:
            checks.append(
                Check(
                    "fix",
                    f"the network is a /{prefix}, larger than a /{LARGEST_PREFIX}",
                    "set capture.intercept_allow_large if you are sure",
                )
            )
        gateway = default_gateway(interface)
        checks.append(
            Check("ok", f"the home router is {gateway}")
            if gateway
            else Check("fix", f"no default route via {interface}", "set capture.gateway")
        )
        checks.append(Check("note", "forwarding is turned on for the interface while intercepting"))
        checks.append(Check("note", IPV6_WARNING))
    if mode == "ap":
        if _forwarding(interface) == "1":
            checks.append(Check("ok", f"forwarding is on for {interface}"))
        else:
            checks.append(
                Check(
                    "fix",
                    f"forwarding is off for {interface}: the devices cannot reach the internet",
                    "sudo sysctl -w net.ipv4.ip_forward=1 (the setup ap files do it at boot)",
                )
            )
        for tool in ("hostapd", "dnsmasq"):
            found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
            checks.append(
                Check("ok", f"{tool} is installed")
                if found
                else Check("fix", f"{tool} is not installed", f"sudo apt install {tool}")
            )
    return checks


def report(checks: list[Check]) -> str:
    """The checks as plain lines: ``OK``, ``FIX`` (with what to do) and ``NOTE``."""
    lines = []
    for check in checks:
        lines.append(f"{check.status.upper():4} {check.text}")
        if check.fix:
            lines.append(f"     -> {check.fix}")
    return "\n".join(lines)
