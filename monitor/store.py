"""The store: what micwatch keeps about the home, in SQLite or PostgreSQL (SQLAlchemy 2.0).

:class:`Store` is an event handler. Its ``on_*`` methods copy what they need from the event and
queue it (they never touch the database); one writer thread (:mod:`monitor.store_writer`) folds
the queue into batches and writes them in one transaction each. Reads and the user's writes
(labels, categories, acknowledgements, mutes, forgetting) come from
:class:`~monitor.store_reader.StoreReader` and run on their own pooled connections, safe while
the writer runs. Every row carries this store's ``sensor`` name and every read returns only the
rows of this sensor, so several sensors can share one database.

What is kept is metadata only (section 6 of DESIGN.md): devices and their names, destinations,
who talks to whom, per-minute traffic sums, notable events and alerts, for ``retention_s``
seconds. Timestamps are float epoch seconds throughout (see :mod:`monitor.store_models`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError

from monitor.errors import StoreError
from monitor.paths import state_dir
from monitor.store_cap import database_bytes
from monitor.store_items import (
    Expire,
    Forget,
    alert_item,
    burst_item,
    destination_item,
    device_item,
    flow_item,
    health_item,
    stats_item,
)
from monitor.store_journal import JOURNAL_FILE, AlertJournal
from monitor.store_reader import StoreReader
from monitor.store_writer import Writer

if TYPE_CHECKING:
    from monitor.events import (
        AlertRaised,
        CaptureStats,
        DestinationContacted,
        DeviceSeen,
        DeviceUpdated,
        FlowEnd,
        Shutdown,
        UploadBurst,
    )
    from monitor.health import HealthReport

DB_FILE = "micwatch.db"
log = logging.getLogger(__name__)

#: How long the store waits for its queue to be written when the capture ends.
SHUTDOWN_FLUSH_S = 30.0


def default_db_url(state_dir: str | Path) -> str:
    """The SQLite URL of the database file in ``state_dir``."""
    return f"sqlite:///{Path(state_dir) / DB_FILE}"


def open_store(config: Mapping[str, Any], *, writer: bool = True) -> StoreReader:
    """The store configured by the ``store.*`` options: a :class:`Store` with its writer
    thread (the daemon), or with ``writer=False`` a :class:`StoreReader` (the CLI, the
    dashboard). Creates the state directory (mode 0700) when the database is the default
    SQLite file or a writer is opened (its alert journal lives there).

    Raises:
        StoreError: the state directory or the database cannot be created or opened (a
            read-only or full file system, wrong permissions); the message names the path.
    """
    url = config["store.db"]
    directory = state_dir(config["store.state_dir"])
    try:
        if not url or writer:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not url:
            url = default_db_url(directory)
        sensor = config["store.sensor"] or socket.gethostname()
        if not writer:
            return StoreReader(url, sensor=sensor)
        return Store(
            url,
            sensor=sensor,
            retention_s=config["store.retention"],
            batch_seconds=config["store.batch_seconds"],
            max_bytes=config["store.max_size"],
            journal=directory / JOURNAL_FILE,
        )
    except (OSError, OperationalError) as exc:
        reason = getattr(exc, "orig", None) or exc
        raise StoreError(
            f"cannot open the store in {directory} ({reason}): the state directory "
            "(store.state_dir) must be writable by micwatch"
        ) from exc


class Store(StoreReader):
    """The store with its writer thread: an event handler for the pipeline, plus every read
    and user write of :class:`~monitor.store_reader.StoreReader`.

    The ``on_*`` handlers never wait for the database: each copies what it keeps from the event
    (time bounded by the event's size) and queues it (see :class:`~monitor.store_writer.Writer`
    for the queue's bounds and the guarantee that alerts are not lost). One store per sensor
    name should write to a database at a time: device and destination rows are merged
    read-modify-write by its writer. ``flush`` waits until everything queued is written;
    ``close`` flushes and stops the writer.

    Durability: rows are committed in batches every ``batch_seconds`` (SQLite WAL with
    ``synchronous=NORMAL``: a committed batch survives ``kill -9``), so a crash loses at most the
    rows queued since the last batch. With a ``journal`` path, alerts are not lost at all: each
    is appended to the :class:`~monitor.store_journal.AlertJournal` (``fsync``) before
    ``on_alert_raised`` returns, and the next store opened with that journal writes the ones
    the database lacks. ``max_bytes`` > 0 caps a SQLite database (see
    :mod:`monitor.store_cap`).
    """

    def __init__(
        self,
        url: str,
        *,
        sensor: str,
        retention_s: float,
        batch_seconds: float = 1.0,
        max_queue: int = 20000,
        busy_timeout_s: float = 5.0,
        max_bytes: int = 0,
        journal: Path | None = None,
    ) -> None:
        super().__init__(url, sensor=sensor, busy_timeout_s=busy_timeout_s, record_version=True)
        self._journal = AlertJournal(journal) if journal is not None else None
        self._journal_error = ""
        if self._journal is not None:
            self._journal.replay(self.engine, sensor)
        self._writer = Writer(
            self.engine,
            sensor,
            retention_s,
            batch_seconds,
            max_queue,
            max_bytes=max_bytes,
            reopen=self._recreate,
        )
        self._closed: bool | None = None

    def _recreate(self) -> None:
        """Drop the connections and open the schema afresh (the writer thread calls it when the
        database file was deleted: a new file is made)."""
        self.engine.dispose()
        self._open_schema(record_version=True)

    def __enter__(self) -> Store:
        return self

    # --- event handlers: copy and queue, never wait ---

    def on_device_seen(self, event: DeviceSeen) -> None:
        self._writer.put(device_item(event.device))

    def on_device_updated(self, event: DeviceUpdated) -> None:
        self._writer.put(device_item(event.device))

    def on_destination_contacted(self, event: DestinationContacted) -> None:
        self._writer.put(destination_item(event.ts, event.device, event.destination))

    def on_flow_end(self, event: FlowEnd) -> None:
        """Per-minute traffic: the flow's per-second bins go to their minutes (older bytes
        spread over the minutes before, see :func:`~monitor.store_items.flow_item`)."""
        item = flow_item(event.flow)
        if item is not None:
            self._writer.put(item)

    def on_upload_burst(self, event: UploadBurst) -> None:
        self._writer.put(burst_item(event))

    def on_capture_stats(self, event: CaptureStats) -> None:
        self._writer.put(stats_item(event))

    def on_health_report(self, event: HealthReport) -> None:
        self._writer.put(health_item(event.ts, event.snapshot))

    def on_alert_raised(self, event: AlertRaised) -> None:
        """Journal the alert (with a journal: on disk when this returns) and queue it; it is
        never dropped and retried until written. When the journal cannot be written (disk
        full), the alert is still queued (kept in memory until the database takes it) and the
        failure is logged, once per outage."""
        item = alert_item(event.alert)
        if self._journal is None:
            self._writer.put_alert(item)
            return
        with self._journal.lock:
            try:
                self._empty_journal_when_written()
                self._journal.append(item.row)
            except OSError as exc:
                if not self._journal_error:
                    log.error(
                        "alert journal %s cannot be written (%s): alerts are kept in memory "
                        "until the database takes them",
                        self._journal.path,
                        exc,
                    )
                self._journal_error = str(exc)
            else:
                if self._journal_error:
                    log.warning("alert journal %s is writable again", self._journal.path)
                self._journal_error = ""
            self._writer.put_alert(item)

    def on_shutdown(self, _event: Shutdown) -> None:
        """The capture ended: wait (up to :data:`SHUTDOWN_FLUSH_S`) until the queue is
        written."""
        self._writer.flush(SHUTDOWN_FLUSH_S)

    # --- writer control ---

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before the call is written (or dropped by overflow);
        False when ``timeout`` seconds passed first."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Write what is queued (retrying for up to ``timeout`` seconds), stop the writer and
        release the connections; True when nothing was left unwritten. Idempotent."""
        if self._closed is None:
            self._closed = self._writer.close(timeout)
            if self._journal is not None:
                if self._closed:
                    with self._journal.lock:
                        self._journal.truncate()
                self._journal.close()
            super().close()
        return self._closed

    def write_state(self) -> dict[str, Any]:
        """Whether writing works, cheaply (no database access; the health monitor asks every
        second): the writer's :meth:`~monitor.store_writer.Writer.state`, ``journal_error``
        (why the alert journal could not be written, "" while it can) and ``location`` (the
        database file, or the server URL without its password)."""
        return {
            **self._writer.state(),
            "journal_error": self._journal_error,
            "location": self.location,
        }

    def stats(self) -> dict[str, Any]:
        """The writer's counters (queued, pending_alerts, dropped, failed, written,
        write_failures, pruned, recreated) and ``db_bytes``, the database's size (None if unknown or
        while writes fail)."""
        failing = self._writer.state()["failing_for_s"] is not None
        # While writes fail the database may not answer: do not wait for it to be measured.
        return {
            **self._writer.stats(),
            "db_bytes": None if failing else database_bytes(self.engine),
        }

    def expire(self, now: float | None = None, timeout: float | None = 60.0) -> int:
        """Run retention to completion in the writer thread (after what is queued) and return
        the rows deleted. ``now`` defaults to the newest event time written."""
        command = Expire(now)
        self._writer.put_alert(command)
        return command.done.result(timeout)

    def forget_device(self, mac: str, timeout: float | None = 60.0) -> int:
        """As :meth:`StoreReader.forget_device`, run in the writer thread in queue order: rows
        this store had queued for the device before the call are discarded with it, rows
        queued after it are kept (the device is still talking). The alert journal, which may
        still hold the device's last alerts, is emptied when no alert waits to be written.
        Raises TimeoutError if not done within ``timeout`` (the forget stays queued)."""
        command = Forget(mac)
        self._writer.put_alert(command)
        deleted = command.done.result(timeout)
        if self._journal is not None:
            with self._journal.lock:
                self._empty_journal_when_written()
        return deleted

    def _empty_journal_when_written(self) -> None:
        """Empty the alert journal when the database holds every alert (no alert waits to be
        written). Call with the journal's lock held."""
        assert self._journal is not None
        if not self._writer.pending_alerts():
            self._journal.truncate()
