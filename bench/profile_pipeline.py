#!/usr/bin/env python3
"""Profile ``micwatch analyze`` in-process with cProfile on the benchmark capture.

``python bench/profile_pipeline.py [--packets N] [--capture FILE] [--top 25] [--sort tottime]``

Generates a capture with :mod:`gen_home_traffic` (default 100,000 packets: cProfile roughly
doubles the run time) unless ``--capture`` names an existing one, runs the same command line
as the benchmark (``analyze FILE --format jsonl --home EU``, an empty configuration file, the
JSON lines discarded) under :mod:`cProfile`, and prints the top functions by own time with
their share of the total, then the share of own time per source file. Numbers under a profiler
are inflated for code with many small calls: use them to find where the time goes, and
``bench/run_bench.py`` for speeds.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def profile(capture: Path, config: Path) -> pstats.Stats:
    """Run the micwatch command line on ``capture`` under cProfile; its statistics."""
    from monitor.cli import main as micwatch

    argv = ["--config", str(config), "analyze", str(capture), "--format", "jsonl"]
    argv += ["--no-progress", "--home", "EU"]
    profiler = cProfile.Profile()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        profiler.enable()
        status = micwatch(argv)
        profiler.disable()
    if status:
        raise SystemExit(f"micwatch analyze exited with status {status}")
    return pstats.Stats(profiler)


def _where(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(REPO))
    except (ValueError, OSError):
        return "~" if filename == "~" else f"{path.parent.name}/{path.name}"


def report(stats: pstats.Stats, top: int, sort: str) -> str:
    """The top ``top`` functions by ``sort`` and the own time per file, as text."""
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in entries.values()) or 1e-9
    key = 2 if sort == "tottime" else 3
    rows = sorted(entries.items(), key=lambda item: item[1][key], reverse=True)[:top]
    lines = [f"total own time {total:.2f} s; top {top} by {sort}", ""]
    lines.append(f"{'own s':>7} {'own %':>6} {'cum s':>7} {'calls':>10}  function")
    for (filename, line, name), (_, calls, own, cumulative, _) in rows:
        where = f"{_where(filename)}:{line}({name})" if line else name
        lines.append(
            f"{own:>7.2f} {100 * own / total:>5.1f}% {cumulative:>7.2f} {calls:>10}  {where}"
        )
    per_file: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, own, _, _) in entries.items():
        per_file[_where(filename)] += own
    lines += ["", "own time per file", ""]
    for where, own in sorted(per_file.items(), key=lambda item: item[1], reverse=True)[:15]:
        lines.append(f"{own:>7.2f} {100 * own / total:>5.1f}%  {where}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000, help="capture size (100000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    parser.add_argument("--capture", type=Path, help="profile this capture instead")
    parser.add_argument("--top", type=int, default=25, help="functions to list (25)")
    parser.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime")
    parser.add_argument("--save", type=Path, help="also write the raw profile (pstats) here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BENCH))
    import gen_home_traffic as gen

    with tempfile.TemporaryDirectory(prefix="micwatch-profile-") as tmp:
        config = Path(tmp) / "empty.toml"
        config.write_text("")
        capture = args.capture
        if capture is None:
            capture = Path(tmp) / "home.pcap"
            gen.write_pcap(capture, gen.generate(args.packets, args.seed)[0])
        for name in [key for key in os.environ if key.startswith("MICWATCH_")]:
            del os.environ[name]
        stats = profile(capture, config)
    if args.save:
        stats.dump_stats(str(args.save))
    print(f"capture: {capture if args.capture else f'{args.packets:,} generated packets'}")
    print(report(stats, args.top, args.sort))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
