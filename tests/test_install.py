"""``micwatch install`` / ``uninstall`` against a scratch root (``--root DIR``): no real system
file is touched. Also from a wheel installed into a fresh virtual environment."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import require, require_tool

from monitor.cli import main
from monitor.config import load
from monitor.install import UNITS, micwatch_binary

ROOT = Path(__file__).parents[1]


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


def test_install_from_a_wheel_finds_the_units_it_shipped(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("wheel")
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120, "cwd": work}
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(work), str(ROOT)], **run)
    (wheel,) = work.glob("micwatch-*.whl")
    venv = work / "venv"
    # The venv sees this Python's packages (pip and micwatch's dependencies) but gets its own
    # micwatch, which comes first on its path.
    venv_command = [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip"]
    subprocess.run([*venv_command, str(venv)], **run)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], **run)
    code, units = subprocess.run(
        [str(python), "-c", "import monitor.install as i; print(i.__file__, i.unit_source())"],
        **run,
    ).stdout.split()
    # The wheel's code and units, not this source tree's; the catalogues came along too.
    assert code.startswith(str(venv)) and units == str(venv / "share" / "micwatch" / "systemd")
    site = Path(code).parents[1]
    assert (site / "dashboard/translations/fr/LC_MESSAGES/messages.mo").is_file()
    subprocess.run([str(venv / "bin" / "micwatch"), "install", "--root", str(root)], **run)
    for name in UNITS:
        text = (root / "etc/systemd/system" / name).read_text()
        assert f"ExecStart={venv / 'bin' / 'micwatch'} --config" in text
