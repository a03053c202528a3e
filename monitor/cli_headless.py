"""Commands for running micwatch headless: ``notify test``, ``health``, ``install``, ``uninstall``.

``notify test`` sends a test message to each ``notify.targets`` URL (and the MQTT broker when
``notify.mqtt`` is set) and prints which worked; exit status 1 when one failed. ``health``
prints the newest health report the daemon stored (``--format prometheus`` for the metrics
text). ``install`` and ``uninstall`` set up or remove the system service (see
:mod:`monitor.install`); ``--root DIR`` works on a copy of the file system tree under DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from monitor.config import Config
from monitor.errors import ConfigError

ConfigFrom = Callable[[argparse.Namespace], Config]


def add_commands(sub: Any, add_option_flags: Callable[..., None]) -> None:
    """Register ``notify``, ``health``, ``install`` and ``uninstall``."""
    notify = sub.add_parser("notify", help="notifications: send a test message")
    actions = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    test = actions.add_parser("test", help="send a test message to each target")
    add_option_flags(test, ("notify", "store"))

    health = sub.add_parser("health", help="print the sensor's newest health report")
    health.add_argument("--format", choices=("text", "json", "prometheus"), default="text")
    add_option_flags(health, ("store",))

    install = sub.add_parser("install", help="install the system service (as root)")
    install.add_argument("--root", default="/", help="file system root to install into")
    install.add_argument("--interface", default="", help="network interface to capture on")
    install.add_argument("--no-enable", action="store_true", help="do not enable the units")
    uninstall = sub.add_parser("uninstall", help="remove the system service (as root)")
    uninstall.add_argument("--root", default="/", help="file system root to remove from")
    uninstall.add_argument(
        "--purge", action="store_true", help="also delete the database, state and configuration"
    )


def cmd_notify(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.alert_i18n import notify_language
    from monitor.notify import send_test

    config = config_from(args)
    urls = list(config["notify.targets"])
    if not urls and not config["notify.mqtt"]:
        raise ConfigError("no notification target: set notify.targets (or notify.mqtt)")
    results = send_test(urls, notify_language(config))
    if config["notify.mqtt"]:
        results.append(("mqtt", _mqtt_test(config)))
    for name, ok in results:
        print(f"{name}: {'delivered' if ok else 'FAILED'}")
    return 0 if all(ok for _, ok in results) else 1


def _mqtt_test(config: Config, timeout: float = 5.0) -> bool:
    import socket

    from monitor.alert_i18n import notify_language
    from monitor.notify import notify_test_message
    from monitor.notify_mqtt import send_test

    sensor = config["store.sensor"] or socket.gethostname()
    text = notify_test_message(notify_language(config)).body
    try:
        return send_test(config["notify.mqtt"], sensor, text, timeout)
    except ValueError as exc:
        raise ConfigError(f"notify.mqtt: {exc}") from None


def cmd_health(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.health import latest_snapshot, prometheus_text, store_metrics_text
    from monitor.store import open_store

    with open_store(config_from(args), writer=False) as reader:
        if args.format == "prometheus":
            sys.stdout.write(store_metrics_text(reader))
            return 0
        snap = latest_snapshot(reader)
        sensor = reader.sensor
    if args.format == "json":
        print(json.dumps(snap, indent=2))
    elif snap is None:
        print(f"no health report from sensor {sensor} yet: is micwatch capture running?")
        return 1
    else:
        age = time.time() - snap["ts"]
        print(f"sensor {sensor}, report from {age:.0f} s ago")
        for line in prometheus_text(snap, sensor).splitlines():
            if not line.startswith("#"):
                print("  " + line.split("{", 1)[0] + " " + line.rsplit(" ", 1)[1])
    return 0


def cmd_install(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.install import install

    for line in install(args.root, interface=args.interface, enable=not args.no_enable):
        print(line)
    return 0


def cmd_uninstall(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.install import uninstall

    for line in uninstall(args.root, purge=args.purge):
        print(line)
    return 0


COMMANDS = {
    "notify": cmd_notify,
    "health": cmd_health,
    "install": cmd_install,
    "uninstall": cmd_uninstall,
}
