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
from typing import Any

from monitor.config import Config

ConfigFrom = Callable[[argparse.Namespace], Config]


def add_commands(sub: Any, add_option_flags: Callable[..., None]) -> None:
    """Register ``intercept`` on the top-level subparsers."""
    intercept = sub.add_parser("intercept", help="undo what an ARP interception left behind")
    actions = intercept.add_subparsers(dest="intercept_command", required=True, metavar="ACTION")
    restore = actions.add_parser(
        "restore", help="restore the ARP caches and sysctls a killed run left changed"
    )
    add_option_flags(restore, ("store",))


def cmd_intercept(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.intercept_state import restore_leftover
    from monitor.store import state_dir

    directory = state_dir(config_from(args)["store.state_dir"])
    if restore_leftover(directory):
        print("ARP caches and forwarding settings restored")
    else:
        print(f"nothing to restore (no interception state in {directory})")
    return 0


COMMANDS = {"intercept": cmd_intercept}
