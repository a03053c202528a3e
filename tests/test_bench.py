"""The benchmark's capture generator writes a valid, deterministic capture that tshark reads.

A 2,000-packet capture is small enough to check in well under a second: its packet count and
protocol mix as tshark dissects them, valid IPv4/TCP/UDP checksums, no malformed packet, and
the names a monitor must find (DNS query names, TLS SNI over TCP, the SNI inside QUIC Initials
that tshark decrypts, DHCP hostnames, HTTP Host) exactly those the generator reports.
"""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import dpkt
import pytest

from tests.conftest import require_tool

BENCH = Path(__file__).resolve().parent.parent / "bench"
PACKETS = 2000


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _load("gen_home_traffic")
run_bench = _load("run_bench")


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("bench") / "home.pcap"
    items, summary = gen.generate(PACKETS, seed=7)
    assert gen.write_pcap(path, items) == PACKETS
    return path, summary


def test_generator_is_deterministic_and_ordered(capture: tuple[Path, object], tmp_path: Path):
    path, summary = capture
    again = tmp_path / "again.pcap"
    gen.write_pcap(again, gen.generate(PACKETS, seed=7)[0])
    assert again.read_bytes() == path.read_bytes()
    with path.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        stamps = [ts for ts, _ in reader]
    assert len(stamps) == PACKETS == summary.packets
    assert all(a <= b for a, b in itertools.pairwise(stamps))
    assert 50 <= stamps[-1] - stamps[0] <= 70  # N / 450 s, at least a minute
    assert sum(summary.kinds.values()) == PACKETS


def test_voice_bursts_have_the_advertised_shape(capture: tuple[Path, object]):
    _, summary = capture
    assert summary.voice_bursts
    for _, start, end, sent in summary.voice_bursts:
        assert 3 <= end - start <= 8.5
        assert 14_000 <= sent / (end - start) <= 31_000


def _tshark_frames(tshark: str, path: Path, fields: list[str]) -> list[dict[str, str]]:
    command = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a"]
    command += ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
    command += ["-o", "udp.check_checksum:TRUE"]
    for name in fields:
        command += ["-e", name]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]


@pytest.mark.tshark
def test_tshark_reads_the_capture_as_generated(capture: tuple[Path, object]):
    tshark = require_tool("tshark")
    path, summary = capture
    fields = ["frame.protocols", "ip.checksum.status", "tcp.checksum.status",
              "udp.checksum.status", "dns.qry.name", "tls.handshake.type",
              "tls.handshake.extensions_server_name", "dhcp.option.hostname", "http.host",
              "tcp.segments"]  # fmt: skip
    frames = _tshark_frames(tshark, path, fields)
    assert len(frames) == PACKETS

    def kind(protocols: str) -> str:
        layers = protocols.split(":")
        for name in ("arp", "dhcp", "mdns", "ssdp", "ntp", "dns", "quic", "tcp"):
            if name in layers:
                return name
        return "udp" if layers[-2:] == ["udp", "data"] else protocols

    assert Counter(kind(f["frame.protocols"]) for f in frames) == +summary.kinds
    assert not [f for f in frames if "_ws.malformed" in f["frame.protocols"]]
    for name in ("ip.checksum.status", "tcp.checksum.status", "udp.checksum.status"):
        assert {f[name] for f in frames} <= {"", "1"}, f"bad {name}"  # 1: good, 0: bad

    def values(field: str, where: str) -> set[str]:
        found = set()
        for f in frames:
            if where in f["frame.protocols"].split(":") and f[field]:
                found.update(f[field].split(","))
        return found

    hellos = [f for f in frames if "1" in f["tls.handshake.type"].split(",")]
    sni = "tls.handshake.extensions_server_name"
    assert {f[sni] for f in hellos if ":tcp:" in f["frame.protocols"]} == summary.tls_snis
    assert {f[sni] for f in hellos if ":quic:" in f["frame.protocols"]} == summary.quic_snis
    assert values("dns.qry.name", "dns") == summary.dns_names  # unicast DNS, not mDNS
    assert values("dhcp.option.hostname", "dhcp") == summary.dhcp_hostnames
    assert values("http.host", "http") == summary.http_hosts
    assert summary.split_tls_hellos >= 1 and summary.split_quic_hellos >= 1
    split = [f for f in hellos if f["tcp.segments"]]
    assert len(split) == summary.split_tls_hellos  # reassembled from two segments by tshark


def test_time_v_report_is_parsed():
    report = (
        '\tCommand being timed: "tcpdump -r x -w /dev/null"\n'
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 0:01.52\n"
        "\tMaximum resident set size (kbytes): 7424\n"
        "\tExit status: 0\n"
    )
    assert run_bench.parse_time_v(report) == (1.52, 7424 * 1024)


@pytest.mark.parametrize("gnu_time", [True, False], ids=["time-v", "getrusage"])
def test_measure_reports_the_child_peak_rss(gnu_time: bool, tmp_path: Path, monkeypatch):
    if gnu_time and not run_bench.GNU_TIME.exists():
        pytest.skip("GNU time is not installed (the getrusage fallback is tested instead)")
    if not gnu_time:
        monkeypatch.setattr(run_bench, "GNU_TIME", tmp_path / "no-such-time")
    command = [sys.executable, "-c", "import sys; block = bytearray(80_000_000); print(len(block))"]
    wall, rss, status = run_bench.measure(command, tmp_path, tmp_path / "out", timeout=60)
    assert status == 0 and wall > 0
    assert 80_000_000 <= rss < 200_000_000
    assert (tmp_path / "out").read_text().strip() == "80000000"
