"""``micwatch doctor``: plain-words checks, run in namespaces on an interface that sees only its
own traffic (a veth; a port of a learning bridge) and on one that sees other devices' traffic
(a port of a bridge that floods everything, as a mirror port does)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.doctor import Check, has_capabilities, report, run_checks
from tests.conftest import require_root, require_tool
from tests.netns import veth_pair
from tests.netns_bridge import Lan, bridge_lan, in_ns, sysctl

LISTEN = "2"
MICWATCH = (sys.executable, "-m", "monitor.cli")


def doctor(ns: str, interface: str, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        in_ns(ns, *MICWATCH, "doctor", "-i", interface, "--mode", mode, "--seconds", LISTEN),
        capture_output=True,
        text=True,
        timeout=60,
    )


def traffic(ns: str, address: str) -> subprocess.Popen:
    """500 UDP datagrams a second to ``address`` for longer than doctor listens."""
    return subprocess.Popen(
        in_ns(ns, sys.executable, "-m", "tests.lan_peers", "udp_pace", address, "9", "500", "4"),
        stdout=subprocess.DEVNULL,
    )


def test_capabilities_are_read_from_the_effective_set() -> None:
    both = (1 << 12) | (1 << 13)
    assert has_capabilities(f"Name:\tx\nCapEff:\t{both:016x}\n")
    assert not has_capabilities(f"CapEff:\t{1 << 13:016x}\n")  # raw sockets only
    assert not has_capabilities("Name:\tx\n")


def test_report_says_what_to_fix_under_each_finding() -> None:
    text = report([Check("ok", "fine"), Check("fix", "broken", "do this")])
    assert text.splitlines() == ["OK   fine", "FIX  broken", "     -> do this"]


def test_a_missing_interface_is_named() -> None:
    require_root()
    require_tool("ip")
    checks = run_checks("live", "mwnosuchif0", 0.1)
    assert checks[-1].status == "fix" and "does not exist" in checks[-1].text


@pytest.fixture
def pair():
    require_root()
    require_tool("ip")
    with veth_pair(subnet=44) as made:
        yield made


def test_an_interface_that_sees_only_its_own_traffic_is_called_so(pair) -> None:
    sender = traffic(pair.ns_b, pair.ip_a)  # traffic to us only
    try:
        result = doctor(pair.ns_a, pair.if_a, "live")
    finally:
        sender.wait(timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 of them between two other devices" in result.stdout
    assert "sees only its own traffic" in result.stdout and "mirror" in result.stdout


def test_ap_mode_wants_forwarding_and_the_tools(pair) -> None:
    result = doctor(pair.ns_a, pair.if_a, "ap")
    assert result.returncode == 1 and "forwarding is off" in result.stdout
    assert "hostapd is installed" in result.stdout and "dnsmasq is installed" in result.stdout
    sysctl(pair.ns_a, f"net.ipv4.conf.{pair.if_a}.forwarding", "1")
    result = doctor(pair.ns_a, pair.if_a, "ap")
    assert result.returncode == 0, result.stdout
    assert "forwarding is on" in result.stdout


@pytest.mark.parametrize(("hub", "status"), [(True, 0), (False, 1)])
def test_on_a_bridge_it_sees_others_only_where_frames_are_flooded(hub: bool, status: int) -> None:
    require_root()
    require_tool("ip")
    with bridge_lan(subnet=45, hub=hub) as lan:
        result = _doctor_while_device_talks(lan, "mirror")
    assert result.returncode == status, result.stdout + result.stderr
    if hub:
        assert "it sees other devices' traffic" in result.stdout
    else:
        assert "check that the switch mirrors the router's port" in result.stdout


def test_intercept_mode_names_the_router_and_the_ipv6_limit() -> None:
    require_root()
    require_tool("ip")
    with bridge_lan(subnet=46) as lan:
        result = _doctor_while_device_talks(lan, "intercept")
    assert result.returncode == 0, result.stdout
    assert f"the home router is {lan['gateway'].ip}" in result.stdout
    assert "IPv6 traffic of the intercepted devices" in result.stdout


def _doctor_while_device_talks(lan: Lan, mode: str) -> subprocess.CompletedProcess:
    sender = traffic(lan["device"].ns, lan.internet)
    try:
        return doctor(lan["pi"].ns, lan["pi"].interface, mode)
    finally:
        sender.wait(timeout=30)
