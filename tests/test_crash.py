"""``kill -9`` of the capture daemon while it writes: no alert is lost, committed rows survive,
the database stays consistent, and the next start recovers without manual steps."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import dpkt

from monitor.config import load
from monitor.store import DB_FILE, open_store

CAPTURE = Path(__file__).parent / "data" / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
CAMERA = "78:df:72:24:69:4d"
OTHER = "02:00:00:00:00:02"


def _filler(start: float, seconds: int, mac: str) -> list[tuple[float, bytes]]:
    """One small LAN UDP packet per second from ``mac``: capture time moves on."""
    frames = []
    for i in range(seconds):
        udp = dpkt.udp.UDP(sport=40000, dport=9999, data=b"tick")
        udp.ulen = len(udp)
        ip = dpkt.ip.IP(src=bytes([192, 168, 1, 50]), dst=bytes([192, 168, 1, 1]), p=17, data=udp)
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(
            src=bytes.fromhex(mac.replace(":", "")), dst=b"\x00\x11\x22\x33\x44\x55", data=ip
        )
        frames.append((start + i, bytes(eth)))
    return frames


def _pcap(frames: list[tuple[float, bytes]], header: bool) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
    for ts, frame in frames:
        writer.writepkt(frame, ts)
    data = out.getvalue()
    return data if header else data[24:]


def _camera_then_quiet() -> tuple[bytes, float]:
    """The camera's capture moved to the last minutes (so retention keeps it), then quiet."""
    with CAPTURE.open("rb") as f:
        frames = [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]
    shift = time.time() - 120 - frames[0][0]
    frames = [(ts + shift, frame) for ts, frame in frames]
    last = frames[-1][0]
    return _pcap(frames + _filler(last + 1, 30, "02:00:00:00:00:01"), header=True), last + 31


class Daemon:
    """``micwatch capture -r -`` fed through its standard input, its JSON lines read back."""

    def __init__(self, state: Path) -> None:
        command = [sys.executable, "-m", "monitor.cli", "capture", "-r", "-", "--format", "jsonl"]
        command += ["--home", "FR", "--store-state-dir", str(state), "--store-sensor", "pi"]
        env = {**os.environ, "MICWATCH_NOTIFY_TARGETS": "", "MICWATCH_NOTIFY_MQTT": ""}
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def feed(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_for_alert(self, rule: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                record = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if record.get("kind") == "alert" and record["rule"] == rule:
                return record
        self.proc.kill()
        raise AssertionError(f"no {rule} alert; stderr: {self.proc.stderr.read().decode()}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL


def _integrity(state: Path) -> str:
    with sqlite3.connect(state / DB_FILE) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def _restart(state: Path) -> None:
    """The next start: the daemon on an empty capture (header only) runs and exits cleanly."""
    empty = state.parent / "empty.pcap"
    empty.write_bytes(_pcap([], header=True))
    command = [sys.executable, "-m", "monitor.cli", "capture", "-r", str(empty), "--home", "FR"]
    command += ["--store-state-dir", str(state), "--store-sensor", "pi"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _reader(state: Path):
    config = load(None, env={}).replace(store__state_dir=str(state), store__sensor="pi")
    return open_store(config, writer=False)


def test_kill9_right_after_an_alert_loses_no_alert(tmp_path: Path) -> None:
    state = tmp_path / "state"
    daemon = Daemon(state)
    data, _end = _camera_then_quiet()
    daemon.feed(data)
    raised = daemon.wait_for_alert("audio-upload-foreign")
    daemon.kill9()  # the alert was printed after the store took it: it must survive
    assert _integrity(state) == "ok"
    _restart(state)
    with _reader(state) as reader:
        alerts = reader.alerts(rule="audio-upload-foreign")
    assert len(alerts) == 1  # recovered once, never duplicated
    assert alerts[0]["ts"] == raised["ts"] and alerts[0]["message"] == raised["message"]
    assert (state / "alerts.journal").read_bytes() == b""


def test_kill9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    state = tmp_path / "state"
    daemon = Daemon(state)
    data, end = _camera_then_quiet()
    daemon.feed(data)
    daemon.wait_for_alert("audio-upload-foreign")
    time.sleep(1.6)  # more than one batch interval (store.batch_seconds = 1 s)
    daemon.feed(_pcap(_filler(end, 5, OTHER), header=False))  # the last second's rows
    daemon.kill9()
    assert _integrity(state) == "ok"
    with _reader(state) as reader:
        camera = reader.device(CAMERA)
        bursts = reader.bursts(device=CAMERA)
        alerts = reader.alerts()
    assert camera is not None and camera["category"] == "camera"
    assert [b["shape"] for b in bursts] == ["audio"]
    assert {"new-device", "audio-upload-foreign"} <= {a["rule"] for a in alerts}
    _restart(state)
    with _reader(state) as reader:
        assert reader.device(CAMERA) is not None
        assert len(reader.alerts(rule="audio-upload-foreign")) == 1
