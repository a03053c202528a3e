"""The alert journal: alerts on disk before :class:`~monitor.events.AlertRaised` returns.

The store's writer commits batches about once a second, so a crash (``kill -9``, power loss)
can lose the last second of queued rows. Alerts must not be lost: the store appends each alert
to this journal (one JSON line, flushed and ``fsync``-ed) in the emitting thread before queueing
it. Alerts are rare (rules suppress repeats), so the ``fsync`` per alert costs little.

Guarantees:

- :meth:`AlertJournal.append` returns only after the line reached the disk.
- :meth:`AlertJournal.replay` (when the store opens) writes every journaled alert that the
  database does not already hold (same sensor, rule, time and suppression key) and then empties
  the journal: a crash between the database commit and the journal's truncation never
  duplicates an alert. A torn last line (crash mid-append) is ignored: its alert had not been
  raised yet.
- :meth:`AlertJournal.truncate` empties the journal; the store calls it when the writer has no
  alert left to write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, select

from monitor.store_sql import ALERTS, IMMEDIATE

log = logging.getLogger(__name__)

JOURNAL_FILE = "alerts.journal"


class AlertJournal:
    """An append-only JSON-lines file of alert rows; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Unbuffered: a failed write leaves nothing behind in a buffer to reach the file later.
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - kept for the store's lifetime

    def append(self, row: dict[str, Any]) -> None:
        """Write one alert row durably. Call with :attr:`lock` held.

        Raises:
            OSError: the line could not be written whole (disk full, I/O error); the journal is
                cut back to where it was, so no torn line is left in the middle of it.
        """
        line = json.dumps(row, separators=(",", ":"), default=str).encode() + b"\n"
        start = self._file.seek(0, os.SEEK_END)
        try:
            if self._file.write(line) != len(line):
                raise OSError(errno.ENOSPC, "short write to the alert journal")
            os.fsync(self._file.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                self._file.truncate(start)
            raise

    def truncate(self) -> None:
        """Empty the journal. Call with :attr:`lock` held."""
        if self._file.tell():
            self._file.truncate(0)
            self._file.seek(0)
            os.fsync(self._file.fileno())

    def replay(self, engine: Engine, sensor: str) -> int:
        """Write the journaled alerts the database lacks, empty the journal; return how many
        were written."""
        rows = []
        for line in self.path.read_bytes().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                log.warning("alert journal: ignoring a torn line")
        written = 0
        if rows:
            with engine.connect().execution_options(**IMMEDIATE) as conn, conn.begin():
                for row in rows:
                    found = conn.execute(
                        select(ALERTS.c.id).where(
                            and_(
                                ALERTS.c.sensor == sensor,
                                ALERTS.c.rule == row["rule"],
                                ALERTS.c.ts == row["ts"],
                                ALERTS.c.suppression_key == row["suppression_key"],
                            )
                        )
                    ).first()
                    if found is None:
                        conn.execute(ALERTS.insert(), [{"sensor": sensor, **row}])
                        written += 1
        if written:
            log.warning("recovered %d alert(s) from the journal after an unclean stop", written)
        with self.lock:
            self.truncate()
        return written

    def close(self) -> None:
        self._file.close()
