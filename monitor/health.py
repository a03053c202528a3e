"""Health of the sensor itself: capture loss, packet rate, CPU, memory, temperature, disk, store.

:class:`HealthMonitor` is an event handler. At each :class:`~monitor.events.CaptureStats` (every
``capture.stats_interval`` live, and once at the end of a run) it takes a :func:`snapshot`,
emits it as a :class:`HealthReport` (the store keeps it as a ``health`` event that the dashboard
shows) and raises an alert (rule ``health-capture-stopped`` or ``health-capture-loss``, level
``medium``, through the chain so the store and the notifiers get it) when:

- no packet arrived between reports spanning at least ``stall_after`` seconds of capture time
  (live, capture time follows the wall clock when no packet arrives); once per stall, re-armed
  when packets flow again;
- the kernel dropped more than ``loss_threshold`` of the packets it saw since the previous
  report; at most once an hour.

:func:`prometheus_text` renders a snapshot in the Prometheus text exposition format (version
0.0.4); :func:`store_metrics_text` does it from the newest stored report, for the dashboard's
``/metrics``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psutil

from monitor.events import AlertRaised, CaptureStats, Event
from monitor.model import Alert

#: Seconds between two capture-loss alerts.
LOSS_ALERT_EVERY_S = 3600.0


@dataclass(slots=True)
class HealthReport(Event):
    """A health snapshot was taken (at each :class:`~monitor.events.CaptureStats`)."""

    event_name: ClassVar[str] = "health_report"

    ts: float
    snapshot: dict[str, Any]


def _temperature() -> float | None:
    sensors = getattr(psutil, "sensors_temperatures", None)
    try:
        readings = sensors() if sensors is not None else {}
    except OSError:
        return None
    values = [t.current for entries in readings.values() for t in entries if t.current]
    return max(values) if values else None


def system_snapshot(disk_path: str | Path = "/") -> dict[str, Any]:
    """The machine and this process: CPU (percent since the previous call), memory, the
    hottest temperature sensor (None without sensors) and the disk holding ``disk_path``."""
    process = psutil.Process()
    disk = psutil.disk_usage(str(disk_path) if os.path.exists(disk_path) else "/")
    return {
        "cpu_percent": psutil.cpu_percent(None),
        "process_cpu_percent": process.cpu_percent(None),
        "rss_bytes": process.memory_info().rss,
        "memory_used_ratio": psutil.virtual_memory().percent / 100.0,
        "temperature_c": _temperature(),
        "disk_free_bytes": disk.free,
        "disk_used_ratio": disk.percent / 100.0,
    }


def snapshot(
    ts: float,
    stats: dict[str, Any],
    previous: dict[str, Any] | None,
    store_stats: dict[str, Any] | None,
    disk_path: str | Path = "/",
) -> dict[str, Any]:
    """One health snapshot from the pipeline's counters, the previous snapshot (for rates) and
    the store's counters."""
    capture = stats.get("capture", {})
    dropped = int(capture.get("kernel_dropped", 0))
    received = int(capture.get("kernel_received", 0))
    # The pipeline copies its packet counter back only when a run ends; the source counts as
    # it goes, so a report in the middle of a live capture takes the larger of the two.
    packets = max(int(stats.get("packets", 0)), int(capture.get("packets", 0)))
    snap: dict[str, Any] = {
        "ts": ts,
        "packets": packets,
        "malformed": int(stats.get("malformed", 0)),
        "flows_active": int(stats.get("flows_active", 0)),
        "handler_errors": int(stats.get("handler_errors", 0)),
        "kernel_received": received,
        "kernel_dropped": dropped,
        "packets_per_s": None,
        "loss_ratio": None,
        "last_packet_ts": stats.get("last_ts"),
    }
    if previous is not None and ts > previous["ts"]:
        snap["packets_per_s"] = max(0, packets - previous["packets"]) / (ts - previous["ts"])
        seen = (received - previous["kernel_received"]) + (dropped - previous["kernel_dropped"])
        lost = dropped - previous["kernel_dropped"]
        snap["loss_ratio"] = lost / seen if seen > 0 and lost >= 0 else 0.0
    snap.update(system_snapshot(disk_path))
    if store_stats is not None:
        snap.update(
            db_bytes=store_stats.get("db_bytes"),
            store_write_failures=store_stats.get("write_failures", 0),
            store_dropped=store_stats.get("dropped", 0),
            store_failed=store_stats.get("failed", 0),
            store_queued=store_stats.get("queued", 0),
        )
    return snap


class HealthMonitor:
    """Snapshots, health reports and health alerts; see the module docstring."""

    def __init__(
        self,
        emit: Callable[[Event], None],
        *,
        stall_after: float,
        loss_threshold: float,
        store: Any = None,
        disk_path: str | Path = "/",
    ) -> None:
        self.emit = emit
        self.stall_after = stall_after
        self.loss_threshold = loss_threshold
        self.store = store
        self.disk_path = disk_path
        self.last: dict[str, Any] | None = None
        self._packets_since: tuple[int, float] | None = None
        self._stalled = False
        self._loss_alerted = -math.inf

    def on_capture_stats(self, event: CaptureStats) -> None:
        store_stats = self.store.stats() if self.store is not None else None
        snap = snapshot(event.ts, event.stats, self.last, store_stats, self.disk_path)
        self.last = snap
        self.emit(HealthReport(event.ts, snap))
        self._check_stall(event.ts, snap["packets"])
        ratio = snap["loss_ratio"]
        loss = ratio is not None and ratio > self.loss_threshold
        if loss and event.ts - self._loss_alerted >= LOSS_ALERT_EVERY_S:
            self._loss_alerted = event.ts
            self._alert(
                "health-capture-loss",
                event.ts,
                "Capture is losing packets",
                f"micwatch missed {ratio:.1%} of the packets in the last few minutes: "
                "the sensor is too busy, so some uploads may go unnoticed.",
                LOSS_ALERT_EVERY_S,
                snap,
            )

    def _check_stall(self, ts: float, packets: int) -> None:
        if self._packets_since is None or packets != self._packets_since[0]:
            self._packets_since = (packets, ts)
            self._stalled = False
            return
        idle = ts - self._packets_since[1]
        if not self._stalled and idle >= self.stall_after:
            self._stalled = True
            minutes = max(1, round(idle / 60))
            self._alert(
                "health-capture-stopped",
                ts,
                "Capture has stopped",
                f"micwatch has received no packet for {minutes} minute"
                f"{'s' if minutes > 1 else ''}: it cannot see what the devices send. "
                "Check the sensor's network cable or mirror port.",
                self.stall_after,
                {"packets": packets, "idle_s": idle},
            )

    def _alert(
        self, rule: str, ts: float, title: str, message: str, every: float, body: dict[str, Any]
    ) -> None:
        alert = Alert(
            rule=rule,
            level="medium",
            ts=ts,
            message=message,
            device_mac=None,
            dest=None,
            event=dict(body),
            suppression_key=rule,
            suppressed_until=ts + every,
            title=title,
        )
        self.emit(AlertRaised(alert))


# --- Prometheus ---

#: snapshot key -> (metric name, type, help)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("packets", "micwatch_packets_total", "counter", "Packets captured since the start."),
    ("malformed", "micwatch_malformed_packets_total", "counter", "Malformed packets skipped."),
    ("kernel_dropped", "micwatch_kernel_dropped_total", "counter", "Packets the kernel dropped."),
    ("packets_per_s", "micwatch_packets_per_second", "gauge", "Packet rate since last report."),
    ("loss_ratio", "micwatch_capture_loss_ratio", "gauge", "Share of packets dropped lately."),
    ("flows_active", "micwatch_flows_active", "gauge", "Flows in the flow table."),
    ("handler_errors", "micwatch_handler_errors_total", "counter", "Contained handler errors."),
    ("cpu_percent", "micwatch_system_cpu_percent", "gauge", "System CPU use in percent."),
    ("process_cpu_percent", "micwatch_process_cpu_percent", "gauge", "Daemon CPU in percent."),
    ("rss_bytes", "micwatch_process_resident_memory_bytes", "gauge", "Daemon resident memory."),
    ("memory_used_ratio", "micwatch_system_memory_used_ratio", "gauge", "System memory in use."),
    ("temperature_c", "micwatch_temperature_celsius", "gauge", "Hottest temperature sensor."),
    ("disk_free_bytes", "micwatch_disk_free_bytes", "gauge", "Free space on the state disk."),
    ("disk_used_ratio", "micwatch_disk_used_ratio", "gauge", "Used share of the state disk."),
    ("db_bytes", "micwatch_database_bytes", "gauge", "Database size in bytes."),
    ("store_write_failures", "micwatch_store_write_failures_total", "counter", "Failed writes."),
    ("store_dropped", "micwatch_store_dropped_total", "counter", "Rows dropped by the queue."),
    ("store_queued", "micwatch_store_queued", "gauge", "Rows waiting to be written."),
    ("ts", "micwatch_last_report_timestamp_seconds", "gauge", "Time of this health report."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def prometheus_text(snap: dict[str, Any] | None, sensor: str = "") -> str:
    """The snapshot in the Prometheus text format: ``# HELP``/``# TYPE`` then one sample per
    metric, labelled ``sensor``; metrics whose value is unknown (None) are left out.
    ``micwatch_up`` is 1 with a snapshot, 0 without."""
    labels = f'{{sensor="{_label(sensor)}"}}'
    lines = [
        "# HELP micwatch_up Whether a health report is available.",
        "# TYPE micwatch_up gauge",
        f"micwatch_up{labels} {1 if snap else 0}",
    ]
    for key, name, kind, help_text in METRICS:
        value = (snap or {}).get(key)
        if value is None:
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines.append(f"{name}{labels} {_number(value)}")
    return "\n".join(lines) + "\n"


def latest_snapshot(reader: Any) -> dict[str, Any] | None:
    """The newest stored health snapshot of the reader's sensor, or None."""
    rows = reader.events("health", limit=1)
    return rows[0]["body"] if rows else None


def store_metrics_text(reader: Any) -> str:
    """``/metrics`` for the dashboard: the newest stored snapshot (its database size refreshed
    now) in the Prometheus text format."""
    snap = latest_snapshot(reader)
    if snap is not None:
        from monitor.store_cap import database_bytes

        snap = {**snap, "db_bytes": database_bytes(reader.engine)}
    return prometheus_text(snap, reader.sensor)
