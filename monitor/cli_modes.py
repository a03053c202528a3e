"""``micwatch setup ap``, ``micwatch doctor`` and ``micwatch intercept restore``: the commands
that prepare and check the ways of seeing the home's traffic.

``setup ap`` writes (and with ``--install`` installs) the configuration of a separate Wi-Fi
network for smart devices on the Pi; ``doctor`` checks a capture mode and says what to fix
(exit 1 when something must be fixed); ``intercept restore`` undoes what an ARP interception
that died left behind (exit 0 whether or not there was anything to undo).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config import Config

ConfigFrom = Callable[[argparse.Namespace], Config]
_PRESETS = {"EU", "EEA"}


def add_commands(sub: Any, add_option_flags: Callable[..., None]) -> None:
    """Register ``setup``, ``doctor`` and ``intercept`` on the top-level subparsers."""
    setup = sub.add_parser("setup", help="prepare a way of seeing the home's traffic")
    setup_sub = setup.add_subparsers(dest="setup_command", required=True, metavar="WHAT")
    ap = setup_sub.add_parser("ap", help="the Pi as a separate Wi-Fi network for smart devices")
    ap.add_argument("--wifi-interface", required=True, help="the Wi-Fi interface (e.g. wlan0)")
    ap.add_argument("--uplink", required=True, help="the interface to the home router (eth0)")
    ap.add_argument("--ssid", required=True, help="the new network's name")
    ap.add_argument("--passphrase", required=True, help="its WPA2 password (8 to 63 characters)")
    ap.add_argument("--subnet", default="10.42.0.0/24", help="its addresses (default %(default)s)")
    ap.add_argument("--country", help="Wi-Fi country code (default: from enrich.home)")
    ap.add_argument("--channel", type=int, default=6, help="2.4 GHz channel (default 6)")
    ap.add_argument("--output", default="micwatch-ap", help="where to write the files")
    ap.add_argument("--install", action="store_true", help="install to /etc and enable (root)")
    add_option_flags(ap, ("enrich",))

    doctor = sub.add_parser("doctor", help="check a capture mode and say what to fix")
    doctor.add_argument("--mode", choices=("live", "mirror", "intercept", "ap"), default="live")
    doctor.add_argument("--seconds", type=float, default=5.0, help="how long to listen (default 5)")
    add_option_flags(doctor, ("capture",))

    intercept = sub.add_parser("intercept", help="undo what an ARP interception left behind")
    actions = intercept.add_subparsers(dest="intercept_command", required=True, metavar="ACTION")
    restore = actions.add_parser(
        "restore", help="restore the ARP caches and sysctls a killed run left changed"
    )
    add_option_flags(restore, ("store",))


def _country(args: argparse.Namespace, config: Config) -> str:
    if args.country:
        return args.country
    codes = [c.upper() for c in config["enrich.home"] if len(c) == 2 and c.upper() not in _PRESETS]
    return codes[0] if len(codes) == 1 else ""


def cmd_setup(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.apsetup import ap_settings, install, write_files

    settings = ap_settings(
        args.wifi_interface,
        args.uplink,
        args.ssid,
        args.passphrase,
        args.subnet,
        _country(args, config_from(args)),
        args.channel,
    )
    directory = Path(args.output)
    for path in write_files(settings, directory):
        print(f"wrote {path}")
    if args.install:
        install(directory)
        print("installed and enabled: hostapd, dnsmasq, micwatch-ap-firewall, systemd-networkd")
    else:
        print(f"next steps: {directory / 'README.txt'}")
    return 0


def cmd_doctor(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.doctor import report, run_checks

    checks = run_checks(args.mode, config_from(args)["capture.interface"], args.seconds)
    print(report(checks))
    return 1 if any(check.status == "fix" for check in checks) else 0


def cmd_intercept(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.intercept_state import restore_leftover
    from monitor.paths import state_dir

    directory = state_dir(config_from(args)["store.state_dir"])
    if restore_leftover(directory):
        print("ARP caches and forwarding settings restored")
    else:
        print(f"nothing to restore (no interception state in {directory})")
    return 0


COMMANDS = {"setup": cmd_setup, "doctor": cmd_doctor, "intercept": cmd_intercept}
