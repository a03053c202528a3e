"""The in-memory batch the store's writer folds queue items into, and the row merges.

:class:`Batch` folds items into rows keyed like the tables (one device row per MAC, one traffic
row per device, minute and destination...), so its size is bounded by distinct keys, not by
events, and a batch that could not be written can be kept and retried whole.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from monitor.store_items import (
    DEST_SCALARS,
    DEVICE_SCALARS,
    DEVICE_SETS,
    AlertItem,
    DestinationItem,
    DeviceItem,
    Expire,
    FlowItem,
    Forget,
    Item,
)

#: A merged JSON list keeps at most this many entries (the newest first), so a device seen over
#: many runs cannot grow a row without bound.
MAX_LIST_ITEMS = 256
#: How many address-to-organisation pairs the writer remembers for naming traffic rows.
MAX_ORGS = 65536


def _merge_list(old: list[str], new: list[str]) -> list[str]:
    seen = set(new)
    merged = list(new) + [v for v in old if v not in seen]
    return sorted(merged[:MAX_LIST_ITEMS])


def merge_device(
    old: dict[str, Any] | None, new: dict[str, Any] | None, traffic: list[float] | None
) -> dict[str, Any]:
    """The device row after folding a newer snapshot and flow totals into the stored row.

    Name sets are unions (newest entries kept when capped); a known scalar replaces the stored
    one, an unknown (None) keeps it; the classification is replaced unless the newer one is
    ``unknown`` and the stored one is not (a restart does not forget what was learnt);
    first/last seen widen; ``bytes_*`` add the flows' bytes (the snapshot's are ignored).
    ``traffic`` is ``[first_ts, last_ts, bytes_up, bytes_down]``.
    """
    base = dict(old) if old else _new_device()
    if new is not None:
        for name in DEVICE_SETS:
            base[name] = _merge_list(base[name], new[name])
        for name in DEVICE_SCALARS:
            if new[name] is not None:
                base[name] = new[name]
        base["randomized"] = new["randomized"]
        base["mdns_txt"] = {**base["mdns_txt"], **new["mdns_txt"]}
        if new["category"] != "unknown" or base["category"] == "unknown":
            base.update(
                category=new["category"], confidence=new["confidence"], evidence=new["evidence"]
            )
        _widen(base, new["first_seen"], new["last_seen"])
    if traffic is not None:
        _widen(base, traffic[0], traffic[1])
        base["bytes_up"] += int(traffic[2])
        base["bytes_down"] += int(traffic[3])
    return base


def _new_device() -> dict[str, Any]:
    row: dict[str, Any] = {name: [] for name in DEVICE_SETS}
    row.update(dict.fromkeys(DEVICE_SCALARS), randomized=False, mdns_txt={}, evidence=[])
    row.update(category="unknown", confidence=0.0, bytes_up=0, bytes_down=0)
    return row


def merge_destination(
    old: dict[str, Any] | None, new: dict[str, Any] | None, seen: list[float] | None
) -> dict[str, Any]:
    """The destination row after folding a newer copy and flow times into the stored row: names
    are a union, a known scalar replaces the stored one, ``local``/``foreign`` follow the newer
    copy, first/last seen widen. ``seen`` is ``[first_ts, last_ts]``."""
    base = dict(old) if old else {"names": [], "local": False, "foreign": False}
    base.update({name: None for name in DEST_SCALARS if name not in base})
    if new is not None:
        base["names"] = _merge_list(base["names"], new["names"])
        for name in DEST_SCALARS:
            if new[name] is not None:
                base[name] = new[name]
        base.update(local=new["local"], foreign=new["foreign"])
    if seen is not None:
        _widen(base, seen[0], seen[1])
    return base


def _widen(row: dict[str, Any], first: float, last: float) -> None:
    """Widen ``row``'s first/last seen to cover ``first`` and ``last``."""
    row["first_seen"] = min(row.get("first_seen", first), first)
    row["last_seen"] = max(row.get("last_seen", last), last)


class Batch:
    """Rows waiting to be written, folded by table key.

    Snapshots are merged into the pending row exactly as into a stored row, and counters add
    up, so what is stored does not depend on how items were split into batches. ``size``
    counts the non-alert items folded in, which the writer bounds; alerts and commands are
    never dropped. ``max_ts`` is the newest event time folded in.
    """

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.device_traffic: dict[str, list[float]] = {}
        self.destinations: dict[str, dict[str, Any]] = {}
        self.dest_seen: dict[str, list[float]] = {}
        self.links: dict[tuple[str, str], list[float]] = {}
        self.traffic: dict[tuple[str, float, str], list[int]] = {}
        self.events: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.forgets: list[Forget] = []
        self.expires: list[Expire] = []
        self.size = 0
        self.max_ts = -math.inf

    def __bool__(self) -> bool:
        return bool(self.size or self.alerts or self.forgets or self.expires)

    def add(self, item: Item, orgs: OrderedDict[str, str]) -> None:
        """Fold one item in; ``orgs`` maps addresses to organisations for traffic rows and is
        updated from destination items (bounded by :data:`MAX_ORGS`)."""
        if isinstance(item, AlertItem):
            self.alerts.append(item.row)
            self._tick(item.row["ts"])
            return
        self.size += 1
        if isinstance(item, DeviceItem):
            self.devices[item.mac] = merge_device(self.devices.get(item.mac), item.row, None)
            self._tick(item.row["last_seen"])
        elif isinstance(item, DestinationItem):
            self._add_destination(item, orgs)
        elif isinstance(item, FlowItem):
            self._add_flow(item, orgs)
        else:
            self.events.append(item.row)
            self._tick(item.row["ts"])

    def _add_destination(self, item: DestinationItem, orgs: OrderedDict[str, str]) -> None:
        ip = item.row["ip"]
        self.destinations[ip] = merge_destination(self.destinations.get(ip), item.row, None)
        _fold_seen(self.dest_seen, ip, item.ts, item.ts)
        link = self.links.setdefault((item.mac, ip), [item.ts, item.ts, 0, 0, 0])
        link[0], link[1] = min(link[0], item.ts), max(link[1], item.ts)
        if item.row["org"]:
            orgs[ip] = item.row["org"]
            orgs.move_to_end(ip)
            if len(orgs) > MAX_ORGS:
                orgs.popitem(last=False)
        self._tick(item.ts)

    def _add_flow(self, item: FlowItem, orgs: OrderedDict[str, str]) -> None:
        ip = item.remote_ip
        dev = self.device_traffic.setdefault(item.mac, [item.first_ts, item.last_ts, 0, 0])
        dev[0], dev[1] = min(dev[0], item.first_ts), max(dev[1], item.last_ts)
        dev[2] += item.bytes_up
        dev[3] += item.bytes_down
        _fold_seen(self.dest_seen, ip, item.first_ts, item.last_ts)
        link = self.links.setdefault((item.mac, ip), [item.first_ts, item.last_ts, 0, 0, 0])
        link[0], link[1] = min(link[0], item.first_ts), max(link[1], item.last_ts)
        link[2] += item.bytes_up
        link[3] += item.bytes_down
        link[4] += 1
        dest = orgs.get(ip, ip)
        for minute, up, down, pkts in item.minutes:
            acc = self.traffic.setdefault((item.mac, minute, dest), [0, 0, 0, 0])
            acc[0] += up
            acc[1] += down
            acc[2] += pkts
        self.traffic.setdefault((item.mac, item.end_minute, dest), [0, 0, 0, 0])[3] += 1
        self._tick(item.last_ts)

    def _tick(self, ts: float | None) -> None:
        if isinstance(ts, (int, float)):
            self.max_ts = max(self.max_ts, ts)

    def purge(self, mac: str) -> None:
        """Drop every pending row about ``mac`` (before a forget)."""
        self.devices.pop(mac, None)
        self.device_traffic.pop(mac, None)
        self.links = {k: v for k, v in self.links.items() if k[0] != mac}
        self.traffic = {k: v for k, v in self.traffic.items() if k[0] != mac}
        self.events = [r for r in self.events if r["device_mac"] != mac]
        self.alerts = [r for r in self.alerts if r["device_mac"] != mac]

    def only_alerts(self) -> Batch:
        """A batch holding only this one's alerts and commands (kept after a non-transient
        write error, when the other rows are given up)."""
        kept = Batch()
        kept.alerts, kept.forgets, kept.expires = self.alerts, self.forgets, self.expires
        kept.max_ts = self.max_ts
        return kept


def _fold_seen(seen: dict[str, list[float]], key: str, first: float, last: float) -> None:
    span = seen.setdefault(key, [first, last])
    span[0], span[1] = min(span[0], first), max(span[1], last)
