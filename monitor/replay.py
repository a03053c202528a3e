"""Replay: capture files fed to the whole pipeline as if they were happening now.

:class:`PacedSource` wraps :func:`monitor.capture.open_files`, one file after another. It
shifts every timestamp so the capture starts at the wall-clock time of the replay (``ts -
first_ts + start``; each next file continues one second after the previous one ended), and,
with ``speed`` > 0, sleeps so packets come at the capture's own pace divided by ``speed``
(``speed`` 0: as fast as possible). The detector, the rules and the store therefore run exactly
as live, and the dashboard's "last 24 hours" shows the replay. :class:`Replay` runs the pipeline
in a background thread into a store; :meth:`Replay.stop` ends it within a fraction of a second
and the flows still open are ended and written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from monitor.capture import open_files
from monitor.config import Config
from monitor.runtime import Runtime, build

log = logging.getLogger(__name__)

#: Seconds of capture time between the end of one file and the start of the next.
FILE_GAP_S = 1.0


class PacedSource:
    """Capture files yielded with timestamps shifted to now, at ``speed`` times their pace.

    ``clock`` gives the wall-clock time and ``sleep`` waits (both replaceable for tests);
    ``start`` is where the shifted timeline begins (default: ``clock()`` at the first packet).
    """

    def __init__(
        self,
        files: Sequence[str],
        speed: float = 1.0,
        *,
        start: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or more")
        self.name = ", ".join(files)
        self.files = list(files)
        self.speed = speed
        self.start = start
        self.clock = clock
        self._stop = threading.Event()
        self._sources: list[Any] = []
        self._packets = 0

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        shift_to: float | None = self.start
        wall_origin: float | None = None
        timeline_origin = 0.0
        for path in self.files:
            source = open_files([path])
            self._sources.append(source)
            first: float | None = None
            last = 0.0
            try:
                for ts, linktype, frame in source:
                    if self._stop.is_set():
                        return
                    if first is None:
                        first = ts
                        if shift_to is None:
                            shift_to = self.clock()
                        if wall_origin is None:
                            wall_origin, timeline_origin = self.clock(), shift_to
                    shifted = ts - first + shift_to
                    last = shifted
                    if self.speed > 0 and not self._wait(
                        wall_origin + (shifted - timeline_origin) / self.speed
                    ):
                        return
                    self._packets += 1
                    yield shifted, linktype, frame
            finally:
                source.close()
            if first is not None:
                shift_to = last + FILE_GAP_S

    def _wait(self, until: float) -> bool:
        """Sleep until wall-clock ``until``; False when stopped meanwhile."""
        delay = until - self.clock()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    def stats(self) -> dict[str, int]:
        """Packets yielded, plus the totals of the files read so far."""
        totals = {"packets": 0, "bytes": 0, "truncated": 0}
        for source in self._sources:
            for key, value in source.stats().items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
        totals["packets"] = self._packets
        return totals

    def stop(self) -> None:
        """End the iteration at the next packet (or at once when sleeping)."""
        self._stop.set()

    def close(self) -> None:
        """Stop; the files are closed as iteration ends."""
        self.stop()


class Replay:
    """The pipeline fed by a :class:`PacedSource`, writing into ``store``, in a thread (the
    rules switched off on the dashboard are off here too: :func:`monitor.runtime.build`)."""

    def __init__(self, config: Config, files: Sequence[str], store: Any, speed: float) -> None:
        self.store = store
        self.source = PacedSource(files, speed)
        self.runtime: Runtime = build(config, store=store)
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="micwatch-replay", daemon=True)

    def _run(self) -> None:
        try:
            self.runtime.pipeline.run(self.source)
        except Exception:
            log.exception("replay failed")
        finally:
            self.runtime.pipeline.finish()
            self.store.flush(30.0)
            self.done.set()

    def start(self) -> Replay:
        """Start the replay thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the replay and wait until what it read is written."""
        self.source.stop()
        self._thread.join(timeout)
