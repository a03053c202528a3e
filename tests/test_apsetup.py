"""``micwatch setup ap``: the generated files pass dnsmasq's and nft's own checks and a strict
reading of hostapd's format (and hostapd itself, up to opening the radio), and the NAT path works
in namespaces: "iot" -- veth standing in for the radio -- "pi" -- veth -- "router"."""

from __future__ import annotations

import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from monitor.apsetup import ap_settings, write_files
from monitor.cli import main
from monitor.errors import ConfigError
from tests.conftest import require_root, require_tool
from tests.netns_bridge import Chain, chain, in_ns, ip, sysctl

# hostapd keys the generator may write, with a check of each value.
HOSTAPD_KEYS = {
    "interface": lambda v: 0 < len(v) <= 15,
    "driver": lambda v: v == "nl80211",
    "ssid": lambda v: 0 < len(v.encode()) <= 32,
    "ssid2": lambda v: 0 < len(bytes.fromhex(v)) <= 32,
    "utf8_ssid": lambda v: v == "1",
    "country_code": lambda v: len(v) == 2 and v.isupper(),
    "ieee80211d": lambda v: v == "1",
    "hw_mode": lambda v: v == "g",
    "channel": lambda v: 1 <= int(v) <= 13,
    "ieee80211n": lambda v: v == "1",
    "wmm_enabled": lambda v: v == "1",
    "auth_algs": lambda v: v == "1",
    "ignore_broadcast_ssid": lambda v: v == "0",
    "wpa": lambda v: v == "2",
    "wpa_key_mgmt": lambda v: v == "WPA-PSK",
    "rsn_pairwise": lambda v: v == "CCMP",
    "wpa_passphrase": lambda v: 8 <= len(v) <= 63 and v.isascii(),
}
SETUP_AP = [
    *("setup", "ap", "--wifi-interface", "wlan0", "--uplink", "eth0"),
    *("--ssid", "IoT", "--passphrase", "12345678"),
]
HOSTAPD_REQUIRED = {"interface", "driver", "country_code", "wpa", "wpa_passphrase", "channel"}


def parse_hostapd(text: str) -> dict[str, str]:
    """hostapd's format read strictly: comments, or ``key=value`` with a known key and value."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key in HOSTAPD_KEYS, f"line {number}: unknown item {line!r}"
        assert key not in values, f"line {number}: {key} given twice"
        assert HOSTAPD_KEYS[key](value), f"line {number}: bad value {line!r}"
        values[key] = value
    assert values.keys() >= HOSTAPD_REQUIRED and ("ssid" in values) != ("ssid2" in values)
    return values


def settings(**changes: str):
    base = {
        "wifi_interface": "wlan0",
        "uplink": "eth0",
        "ssid": "Smart home",
        "passphrase": "correct horse battery",
        "subnet": "10.42.0.0/24",
        "country": "fr",
    }
    return ap_settings(**{**base, **changes})


def test_the_cli_writes_every_file_with_the_passphrase_private(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ap"
    status = main([*SETUP_AP, "--home", "DE", "--output", str(out)])
    assert status == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "hostapd.conf",
            "dnsmasq.conf",
            "micwatch-ap.nft",
            "10-micwatch-ap.network",
            "90-micwatch-ap.conf",
            "micwatch-ap-firewall.service",
            "README.txt",
        ]
    )
    assert stat.S_IMODE((out / "hostapd.conf").stat().st_mode) == 0o600
    values = parse_hostapd((out / "hostapd.conf").read_text())
    assert values["country_code"] == "DE" and values["ssid"] == "IoT"  # country from --home
    assert "Address=10.42.0.1/24" in (out / "10-micwatch-ap.network").read_text()
    assert "README.txt" in capsys.readouterr().out


def test_without_a_country_it_asks_for_one(tmp_path: Path, capsys) -> None:
    status = main([*SETUP_AP, "--home", "EU", "--output", str(tmp_path)])
    assert status == 2 and "--country" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ssid": "x" * 33}, "--ssid"),
        ({"ssid": "line\nbreak"}, "--ssid"),
        ({"passphrase": "short"}, "--passphrase"),
        ({"passphrase": "non-ascii-é-pass"}, "--passphrase"),
        ({"subnet": "8.8.8.0/24"}, "--subnet"),
        ({"subnet": "10.42.0.0/8"}, "--subnet"),
        ({"subnet": "nonsense"}, "--subnet"),
        ({"country": "France"}, "--country"),
        ({"uplink": "wlan0"}, "different"),
        ({"wifi_interface": "wlan0; rm -rf /"}, "--wifi-interface"),
    ],
)
def test_settings_that_would_break_the_configuration_are_refused(change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**change)


def test_dnsmasq_accepts_its_configuration(tmp_path: Path) -> None:
    dnsmasq = require_tool("dnsmasq")
    write_files(settings(), tmp_path)
    result = subprocess.run(
        [dnsmasq, "--test", "-C", str(tmp_path / "dnsmasq.conf")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (
        "dhcp-range=10.42.0.10,10.42.0.254,255.255.255.0,12h"
        in (tmp_path / "dnsmasq.conf").read_text()
    )


@pytest.mark.parametrize("ssid", ["Smart home", " ünïcode SSID 📻"])
def test_hostapd_reads_its_configuration_without_error(tmp_path: Path, ssid: str) -> None:
    hostapd = require_tool("hostapd")
    missing = f"mwno{uuid.uuid4().hex[:8]}"
    write_files(settings(ssid=ssid, wifi_interface=missing), tmp_path)
    values = parse_hostapd((tmp_path / "hostapd.conf").read_text())
    if "ssid2" in values:
        assert bytes.fromhex(values["ssid2"]).decode() == ssid
    # hostapd has no dry run: it reads the whole file, then fails on the missing radio.
    result = subprocess.run(
        [hostapd, str(tmp_path / "hostapd.conf")], capture_output=True, text=True, timeout=20
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "errors found in configuration file" not in output and "Line " not in output
    assert missing in output or "driver" in output


@pytest.fixture
def three_hosts():
    require_root()
    require_tool("ip")
    require_tool("nft")
    with chain(subnet=43) as made:
        yield made


def peer(ns: str, *argv: str) -> list[str]:
    return in_ns(ns, sys.executable, "-m", "tests.lan_peers", *argv)


def connect(ns: str, address: str, port: int) -> str:
    return subprocess.run(
        peer(ns, "connect", address, str(port)), capture_output=True, text=True, timeout=30
    ).stdout.strip()


def test_nft_accepts_the_rules_and_the_nat_path_works(three_hosts: Chain, tmp_path: Path) -> None:
    net = three_hosts
    ap = settings(wifi_interface=net.pi_wifi, uplink=net.pi_uplink, subnet="10.42.43.0/24")
    write_files(ap, tmp_path)
    rules = str(tmp_path / "micwatch-ap.nft")
    subprocess.run(in_ns(net.pi, "nft", "-c", "-f", rules), check=True, timeout=30)
    for _ in range(2):  # loads, and reloads over itself
        subprocess.run(in_ns(net.pi, "nft", "-f", rules), check=True, timeout=30)
    sysctl(net.pi, "net.ipv4.ip_forward", "1")
    internet = "198.18.43.10"  # an address behind the home router
    ip("-n", net.router, "addr", "add", f"{internet}/32", "dev", "lo")
    # The router knows the way to the IoT network: only the Pi's firewall can stop it.
    ip("-n", net.router, "route", "add", "10.42.43.0/24", "via", net.pi_uplink_ip)
    servers = [
        subprocess.Popen(peer(ns, "whoami", "8080"), stdout=subprocess.PIPE, text=True)
        for ns in (net.router, net.iot)
    ]
    try:
        for server in servers:
            assert server.stdout.readline().strip() == "ready"
        # The device reaches the internet, seen from there as the Pi's uplink address.
        assert connect(net.iot, internet, 8080) == net.pi_uplink_ip
        # The home LAN (the router's own LAN address) is out of the device's reach...
        assert connect(net.iot, net.router_ip, 8080).startswith("failed")
        # ...and nothing on the home side can open a connection to the device.
        assert connect(net.router, net.iot_ip, 8080).startswith("failed")
        # The device itself serves (the refusal above is the firewall's).
        assert connect(net.iot, net.iot_ip, 8080) == net.iot_ip
    finally:
        for server in servers:
            server.kill()
            server.wait(timeout=10)
