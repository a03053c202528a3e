"""A flood of new flows (SYN scan, random source ports, spoofed MACs) is absorbed by eviction.

300,000 SYNs, each a new 5-tuple, from 5,000 spoofed MACs go through the daemon's handler chain
(``bench/flood.py``): the flow table never holds more than ``flows.max_flows``, the device
inventory stops at its cap, no handler fails, and memory stops growing once the table is full.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from monitor import devices

FLOOD = Path(__file__).resolve().parent.parent / "bench" / "flood.py"


def _flood_module():
    spec = importlib.util.spec_from_file_location("bench_flood", FLOOD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_syn_flood_with_spoofed_macs_stays_bounded() -> None:
    figures = _flood_module().flood(packets=300_000, macs=5000, max_flows=20_000, seed=7)
    print("flood:", figures)
    assert figures["decoded"] == 300_000
    assert figures["flows_created"] == 300_000
    assert figures["flows_held_max_sampled"] <= 20_000
    assert figures["flows_evicted"] >= 300_000 - 20_000 - 1000
    assert figures["devices"] <= devices._MAX_DEVICES
    assert figures["handler_errors"] == 0
    # Once the table is full, the second half of the flood costs (almost) no more memory.
    assert figures["rss_after_mib"] - figures["rss_halfway_mib"] < 40
    assert figures["rss_after_mib"] - figures["rss_before_mib"] < 250
