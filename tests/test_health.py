"""Health: snapshots, stall and loss alerts, the Prometheus text, the stored report and the
``micwatch health`` command."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.config import load
from monitor.daemon import run_daemon
from monitor.events import AlertRaised, CaptureStats, Event, Tick
from monitor.health import (
    STORE_ALERT_AFTER_S,
    TEXTS,
    HealthMonitor,
    HealthReport,
    health_text,
    prometheus_text,
    snapshot,
    store_failure_cause,
)
from monitor.store import open_store

CAPTURE = Path(__file__).parent / "data" / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{sensor="((?:[^"\\]|\\.)*)"\} (\S+)$')


def parse_exposition(text: str) -> dict[str, tuple[str, float]]:
    """A strict little parser of the text format: every sample is preceded by its HELP and TYPE
    lines, names are valid, values are floats; returns {name: (type, value)}."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[str, tuple[str, float]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge")
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group(1)
            assert name in helps and name in types, f"{name} has no HELP/TYPE"
            assert name not in samples, f"{name} twice"
            samples[name] = (types[name], float(match.group(3)))
    return samples


def _stats(packets: int, received: int = 0, dropped: int = 0) -> dict[str, Any]:
    return {
        "packets": packets,
        "capture": {"kernel_received": received, "kernel_dropped": dropped},
    }


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def alerts(self) -> list[str]:
        return [e.alert.rule for e in self.events if isinstance(e, AlertRaised)]


def test_prometheus_text_parses_and_skips_unknown_values() -> None:
    snap = snapshot(1000.0, _stats(5000, 5000, 10), None, {"db_bytes": 12345, "dropped": 2})
    snap["temperature_c"] = None
    metrics = parse_exposition(prometheus_text(snap, sensor='home "1"'))
    assert metrics["micwatch_up"] == ("gauge", 1.0)
    assert metrics["micwatch_packets_total"] == ("counter", 5000.0)
    assert metrics["micwatch_kernel_dropped_total"] == ("counter", 10.0)
    assert metrics["micwatch_database_bytes"] == ("gauge", 12345.0)
    assert metrics["micwatch_process_resident_memory_bytes"][1] > 1e6
    assert "micwatch_temperature_celsius" not in metrics
    assert "micwatch_packets_per_second" not in metrics  # no previous snapshot yet
    assert parse_exposition(prometheus_text(None)) == {"micwatch_up": ("gauge", 0.0)}


def test_packets_come_from_the_source_while_the_pipeline_runs() -> None:
    stats = {"packets": 0, "capture": {"packets": 4200}}  # the pipeline's count lags mid-run
    assert snapshot(1.0, stats, None, None)["packets"] == 4200


def test_rates_and_loss_between_snapshots() -> None:
    first = snapshot(100.0, _stats(1000, 1000, 0), None, None)
    second = snapshot(160.0, _stats(7000, 6900, 100), first, None)
    assert second["packets_per_s"] == pytest.approx(100.0)
    assert second["loss_ratio"] == pytest.approx(100 / 6000)
    assert math.isfinite(second["cpu_percent"]) and second["disk_free_bytes"] > 0


def test_capture_stall_alerts_once_and_rearms() -> None:
    emit = Collect()
    monitor = HealthMonitor(emit, stall_after=300, loss_threshold=0.01)
    for ts in (0, 60, 120, 180, 240):
        monitor.on_capture_stats(CaptureStats(float(ts), _stats(100 + ts)))
    assert emit.alerts() == []
    for ts in (300, 360, 420, 480, 540, 600, 660):  # packets stop at 240
        monitor.on_capture_stats(CaptureStats(float(ts), _stats(340)))
    assert emit.alerts() == ["health-capture-stopped"]
    monitor.on_capture_stats(CaptureStats(720.0, _stats(400)))
    assert emit.alerts() == ["health-capture-stopped", "health-capture-resumed"]
    resumed = [e.alert for e in emit.events if isinstance(e, AlertRaised)][-1]
    assert "again after 8 min" in resumed.message  # idle since the last count change, at 240
    for ts in range(780, 1200, 60):
        monitor.on_capture_stats(CaptureStats(float(ts), _stats(400)))
    assert emit.alerts() == [
        "health-capture-stopped",
        "health-capture-resumed",
        "health-capture-stopped",
    ]
    reports = [e for e in emit.events if isinstance(e, HealthReport)]
    assert len(reports) == 20


def test_kernel_drops_above_threshold_alert() -> None:
    emit = Collect()
    monitor = HealthMonitor(emit, stall_after=300, loss_threshold=0.01)
    monitor.on_capture_stats(CaptureStats(0.0, _stats(0, 0, 0)))
    monitor.on_capture_stats(CaptureStats(60.0, _stats(1000, 1000, 5)))  # 0.5 %
    assert emit.alerts() == []
    monitor.on_capture_stats(CaptureStats(120.0, _stats(2000, 2000, 100)))  # ~9 %
    monitor.on_capture_stats(CaptureStats(180.0, _stats(3000, 3000, 300)))  # within the hour
    assert emit.alerts() == ["health-capture-loss"]
    alert = next(e.alert for e in emit.events if isinstance(e, AlertRaised))
    assert alert.level == "medium" and "missed 8.7%" in alert.message


def test_disk_low_alerts_once_and_rearms_when_space_returns() -> None:
    emit = Collect()
    monitor = HealthMonitor(emit, stall_after=300, loss_threshold=0.01, disk_min_free=10**18)
    monitor.on_capture_stats(CaptureStats(0.0, _stats(10)))
    monitor.on_capture_stats(CaptureStats(60.0, _stats(20)))
    assert emit.alerts() == ["health-disk-low"]  # no real disk has an exabyte free
    alert = next(e.alert for e in emit.events if isinstance(e, AlertRaised))
    assert alert.message.startswith("Only ") and " GB are free" in alert.message
    monitor.disk_min_free = 1  # now everything is plenty: re-armed, silent
    monitor.on_capture_stats(CaptureStats(120.0, _stats(30)))
    monitor.disk_min_free = 10**18
    monitor.on_capture_stats(CaptureStats(180.0, _stats(40)))
    assert emit.alerts() == ["health-disk-low"] * 2


class FakeStore:
    """A store whose :meth:`write_state` the test sets."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"failing_for_s": None, "pending_alerts": 0, "recreated": 0}

    def write_state(self) -> dict[str, Any]:
        return {"location": "/var/lib/micwatch/micwatch.db", "error": "", **self.state}


def test_store_failing_alerts_after_the_grace_once_then_recovered() -> None:
    emit = Collect()
    store = FakeStore()
    monitor = HealthMonitor(emit, stall_after=300, loss_threshold=0.01, store=store)
    monitor.on_tick(Tick(100.0, 99, []))
    failing = {"error": "database or disk is full", "pending_alerts": 3}
    store.state.update(failing, failing_for_s=STORE_ALERT_AFTER_S - 1)
    monitor.on_tick(Tick(101.0, 100, []))
    assert emit.alerts() == []  # a moment's failure is not worth telling
    for second in range(3):
        store.state["failing_for_s"] = STORE_ALERT_AFTER_S + second
        monitor.on_tick(Tick(102.0 + second, 101 + second, []))
    assert emit.alerts() == ["health-store-failing"]
    alert = next(e.alert for e in emit.events if isinstance(e, AlertRaised))
    assert alert.event["cause"] == "disk-full" and alert.level == "medium"
    assert alert.title == "Alerts cannot be saved"
    assert "disk holding micwatch's database is full (/var/lib/micwatch/micwatch.db)" in (
        alert.message
    )
    assert "3 alert(s) are kept in memory" in alert.message
    store.state.update(failing_for_s=None, pending_alerts=0)
    monitor.on_tick(Tick(130.0, 129, []))
    monitor.on_tick(Tick(131.0, 130, []))
    assert emit.alerts() == ["health-store-failing", "health-store-recovered"]
    recovered = [e.alert for e in emit.events if isinstance(e, AlertRaised)][-1]
    assert "again after 38 s" in recovered.message  # failing since 92 (102 - 10)
    store.state["recreated"] = 1
    monitor.on_tick(Tick(132.0, 131, []))
    assert emit.alerts()[-1] == "health-store-recreated"


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("database or disk is full", "disk-full"),
        ("[Errno 28] No space left on device", "disk-full"),
        ("database is locked", "locked"),
        ("attempt to write a readonly database", "read-only"),
        ("[Errno 30] Read-only file system: '/var/lib/micwatch/alerts.journal'", "read-only"),
        ('connection to server at "10.0.0.5", port 5432 failed: Connection refused', "unreachable"),
        ("consuming input failed: EOF detected", "unreachable"),
        ("server closed the connection unexpectedly", "unreachable"),
        ("disk I/O error", "error"),
    ],
)
def test_store_failure_causes(error: str, cause: str) -> None:
    assert store_failure_cause(error) == cause


def test_every_health_text_exists_in_english_and_french_and_renders_its_fields() -> None:
    event = {
        "idle_s": 360.0,
        "loss_ratio": 0.087,
        "disk_free_bytes": 5_240_000,
        "path": "/var/lib/micwatch",
        "pending_alerts": 2,
        "failing_s": 75.0,
        "error": "database is locked",
    }
    for rule, texts in TEXTS.items():
        assert set(texts) == {"en", "fr"}, rule
        causes = texts["en"][1]
        for cause in causes if isinstance(causes, dict) else [None]:
            english = health_text(rule, "en", {**event, "cause": cause})
            french = health_text(rule, "fr", {**event, "cause": cause})
            assert english is not None and french is not None
            assert english != french, (rule, cause)
            for text in (*english, *french):
                assert "unknown" not in text and "inconnu" not in text, (rule, cause, text)
    assert "8,7\u202f%" in health_text("health-capture-loss", "fr", event)[1]
    assert "5,2 Mo" in health_text("health-disk-low", "fr", event)[1]
    assert "6 min" in health_text("health-capture-stopped", "fr", event)[1]
    assert health_text("health-nothing", "en", event) is None
    assert health_text("health-disk-low", "de", event) is None
    assert health_text("health-store-failing", "en", {"cause": "odd"})[1].startswith(
        "micwatch cannot write to its database (unknown): unknown."
    )


def test_daemon_stores_health_and_cli_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load(None, env={}).replace(
        enrich__home=["FR"], store__state_dir=str(tmp_path), store__sensor="pi"
    )
    assert run_daemon(config, read=[str(CAPTURE)]) == 0
    capsys.readouterr()
    with open_store(config, writer=False) as reader:
        (report,) = reader.events("health")
    assert report["body"]["packets"] > 500 and report["body"]["db_bytes"] > 0
    flags = ["--store-state-dir", str(tmp_path), "--store-sensor", "pi"]
    assert main(["health", "--format", "prometheus", *flags]) == 0
    metrics = parse_exposition(capsys.readouterr().out)
    assert metrics["micwatch_packets_total"][1] == report["body"]["packets"]
    assert metrics["micwatch_database_bytes"][1] > 0
    assert main(["health", *flags]) == 0
    assert "micwatch_packets_total" in capsys.readouterr().out
    assert main(["health", "--store-state-dir", str(tmp_path), "--store-sensor", "other"]) == 1
