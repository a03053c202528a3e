"""``micwatch install`` and ``micwatch uninstall``: the system service on a Pi or a server.

:func:`install` (as root) creates the unprivileged ``micwatch`` user (a ``sysusers.d`` entry
applied with ``systemd-sysusers``, else ``useradd``), writes ``/etc/micwatch/micwatch.toml``
(every option commented with its default, the chosen interface set; an existing file is kept),
creates the state directory ``/var/lib/micwatch`` (mode 0700, owned by the user), copies the
units (see :func:`unit_source`) to ``/etc/systemd/system`` with ``ExecStart`` pointing at this
micwatch, and enables them (``systemctl enable``; started too when systemd runs and an
interface is set). When systemd is not running the units are enabled offline and the commands
to run are printed.

:func:`uninstall` disables and removes the units and the ``sysusers.d`` entry; it keeps the
database, the configuration and the user unless ``purge``.

Every path is taken under ``root`` (default ``/``), so both can be tried on a scratch tree
(``--root DIR``); only ``root == "/"`` talks to a running systemd. Both return the lines to
print, saying what was done and what is left to do.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from monitor.config import defaults_toml
from monitor.errors import MicwatchError

USER = "micwatch"
UNITS = ("micwatch.service", "micwatch-dashboard.service")
CONFIG = Path("etc/micwatch/micwatch.toml")
STATE = Path("var/lib/micwatch")
UNIT_DIR = Path("etc/systemd/system")
SYSUSERS = Path("etc/sysusers.d/micwatch.conf")
SYSUSERS_LINE = f'u {USER} - "micwatch capture daemon" /var/lib/micwatch /usr/sbin/nologin\n'
#: Where the unit files live in the source tree (and an editable install): ``systemd/``.
SOURCE_UNITS = Path(__file__).resolve().parent.parent / "systemd"
#: Where a wheel installs them, under its installation scheme's data directory (the
#: ``data-files`` of pyproject.toml).
DATA_UNITS = "share/micwatch/systemd"
INSTALLED_BINARY = "/usr/local/bin/micwatch"


def _need_root(root: Path) -> None:
    if str(root) == "/" and os.geteuid() != 0:
        raise MicwatchError("run this as root (sudo micwatch install), or try it with --root DIR")


def micwatch_binary() -> str:
    """The absolute path of the ``micwatch`` command the units should start: the console script
    next to this Python (a virtual environment's or the system's), else the one on PATH."""
    beside = Path(sys.executable).parent / "micwatch"
    if beside.is_file():
        return str(beside)
    found = shutil.which("micwatch")
    if found is None:
        raise MicwatchError("the micwatch command is not installed: pip install micwatch first")
    return str(Path(found).absolute())


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _systemd_running(root: Path) -> bool:
    return str(root) == "/" and Path("/run/systemd/system").is_dir()


def _create_user(root: Path, out: list[str]) -> None:
    conf = root / SYSUSERS
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(SYSUSERS_LINE, encoding="utf-8")
    if shutil.which("systemd-sysusers"):
        done = _run(["systemd-sysusers", f"--root={root}", str(conf)])
    else:
        done = _run(["useradd", "--prefix", str(root), "--system", "--user-group", "--home-dir",
                     "/var/lib/micwatch", "--shell", "/usr/sbin/nologin", USER])  # fmt: skip
    if done.returncode not in (0, 9):  # 9: useradd's "the user exists"
        raise MicwatchError(f"could not create the user {USER}: {done.stderr.strip()}")
    out.append(f"user {USER}: ready")


def _ids(root: Path) -> tuple[int, int] | None:
    """The micwatch user's uid and gid in ``root``'s /etc/passwd."""
    if str(root) == "/":
        try:
            entry = pwd.getpwnam(USER)
        except KeyError:
            return None
        return entry.pw_uid, entry.pw_gid
    passwd = root / "etc/passwd"
    if passwd.is_file():
        for line in passwd.read_text(encoding="utf-8").splitlines():
            fields = line.split(":")
            if fields[0] == USER:
                return int(fields[2]), int(fields[3])
    return None


def config_text(interface: str) -> str:
    """The commented default configuration with ``capture.interface`` set when given."""
    text = defaults_toml()
    if interface:
        text, count = re.subn(
            r'(?m)^(\[capture\]\n(?:#.*\n)*?)# interface = ""$',
            lambda m: m.group(1) + f'interface = "{interface}"',
            text,
        )
        assert count == 1, "the capture section has no interface option"
    return text


def _write_config(root: Path, interface: str, ids: tuple[int, int] | None, out: list[str]) -> None:
    path = root / CONFIG
    if path.exists():
        out.append(f"{path}: kept (already there)")
        return
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_text(config_text(interface), encoding="utf-8")
    path.chmod(0o640)  # it may hold notification tokens: readable by root and the service
    if ids is not None and os.geteuid() == 0:
        os.chown(path, 0, ids[1])
    out.append(f"{path}: written" + (f" (interface {interface})" if interface else ""))


def unit_source() -> Path:
    """The folder holding every unit file: the source tree's ``systemd/`` when micwatch runs
    from its source tree, else ``share/micwatch/systemd`` where pip installed the wheel's copy
    (found through the files the installed distribution records, so a virtual environment,
    ``--user`` and Debian's ``/usr/local`` all work). MicwatchError when neither holds them."""
    if all((SOURCE_UNITS / name).is_file() for name in UNITS):
        return SOURCE_UNITS
    try:
        recorded = metadata.distribution("micwatch").files or []
    except metadata.PackageNotFoundError:
        recorded = []
    for file in recorded:
        if file.as_posix().endswith(f"{DATA_UNITS}/{UNITS[0]}"):
            folder = Path(file.locate()).resolve().parent
            if all((folder / name).is_file() for name in UNITS):
                return folder
    raise MicwatchError(
        f"unit files not found in {SOURCE_UNITS} nor in the installed {DATA_UNITS}: "
        "reinstall micwatch (pip install micwatch)"
    )


def _unit_text(source: Path, name: str, binary: str) -> str:
    return (source / name).read_text(encoding="utf-8").replace(INSTALLED_BINARY, binary)


def install(root: str | Path = "/", *, interface: str = "", enable: bool = True) -> list[str]:
    """Install the service under ``root``; see the module docstring. Returns lines to print."""
    root = Path(root)
    _need_root(root)
    source, binary = unit_source(), micwatch_binary()  # before anything changes
    out: list[str] = []
    _create_user(root, out)
    ids = _ids(root)
    _write_config(root, interface, ids, out)
    state = root / STATE
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.chmod(0o700)
    if ids is not None and os.geteuid() == 0:
        os.chown(state, *ids)
    out.append(f"{state}: ready")
    unit_dir = root / UNIT_DIR
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name in UNITS:
        (unit_dir / name).write_text(_unit_text(source, name, binary), encoding="utf-8")
        (unit_dir / name).chmod(0o644)
    out.append(f"units {', '.join(UNITS)} -> {unit_dir} (ExecStart {binary})")
    if enable:
        out += _enable(root, interface)
    return out


def _enable(root: Path, interface: str) -> list[str]:
    if not shutil.which("systemctl"):
        return [f"systemctl not found: enable {' and '.join(UNITS)} with your init system"]
    if _systemd_running(root):
        _run(["systemctl", "daemon-reload"])
        command = ["systemctl", "enable", *(["--now"] if interface else []), *UNITS]
    else:
        command = ["systemctl", f"--root={root}", "enable", *UNITS]
    done = _run(command)
    if done.returncode != 0:
        raise MicwatchError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    lines = [f"enabled: {' '.join(UNITS)}"]
    if not _systemd_running(root):
        lines.append("systemd is not running here: once it is, run systemctl start micwatch")
    elif not interface:
        lines.append(f"set capture.interface in /{CONFIG}, then: systemctl start micwatch")
    return lines


def uninstall(root: str | Path = "/", *, purge: bool = False) -> list[str]:
    """Remove the service from ``root``; with ``purge`` also the data, configuration and user."""
    root = Path(root)
    _need_root(root)
    out: list[str] = []
    unit_dir = root / UNIT_DIR
    if shutil.which("systemctl") and any((unit_dir / n).exists() for n in UNITS):
        if _systemd_running(root):
            _run(["systemctl", "disable", "--now", *UNITS])
        else:
            _run(["systemctl", f"--root={root}", "disable", *UNITS])
        out.append(f"disabled: {' '.join(UNITS)}")
    for name in UNITS:
        (unit_dir / name).unlink(missing_ok=True)
    if _systemd_running(root):
        _run(["systemctl", "daemon-reload"])
    out.append(f"units removed from {unit_dir}")
    (root / SYSUSERS).unlink(missing_ok=True)
    if not purge:
        out.append(
            f"kept {root / STATE}, {root / CONFIG} and the user {USER} (--purge removes them)"
        )
        return out
    shutil.rmtree(root / STATE, ignore_errors=True)
    shutil.rmtree((root / CONFIG).parent, ignore_errors=True)
    if _ids(root) is not None and shutil.which("userdel"):
        prefix = [] if str(root) == "/" else ["--prefix", str(root)]
        _run(["userdel", *prefix, USER])
    out.append(f"removed {root / STATE}, {(root / CONFIG).parent} and the user {USER}")
    return out
