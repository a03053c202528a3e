"""Packet source that runs a capture command and reads its pcap stream, restarting it when it
ends: a router's ``ssh root@router tcpdump -i br-lan -U -w -`` that reconnects by itself.

Guarantees:

* the command is split like a shell would (no shell runs it; write ``sh -c '...'`` for pipes);
  a command that is not found raises :class:`~monitor.errors.CaptureError` when the source is
  opened;
* every record the command writes is yielded, in order, across restarts; a run that ends
  inside a record (the pipe broke) counts once in ``stats()["truncated"]``, a run whose output
  is not a capture is logged and retried;
* after a run ends the command is started again after a wait of 1 s that doubles (up to
  ``retry_max``) after each run and goes back to 1 s after a run that delivered packets;
* the source is iterated once; like a live source, iteration yields ``None`` about every
  ``idle_interval`` seconds while no packet arrives, ends within about half a second of
  :meth:`CommandSource.stop` (signal-handler safe), and :meth:`CommandSource.close` also ends
  the running command.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence

from monitor.capture_files import CaptureStream
from monitor.errors import CaptureError
from monitor.pcapfile import Record, Tally

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
_QUEUE = 65536  # records held while the pipeline catches up; the pipe waits beyond that
_END = None


class CommandSource:
    """A :class:`~monitor.capture.PacketSource` over a restarted capture command.

    ``stats()`` gives ``packets`` and ``bytes`` (captured bytes) read from the command,
    ``truncated`` (runs that ended inside a record or on unreadable data) and ``restarts``.
    """

    def __init__(
        self, argv: Sequence[str], *, retry_max: float = 60.0, idle_interval: float = 0.5
    ) -> None:
        self.name = shlex.join(argv)
        self._argv = list(argv)
        self._retry_max = retry_max
        self._idle = idle_interval
        self._tally = Tally()
        self._stopped = threading.Event()
        self._records: queue.Queue[Record | None] = queue.Queue(_QUEUE)
        self._started = False
        self._runs = 0
        self._thread = threading.Thread(target=self._run, name="capture-command", daemon=True)

    def __iter__(self) -> Iterator[Record | None]:
        if self._started:
            return
        self._started = True
        self._thread.start()
        while True:
            try:
                item = self._records.get(timeout=self._idle)
            except queue.Empty:
                if self._stopped.is_set():
                    return
                yield None
                continue
            if item is _END or self._stopped.is_set():
                return
            yield item

    def _run(self) -> None:
        delay = FIRST_RETRY_S
        try:
            while not self._stopped.is_set():
                before = self._tally.packets
                code = self._one_run()
                if self._stopped.is_set():
                    return
                delivered = self._tally.packets - before
                if delivered:
                    delay = FIRST_RETRY_S
                log.warning(
                    "capture command ended (exit status %s) after %d packets; restarting in %gs",
                    code,
                    delivered,
                    delay,
                )
                if self._stopped.wait(delay):
                    return
                delay = min(delay * 2, self._retry_max)
        finally:
            self._put(_END)

    def _one_run(self) -> int | None:
        """Run the command once, queueing its records; its exit status (None if not started)."""
        self._runs += 1
        try:
            process = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            log.error("capture command %s cannot start: %s", self.name, exc)
            return None
        try:
            stream = CaptureStream(self.name, process.stdout, self._tally)  # type: ignore[arg-type]
            if stream.format is None:
                if not self._stopped.is_set():
                    log.error("capture command output: %s", stream.not_a_capture())
            else:
                for record in stream.records(self._tally):
                    if not self._put(record):
                        break
        except OSError as exc:
            log.error("reading the capture command failed: %s", exc)
        finally:
            _end(process)
        return process.returncode

    def _put(self, item: Record | None) -> bool:
        """Queue ``item``, waiting for room; False if a stop came first (the end mark is
        always queued, dropping a record if need be)."""
        while True:
            try:
                self._records.put(item, timeout=self._idle)
                return True
            except queue.Full:
                if self._stopped.is_set():
                    if item is _END:
                        with contextlib.suppress(queue.Empty):
                            self._records.get_nowait()
                        continue
                    return False

    def stats(self) -> dict[str, int]:
        """Counters so far: packets, bytes, truncated, restarts."""
        tally = self._tally
        return {
            "packets": tally.packets,
            "bytes": tally.bytes,
            "truncated": tally.truncated,
            "restarts": max(0, self._runs - 1),
        }

    def stop(self) -> None:
        """Ask the iterator to end soon; only sets flags (signal-handler safe)."""
        self._tally.stopped = True
        self._stopped.set()

    def close(self) -> None:
        """Stop, and wait for the reading thread to end the running command."""
        self.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> CommandSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _end(process: subprocess.Popen[bytes]) -> None:
    """Close our end of the pipe and make sure the command has exited (TERM, then KILL)."""
    if process.stdout is not None:
        process.stdout.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def open_command(
    command: str, *, retry_max: float = 60.0, idle_interval: float = 0.5
) -> CommandSource:
    """A source running ``command`` (see module guarantees); CaptureError if it is not found."""
    argv = shlex.split(command)
    if not argv:
        raise CaptureError("the capture command is empty")
    if shutil.which(argv[0]) is None:
        raise CaptureError(f"capture command {argv[0]!r} not found; is it installed and on PATH?")
    return CommandSource(argv, retry_max=retry_max, idle_interval=idle_interval)
