"""The capture daemon: live interface (or files/stdin) -> pipeline -> store, until told to stop.

Signals: SIGTERM and SIGINT stop the capture cleanly (every flow ended, open bursts closed,
queued writes flushed, then, with ``--format jsonl``, the devices and a ``summary`` record are
printed and the daemon exits 0); SIGUSR1 logs the capture statistics; SIGHUP reloads what can
be reloaded (rules) without dropping state. Guarantee: after a clean stop, everything the
pipeline emitted has been handed to the store and flushed.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from monitor.config import Config
from monitor.errors import MicwatchError
from monitor.events import CaptureStats, Tick
from monitor.output import EventPrinter, JsonLinesPrinter
from monitor.runtime import build, headless_handlers
from monitor.sources import open_capture

log = logging.getLogger(__name__)


class StatsReporter:
    """Logs capture statistics every ``interval`` seconds of capture time and on request."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.pipeline: Any = None
        self.requested = False
        self._next = 0.0

    def on_tick(self, event: Tick) -> None:
        if self.pipeline is None:
            return
        if self.requested or event.ts >= self._next:
            if self._next or self.requested:
                stats = self.pipeline.stats()
                log.warning(
                    "capture: %d packets (%d malformed), %d flows active, kernel drops %s",
                    stats["packets"],
                    stats["malformed"],
                    stats["flows_active"],
                    stats["capture"].get("kernel_dropped", 0),
                )
                self.pipeline.chain.emit(CaptureStats(event.ts, stats))
            self.requested = False
            self._next = event.ts + self.interval


class Reloader:
    """Reloads on SIGHUP the rules and the configuration (what can change while capture runs:
    see :meth:`monitor.runtime.Runtime.reconfigure`), and the rules alone when a rule file
    changes (checked every few seconds of capture time). A broken rule file keeps its previous
    version and a bad configuration keeps the running one; the errors are logged."""

    def __init__(
        self, runtime: Any, reload_config: Callable[[], Config] | None, poll_s: float = 5.0
    ) -> None:
        self.runtime = runtime
        self.reload_config = reload_config
        self.poll_s = poll_s
        self.requested = False
        self._next = 0.0

    def on_tick(self, event: Tick) -> None:
        if not self.requested and event.ts < self._next:
            return
        self._next = event.ts + self.poll_s
        engine = self.runtime.rules
        if self.requested and self.reload_config is not None:
            try:
                self.runtime.reconfigure(self.reload_config())
                log.warning("configuration reloaded")
            except MicwatchError as exc:
                log.error("configuration not reloaded, keeping the running one: %s", exc)
        if self.requested or engine.changed():
            self.requested = False
            for error in engine.reload():
                log.error("rule file not reloaded: %s", error)
            self.runtime.chain.refresh()
            active = sum(rule.status == "active" for rule in engine.rules)
            log.warning("rules reloaded: %d active", active)


def run_daemon(
    config: Config,
    *,
    read: Sequence[str] | None = None,
    fmt: str = "text",
    use_store: bool = True,
    flows: bool = False,
    reload_config: Callable[[], Config] | None = None,
) -> int:
    """Run until the source ends or a stop signal arrives; returns the exit status.
    ``reload_config`` re-reads the configuration on SIGHUP."""
    source, lan = open_capture(config, read)
    store = None
    headless: list[Any] = []
    runtime = None
    try:  # from here on the source is closed whatever happens (it may hold ARP interception)
        if use_store:
            from monitor.store import open_store

            store = open_store(config, writer=True)
        printer = (
            JsonLinesPrinter(sys.stdout, flows=flows)
            if fmt == "jsonl"
            else EventPrinter(sys.stdout)
        )
        reporter = StatsReporter(config["capture.stats_interval"])
        runtime = build(config, lan=lan, store=store, sinks=(printer, reporter))
        headless = headless_handlers(config, runtime.chain, store, runtime.rules)
        for handler in headless:
            runtime.chain.add(handler)
        reporter.pipeline = runtime.pipeline
        reloader = Reloader(runtime, reload_config)
        runtime.chain.add(reloader)

        def stop(signum: int, _frame: Any) -> None:
            log.warning("received %s, stopping", signal.Signals(signum).name)
            source.stop()

        def stats(_signum: int, _frame: Any) -> None:
            reporter.requested = True

        def reload(_signum: int, _frame: Any) -> None:
            reloader.requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGUSR1, stats)
        signal.signal(signal.SIGHUP, reload)
        runtime.pipeline.run(source)
    finally:
        if runtime is not None:
            runtime.pipeline.finish()
        source.close()
        for handler in headless:
            close = getattr(handler, "close", None)
            if close is not None:
                close()
        if store is not None:
            store.close()
    if isinstance(printer, JsonLinesPrinter):
        for device in runtime.inventory.devices.values():
            printer.write({"kind": "device", **device.to_record()})
        printer.write({"kind": "summary", **runtime.pipeline.stats()})
    sys.stdout.flush()
    return 0
