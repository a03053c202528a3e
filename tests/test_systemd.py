"""The systemd units: the hardening the issue asks for, ``systemd-analyze verify`` clean and an
exposure score that stays OK."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from monitor.install import INSTALLED_BINARY, UNITS, micwatch_binary

UNIT_DIR = Path(__file__).parent.parent / "systemd"


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (UNIT_DIR / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def _one(values: dict[str, list[str]], key: str) -> str:
    assert key in values, f"{key} missing"
    return values[key][-1]


@pytest.mark.parametrize("name", UNITS)
def test_common_hardening(name: str) -> None:
    unit = _unit(name)
    service = unit["Service"]
    assert _one(service, "User") == "micwatch"
    assert _one(service, "StateDirectory") == "micwatch"
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "NoNewPrivileges": "true",
        "Restart": "on-failure",
    }.items():
        assert _one(service, key) == value, key
    assert int(_one(unit["Unit"], "StartLimitBurst")) >= 1
    assert _one(unit["Unit"], "StartLimitIntervalSec")
    assert "/etc/micwatch/micwatch.toml" in _one(service, "ExecStart")
    assert _one(unit["Install"], "WantedBy") == "multi-user.target"


def test_capture_has_only_raw_and_admin_network_capabilities() -> None:
    service = _unit("micwatch.service")["Service"]
    caps = {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(_one(service, "AmbientCapabilities").split()) == caps
    assert set(_one(service, "CapabilityBoundingSet").split()) == caps
    families = set(_one(service, "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"}
    assert _one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert _one(service, "ExecStart").endswith(" capture")


def test_dashboard_has_no_capability_and_no_packet_socket() -> None:
    service = _unit("micwatch-dashboard.service")["Service"]
    assert _one(service, "AmbientCapabilities") == ""
    assert _one(service, "CapabilityBoundingSet") == ""
    families = set(_one(service, "RestrictAddressFamilies").split())
    assert "AF_PACKET" not in families and "AF_INET" in families
    assert _one(service, "ExecStart").endswith(" dashboard")


def _rendered(tmp_path: Path) -> list[Path]:
    """The units as ``micwatch install`` writes them (ExecStart at this micwatch)."""
    paths = []
    for name in UNITS:
        text = (UNIT_DIR / name).read_text().replace(INSTALLED_BINARY, micwatch_binary())
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    return paths


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    done = subprocess.run(
        [tool, "verify", *map(str, _rendered(tmp_path))], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


@pytest.mark.parametrize(
    "name, ceiling", [("micwatch.service", 2.5), ("micwatch-dashboard.service", 2.0)]
)
def test_exposure_score_stays_low(tmp_path: Path, name: str, ceiling: float) -> None:
    tool = require_tool("systemd-analyze")
    paths = {p.name: p for p in _rendered(tmp_path)}
    done = subprocess.run(
        [tool, "security", "--offline=yes", str(paths[name])], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout[-500:] + done.stderr
    assert float(match.group(1)) <= ceiling
