#!/usr/bin/env python3
"""Measure ``micwatch analyze`` side by side with tcpdump and tshark on a home-traffic capture.

``python bench/run_bench.py [--packets N] [--capture FILE] [--keep] [--repeat 3] [--json]``

1. Writes a capture with :mod:`gen_home_traffic` (``--packets``, default 400,000) into a
   temporary directory, or reuses ``--capture FILE`` when it exists (generates it there if not).
2. Reads the file once so every tool starts from a warm page cache.
3. Runs, ``--repeat`` times and interleaved (one run of each tool per round, so a change of
   machine load hits them alike):

   * ``tcpdump -r FILE -w /dev/null``: libpcap reading and writing records, the floor;
   * ``tshark -r FILE -q -z conv,ip``: a full dissection plus a conversation table;
   * ``python -m monitor.cli analyze FILE --format jsonl``: the whole micwatch pipeline.

   Each run is wrapped in ``/usr/bin/time -v`` (or, where that is missing, a small Python
   wrapper reading ``RUSAGE_CHILDREN`` in a process of its own) for the peak RSS; the wall time
   is taken around the run.
4. Prints per tool the median wall time, packets/s and peak RSS, then the ratios against the
   targets of issue 2: micwatch packets/s at least 2x tshark's; beyond that, at least a quarter
   of tcpdump's; peak RSS under 100 MB, beyond that at most 64 MB (MB = 10^6 bytes).

micwatch runs hermetically: an empty configuration file, no ``MICWATCH_*`` variables, the home
set given as ``--home EU`` (a machine on UTC has no country to derive). Its JSON lines go to a
file rather than /dev/null (a few kB, the same cost) so the report can check that its summary
counted every packet. The script reports; it never fails on a missed target: the exit status is
0 unless the capture cannot be made. A missing tool is reported and the others are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MB = 1_000_000
GNU_TIME = Path("/usr/bin/time")
TARGETS = {
    "micwatch_vs_tshark_pps": 2.0,
    "micwatch_vs_tcpdump_pps_beyond": 0.25,
    "micwatch_peak_rss_mb": 100.0,
    "micwatch_peak_rss_mb_beyond": 64.0,
}

_WRAPPER = """
import json, resource, subprocess, sys, time
began = time.perf_counter()
with open(sys.argv[2], "wb") as out:
    status = subprocess.run(sys.argv[3:], stdout=out, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - began
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
with open(sys.argv[1], "w") as report:
    json.dump({"wall": wall, "rss": rss, "status": status}, report)
"""


@dataclass
class Result:
    """One tool's measurements; ``note`` says why it was not measured or what went wrong."""

    tool: str
    command: list[str]
    runs_s: list[float] = field(default_factory=list)
    peak_rss_bytes: list[int] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    note: str = ""
    median_s: float | None = None
    best_s: float | None = None
    pps: float | None = None
    peak_rss_mb: float | None = None
    summary: dict[str, Any] | None = None

    def finish(self, packets: int) -> None:
        """Fill in the median, packets/s and the largest peak RSS of the successful runs."""
        good = [s for s, code in zip(self.runs_s, self.exit_codes, strict=True) if code == 0]
        if good:
            self.median_s, self.best_s = statistics.median(good), min(good)
            self.pps = packets / self.median_s if self.median_s > 0 else None
        if self.peak_rss_bytes:
            self.peak_rss_mb = max(self.peak_rss_bytes) / MB
        if any(self.exit_codes) and not self.note:
            self.note = f"exit status {sorted(set(self.exit_codes))}"


def parse_time_v(report: str) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) from GNU time's ``-v`` report."""
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", report)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    if wall is None or rss is None:
        raise ValueError("not a GNU time -v report")
    hours, minutes, seconds = wall.groups()
    elapsed = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return elapsed, int(rss.group(1)) * 1024


def count_packets(path: Path) -> int:
    """The number of records of a classic pcap file (any byte order or time resolution)."""
    with path.open("rb", buffering=1 << 20) as fh:
        magic = fh.read(24)[:4]
        order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<"}.get(magic)
        order = order or {b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
        if order is None:
            raise ValueError(f"{path} is not a classic pcap file")
        header = struct.Struct(order + "IIII")
        count = 0
        while len(record := fh.read(16)) == 16:
            fh.seek(header.unpack(record)[2], os.SEEK_CUR)
            count += 1
    return count


def make_capture(path: Path, packets: int, seed: int) -> dict[str, Any]:
    """Write the benchmark capture to ``path``; what the generator reports about it."""
    sys.path.insert(0, str(BENCH))
    try:
        import gen_home_traffic as gen
    finally:
        sys.path.remove(str(BENCH))
    began = time.perf_counter()
    items, summary = gen.generate(packets, seed)
    written = gen.write_pcap(path, items)
    return {
        "packets": written,
        "seconds_of_traffic": round(summary.last_ts - summary.first_ts, 1),
        "kinds": dict(summary.kinds),
        "generated_in_s": round(time.perf_counter() - began, 1),
    }


def commands(capture: Path, config: Path) -> dict[str, list[str] | None]:
    """The command of each tool, None when it is not installed."""
    tcpdump, tshark = shutil.which("tcpdump"), shutil.which("tshark")
    micwatch = [sys.executable, "-m", "monitor.cli", "--config", str(config), "analyze",
                str(capture), "--format", "jsonl", "--no-progress", "--home", "EU"]  # fmt: skip
    return {
        "tcpdump": [tcpdump, "-r", str(capture), "-w", "/dev/null"] if tcpdump else None,
        "tshark": [tshark, "-r", str(capture), "-q", "-z", "conv,ip"] if tshark else None,
        "micwatch": micwatch,
    }


Measurement = tuple[float, int, int]
"""(wall seconds, peak RSS bytes, exit status) of one run."""


def measure(command: list[str], workdir: Path, stdout: Path, timeout: float) -> Measurement:
    """Run ``command`` once: (wall seconds, peak RSS bytes, exit status)."""
    report = workdir / "time.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICWATCH_")}
    env["HOME"] = str(workdir)  # no user configuration file
    env.pop("XDG_CONFIG_HOME", None)
    if GNU_TIME.exists():
        with stdout.open("wb") as out:
            began = time.perf_counter()
            status = subprocess.run(
                [str(GNU_TIME), "-v", "-o", str(report), *command], stdout=out,
                stderr=subprocess.DEVNULL, timeout=timeout, env=env, cwd=REPO,
            ).returncode  # fmt: skip
            wall = time.perf_counter() - began
        return wall, parse_time_v(report.read_text())[1], status
    wrapper = [sys.executable, "-c", _WRAPPER, str(report), str(stdout), *command]
    subprocess.run(wrapper, timeout=timeout, env=env, cwd=REPO, check=True)
    data = json.loads(report.read_text())
    return data["wall"], data["rss"], data["status"]


def run(capture: Path, packets: int, repeat: int, timeout: float, workdir: Path) -> dict[str, Any]:
    """Measure every installed tool ``repeat`` times on ``capture``; the results as a dict."""
    config = workdir / "empty.toml"
    config.write_text("")
    with capture.open("rb") as fh:  # warm the page cache
        while fh.read(1 << 24):
            pass
    results = {}
    for tool, command in commands(capture, config).items():
        if command is None:
            results[tool] = Result(tool, [], note=f"{tool} is not installed: not measured")
        else:
            results[tool] = Result(tool, command)
    load_before = os.getloadavg()
    for _ in range(repeat):
        for result in results.values():
            if not result.command:
                continue
            stdout = workdir / f"{result.tool}.out"
            try:
                wall, rss, status = measure(result.command, workdir, stdout, timeout)
            except subprocess.TimeoutExpired:
                result.note = f"timed out after {timeout:.0f} s"
                result.command = []
                continue
            result.runs_s.append(wall)
            result.peak_rss_bytes.append(rss)
            result.exit_codes.append(status)
            if result.tool == "micwatch" and status == 0:
                result.summary = _micwatch_summary(stdout)
    for result in results.values():
        result.finish(packets)
    return {
        "capture": {"path": str(capture), "bytes": capture.stat().st_size, "packets": packets},
        "machine": {
            "cores": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
            "peak_rss_via": f"{GNU_TIME} -v" if GNU_TIME.exists() else "getrusage",
        },
        "repeat": repeat,
        "results": {tool: asdict(result) for tool, result in results.items()},
        "ratios": ratios(results),
        "targets": TARGETS,
    }


def _micwatch_summary(path: Path) -> dict[str, Any] | None:
    last = None
    with path.open() as fh:
        for line in fh:
            if line.startswith('{"kind":"summary"') or '"kind": "summary"' in line:
                last = line
    if last is None:
        return None
    summary = json.loads(last)
    keep = ("packets", "decoded", "malformed", "skipped", "flows", "seconds", "pps")
    return {key: summary.get(key) for key in keep}


def ratios(results: dict[str, Result]) -> dict[str, float | None]:
    """micwatch's packets/s over tshark's and tcpdump's, and its peak RSS in MB."""
    mine = results["micwatch"].pps

    def over(tool: str) -> float | None:
        other = results[tool].pps
        return round(mine / other, 3) if mine and other else None

    rss = results["micwatch"].peak_rss_mb
    return {
        "micwatch_vs_tshark_pps": over("tshark"),
        "micwatch_vs_tcpdump_pps": over("tcpdump"),
        "micwatch_peak_rss_mb": round(rss, 1) if rss is not None else None,
    }


def _verdict(value: float | None, target: float, at_least: bool) -> str:
    if value is None:
        return "not measured"
    met = value >= target if at_least else value <= target
    return "met" if met else "MISSED"


def render(report: dict[str, Any]) -> str:
    """The human-readable table and ratios."""
    cap, machine = report["capture"], report["machine"]
    lines = [
        f"capture: {cap['path']} ({cap['packets']:,} packets, {cap['bytes'] / MB:,.0f} MB)",
        f"machine: {machine['cores']} cores, load average (1/5/15 min) before "
        f"{'/'.join(map(str, machine['load_before']))}, after "
        f"{'/'.join(map(str, machine['load_after']))}; Python {machine['python']}; "
        f"peak RSS via {machine['peak_rss_via']}; {report['repeat']} runs each, median",
        "",
        f"{'tool':<10} {'median s':>9} {'best s':>7} {'packets/s':>12} {'peak RSS MB':>12}"
        "  runs (s)",
    ]
    for tool, r in report["results"].items():
        if r["median_s"] is None:
            lines.append(f"{tool:<10} {'-':>9} {'-':>7} {'-':>12} {'-':>12}  {r['note']}")
            continue
        runs = " ".join(f"{s:.2f}" for s in r["runs_s"])
        note = f"  ({r['note']})" if r["note"] else ""
        lines.append(f"{tool:<10} {r['median_s']:>9.2f} {r['best_s']:>7.2f} {r['pps']:>12,.0f} "
                     f"{r['peak_rss_mb']:>12.1f}  {runs}{note}")  # fmt: skip
    summary = report["results"]["micwatch"]["summary"]
    if summary:
        read_all = "yes" if summary.get("packets") == cap["packets"] else "NO"
        lines += ["", f"micwatch summary: {summary} (read every packet: {read_all})"]
    ratio, t = report["ratios"], report["targets"]

    def show(value: float | None, unit: str = "x") -> str:
        return "n/a" if value is None else f"{value:.2f}{unit}"

    vs_tshark, vs_tcpdump = ratio["micwatch_vs_tshark_pps"], ratio["micwatch_vs_tcpdump_pps"]
    rss = ratio["micwatch_peak_rss_mb"]
    goal, beyond = t["micwatch_vs_tshark_pps"], t["micwatch_vs_tcpdump_pps_beyond"]
    cap_mb, cap_beyond = t["micwatch_peak_rss_mb"], t["micwatch_peak_rss_mb_beyond"]
    lines += [
        "",
        f"micwatch / tshark packets/s:  {show(vs_tshark)} "
        f"(target >= {goal}x: {_verdict(vs_tshark, goal, True)})",
        f"micwatch / tcpdump packets/s: {show(vs_tcpdump)} "
        f"(beyond target >= {beyond}x: {_verdict(vs_tcpdump, beyond, True)})",
        f"micwatch peak RSS:            {show(rss, ' MB')} "
        f"(target < {cap_mb:.0f} MB: {_verdict(rss, cap_mb - 1e-9, False)}; "
        f"beyond <= {cap_beyond:.0f} MB: {_verdict(rss, cap_beyond, False)})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=400_000, help="capture size (400000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    parser.add_argument("--capture", type=Path, help="reuse this capture, or generate it here")
    parser.add_argument("--keep", action="store_true", help="keep the generated capture")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (3)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run (1800)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="micwatch-bench-"))
    capture = args.capture or workdir / f"home-{args.packets}-{args.seed}.pcap"
    try:
        generated = None
        if capture.exists():
            packets = count_packets(capture)
        else:
            generated = make_capture(capture, args.packets, args.seed)
            packets = generated["packets"]
        if not args.json:
            made = "generated" if generated else "reused"
            print(f"{made} {capture} ({packets:,} packets)", file=sys.stderr)
        report = run(capture, packets, args.repeat, args.timeout, workdir)
        report["capture"]["generated"] = generated
        print(json.dumps(report, indent=2) if args.json else render(report))
    finally:
        if args.keep and args.capture is None and capture.exists():
            for leftover in workdir.iterdir():
                if leftover != capture:
                    leftover.unlink()
            print(f"capture kept: reuse it with --capture {capture}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
