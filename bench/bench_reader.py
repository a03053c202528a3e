"""Capture reader throughput: micwatch's readers against dpkt's, on the same files, side by side.

Generates a synthetic pcap and pcapng of ``--packets`` records (typical home-traffic frame
sizes) under ``--dir`` once, then times, best of ``--repeat`` runs, how many records per second
each reader hands to a loop that touches every record:

* micwatch ``open_files`` (the whole file source: format check, chunked reads, counters);
* ``dpkt.pcap.Reader`` / ``dpkt.pcapng.Reader``.

Usage: ``python bench/bench_reader.py [--packets 500000] [--dir /tmp/micwatch-bench]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt

from monitor.capture import open_files
from monitor.pcapfile import write_pcap

SIZES = (60, 66, 90, 150, 342, 590, 1200, 1514)  # ACKs, DNS, DHCP, TLS records, full frames
PAYLOAD = bytes(range(256)) * 6


def frames(count: int) -> Iterator[tuple[float, bytes]]:
    """``count`` Ethernet-sized frames, 100 µs apart."""
    for i in range(count):
        yield 1_700_000_000 + i * 1e-4, PAYLOAD[: SIZES[i % len(SIZES)]]


def make_files(directory: Path, count: int) -> tuple[Path, Path]:
    """The pcap and pcapng test files, generated if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    pcap = directory / f"synthetic-{count}.pcap"
    pcapng = directory / f"synthetic-{count}.pcapng"
    if not pcap.exists():
        write_pcap(pcap, frames(count))
    if not pcapng.exists():
        with pcapng.open("wb") as out:
            writer = dpkt.pcapng.Writer(out)
            for ts, frame in frames(count):
                writer.writepkt(frame, ts=ts)
    return pcap, pcapng


def micwatch_count(path: Path) -> int:
    total = 0
    for _ts, _linktype, frame in open_files([str(path)]):
        total += len(frame)
    return total


def dpkt_count(reader: Callable[..., object]) -> Callable[[Path], int]:
    def count(path: Path) -> int:
        total = 0
        with path.open("rb") as stream:
            for _ts, frame in reader(stream):  # type: ignore[attr-defined]
                total += len(frame)
        return total

    return count


def rate(count: Callable[[Path], int], path: Path, records: int, repeat: int) -> float:
    """Best records/s of ``repeat`` runs of ``count`` over ``path``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        count(path)
        best = min(best, time.perf_counter() - started)
    return records / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=500_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/micwatch-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pcap, pcapng = make_files(args.dir, args.packets)
    expected = sum(len(frame) for _, frame in frames(args.packets))
    for path, reference in ((pcap, dpkt.pcap.Reader), (pcapng, dpkt.pcapng.Reader)):
        assert micwatch_count(path) == dpkt_count(reference)(path) == expected
        ours = rate(micwatch_count, path, args.packets, args.repeat)
        theirs = rate(dpkt_count(reference), path, args.packets, args.repeat)
        size = path.stat().st_size / 1e6
        print(
            f"{path.suffix[1:]:7} {args.packets} records, {size:.0f} MB: micwatch "
            f"{ours / 1e6:.2f} M records/s, dpkt {theirs / 1e6:.2f} M records/s, "
            f"ratio {ours / theirs:.1f}x"
        )


if __name__ == "__main__":
    main()
