"""``micwatch install`` / ``uninstall`` against a scratch root (``--root DIR``): no real system
file is touched."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from conftest import require, require_tool

from monitor.cli import main
from monitor.config import load
from monitor.install import micwatch_binary


@pytest.fixture
def root(tmp_path: Path) -> Path:
    require(os.geteuid() == 0, "install creates a user and chowns: needs root")
    require_tool("systemctl")
    (tmp_path / "etc").mkdir()
    return tmp_path


def test_install_then_uninstall_keeps_data_then_purge(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "--root", str(root), "--interface", "eth1"]) == 0
    out = capsys.readouterr().out
    assert "systemctl start micwatch" in out  # systemd does not run in the scratch root

    passwd = (root / "etc/passwd").read_text()
    (entry,) = [line for line in passwd.splitlines() if line.startswith("micwatch:")]
    uid, gid = int(entry.split(":")[2]), int(entry.split(":")[3])
    assert entry.endswith(":/var/lib/micwatch:/usr/sbin/nologin")

    config_path = root / "etc/micwatch/micwatch.toml"
    config = tomllib.loads(config_path.read_text())
    assert config["capture"] == {"interface": "eth1"}
    assert not any(config[s] for s in config if s != "capture")  # every other option commented
    assert load(config_path, env={})["capture.interface"] == "eth1"
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o640 and config_path.stat().st_gid == gid

    state = root / "var/lib/micwatch"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700 and state.stat().st_uid == uid

    units = root / "etc/systemd/system"
    for name in ("micwatch.service", "micwatch-dashboard.service"):
        text = (units / name).read_text()
        assert f"ExecStart={micwatch_binary()} --config /etc/micwatch/micwatch.toml" in text
        link = units / "multi-user.target.wants" / name
        assert link.is_symlink() and os.readlink(link).endswith(f"/etc/systemd/system/{name}")

    config_path.write_text('[capture]\ninterface = "wlan0"\n')
    (state / "micwatch.db").write_bytes(b"data")
    assert main(["install", "--root", str(root)]) == 0  # again: keeps the user's config
    assert "kept" in capsys.readouterr().out
    assert load(config_path, env={})["capture.interface"] == "wlan0"

    assert main(["uninstall", "--root", str(root)]) == 0
    assert "kept" in capsys.readouterr().out
    assert not (units / "micwatch.service").exists()
    assert not (units / "multi-user.target.wants" / "micwatch.service").exists()
    assert (state / "micwatch.db").read_bytes() == b"data" and config_path.exists()

    assert main(["uninstall", "--root", str(root), "--purge"]) == 0
    assert not state.exists() and not config_path.parent.exists()
    assert "micwatch:" not in (root / "etc/passwd").read_text()


def test_install_on_the_real_root_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["install"]) == 2
