#!/usr/bin/env python3
"""Flood the packet pipeline with new flows and report what it costs.

``python bench/flood.py [--packets 300000] [--macs 5000] [--max-flows 20000 | --defaults]
[--seed 1] [--footprint]``

Builds the same handler chain as the daemon (devices, names, detection, rules; no store, so the
figures are the pipeline's own) and feeds it frames generated in memory: a SYN scan from spoofed
source MACs and random source ports, each packet a new 5-tuple, 1000 packets per second of
capture time (so flows also expire). ``--defaults`` keeps the configured defaults of
``flows.max_flows`` and ``flows.max_devices``. Prints one JSON object: packets, packets per
second, flows created / evicted / still held, devices held, RSS before and halfway and after
(MiB, from /proc; "before" is taken once the runtime has loaded its tables, so the figures are
the flood's own) and peak RSS; the flow table size is sampled every 1000 packets.
``--footprint`` adds ``bytes_per_flow`` and ``bytes_per_device``: what one more flow held in the
table, and one more device in the inventory, costs (Python allocations, tracemalloc).

Guarantee checked by ``tests/test_load.py``: the flow table never holds more than
``flows.max_flows``, the device inventory stays under its cap, and RSS growth stays bounded.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import struct
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import load
from monitor.decode import TCP_SYN
from monitor.devices import EVICT_EVERY_S
from monitor.flows import mac_text
from monitor.pcapfile import LINKTYPE_ETHERNET
from monitor.runtime import Runtime, build

_ETH_IPV4_TCP = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBHHH")
_START = 1_700_000_000.0


def rss_mib() -> float:
    """The resident set size of this process now, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def syn_flood(packets: int, macs: int, seed: int) -> Iterator[tuple[float, int, bytes]]:
    """``packets`` TCP SYN frames, each a new 5-tuple, from ``macs`` random unicast MACs in
    192.168.1.0/24 towards random public addresses and ports."""
    rng = random.Random(seed)
    sources = [bytes([rng.randrange(256) & 0xFC]) + rng.randbytes(5) for _ in range(macs)]
    router = bytes.fromhex("00005e005301")
    for index in range(packets):
        src = bytes([192, 168, 1, 2 + index % 250])
        dst = bytes([52, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])
        frame = _ETH_IPV4_TCP.pack(
            router, sources[index % macs], 0x0800,
            0x45, 0, 40, index & 0xFFFF, 0, 64, 6, 0, src, dst,
            rng.randrange(1024, 65536), rng.choice((22, 80, 443, 8080, rng.randrange(1, 65536))),
            rng.getrandbits(32), 0, 0x50, TCP_SYN, 1024, 0, 0,
        )  # fmt: skip
        yield _START + index / 1000, LINKTYPE_ETHERNET, frame


def _runtime(max_flows: int | None = None, max_devices: int | None = None) -> Runtime:
    """A daemon's runtime (home FR, LAN 192.168.1.0/24) with its tables loaded; ``None`` keeps
    an option's default."""
    cli: dict[str, Any] = {"enrich.home": ["FR"], "network.lan": ["192.168.1.0/24"]}
    if max_flows is not None:
        cli["flows.max_flows"] = max_flows
    if max_devices is not None:
        cli["flows.max_devices"] = max_devices
    runtime = build(load(env={}, cli=cli))
    runtime.inventory.vendors.lookup("00:00:5e:00:53:01")  # the OUI table loads on first use
    return runtime


def flood(
    packets: int = 300_000,
    macs: int = 5000,
    max_flows: int | None = 20_000,
    seed: int = 1,
    max_devices: int | None = None,
) -> dict:
    """Run the flood through a fresh runtime; the figures (see the module docstring).
    ``max_flows`` and ``max_devices`` None keep the options' defaults."""
    runtime = _runtime(max_flows, max_devices)
    pipeline = runtime.pipeline
    largest = 0
    halfway = 0.0

    def watched(frames: Iterator[tuple[float, int, bytes]]) -> Iterator[tuple[float, int, bytes]]:
        nonlocal largest, halfway
        for index, frame in enumerate(frames):
            if not index % 1000:
                largest = max(largest, len(pipeline.table))
            if index == packets // 2:
                halfway = rss_mib()
            yield frame

    before = rss_mib()
    started = time.perf_counter()
    pipeline.run(watched(syn_flood(packets, macs, seed)))
    seconds = time.perf_counter() - started
    held = len(pipeline.table)
    after = rss_mib()
    # A real device joining after the flood must still be seen (the inventory makes room
    # again at most every devices.EVICT_EVERY_S seconds).
    _ts, linktype, frame = next(syn_flood(1, 1, seed + 1))
    pipeline.run(iter([(_START + packets / 1000 + EVICT_EVERY_S, linktype, frame)]))
    newcomer = mac_text(frame[6:12]) in runtime.inventory.devices
    pipeline.finish()
    stats = pipeline.stats()
    return {
        "packets": stats["packets"],
        "decoded": stats["decoded"],
        "packets_per_s": round(packets / seconds),
        "flows_created": stats["flows"],
        "flows_evicted": stats["flows_evicted"],
        "flows_held_at_end": held,
        "flows_held_max_sampled": max(largest, held),
        "max_flows": pipeline.table.max_flows,
        "devices": len(runtime.inventory.devices),
        "max_devices": runtime.inventory.max_devices,
        "newcomer_seen_after_flood": newcomer,
        "handler_errors": stats["handler_errors"],
        "rss_before_mib": round(before, 1),
        "rss_halfway_mib": round(halfway, 1),
        "rss_after_mib": round(after, 1),
        "rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _traced_growth(runtime: Runtime, packets: int, macs: int) -> int:
    """Bytes the runtime's Python allocations grow by while it takes ``packets`` SYNs from
    ``macs`` MACs (nothing evicted, nothing expired: the flows are all still held)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        runtime.pipeline.run(syn_flood(packets, macs, seed=3))
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def footprint(flows: int = 10_000, devices: int = 2000) -> dict[str, int]:
    """``bytes_per_flow``: one more flow held in the table, with what the handlers keep for it
    while it lasts; ``bytes_per_device``: one more device in the inventory, classified."""
    per_flow = _traced_growth(_runtime(max_flows=2 * flows), flows, 1) / flows
    with_devices = _traced_growth(_runtime(max_devices=2 * devices), devices, devices)
    return {
        "bytes_per_flow": round(per_flow),
        "bytes_per_device": round(with_devices / devices - per_flow),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the flood, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=300_000)
    parser.add_argument("--macs", type=int, default=5000)
    parser.add_argument("--max-flows", type=int, default=20_000)
    parser.add_argument("--defaults", action="store_true", help="the options' default caps")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--footprint", action="store_true", help="bytes per flow and device")
    args = parser.parse_args(argv)
    max_flows = None if args.defaults else args.max_flows
    figures = flood(args.packets, args.macs, max_flows, args.seed)
    if args.footprint:
        figures.update(footprint())
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
