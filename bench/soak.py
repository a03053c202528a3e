#!/usr/bin/env python3
"""Soak test: a day of home traffic, compressed in time, through the daemon's whole pipeline.

``python bench/soak.py [--hours 24] [--every 300] [--packets 20000] [--cap 4MB] [--db FILE]``
generates a home-traffic capture with ``bench/gen_home_traffic.py`` (``--packets`` packets,
about a minute of traffic), then replays it once every ``--every`` seconds of capture time for
``--hours`` hours, timestamps shifted so the day ends now, through the same handlers as
``micwatch capture`` (pipeline, rules, the store with its size cap ``--cap`` and alert journal,
health reports). After each replay it waits for the store to catch up, so nothing is dropped.

Every simulated hour it prints the database size (pages in use plus WAL, and the file as the
file system sees it) against the cap, the rows pruned so far and the process's resident memory.
The claims it checks: the database stays under its cap and the memory stays flat.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from monitor.capture import open_files
from monitor.config import load, parse_size
from monitor.daemon import StatsReporter
from monitor.runtime import build, headless_handlers
from monitor.store import open_store
from monitor.store_cap import database_bytes, file_bytes

HOUR = 3600.0


def _frames(path: Path) -> list[tuple[float, int, bytes]]:
    source = open_files([str(path)])
    try:
        return [item for item in source if item is not None]
    finally:
        source.close()


class Replay:
    """The capture's frames again and again, shifted by ``every`` seconds each time; calls
    ``between(k, ts)`` after each copy."""

    def __init__(self, frames, start: float, every: float, copies: int, between) -> None:
        self.frames, self.start, self.every, self.copies = frames, start, every, copies
        self.between = between
        self.name = "soak"

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        first = self.frames[0][0]
        for k in range(self.copies):
            shift = self.start + k * self.every - first
            for ts, linktype, frame in self.frames:
                yield ts + shift, linktype, frame
            self.between(k, self.start + (k + 1) * self.every)

    def stats(self) -> dict[str, int]:
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--every", type=float, default=300.0, help="seconds between replays")
    parser.add_argument("--packets", type=int, default=20000, help="packets per replay")
    parser.add_argument("--cap", default="4MB", help="store.max_size for the run")
    parser.add_argument("--db", default="", help="state directory (default: a temporary one)")
    args = parser.parse_args()
    logging.getLogger("monitor.daemon").setLevel(logging.ERROR)  # the per-minute stats lines

    work = Path(args.db or tempfile.mkdtemp(prefix="micwatch-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    capture = work / "home.pcap"
    if not capture.exists():
        generator = Path(__file__).resolve().parent / "gen_home_traffic.py"
        subprocess.run(
            [sys.executable, str(generator), "--packets", str(args.packets), str(capture)],
            check=True,
        )
    frames = _frames(capture)
    cap = parse_size(args.cap)
    config = load(None, env={}).replace(
        enrich__home=["FR"],
        store__state_dir=str(work),
        store__sensor="soak",
        store__max_size=cap,
        store__batch_seconds=0.5,
    )
    store = open_store(config, writer=True)
    reporter = StatsReporter(config["capture.stats_interval"])
    runtime = build(config, store=store, sinks=(reporter,))
    reporter.pipeline = runtime.pipeline
    for handler in headless_handlers(config, runtime.chain, store):
        runtime.chain.add(handler)
    process = psutil.Process()
    copies = int(args.hours * HOUR / args.every)
    start = time.time() - args.hours * HOUR
    rows: list[tuple[float, int, int, int, float]] = []
    next_hour = start
    began = time.monotonic()

    def between(_k: int, ts: float) -> None:
        nonlocal next_hour
        store.flush(60)
        if ts >= next_hour:
            next_hour += HOUR
            stats = store.stats()
            used = database_bytes(store.engine) or 0
            on_disk = file_bytes(store.engine) or 0
            rss = process.memory_info().rss / 2**20
            rows.append(((ts - start) / HOUR, used, on_disk, stats["pruned"], rss))
            print(
                f"{rows[-1][0]:5.1f} h  db {used / 1e6:6.2f} MB  file+wal {on_disk / 1e6:6.2f} MB"
                f"  cap {cap / 1e6:.2f} MB  pruned {stats['pruned']:7d}  rss {rss:6.1f} MiB"
                f"  dropped {stats['dropped']}",
                flush=True,
            )

    runtime.pipeline.run(Replay(frames, start, args.every, copies, between))
    runtime.pipeline.finish()
    store.close()
    elapsed = time.monotonic() - began
    packets = runtime.pipeline.packets
    peak_db = max(r[1] for r in rows)
    peak_file = max(r[2] for r in rows)
    rss_after_1h = rows[1][4] if len(rows) > 1 else rows[0][4]
    print(
        f"\n{args.hours:g} h simulated in {elapsed:.0f} s: {packets:,} packets; "
        f"database peak {peak_db / 1e6:.2f} MB (file+WAL {peak_file / 1e6:.2f} MB) "
        f"for a cap of {cap / 1e6:.2f} MB; RSS {rows[0][4]:.1f} MiB at start, "
        f"{rss_after_1h:.1f} MiB after 1 h, {rows[-1][4]:.1f} MiB at the end"
    )
    ok = peak_file <= cap * 1.05 and rows[-1][4] - rss_after_1h < 20
    print("OK: under the cap, memory flat" if ok else "FAILED: over the cap or memory grew")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
