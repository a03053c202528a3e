"""A flood of new flows (SYN scan, random source ports, spoofed MACs) is absorbed by eviction.

SYNs, each a new 5-tuple, from 5,000 spoofed MACs go through the daemon's handler chain
(``bench/flood.py``): the flow table never holds more than ``flows.max_flows``, the device
inventory stops at ``flows.max_devices`` yet still lets a real newcomer in, no handler fails,
memory stops growing once the table is full, and what one flow or device costs stays near the
figures the option help and ``bench/README.md`` document (about 0.8 kB per flow, 2.2 kB per
device).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monitor.config import OPTIONS, load
from monitor.devices import EVICT_EVERY_S
from monitor.events import DeviceSeen
from monitor.runtime import build

FLOOD = Path(__file__).resolve().parent.parent / "bench" / "flood.py"
DEFAULTS = {option.key: option.default for option in OPTIONS}


def _flood_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_flood", FLOOD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bounded(figures: dict, packets: int, max_flows: int, max_devices: int) -> None:
    """The guarantees every flood keeps, whatever the caps."""
    assert figures["decoded"] == packets + 1  # the flood, then a newcomer's SYN
    assert figures["flows_created"] == packets + 1
    assert figures["max_flows"] == max_flows and figures["max_devices"] == max_devices
    assert figures["flows_held_max_sampled"] <= max_flows
    # Eviction removes a tenth of the table at a time: at most that many fewer than the excess.
    assert figures["flows_evicted"] >= packets - max_flows - max_flows // 10
    # Full, the inventory forgets the eighth seen longest ago: a real newcomer still gets in.
    assert max_devices - max_devices // 8 <= figures["devices"] <= max_devices
    assert figures["newcomer_seen_after_flood"]
    assert figures["handler_errors"] == 0


@pytest.mark.timeout(300)
def test_syn_flood_with_spoofed_macs_stays_bounded() -> None:
    figures = _flood_module().flood(packets=300_000, macs=5000, max_flows=20_000, seed=7)
    print("flood:", figures)
    _bounded(figures, 300_000, 20_000, DEFAULTS["flows.max_devices"])
    # Measured: +47 MiB with the table full (20,000 flows, 4,096 devices and the bounded
    # "first contact" memories), +0.1 MiB in the second half. Before the per-device memories
    # were bounded: +80 MiB, +6 MiB in the second half and still growing.
    assert figures["rss_after_mib"] - figures["rss_halfway_mib"] < 4
    assert figures["rss_after_mib"] - figures["rss_before_mib"] < 65


@pytest.mark.timeout(300)
def test_syn_flood_at_the_default_caps() -> None:
    """In a process of its own, so that its RSS is the flood's alone."""
    max_flows = DEFAULTS["flows.max_flows"]
    # Halfway, the table is full and so are the inventory's "first contact" memories.
    packets = 4 * max_flows
    run = subprocess.run(
        [sys.executable, str(FLOOD), "--defaults", "--packets", str(packets), "--seed", "7"],
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    figures = json.loads(run.stdout)
    print("flood at the defaults:", figures)
    _bounded(figures, packets, max_flows, DEFAULTS["flows.max_devices"])
    # Measured: +69 MiB at 50,000 flows and 4,096 devices, nothing more in the second half.
    assert figures["rss_after_mib"] - figures["rss_halfway_mib"] < 6
    assert figures["rss_after_mib"] - figures["rss_before_mib"] < 90


def test_footprint_of_a_flow_and_a_device() -> None:
    figures = _flood_module().footprint(flows=5000, devices=1000)
    print("footprint:", figures)
    assert 300 < figures["bytes_per_flow"] < 1000
    assert 1000 < figures["bytes_per_device"] < 2800


def test_full_inventory_makes_room_for_newcomers_at_a_bounded_rate() -> None:
    """A spoofed-MAC flood fills the inventory; a real device joining later is still seen: the
    eighth seen longest ago is forgotten, at most every EVICT_EVERY_S seconds, and a forgotten
    device seen again is not announced as new a second time."""
    cap = 64
    config = load(env={}, cli={"enrich.home": ["FR"], "flows.max_devices": cap})
    runtime = build(config)
    inventory = runtime.inventory
    seen: list[DeviceSeen] = []

    class Seen:
        def on_device_seen(self, event: DeviceSeen) -> None:
            seen.append(event)

    runtime.chain.add(Seen())
    spoofed = [f"02:00:00:00:00:{index:02x}" for index in range(cap)]
    for index, mac in enumerate(spoofed):
        assert inventory.device(mac, 1000.0 + index / 100, None) is not None
    assert len(inventory.devices) == cap
    assert inventory.device("02:00:00:00:01:01", 1001.0, None) is not None  # room was made
    assert len(inventory.devices) == cap - cap // 8 + 1
    assert not any(mac in inventory.devices for mac in spoofed[: cap // 8])  # the oldest eighth
    for index in range(cap // 8 - 1):  # the flood takes the room back
        assert inventory.device(f"02:00:00:00:02:{index:02x}", 1001.5, None) is not None
    assert inventory.device("02:00:00:00:03:01", 1002.0, None) is None  # full, too soon
    assert inventory.device("02:00:00:00:03:01", 1001.0 + EVICT_EVERY_S, None) is not None
    again = inventory.device(spoofed[0], 1001.0 + EVICT_EVERY_S, None)
    assert again is not None and len(inventory.devices) <= cap
    first_ever = {event.device.mac: event.first_ever for event in seen}
    assert first_ever["02:00:00:00:03:01"] and not first_ever[spoofed[0]]
