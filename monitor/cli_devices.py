"""``micwatch devices`` and ``micwatch destinations``: what the store knows, and the user's word.

``devices`` lists every device with its name, category, confidence and the evidence that decided
it; ``devices --explain MAC`` prints the whole evidence trail; ``devices label MAC TEXT``,
``devices category MAC CATEGORY`` and ``devices forget MAC`` record the user's word in the
store, where it overrides the guess and survives restarts (the daemon reads it when the device
next appears). ``destinations [--device MAC]`` lists where the home's data goes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from monitor.config import Config
from monitor.errors import MicwatchError
from monitor.model import Device
from monitor.output import print_json
from monitor.signatures import CATEGORIES

ConfigFrom = Callable[[argparse.Namespace], Config]


def add_commands(sub: Any, add_option_flags: Callable[..., None]) -> None:
    """Register ``devices`` and ``destinations`` on the top-level subparsers."""
    devices = sub.add_parser("devices", help="list devices; label, categorise or forget one")
    devices.add_argument("--format", choices=("text", "json"), default="text")
    devices.add_argument("--explain", metavar="MAC", help="print the evidence trail of a device")
    add_option_flags(devices, ("store", "classify"))
    actions = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    label = actions.add_parser("label", help="name a device (empty text removes the name)")
    label.add_argument("mac")
    label.add_argument("text")
    add_option_flags(label, ("store",))
    category = actions.add_parser("category", help="set a device's category (or 'auto')")
    category.add_argument("mac")
    category.add_argument("category", choices=(*sorted(CATEGORIES), "auto"))
    add_option_flags(category, ("store",))
    forget = actions.add_parser("forget", help="delete everything stored about a device")
    forget.add_argument("mac")
    add_option_flags(forget, ("store",))

    destinations = sub.add_parser("destinations", help="list the destinations in the store")
    destinations.add_argument("--device", metavar="MAC", help="only this device's destinations")
    destinations.add_argument("--format", choices=("text", "json"), default="text")
    add_option_flags(destinations, ("store",))


def _open(args: argparse.Namespace, config_from: ConfigFrom) -> Any:
    from monitor.store import open_store

    return open_store(config_from(args), writer=False)


def _known(store: Any, mac: str) -> dict[str, Any]:
    row = store.device(mac.lower())
    if row is None:
        raise MicwatchError(f"no device {mac} in the store; see micwatch devices")
    return row


def cmd_devices(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    store = _open(args, config_from)
    try:
        action = args.devices_command
        if action == "label":
            _known(store, args.mac)
            store.set_label(args.mac.lower(), args.text.strip() or None)
            print(f"{args.mac}: label {'set' if args.text.strip() else 'removed'}")
            return 0
        if action == "category":
            _known(store, args.mac)
            store.set_category(args.mac.lower(), None if args.category == "auto" else args.category)
            print(f"{args.mac}: category {args.category}")
            return 0
        if action == "forget":
            _known(store, args.mac)
            store.forget_device(args.mac.lower())
            print(f"{args.mac}: forgotten (every stored row about it was deleted)")
            return 0
        if args.explain:
            return _explain(_known(store, args.explain), config_from(args))
        rows = store.devices()
    finally:
        store.close()
    if args.format == "json":
        print_json(rows, sys.stdout)
        return 0
    for row in rows:
        print(_device_line(row))
        for evidence in (row.get("evidence") or [])[:3]:
            print(f"    {evidence}")
    return 0


def _device_line(row: dict[str, Any]) -> str:
    name = row.get("label") or row.get("name") or row.get("hostname") or row["mac"]
    category = row.get("category") or "unknown"
    if row.get("user_category"):
        sure = "set by you"
    else:
        sure = f"{round(100 * (row.get('confidence') or 0))}% sure"
    vendor = f"  {row['vendor']}" if row.get("vendor") else ""
    return f"{name}  [{category}, {sure}]  {row['mac']}{vendor}"


def _explain(row: dict[str, Any], config: Config) -> int:
    from monitor.classify import Classifier

    device = device_from_row(row)
    for line in Classifier.from_config(config).explain(device):
        print(line)
    return 0


def device_from_row(row: dict[str, Any]) -> Device:
    """A :class:`Device` rebuilt from a stored row (for explaining its classification)."""
    return Device(
        mac=row["mac"],
        first_seen=row.get("first_seen") or 0.0,
        last_seen=row.get("last_seen") or 0.0,
        ips=set(row.get("ips") or ()),
        vendor=row.get("vendor"),
        randomized=bool(row.get("randomized")),
        hostname=row.get("hostname"),
        dhcp_fingerprint=row.get("dhcp_fingerprint"),
        dhcp_vendor_class=row.get("dhcp_vendor_class"),
        mdns_names=set(row.get("mdns_names") or ()),
        services=set(row.get("services") or ()),
        mdns_txt=dict(row.get("mdns_txt") or {}),
        ssdp_servers=set(row.get("ssdp_servers") or ()),
        user_agents=set(row.get("user_agents") or ()),
        domains=set(row.get("domains") or ()),
        tls_fingerprints=set(row.get("tls_fingerprints") or ()),
        category=row.get("category_guess") or "unknown",
        confidence=row.get("confidence") or 0.0,
        name=row.get("name"),
        evidence=list(row.get("evidence") or ()),
        label=row.get("label"),
        user_category=row.get("user_category"),
    )


def cmd_destinations(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    store = _open(args, config_from)
    try:
        rows = store.destinations(args.device.lower() if args.device else None)
    finally:
        store.close()
    if args.format == "json":
        print_json(rows, sys.stdout)
        return 0
    for row in rows:
        names = row.get("names") or []
        name = f"{names[0]}  " if names else ""
        flag = "  FOREIGN" if row.get("foreign") else ""
        org = f"  {row['org']}" if row.get("org") else ""
        print(f"{name}{row['ip']}  [{row.get('country') or '??'}]{org}{flag}")
    return 0


#: Subcommand name -> handler, for :mod:`monitor.cli`.
COMMANDS = {"devices": cmd_devices, "destinations": cmd_destinations}
