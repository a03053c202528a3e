#!/usr/bin/env python3
"""Flood the packet pipeline with new flows and report what it costs.

``python bench/flood.py [--packets 300000] [--macs 5000] [--max-flows 20000] [--seed 1]``

Builds the same handler chain as the daemon (devices, names, detection, rules; no store, so the
figures are the pipeline's own) and feeds it frames generated in memory: a SYN scan from spoofed
source MACs and random source ports, each packet a new 5-tuple, one frame per microsecond-ish
(1000 packets per second of capture time so flows also expire). Prints one JSON object:
packets, packets per second, flows created / evicted / still held, devices held, RSS before and
halfway and after (MiB, from /proc) and peak RSS; the flow table size is sampled every 1000
packets.

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
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import load
from monitor.decode import TCP_SYN
from monitor.pcapfile import LINKTYPE_ETHERNET
from monitor.runtime import build

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


def flood(packets: int = 300_000, macs: int = 5000, max_flows: int = 20_000, seed: int = 1) -> dict:
    """Run the flood through a fresh runtime; the figures (see the module docstring)."""
    config = load(
        env={},
        cli={
            "enrich.home": ["FR"],
            "network.lan": ["192.168.1.0/24"],
            "flows.max_flows": max_flows,
        },
    )
    runtime = build(config)
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
        "max_flows": max_flows,
        "devices": len(runtime.inventory.devices),
        "handler_errors": stats["handler_errors"],
        "rss_before_mib": round(before, 1),
        "rss_halfway_mib": round(halfway, 1),
        "rss_after_mib": round(after, 1),
        "rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the flood, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=300_000)
    parser.add_argument("--macs", type=int, default=5000)
    parser.add_argument("--max-flows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(flood(args.packets, args.macs, args.max_flows, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
