"""The router pipe: a capture command restarted when its pipe breaks, and ``-r -`` ending
cleanly when the pipe breaks mid-record. A local script stands in for ``ssh router tcpdump``."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.capture_command import CommandSource, open_command
from monitor.errors import CaptureError

MICWATCH_CAPTURE = [
    *(sys.executable, "-m", "monitor.cli", "capture"),
    *("--format", "jsonl", "--no-store", "--home", "FR"),
]


def stream_command(run_file: Path, per_run: int, break_runs: int) -> list[str]:
    return [sys.executable, "-m", "tests.pcap_stream", str(run_file), str(per_run), str(break_runs)]


def kill_writer(run_file: Path) -> bool:
    """Kill the stream writer that has written everything (it left its pid); True if one was."""
    pid_file = Path(f"{run_file}.pid")
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    os.kill(pid, signal.SIGKILL)
    return True


def test_every_packet_is_read_across_restarts_and_broken_records_counted(tmp_path: Path) -> None:
    run_file = tmp_path / "runs"
    source = CommandSource(stream_command(run_file, 10, 3), idle_interval=0.1)
    numbers: list[int] = []
    deadline = time.monotonic() + 30
    with source:
        for item in source:
            kill_writer(run_file)
            if item is not None:
                numbers.append(struct.unpack("!I", item[2][-4:])[0])
            if len(numbers) == 40 or time.monotonic() > deadline:
                break
    assert numbers == list(range(40))  # 4 runs of 10, in order, none lost
    stats = source.stats()
    assert stats["packets"] == 40 and stats["restarts"] == 3
    assert stats["truncated"] == 3  # each killed run ended inside a record


def heartbeats_for(source: CommandSource, seconds: float) -> None:
    end = time.monotonic() + seconds
    for _ in source:
        if time.monotonic() > end:
            break


def logged_waits(caplog) -> list[float]:
    """The waits before each restart, as logged ("restarting in 2s")."""
    found = [re.search(r"restarting in ([\d.]+)s", r.getMessage()) for r in caplog.records]
    return [float(m.group(1)) for m in found if m]


def test_restarts_back_off_doubling_up_to_the_maximum(caplog) -> None:
    failing = ["sh", "-c", "echo not a capture"]
    caplog.set_level(logging.WARNING)
    with CommandSource(failing, idle_interval=0.1) as doubling:
        heartbeats_for(doubling, 4.5)  # runs at 0 s, 1 s, 3 s (then 7 s)
    waits = logged_waits(caplog)
    assert waits[:3] == [1, 2, 4][: len(waits)] and len(waits) >= 2
    assert doubling.stats()["restarts"] in (len(waits) - 1, len(waits))  # one may be starting
    assert "not a pcap or pcapng capture" in caplog.text
    caplog.clear()
    with CommandSource(failing, retry_max=1, idle_interval=0.1) as capped:
        heartbeats_for(capped, 3.5)
    waits = logged_waits(caplog)
    assert len(waits) >= 3 and set(waits) == {1}


def test_stop_ends_a_quiet_command_promptly(tmp_path: Path) -> None:
    source = CommandSource(["sleep", "60"], idle_interval=0.1)
    started = time.monotonic()
    for item in source:
        assert item is None
        if time.monotonic() - started > 0.5:
            source.stop()
    source.close()
    assert time.monotonic() - started < 3


def test_a_missing_command_is_refused_when_opened() -> None:
    with pytest.raises(CaptureError, match="not found"):
        open_command("no-such-capture-tool -w -")
    with pytest.raises(CaptureError, match="empty"):
        open_command("  ")


def _summary(out: str) -> dict:
    records = [json.loads(line) for line in out.splitlines()]
    assert records[-1]["kind"] == "summary"
    return records[-1]


def test_capture_command_through_the_cli_restarts_and_counts(tmp_path: Path) -> None:
    run_file = tmp_path / "runs"
    command = " ".join(stream_command(run_file, 10, 1))
    daemon = subprocess.Popen(
        [*MICWATCH_CAPTURE, "--capture-command", command, "--flows"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not kill_writer(run_file):  # the first run, killed mid-record
        assert time.monotonic() < deadline and daemon.poll() is None
        time.sleep(0.1)
    while not Path(f"{run_file}.pid").exists():  # the second run, restarted, has written
        assert time.monotonic() < deadline and daemon.poll() is None
        time.sleep(0.1)
    last_writer = int(Path(f"{run_file}.pid").read_text())
    time.sleep(1)
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    summary = _summary(out)
    assert summary["capture"] == {"packets": 20, "bytes": 20 * 46, "truncated": 1, "restarts": 1}
    [flow] = [json.loads(line) for line in out.splitlines() if '"kind":"flow"' in line]
    assert flow["orig_pkts"] == 20 and flow["resp_port"] == 9999
    assert "restarting in 1s" in err
    with pytest.raises(ProcessLookupError):  # the running command was ended with the daemon
        os.kill(last_writer, 0)


def test_standard_input_ends_cleanly_when_the_pipe_breaks_mid_record(tmp_path: Path) -> None:
    run_file = tmp_path / "runs"
    writer = subprocess.Popen(stream_command(run_file, 5, 1), stdout=subprocess.PIPE)
    daemon = subprocess.Popen(
        [*MICWATCH_CAPTURE, "-r", "-"],
        stdin=writer.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writer.stdout.close()
    deadline = time.monotonic() + 30
    while not kill_writer(run_file):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    writer.wait(timeout=10)
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    capture = _summary(out)["capture"]
    assert capture["packets"] == 5 and capture["truncated"] == 1
