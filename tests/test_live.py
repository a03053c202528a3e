"""``micwatch capture`` on a live interface, between two network namespaces.

Known traffic (a DNS lookup, a TLS connection with a real ClientHello, a timed upload, UDP
datagrams) goes from host ``a`` to host ``b``; micwatch captures on ``a``'s interface and must
report the flows, their names and their byte counts exactly, and the upload as a burst soon after
it ends. A second test floods the link and checks that drops are counted and reported.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import require_root, require_tool
from tests.netns import Pair, veth_pair

NAME = "voice.example.org"


def start(pair: Pair, ns: str, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        pair.cmd(ns, *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def start_daemon(pair: Pair, *extra: str) -> subprocess.Popen:
    """``micwatch capture`` on host a's interface, printing JSON lines (home set FR); ``extra``
    arguments are added (without ``--store-db`` it writes no database)."""
    store = [] if any(arg.startswith("--store-db") for arg in extra) else ["--no-store"]
    argv = ["capture", "-i", pair.if_a, "--format", "jsonl", "--home", "FR", *store, *extra]
    daemon = start(pair, pair.ns_a, sys.executable, "-m", "monitor.cli", *argv)
    time.sleep(1.5)  # let it open the interface
    assert daemon.poll() is None, daemon.stderr.read()
    return daemon


def stop(process: subprocess.Popen) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=30)


@pytest.fixture
def pair():
    require_root()
    require_tool("ip")
    with veth_pair(subnet=7) as made:
        yield made


def test_live_capture_reports_flows_names_bytes_and_the_burst(pair: Pair) -> None:
    server = start(
        pair,
        pair.ns_b,
        sys.executable,
        "-m",
        "tests.live_peers",
        "server",
        pair.ip_b,
        pair.remote_b,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        daemon = start_daemon(pair, "--flows")
        client = subprocess.run(
            pair.cmd(
                pair.ns_a,
                sys.executable,
                "-m",
                "tests.live_peers",
                "client",
                pair.ip_b,
                pair.remote_b,
                NAME,
                "120000",
                "4",
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        sent = json.loads(client.stdout)
        lines: list[str] = []
        deadline = time.time() + 15
        while time.time() < deadline and not any('"kind":"burst"' in line for line in lines):
            lines.append(daemon.stdout.readline())
        burst_seen = time.time()
        out, err = stop(daemon)
    finally:
        server.kill()
        server.wait(timeout=10)
    records = [json.loads(line) for line in lines + out.splitlines() if line.strip()]
    assert daemon.returncode == 0, err
    flows = [r for r in records if r["kind"] == "flow"]
    tls = [f for f in flows if f["resp_ip"] == pair.remote_b and f["resp_port"] == 443]
    assert len(tls) == 1
    assert tls[0]["orig_bytes"] == sent["hello"] + sent["upload"]
    assert tls[0]["service"] == "tls" and tls[0]["server_name"] == NAME
    assert tls[0]["orig_ip"] == pair.ip_a and tls[0]["state"] in ("SF", "S1", "S2", "S3")
    udp = [f for f in flows if f["resp_ip"] == pair.remote_b and f["resp_port"] == 9999]
    assert len(udp) == 1 and udp[0]["orig_bytes"] == 1000 and udp[0]["orig_pkts"] == 10
    assert udp[0]["server_name"] == NAME  # named by passive DNS: no SNI on this flow
    dns = [f for f in flows if f["resp_port"] == 53]
    assert dns and dns[0]["service"] == "dns"
    device = next(r for r in records if r["kind"] == "device" and pair.ip_a in r["ips"])
    assert NAME in device["domains"]
    [burst] = [r for r in records if r["kind"] == "burst"]
    assert burst["dest"]["ip"] == pair.remote_b and burst["dest"]["org"] == "example.org"
    # The upload, and the UDP datagrams to the same organisation right after it.
    assert 100_000 <= burst["bytes_up"] <= sent["hello"] + sent["upload"] + 1000
    assert burst["shape"] == "audio"  # 30 kB/s for 4 s, upstream only
    # Reported while capture runs, within a few seconds of the upload's end.
    assert burst_seen - sent["finished"] < 6.0
    summary = records[-1]
    assert summary["kind"] == "summary" and summary["malformed"] == 0


def test_live_flood_counts_what_the_kernel_dropped(pair: Pair) -> None:
    daemon = start_daemon(pair, "--capture-buffer-size", "65536")
    flood = subprocess.run(
        pair.cmd(pair.ns_a, sys.executable, "-m", "tests.live_peers", "flood", pair.remote_b, "3"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sent = json.loads(flood.stdout)["sent"]
    daemon.send_signal(signal.SIGUSR1)  # statistics on demand, in the log
    time.sleep(1.5)
    out, err = stop(daemon)
    assert "capture: " in err and "kernel drops" in err
    assert daemon.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    capture = summary["capture"]
    seen = summary["packets"]
    dropped = capture["kernel_dropped"]
    print(f"flood: sent {sent} packets, micwatch read {seen}, kernel dropped {dropped}")
    assert sent > 10_000
    assert seen + dropped >= sent * 0.95  # everything sent is either read or counted as dropped
    assert seen <= sent + 100


@pytest.fixture
def jumbo_pair():
    require_root()
    require_tool("ip")
    with veth_pair(subnet=8, mtu=9000) as made:
        yield made


def line_reader(stream) -> queue.Queue:
    """Lines of ``stream`` in a queue, read by a thread, so a test can wait with a timeout."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_live_alert_reaches_the_cli_and_the_store_within_5_seconds(
    jumbo_pair: Pair, tmp_path
) -> None:
    """The Xiaobai camera's two-way talk, replayed at real speed onto the veth, raises the
    audio-upload alert on stdout and in the database within 5 s of the burst's end."""
    from monitor.store import StoreReader

    pair = jumbo_pair
    db = tmp_path / "micwatch.db"
    capture = "tests/data/iot/lifecycle_xiaobaiY2cam_speak_remote.pcap"
    daemon = start_daemon(
        pair,
        "--network-lan",
        "192.168.1.0/24",
        "--store-db",
        f"sqlite:///{db}",
        "--store-sensor",
        "test",
    )
    lines = line_reader(daemon.stdout)
    replayer = start(
        pair, pair.ns_b, sys.executable, "-m", "tests.live_peers", "replay", pair.if_b, capture
    )
    alert = seen_at = stored_at = None
    reader = StoreReader(f"sqlite:///{db}", sensor="test")
    try:
        deadline = time.time() + 40
        while time.time() < deadline and alert is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if '"kind":"alert"' in line and '"audio-upload-foreign"' in line:
                alert, seen_at = json.loads(line), time.time()
        while alert is not None and time.time() < deadline and stored_at is None:
            if any(a["rule"] == "audio-upload-foreign" for a in reader.alerts()):
                stored_at = time.time()
            time.sleep(0.05)
        replayed = json.loads(replayer.communicate(timeout=30)[0])
    finally:
        # stdout belongs to the reader thread: stop the daemon and read only its log.
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        log = daemon.stderr.read()
        reader.close()
    assert alert is not None, f"no audio alert within 40 s; daemon log:\n{log}"
    burst_end = alert["event"]["ts_end"]
    print(
        f"replayed {replayed['sent']} frames; alert on stdout {seen_at - burst_end:.2f} s and "
        f"in the store {stored_at - burst_end:.2f} s after the burst ended"
    )
    assert alert["level"] == "high" and "CN" in alert["message"]
    assert 0 < seen_at - burst_end < 5.0
    assert stored_at is not None and stored_at - burst_end < 5.0
