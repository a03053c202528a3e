"""Faults met by the running daemon: ``micwatch capture`` as its own process, its state directory
on a small tmpfs, its traffic from a capture command (:mod:`tests.pcap_feed`, real captures
replayed as if they happened now), its alerts printed as JSON lines and notified to a local
HTTP server.

For each fault (disk full, database locked, database deleted) the test raises it, sends a real
capture (12 s at its own pace) whose audio upload abroad must raise an alert meanwhile, and
checks that the daemon keeps running, says what is wrong (a health alert on its output and in a
notification), says when it is over, and that after the fault every alert raised is in the
database: none lost. A file system turning read-only under a running daemon cannot be made here
(the kernel refuses to remount read-only while files are open for writing): the store's
classification of that error is tested in ``tests/test_health.py`` and a read-only state
directory at start in ``tests/test_faults.py``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root, require_tool
from tests.test_faults import _fill, _tmpfs
from tests.test_notify import NtfyServer

REPO = Path(__file__).resolve().parent.parent
CAMERA = REPO / "tests" / "data" / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
AUDIO = "audio-upload-foreign"


class Daemon:
    """``micwatch capture`` reading the spool feeder, state in ``state``, notifying ``sink``."""

    def __init__(self, tmp_path: Path, state: Path, sink: NtfyServer) -> None:
        self.spool = tmp_path / "spool"
        self.spool.mkdir()
        self.state = state
        command = f"{sys.executable} -m tests.pcap_feed {self.spool}"
        argv = [sys.executable, "-m", "monitor.cli", "capture", "--capture-command", command]
        argv += ["--format", "jsonl", "--home", "FR", "--network-lan", "192.168.1.0/24"]
        argv += ["--store-state-dir", str(state), "--store-sensor", "pi"]
        argv += ["--capture-stats-interval", "1s", "--health-disk-min-free", "1MB"]
        argv += ["--notify-targets", f"json://127.0.0.1:{sink.port}/"]
        argv += ["--notify-group-window", "0s", "--notify-min-interval", "0s"]
        self.process = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.alerts: list[dict[str, Any]] = []
        threading.Thread(
            target=self._pump, args=(self.process.stdout, self.lines), daemon=True
        ).start()
        threading.Thread(target=lambda: self.log.extend(self.process.stderr), daemon=True).start()
        self._sent = 0
        deadline = time.monotonic() + 30
        while not (state / "micwatch.db").exists() and time.monotonic() < deadline:
            assert self.process.poll() is None, self.report()
            time.sleep(0.1)
        time.sleep(1.0)  # the capture command runs and the first seconds tick

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line)

    def send(self, capture: Path) -> None:
        """Stream ``capture`` from now on at its pace; returns once the feeder sent it all."""
        self._sent += 1
        staged = self.spool / f"{self._sent:03d}.tmp"
        shutil.copyfile(capture, staged)
        staged.rename(self.spool / f"{self._sent:03d}.pcap")
        deadline = time.monotonic() + 60
        while not (self.spool / f"{self._sent:03d}.pcap.done").exists():
            assert time.monotonic() < deadline, f"the feeder did not send {capture}"
            time.sleep(0.05)

    def wait_alert(self, rule: str, seconds: float) -> dict[str, Any]:
        """The first alert of ``rule`` printed (now or before), waiting up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            for alert in self.alerts:
                if alert["rule"] == rule:
                    return alert
            left = deadline - time.monotonic()
            assert left > 0 and self.process.poll() is None, f"no {rule} alert\n{self.report()}"
            with contextlib.suppress(queue.Empty):
                line = self.lines.get(timeout=min(left, 0.5))
                if '"kind":"alert"' in line:
                    self.alerts.append(json.loads(line))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def report(self) -> str:
        printed = sorted({alert["rule"] for alert in self.alerts})
        log = "".join(line for line in self.log if "WARNING capture:" not in line)
        return f"alerts printed: {printed}\ndaemon log:\n{log[-6000:]}"


def stored_alerts(state: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(state / "micwatch.db")) as conn:
        return [rule for (rule,) in conn.execute("SELECT rule FROM alerts ORDER BY id")]


@pytest.fixture
def sink() -> Iterator[NtfyServer]:
    server = NtfyServer()
    yield server
    server.close()


@contextlib.contextmanager
def running(tmp_path: Path, sink: NtfyServer, size: str = "16m") -> Iterator[Daemon]:
    require_root()
    require_tool("mount")
    with _tmpfs(tmp_path / "state", size) as state:
        daemon = Daemon(tmp_path, state, sink)
        try:
            yield daemon
        finally:
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait(timeout=30)


def told(sink: NtfyServer, text: str, seconds: float = 15.0) -> bool:
    """Whether a notification containing ``text`` arrived (waiting up to ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(text in f"{m.get('title')}\n{m.get('message')}" for m in list(sink.messages)):
            return True
        time.sleep(0.2)
    return False


def test_disk_full_is_told_and_no_alert_is_lost(tmp_path: Path, sink: NtfyServer) -> None:
    with running(tmp_path, sink) as daemon:
        _fill(daemon.state / "filler")
        daemon.send(CAMERA)
        daemon.wait_alert(AUDIO, 20)
        failing = daemon.wait_alert("health-store-failing", 40)
        assert failing["event"]["cause"] == "disk-full", failing
        assert failing["event"]["pending_alerts"] >= 1
        low = daemon.wait_alert("health-disk-low", 10)
        assert str(daemon.state) in low["message"]
        assert told(sink, "Alerts cannot be saved"), sink.messages
        assert told(sink, "The disk holding micwatch's database is full")
        (daemon.state / "filler").unlink()
        daemon.wait_alert("health-store-recovered", 30)
        assert told(sink, "Alerts are saved again")
        assert daemon.stop() == 0, daemon.report()
        stored = stored_alerts(daemon.state)
        assert not (daemon.state / "alerts.journal").stat().st_size  # all in the database
    for rule in (AUDIO, "health-store-failing", "health-disk-low", "health-store-recovered"):
        assert rule in stored, (rule, stored)


def test_locked_database_is_told_and_no_alert_is_lost(tmp_path: Path, sink: NtfyServer) -> None:
    with running(tmp_path, sink) as daemon:
        lock = sqlite3.connect(daemon.state / "micwatch.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            daemon.send(CAMERA)
            daemon.wait_alert(AUDIO, 20)
            failing = daemon.wait_alert("health-store-failing", 60)
            assert failing["event"]["cause"] == "locked", failing
            assert "locked for" in failing["message"]
            assert told(sink, "Another program has kept micwatch's database locked")
            assert lock.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
        finally:
            lock.execute("COMMIT")
            lock.close()
        daemon.wait_alert("health-store-recovered", 30)
        assert daemon.stop() == 0, daemon.report()
        stored = stored_alerts(daemon.state)
    assert AUDIO in stored and "health-store-failing" in stored, stored


def test_deleted_database_is_made_again_and_told(tmp_path: Path, sink: NtfyServer) -> None:
    with running(tmp_path, sink) as daemon:
        for name in ("micwatch.db", "micwatch.db-wal", "micwatch.db-shm"):
            with contextlib.suppress(FileNotFoundError):
                (daemon.state / name).unlink()
        daemon.send(CAMERA)
        daemon.wait_alert(AUDIO, 20)
        recreated = daemon.wait_alert("health-store-recreated", 20)
        assert "was deleted while micwatch was running" in recreated["message"]
        assert told(sink, "The database was deleted")
        assert daemon.stop() == 0, daemon.report()
        stored = stored_alerts(daemon.state)
    assert AUDIO in stored and "health-store-recreated" in stored, stored
