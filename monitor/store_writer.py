"""The store's one writer thread (Pi-hole FTL style): queues in, batched transactions out.

Guarantees:

- :meth:`Writer.put` and :meth:`Writer.put_alert` never wait for the database: they append to
  an in-memory queue under a lock that the writer holds only to swap the queue out.
- Non-alert items are bounded: at most ``max_queue`` each wait in the queue, in the writer's
  backlog and in its pending batch; beyond that the oldest are dropped and counted in
  ``dropped``. The writer is woken early when the queue is half full.
- Alerts and commands are never dropped. A write that fails for a transient reason (database
  locked, disk full, connection lost) keeps the whole batch in memory and retries with
  exponential backoff; the failure is logged once per outage, the recovery once. A write that
  fails for another reason gives up the batch's non-alert rows (counted in ``failed``) and
  retries the alerts alone. Alerts still unwritten when :meth:`close` gives up are logged, one
  error line each, so they reach the journal.
- Retention runs in this thread, at most once a minute (sooner while a pass left rows behind),
  in slices of :data:`~monitor.store_sql.CHUNK` rows per statement and transaction. Its clock is
  the newest event time written, capped at the wall clock, so replaying an old capture keeps
  its rows and a store that writes nothing (a dashboard) deletes nothing.
- With a size cap (``max_bytes`` > 0, SQLite), after every written batch whose file and WAL
  exceed the cap, the oldest rows are pruned in this thread (:func:`~monitor.store_cap.prune`)
  before the batch counts as done for :meth:`Writer.flush`: the database exceeds the cap by at
  most one batch, for the time of one pruning pass. The first pruning is logged.
- With ``reopen`` (SQLite), a database file deleted while the store runs is noticed before the
  next batch is written: the deletion is logged and ``reopen`` makes a new, empty database that
  the batch (alerts included) goes to; a failure to do so is a write failure like any other.
- :meth:`Writer.state` tells, without touching the database, since when writes fail and why
  (the database driver's own words, never the statement or its values), and how many times a
  deleted database was made again: what the health monitor turns into a health alert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from monitor.store_batch import Batch
from monitor.store_cap import checkpoint, file_bytes, prune, sqlite_path
from monitor.store_items import Command, Expire, Forget, Item
from monitor.store_sql import CHUNK, IMMEDIATE, RETENTION, delete_slice, write_batch

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 60.0
#: Slices per table per automatic retention pass, so a large backlog of old rows never holds
#: up writing for long.
SLICES_PER_PASS = 20
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 5.0


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class Writer:
    """The writer thread of one store; see the module docstring for its guarantees."""

    def __init__(
        self,
        engine: Engine,
        sensor: str,
        retention_s: float,
        batch_seconds: float,
        max_queue: int,
        max_bytes: int = 0,
        reopen: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._db_file = sqlite_path(engine) if reopen is not None else None
        self._reopen = reopen
        self._max_bytes = max_bytes
        self._sensor = sensor
        self._retention_s = retention_s
        self._batch_seconds = batch_seconds
        self._max = max_queue
        self._lock = threading.Lock()
        self._done_cond = threading.Condition()
        self._wake = threading.Event()
        self._items: deque[tuple[int, Item]] = deque()
        self._priority: list[tuple[int, Item | Command]] = []
        self._seq = 0
        self._done = 0
        self._closed = False
        self._stopping = False
        self._deadline = 0.0
        self._counters = {
            "dropped": 0,
            "failed": 0,
            "written": 0,
            "write_failures": 0,
            "pruned": 0,
            "recreated": 0,
        }
        self._backlog: deque[tuple[int, Item]] = deque()
        self._batch = Batch()
        self._orgs: OrderedDict[str, str] = OrderedDict()
        self._clock: float | None = None
        self._next_retention = 0.0
        self._failing_since: float | None = None
        self._last_error = ""
        self._fold_failed = False
        self._backoff = BACKOFF_MIN_S
        self._thread = threading.Thread(target=self._run, name=f"store-{sensor}", daemon=True)
        self._thread.start()

    # --- producers (any thread) ---

    def put(self, item: Item) -> None:
        """Queue a non-alert item; drops the oldest queued one when full."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._seq += 1
            if len(self._items) >= self._max:
                self._items.popleft()
                self._counters["dropped"] += 1
            self._items.append((self._seq, item))
            if len(self._items) == self._max // 2:
                self._wake.set()

    def put_alert(self, item: Item | Command) -> None:
        """Queue an alert or a command (never dropped) and wake the writer."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._seq += 1
            self._priority.append((self._seq, item))
        self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before the call is written or dropped; False on
        timeout."""
        with self._lock:
            target = self._seq
        self._wake.set()
        with self._done_cond:
            return self._done_cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float) -> bool:
        """Refuse new items, write what is queued (retrying up to ``timeout`` seconds) and stop
        the thread; True when everything was written."""
        with self._lock:
            self._closed = True
            target = self._seq
        self._deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._thread.join()
        return self._done >= target

    def stats(self) -> dict[str, Any]:
        """Counters: ``queued`` (waiting, incl. backlog), ``pending_alerts``, ``dropped``,
        ``failed``, ``written`` (items), ``write_failures`` (failed transactions), ``pruned``
        (rows deleted by the size cap), ``recreated`` (databases made again after a
        deletion)."""
        with self._lock:
            queued = len(self._items) + len(self._backlog)
            counters = dict(self._counters)
            pending = self._pending_alerts()
        return {"queued": queued, "pending_alerts": pending, **counters}

    def state(self) -> dict[str, Any]:
        """``failing_for_s`` (seconds since writes began to fail, None while they succeed),
        ``error`` (the driver's message for the last failure), ``pending_alerts`` and
        ``recreated`` (databases made again after a deletion). Never touches the database."""
        with self._lock:
            since = self._failing_since
            pending = self._pending_alerts()
            error, recreated = self._last_error, self._counters["recreated"]
        return {
            "failing_for_s": None if since is None else time.monotonic() - since,
            "error": error,
            "pending_alerts": pending,
            "recreated": recreated,
        }

    def pending_alerts(self) -> int:
        """Alerts and commands not yet written."""
        with self._lock:
            return self._pending_alerts()

    def _pending_alerts(self) -> int:
        """:meth:`pending_alerts`, with the lock already held."""
        return len(self._priority) + len(self._batch.alerts)

    # --- the thread ---

    def _run(self) -> None:
        delay = self._batch_seconds
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            stopping = self._stopping
            try:
                target = self._drain()
                ok = self._write()
            except Exception:  # a bug: contained, retried with backoff
                log.exception("store writer cycle failed")
                ok = False
            if ok:
                self._recovered()
                self._cap_due()
                self._mark_done(target)
                self._retention_due()
                delay = 0.0 if self._backlog else self._batch_seconds
                if stopping and self._idle():
                    return
            else:
                delay = self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
                if stopping and time.monotonic() >= self._deadline:
                    self._give_up()
                    return

    def _drain(self) -> int:
        """Move queued items into the batch (in queue order, commands at their place) and
        return the sequence number up to which everything is in the batch or dropped."""
        with self._lock:
            items, self._items = self._items, deque()
            priority, self._priority = self._priority, []
            top = self._seq
        self._backlog.extend(items)
        overflow = len(self._backlog) - self._max
        for _ in range(max(0, overflow)):
            self._backlog.popleft()
        if overflow > 0:
            with self._lock:
                self._counters["dropped"] += overflow
        for seq, item in priority:
            if isinstance(item, Forget):
                self._batch.purge(item.mac)
                self._backlog = deque(
                    (s, i) for s, i in self._backlog if s > seq or i.mac != item.mac
                )
                self._batch.forgets.append(item)
            elif isinstance(item, Expire):
                self._batch.expires.append(item)
            else:
                self._fold(item)
        while self._backlog and self._batch.size < self._max:
            self._fold(self._backlog.popleft()[1])
        return self._backlog[0][0] - 1 if self._backlog else top

    def _fold(self, item: Item) -> None:
        """Fold one item into the batch; an item that cannot be folded (a bug upstream) is
        logged once, counted in ``failed`` and skipped, and never stops the others. An alert is
        kept whatever its content (it is the first thing folding does)."""
        try:
            self._batch.add(item, self._orgs)
        except Exception:
            with self._lock:
                self._counters["failed"] += 1
            if not self._fold_failed:
                self._fold_failed = True
                log.exception("store cannot fold %s; skipped", type(item).__name__)

    def _write(self) -> bool:
        batch = self._batch
        if not batch:
            return True
        try:
            self._recreate_if_deleted()
            with self._engine.connect().execution_options(**IMMEDIATE) as conn, conn.begin():
                write_batch(conn, self._sensor, batch)
        except Exception as exc:
            self._note_failure(exc)
            if _transient(exc):
                return False
            if batch.size:
                log.exception("store write failed; %d items given up, alerts kept", batch.size)
                with self._lock:
                    self._counters["failed"] += batch.size
                    self._batch = batch.only_alerts()
            else:
                self._isolate_alerts(batch)
            return False
        if batch.max_ts > (self._clock or -1.0):
            self._clock = min(batch.max_ts, time.time())
        if batch.forgets:
            self._scrub()
        for forget in batch.forgets:
            forget.done.set_result(forget.deleted)
        with self._lock:
            self._counters["written"] += batch.size + len(batch.alerts)
            self._batch = Batch()
        for command in batch.expires:
            self._expire(command)
        return True

    def _scrub(self) -> None:
        """After a forget: empty the WAL, where old copies of the forgotten rows would stay on
        disk until overwritten (best effort: a reader holding an old snapshot keeps the WAL
        until the next checkpoint; an error is logged)."""
        try:
            checkpoint(self._engine)
        except Exception as exc:
            log.warning("store: the write-ahead log could not be emptied after a forget (%s)", exc)

    def _recreate_if_deleted(self) -> None:
        """When the SQLite file was deleted under the store, make a new one before writing:
        the open connections would otherwise write on into the unlinked file, and be lost."""
        if self._db_file is None or self._reopen is None or self._db_file.exists():
            return
        log.error("store database %s was deleted; creating a new one", self._db_file)
        self._reopen()
        with self._lock:
            self._counters["recreated"] += 1

    def _isolate_alerts(self, batch: Batch) -> None:
        """After alerts alone failed for a non-transient reason, write them one at a time so
        that one the database can never accept (it is logged in full and counted in
        ``failed``) does not hold back the others."""
        for row in list(batch.alerts):
            single = Batch()
            single.alerts.append(row)
            try:
                with self._engine.connect().execution_options(**IMMEDIATE) as conn, conn.begin():
                    write_batch(conn, self._sensor, single)
            except Exception as exc:
                if _transient(exc):
                    return
                log.error("store cannot write an alert (%s); giving it up: %s", exc, row)
                with self._lock:
                    self._counters["failed"] += 1
            else:
                with self._lock:
                    self._counters["written"] += 1
            batch.alerts.remove(row)

    def _note_failure(self, exc: BaseException) -> None:
        # The driver's exception alone: SQLAlchemy's wrapper also prints the statement's values.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else repr(exc)
        with self._lock:
            self._counters["write_failures"] += 1
            self._last_error = reason
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                first = True
            else:
                first = False
        if first:
            log.warning("store writes failing (%s); keeping them in memory and retrying", reason)

    def _mark_done(self, target: int) -> None:
        with self._done_cond:
            self._done = max(self._done, target)
            self._done_cond.notify_all()

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning("store writes resumed after %.1f s", time.monotonic() - self._failing_since)
            with self._lock:
                self._failing_since = None
        self._backoff = BACKOFF_MIN_S

    def _retention_due(self) -> None:
        if self._clock is not None and time.monotonic() >= self._next_retention:
            more = self._retention(self._clock, SLICES_PER_PASS)[1]
            self._next_retention = time.monotonic() + (0.0 if more else RETENTION_INTERVAL_S)

    def _cap_due(self) -> None:
        if self._max_bytes > 0 and (file_bytes(self._engine) or 0) > self._max_bytes:
            try:
                deleted = prune(self._engine, self._sensor, self._max_bytes)
            except Exception as exc:
                log.warning("store size cap: pruning stopped (%s); it will run again", exc)
                return
            if deleted and not self._counters["pruned"]:
                log.warning(
                    "store reached its size cap (%d MB): deleting the oldest traffic and events",
                    self._max_bytes // 10**6,
                )
            with self._lock:
                self._counters["pruned"] += deleted

    def _idle(self) -> bool:
        with self._lock:
            return not (self._items or self._priority or self._backlog or self._batch)

    def _expire(self, command: Expire) -> None:
        now = command.now if command.now is not None else self._clock
        total, more = 0, now is not None
        while more:
            deleted, more = self._retention(now, SLICES_PER_PASS)  # type: ignore[arg-type]
            total += deleted
        command.done.set_result(total)

    def _retention(self, now: float, max_slices: int) -> tuple[int, bool]:
        """Delete rows older than the retention from each table, up to ``max_slices`` slices
        per table; return (rows deleted, whether rows may remain)."""
        cutoff = now - self._retention_s
        deleted, more = 0, False
        try:
            for table, column in RETENTION:
                for _ in range(max_slices):
                    connection = self._engine.connect().execution_options(**IMMEDIATE)
                    with connection as conn, conn.begin():
                        n = delete_slice(conn, table, column, self._sensor, cutoff)
                    deleted += n
                    if n < CHUNK:
                        break
                else:
                    more = True
        except Exception as exc:
            log.warning("store retention pass stopped (%s); it will run again", exc)
        return deleted, more

    def _give_up(self) -> None:
        for row in self._batch.alerts:
            log.error("store closed with an unwritten alert: %s", row)
        for command in [*self._batch.forgets, *self._batch.expires]:
            command.done.set_exception(RuntimeError("the store closed before this was done"))
