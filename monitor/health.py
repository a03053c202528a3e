"""Health of the sensor itself: capture loss, packet rate, CPU, memory, temperature, disk, store.

:class:`HealthMonitor` is an event handler. At each :class:`~monitor.events.CaptureStats` (every
``capture.stats_interval`` live, and once at the end of a run) it takes a :func:`snapshot` and
emits it as a :class:`HealthReport` (the store keeps it as a ``health`` event that the dashboard
shows). It raises health alerts (level ``medium``, through the chain so the store, the printer
and the notifiers get them; rule ids start with ``health-``) when:

- ``health-capture-stopped``: no packet arrived between reports spanning at least
  ``stall_after`` seconds of capture time (live, capture time follows the wall clock when no
  packet arrives); once per stall; ``health-capture-resumed`` when packets flow again;
- ``health-capture-loss``: the kernel dropped more than ``loss_threshold`` of the packets it saw
  since the previous report; at most once an hour;
- ``health-disk-low``: the disk holding the state directory has less than ``disk_min_free``
  bytes free; once, re-armed when twice that is free again;
- ``health-store-failing``: the store has failed to write for :data:`STORE_ALERT_AFTER_S`
  seconds (checked every second, at each :class:`~monitor.events.Tick`, from the store's
  :meth:`~monitor.store.Store.write_state`, which never touches the database); the event names
  the cause (``disk-full``, ``locked``, ``read-only``, ``unreachable`` or ``error``) and how
  many alerts wait in memory; once per outage, then ``health-store-recovered`` when writes work
  again (the waiting alerts are then written: none is lost);
- ``health-store-recreated``: the database file was deleted while micwatch ran and a new, empty
  one was made.

Every health alert's title and message come from :data:`TEXTS` through :func:`health_text`, in
English for the alert itself and in any language of :data:`TEXTS` for those who show it again
(the dashboard, notifications).

:func:`prometheus_text` renders a snapshot in the Prometheus text exposition format (version
0.0.4); :func:`store_metrics_text` does it from the newest stored report, for the dashboard's
``/metrics``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psutil

from monitor.events import AlertRaised, CaptureStats, Event, Tick
from monitor.model import Alert
from rules.fields_template import Template

#: Seconds between two capture-loss alerts.
LOSS_ALERT_EVERY_S = 3600.0
#: Seconds the store may fail to write before a health alert says so (a database locked for a
#: moment by the dashboard's own writes must not alarm anyone).
STORE_ALERT_AFTER_S = 10.0

_KEPT_EN = "{pending_alerts} alert(s) are kept in memory and will be saved"
_KEPT_FR = "{pending_alerts} alerte(s) sont gardées en mémoire et seront enregistrées"

#: rule -> language -> (title, message template); for ``health-store-failing`` the message is
#: chosen by the event's ``cause``. Templates use :mod:`rules.fields_template`'s syntax.
TEXTS: dict[str, dict[str, tuple[str, str | dict[str, str]]]] = {
    "health-capture-stopped": {
        "en": (
            "Capture has stopped",
            "micwatch has received no packet for {idle_s:duration}: it cannot see what the "
            "devices send. Check the sensor's network cable or mirror port.",
        ),
        "fr": (
            "La capture s'est arrêtée",
            "micwatch ne reçoit plus aucun paquet depuis {idle_s:duration} : il ne voit plus ce "
            "que les appareils envoient. Vérifiez le câble réseau du capteur ou le port miroir.",
        ),
    },
    "health-capture-resumed": {
        "en": (
            "Capture has resumed",
            "micwatch receives packets again after {idle_s:duration} without any.",
        ),
        "fr": (
            "La capture a repris",
            "micwatch reçoit de nouveau des paquets après {idle_s:duration} sans aucun.",
        ),
    },
    "health-capture-loss": {
        "en": (
            "Capture is losing packets",
            "micwatch missed {loss_ratio:percent} of the packets in the last few minutes: the "
            "sensor is too busy, so some uploads may go unnoticed.",
        ),
        "fr": (
            "La capture perd des paquets",
            "micwatch a manqué {loss_ratio:percent} des paquets ces dernières minutes : le "
            "capteur est trop occupé, certains envois peuvent passer inaperçus.",
        ),
    },
    "health-disk-low": {
        "en": (
            "The sensor's disk is almost full",
            "Only {disk_free_bytes:size} are free on the disk holding micwatch's data "
            "({path}). Once it is full, new alerts can only be kept in memory: free some space "
            "or lower store.max_size.",
        ),
        "fr": (
            "Le disque du capteur est presque plein",
            "Il ne reste que {disk_free_bytes:size} de libre sur le disque qui contient les "
            "données de micwatch ({path}). Une fois plein, les nouvelles alertes ne pourront "
            "être gardées qu'en mémoire : libérez de l'espace ou réduisez store.max_size.",
        ),
    },
    "health-store-failing": {
        "en": (
            "Alerts cannot be saved",
            {
                "disk-full": "The disk holding micwatch's database is full ({path}). "
                + _KEPT_EN
                + " when space is freed: free some space on the sensor.",
                "locked": "Another program has kept micwatch's database locked for "
                "{failing_s:duration} ({path}). " + _KEPT_EN + " when it lets go.",
                "read-only": "micwatch's database can no longer be written: its file system is "
                "read-only ({path}). " + _KEPT_EN + " when it is writable again.",
                "unreachable": "micwatch cannot reach its database ({path}) for "
                "{failing_s:duration}: {error}. " + _KEPT_EN + " when it answers again.",
                "error": "micwatch cannot write to its database ({path}): {error}. "
                + _KEPT_EN
                + " as soon as it can; it keeps trying.",
            },
        ),
        "fr": (
            "Les alertes ne peuvent pas être enregistrées",
            {
                "disk-full": "Le disque qui contient la base de données de micwatch est plein "
                "({path}). " + _KEPT_FR + " dès que de la place sera libérée : libérez de "
                "l'espace sur le capteur.",
                "locked": "Un autre programme bloque la base de données de micwatch depuis "
                "{failing_s:duration} ({path}). " + _KEPT_FR + " dès qu'il la libérera.",
                "read-only": "La base de données de micwatch ne peut plus être écrite : son "
                "système de fichiers est en lecture seule ({path}). "
                + _KEPT_FR
                + " dès qu'il sera de nouveau accessible en écriture.",
                "unreachable": "micwatch ne joint plus sa base de données ({path}) depuis "
                "{failing_s:duration} : {error}. " + _KEPT_FR + " dès qu'elle répondra.",
                "error": "micwatch ne peut pas écrire dans sa base de données ({path}) : "
                "{error}. " + _KEPT_FR + " dès que possible ; il réessaie sans cesse.",
            },
        ),
    },
    "health-store-recovered": {
        "en": (
            "Alerts are saved again",
            "micwatch's database accepts writes again after {failing_s:duration} ({path}); "
            "the alerts kept in memory meanwhile are saved.",
        ),
        "fr": (
            "Les alertes sont de nouveau enregistrées",
            "La base de données de micwatch accepte de nouveau les écritures après "
            "{failing_s:duration} ({path}) ; les alertes gardées en mémoire entre-temps sont "
            "enregistrées.",
        ),
    },
    "health-store-recreated": {
        "en": (
            "The database was deleted",
            "micwatch's database ({path}) was deleted while micwatch was running. A new, empty "
            "one was made and monitoring goes on; the history recorded before is gone.",
        ),
        "fr": (
            "La base de données a été supprimée",
            "La base de données de micwatch ({path}) a été supprimée pendant qu'il "
            "fonctionnait. Une nouvelle base vide a été créée et la surveillance continue ; "
            "l'historique enregistré auparavant est perdu.",
        ),
    },
}


def health_text(rule: str, language: str, event: dict[str, Any]) -> tuple[str, str] | None:
    """(title, message) of the health alert ``rule`` in ``language``, its message rendered from
    the alert's ``event``; None for a rule or a language :data:`TEXTS` does not have. Never
    raises on an odd event (missing values render as "unknown")."""
    texts = TEXTS.get(rule, {}).get(language)
    if texts is None:
        return None
    title, message = texts
    event = event if isinstance(event, dict) else {}
    if isinstance(message, dict):
        message = message.get(str(event.get("cause")), message["error"])
    return title, _template(message).render(event, language)


@functools.cache
def _template(text: str) -> Template:
    return Template(text)


def store_failure_cause(error: str) -> str:
    """What a database or journal error means for the user: ``disk-full``, ``locked``,
    ``read-only``, ``unreachable`` (a server that does not answer) or ``error``."""
    text = error.lower()
    if "disk is full" in text or "no space" in text or "disk full" in text:
        return "disk-full"
    if "locked" in text:
        return "locked"
    if "readonly" in text or "read-only" in text:
        return "read-only"
    if any(word in text for word in ("connect", "terminating", "timeout", "eof detected")):
        return "unreachable"
    return "error"


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
        disk_min_free: int = 0,
    ) -> None:
        self.emit = emit
        self.stall_after = stall_after
        self.loss_threshold = loss_threshold
        self.store = store
        self.disk_path = disk_path
        self.disk_min_free = disk_min_free
        self.last: dict[str, Any] | None = None
        self._packets_since: tuple[int, float] | None = None
        self._stalled = False
        self._loss_alerted = -math.inf
        self._disk_low = False
        self._store_failing: dict[str, Any] | None = None
        self._recreated = 0

    def on_capture_stats(self, event: CaptureStats) -> None:
        store_stats = self.store.stats() if self.store is not None else None
        snap = snapshot(event.ts, event.stats, self.last, store_stats, self.disk_path)
        self.last = snap
        self.emit(HealthReport(event.ts, snap))
        self._check_stall(event.ts, snap["packets"])
        self._check_disk(event.ts, snap)
        ratio = snap["loss_ratio"]
        loss = ratio is not None and ratio > self.loss_threshold
        if loss and event.ts - self._loss_alerted >= LOSS_ALERT_EVERY_S:
            self._loss_alerted = event.ts
            self._alert("health-capture-loss", event.ts, LOSS_ALERT_EVERY_S, snap)

    def on_tick(self, event: Tick) -> None:
        """Every second: is the store writing? (see the module docstring)"""
        if self.store is not None:
            self._check_store(event.ts, self.store.write_state())

    def _check_stall(self, ts: float, packets: int) -> None:
        if self._packets_since is None or packets != self._packets_since[0]:
            if self._stalled and self._packets_since is not None:
                idle = ts - self._packets_since[1]
                self._alert("health-capture-resumed", ts, 0.0, {"idle_s": idle})
            self._packets_since = (packets, ts)
            self._stalled = False
            return
        idle = ts - self._packets_since[1]
        if not self._stalled and idle >= self.stall_after:
            self._stalled = True
            body = {"packets": packets, "idle_s": idle}
            self._alert("health-capture-stopped", ts, self.stall_after, body)

    def _check_disk(self, ts: float, snap: dict[str, Any]) -> None:
        free = snap.get("disk_free_bytes")
        if free is None or not self.disk_min_free:
            return
        if not self._disk_low and free < self.disk_min_free:
            self._disk_low = True
            body = {"disk_free_bytes": free, "path": str(self.disk_path)}
            self._alert("health-disk-low", ts, 0.0, body)
        elif self._disk_low and free >= 2 * self.disk_min_free:
            self._disk_low = False

    def _check_store(self, ts: float, state: dict[str, Any]) -> None:
        body = {
            "path": state.get("location", ""),
            "pending_alerts": state.get("pending_alerts", 0),
            "failing_s": state.get("failing_for_s"),
        }
        recreated = int(state.get("recreated", 0))
        if recreated > self._recreated:
            self._recreated = recreated
            self._alert("health-store-recreated", ts, 0.0, body)
        failing_for = state.get("failing_for_s")
        if failing_for is None:
            if self._store_failing is not None:
                started = self._store_failing["since"]
                self._store_failing = None
                self._alert("health-store-recovered", ts, 0.0, {**body, "failing_s": ts - started})
            return
        if self._store_failing is None and failing_for >= STORE_ALERT_AFTER_S:
            error = state.get("error") or state.get("journal_error") or ""
            body.update(error=error, cause=store_failure_cause(error))
            self._store_failing = {"since": ts - failing_for}
            self._alert("health-store-failing", ts, 0.0, body)

    def _alert(self, rule: str, ts: float, every: float, body: dict[str, Any]) -> None:
        """Raise health alert ``rule`` with its English text from :data:`TEXTS`."""
        title, message = health_text(rule, "en", body) or (rule, rule)
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
