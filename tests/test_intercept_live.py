"""ARP interception on a bridge in network namespaces: "gateway" (with an "internet" address
behind it), "device", "pi" (micwatch) and an "other" device that is not intercepted. Shows the
device's traffic captured and delivered intact, no added loss at 50 k packets/s, and the ARP
caches restored after SIGTERM, SIGINT, and SIGKILL followed by a restart or
``micwatch intercept restore``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.netns_bridge import Lan, bridge_lan, in_ns, ip, neighbour_mac

PPS = 50_000
SECONDS = 3
MAX_ADDED_LOSS = 0.005


@pytest.fixture
def lan():
    require_root()
    require_tool("ip")
    with bridge_lan(subnet=61, roles=("gateway", "device", "pi", "other")) as made:
        for role in ("device", "other"):
            subprocess.run(
                in_ns(made[role].ns, *peer("udp_once", made.internet, "9")), check=True, timeout=30
            )
        time.sleep(0.3)  # the device and the gateway now know each other's true MAC
        yield made


def peer(*argv: str) -> list[str]:
    return [sys.executable, "-m", "tests.lan_peers", *argv]


def micwatch(lan: Lan, state_dir: Path, *argv: str) -> list[str]:
    return in_ns(
        lan["pi"].ns,
        sys.executable,
        "-m",
        "monitor.cli",
        *argv,
        "--store-state-dir",
        str(state_dir),
    )


def start_daemon(lan: Lan, state_dir: Path, target: str = "", *extra: str) -> subprocess.Popen:
    """micwatch intercepting ``target`` (default: the device's IPv4 address)."""
    argv = micwatch(
        lan,
        state_dir,
        "capture",
        "-i",
        lan["pi"].interface,
        "--capture-intercept",
        target or lan["device"].ip,
        "--format",
        "jsonl",
        "--flows",
        "--no-store",
        "--home",
        "FR",
        *extra,
    )
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def caches(lan: Lan) -> tuple[str | None, str | None]:
    """What the device believes the gateway's MAC is, and the gateway the device's."""
    return (
        neighbour_mac(lan["device"].ns, lan["gateway"].ip),
        neighbour_mac(lan["gateway"].ns, lan["device"].ip),
    )


def wait_for(lan: Lan, daemon: subprocess.Popen, expected: tuple[str, str]) -> None:
    deadline = time.time() + 15
    while caches(lan) != expected:
        assert daemon.poll() is None, daemon.communicate()[1]
        assert time.time() < deadline, f"caches never became {expected}: {caches(lan)}"
        time.sleep(0.1)


def wait_poisoned(lan: Lan, daemon: subprocess.Popen) -> None:
    wait_for(lan, daemon, (lan["pi"].mac, lan["pi"].mac))


def assert_true_caches(lan: Lan) -> None:
    assert caches(lan) == (lan["gateway"].mac, lan["device"].mac)


def forwarding(lan: Lan) -> str:
    path = f"/proc/sys/net/ipv4/conf/{lan['pi'].interface}/forwarding"
    return subprocess.run(
        in_ns(lan["pi"].ns, "cat", path), capture_output=True, text=True, check=True
    ).stdout.strip()


def stop(daemon: subprocess.Popen, signum: int = signal.SIGTERM) -> tuple[str, str]:
    daemon.send_signal(signum)
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    return out, err


def test_intercepted_traffic_is_captured_delivered_intact_and_caches_restored(
    lan: Lan, tmp_path: Path
) -> None:
    device, gateway = lan["device"], lan["gateway"]
    assert forwarding(lan) == "0"
    daemon = start_daemon(lan, tmp_path)
    sink = subprocess.Popen(
        in_ns(gateway.ns, *peer("tcp_sink", lan.internet, "8443")),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout.readline().strip() == "ready"
        wait_poisoned(lan, daemon)
        assert (tmp_path / "intercept.json").exists()
        assert forwarding(lan) == "1"
        other = lan["other"]  # not chosen: left alone
        assert neighbour_mac(other.ns, gateway.ip) == gateway.mac
        assert neighbour_mac(gateway.ns, other.ip) == other.mac
        sent = subprocess.run(
            in_ns(device.ns, *peer("tcp_send", lan.internet, "8443", "300000")),
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        received = json.loads(sink.communicate(timeout=30)[0])
    finally:
        sink.kill()
    assert received == json.loads(sent.stdout)  # same size, same SHA-256
    time.sleep(0.5)
    out, err = stop(daemon)
    assert "IPv6" in err  # IPv4 only, and it says so
    assert_true_caches(lan)
    assert forwarding(lan) == "0"
    assert not (tmp_path / "intercept.json").exists()
    records = [json.loads(line) for line in out.splitlines()]
    [flow] = [
        r
        for r in records
        if r["kind"] == "flow" and r["resp_ip"] == lan.internet and r["resp_port"] == 8443
    ]
    assert flow["orig_ip"] == device.ip and flow["orig_mac"] == device.mac
    assert flow["orig_bytes"] == 300_000  # each forwarded packet counted once
    devices = {r["mac"]: r for r in records if r["kind"] == "device"}
    assert device.ip in devices[device.mac]["ips"]
    assert device.ip not in devices.get(lan["pi"].mac, {"ips": []})["ips"]
    assert records[-1]["capture"]["intercepted_devices"] == 1


def _count_setup(lan: Lan) -> None:
    ruleset = (
        "table ip mwcount { chain input { type filter hook input priority 0; "
        "udp dport 9999 counter drop; }; }"
    )
    subprocess.run(
        in_ns(lan["gateway"].ns, "nft", "-f", "-"), input=ruleset, text=True, check=True, timeout=30
    )


def _counted(lan: Lan) -> int:
    listing = subprocess.run(
        in_ns(lan["gateway"].ns, "nft", "-j", "list", "table", "ip", "mwcount"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for item in json.loads(listing)["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return int(expr["counter"]["packets"])
    raise AssertionError("no counter in the ruleset")


def _flood_loss(lan: Lan) -> tuple[int, float]:
    before = _counted(lan)
    result = subprocess.run(
        in_ns(lan["device"].ns, *peer("udp_pace", lan.internet, "9999", str(PPS), str(SECONDS))),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    sent = json.loads(result.stdout)
    time.sleep(0.5)
    received = _counted(lan) - before
    assert sent["sent"] / sent["seconds"] >= PPS * 0.8, f"the sender fell behind: {sent}"
    return sent["sent"], 1 - received / sent["sent"]


def test_interception_adds_no_loss_at_50k_packets_per_second(lan: Lan, tmp_path: Path) -> None:
    require_tool("nft")
    _count_setup(lan)
    sent_direct, loss_direct = _flood_loss(lan)
    daemon = start_daemon(lan, tmp_path, "all")  # finds the device by scanning the subnet
    wait_poisoned(lan, daemon)
    sent_via_pi, loss_via_pi = _flood_loss(lan)
    out, _ = stop(daemon)
    summary = json.loads(out.splitlines()[-1])
    capture = summary["capture"]
    print(
        f"\n{PPS} pps UDP for {SECONDS}s: loss without interception {loss_direct:.4%} "
        f"({sent_direct} sent), with interception {loss_via_pi:.4%} ({sent_via_pi} sent); "
        f"micwatch read {capture['packets']}, kernel dropped {capture['kernel_dropped']}"
    )
    assert loss_via_pi <= loss_direct + MAX_ADDED_LOSS
    # Every forwarded datagram was read by micwatch or counted as a capture drop, once.
    assert capture["packets"] + capture["kernel_dropped"] >= sent_via_pi * 0.99
    assert capture["packets"] <= sent_via_pi * 1.05 + 1000
    assert_true_caches(lan)


def test_sigkill_leaves_a_state_file_that_a_restart_or_restore_undoes(
    lan: Lan, tmp_path: Path
) -> None:
    daemon = start_daemon(lan, tmp_path, lan["device"].mac)  # found by its MAC
    wait_poisoned(lan, daemon)
    daemon.kill()
    daemon.wait(timeout=10)
    time.sleep(2.5)  # past a poisoning round that might have been under way
    assert caches(lan) == (lan["pi"].mac, lan["pi"].mac)  # left poisoned
    assert (tmp_path / "intercept.json").exists() and forwarding(lan) == "1"

    restarted = start_daemon(lan, tmp_path)  # restores first, then intercepts again
    wait_for(lan, restarted, (lan["gateway"].mac, lan["device"].mac))
    wait_poisoned(lan, restarted)
    time.sleep(2)  # past start-up: SIGINT now means "stop cleanly"
    _, err = stop(restarted, signal.SIGINT)
    assert "left poisoned by a run that stopped without cleaning up" in err
    assert_true_caches(lan)
    assert forwarding(lan) == "0"

    daemon = start_daemon(lan, tmp_path)
    wait_poisoned(lan, daemon)
    daemon.kill()
    daemon.wait(timeout=10)
    restore = subprocess.run(
        micwatch(lan, tmp_path, "intercept", "restore"), capture_output=True, text=True, timeout=60
    )
    assert restore.returncode == 0, restore.stderr
    assert "restored" in restore.stdout
    assert_true_caches(lan)
    assert forwarding(lan) == "0" and not (tmp_path / "intercept.json").exists()


def test_all_takes_in_a_device_that_joins_later(lan: Lan, tmp_path: Path) -> None:
    other, gateway, pi = lan["other"], lan["gateway"], lan["pi"]
    ip("-n", other.ns, "link", "set", other.interface, "down")  # away when interception starts
    daemon = start_daemon(lan, tmp_path, "all", "--capture-intercept-rescan", "2s")
    wait_poisoned(lan, daemon)
    ip("-n", other.ns, "link", "set", other.interface, "up")
    ip("-n", other.ns, "route", "replace", "default", "via", gateway.ip)  # gone with the link
    subprocess.run(in_ns(other.ns, *peer("udp_once", lan.internet, "9")), check=True, timeout=30)
    deadline = time.time() + 20
    while (neighbour_mac(other.ns, gateway.ip), neighbour_mac(gateway.ns, other.ip)) != (
        pi.mac,
        pi.mac,
    ):
        assert time.time() < deadline, "the device that joined later was never intercepted"
        time.sleep(0.2)
    _, err = stop(daemon)
    assert "intercepting 1 more device(s)" in err
    assert_true_caches(lan)
    assert neighbour_mac(other.ns, gateway.ip) == gateway.mac
    assert neighbour_mac(gateway.ns, other.ip) == other.mac


def test_sigterm_while_starting_up_still_restores(lan: Lan, tmp_path: Path) -> None:
    daemon = start_daemon(lan, tmp_path)
    deadline = time.time() + 15
    while not (tmp_path / "intercept.json").exists():  # about to poison
        assert daemon.poll() is None and time.time() < deadline
        time.sleep(0.005)
    daemon.send_signal(signal.SIGTERM)
    daemon.communicate(timeout=30)
    assert daemon.returncode == 143  # exited while starting, through Python's exit hooks
    time.sleep(1.5)  # past a poisoned reply that the true ones might have overtaken
    assert_true_caches(lan)
    assert forwarding(lan) == "0" and not (tmp_path / "intercept.json").exists()
