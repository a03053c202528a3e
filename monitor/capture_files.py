"""Packet source over capture files: pcap or pcapng, plain or gzip-compressed, or standard input.

Guarantees:

* every input is checked when the source is opened: a missing or unreadable file, or one that
  is not (possibly gzip-compressed) pcap or pcapng by its magic number, raises
  :class:`~monitor.errors.CaptureError` naming the file and saying what it is not; the
  extension is never looked at;
* files are read one after another in the order given, each opened only while it is read, in
  large chunks, never seeking, so ``-`` (standard input, read once) can be a pipe from
  ``tcpdump -w -``; a pipe's data is handed on as soon as it arrives, and a stop request ends
  the wait on a quiet pipe within half a second;
* a file that ends badly (cut-off record, absurd length, corrupt block, damaged gzip stream)
  ends with the problem counted once in ``stats()["truncated"]``; reading goes on with the next
  file and never raises for it;
* the iterator yields ``(ts_seconds, linktype, frame_bytes)`` and never ``None``; after
  :meth:`FileSource.stop` it ends at the next record.
"""

from __future__ import annotations

import os
import select
import stat
import sys
import zlib
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from monitor.capture_pcapng import read_pcapng
from monitor.errors import CaptureError
from monitor.pcapfile import Record, Tally, detect_format, read_pcap, refill

CHUNK_SIZE = 1 << 20
"""Bytes asked of the operating system (or the decompressor) per read."""

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_INPUT = 64 << 10  # compressed bytes per step: what precedes damage is still read
_STDIN = "-"
_FIRST_READ = 4096
_POLL = 0.5  # seconds between checks for a stop request while a pipe is quiet


def _pipe_fd(stream: BinaryIO) -> int | None:
    """The descriptor of ``stream`` if it is a pipe, socket or terminal, else None."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return None if stat.S_ISREG(os.fstat(fd).st_mode) else fd


class _Gunzip:
    """Decompress a stream of gzip chunks (several members in a row allowed), chunk by chunk.

    Output chunks are at most :data:`CHUNK_SIZE` bytes, so a compression bomb costs no memory.
    ``damaged`` is set when the data is corrupt or ends inside a member; what was decompressed
    before (up to the last 64 KiB step) has been handed on.
    """

    def __init__(self, raw: Iterator[bytes]) -> None:
        self._raw = raw
        self.damaged = False

    def __iter__(self) -> Iterator[bytes]:
        inflater = zlib.decompressobj(wbits=31)
        started = False
        for chunk in self._raw:
            for at in range(0, len(chunk), _GZIP_INPUT):
                started = True
                data = chunk[at : at + _GZIP_INPUT]
                while True:
                    try:
                        out = inflater.decompress(data, CHUNK_SIZE)
                    except zlib.error:
                        self.damaged = True
                        return
                    if out:
                        yield out
                    if inflater.eof:
                        data = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=31)
                        started = bool(data)
                        if not data:
                            break
                        continue
                    data = inflater.unconsumed_tail
                    if not data and len(out) < CHUNK_SIZE:
                        break
        self.damaged = started and not inflater.eof


class CaptureStream:
    """One input being read: its decoded chunk stream, first bytes, and gzip layer if any.

    Creating it reads the first bytes (waiting on a pipe until they come or ``tally.stopped``);
    ``format`` is then ``"pcap"``, ``"pcapng"`` or None (not a capture)."""

    def __init__(self, name: str, stream: BinaryIO, tally: Tally) -> None:
        self.name = name
        self.stream = stream
        raw = self._reads(tally)
        first = refill(b"", 2, raw)
        raw = chain([first], raw)
        self.gunzip = _Gunzip(raw) if first[:2] == _GZIP_MAGIC else None
        content = iter(self.gunzip) if self.gunzip else raw
        self.head = refill(b"", 12, content)
        self.chunks = chain([self.head], content)
        self.format = detect_format(self.head)

    def _reads(self, tally: Tally) -> Iterator[bytes]:
        """The stream's bytes: a small first read (enough to check the format), then large ones.

        A pipe or terminal is waited on with ``select`` so that a stop request ends the wait
        within :data:`_POLL` seconds even while no data comes.
        """
        fd = _pipe_fd(self.stream)
        size = _FIRST_READ
        while not tally.stopped:
            if fd is None:
                data = getattr(self.stream, "read1", self.stream.read)(size)
            elif select.select([fd], [], [], _POLL)[0]:
                data = os.read(fd, size)
            else:
                continue
            if not data:
                return
            yield data
            size = CHUNK_SIZE

    def records(self, tally: Tally) -> Iterator[Record]:
        """The records of this input (see the module guarantees), counted in ``tally``."""
        reader = read_pcap if self.format == "pcap" else read_pcapng
        before = tally.truncated
        yield from reader(self.chunks, tally)
        if self.gunzip and self.gunzip.damaged and tally.truncated == before:
            tally.end_of_data(1)

    def not_a_capture(self) -> CaptureError:
        """The error naming this input and saying what it is not."""
        what = f"{self.name} is"
        if self.gunzip:
            what = f"{self.name} is gzip-compressed but what it holds is"
        if self.gunzip and self.gunzip.damaged and not self.head:
            return CaptureError(f"{self.name} is a damaged gzip file, not a readable capture")
        if not self.head:
            return CaptureError(f"{what} empty, not a pcap or pcapng capture")
        return CaptureError(
            f"{what} not a pcap or pcapng capture (it starts with {self.head[:4].hex(' ')}, "
            "neither format's magic number)"
        )


class FileSource:
    """A :class:`~monitor.capture.PacketSource` reading capture files one after another.

    ``name`` is the path of the file being read (the first one before iteration starts).
    ``stats()`` gives ``packets`` and ``bytes`` (captured bytes) yielded so far, ``truncated``
    (inputs that ended on something unreadable) and ``files`` (inputs opened for reading).
    The source is iterated once; a second iteration yields nothing.
    """

    def __init__(self, paths: Sequence[str], stdin: BinaryIO | None = None) -> None:
        if not paths:
            raise CaptureError("no capture file given")
        if list(paths).count(_STDIN) > 1:
            raise CaptureError("standard input (-) can be read only once")
        self._paths = list(paths)
        self._stdin = stdin if stdin is not None else sys.stdin.buffer
        self._tally = Tally()
        self._files = 0
        self._started = False
        self._current: CaptureStream | None = None
        self._ready: dict[str, CaptureStream] = {}  # standard input, checked and kept open
        self.name = self._paths[0]
        for path in self._paths:
            checked = self._open(path)
            if path == _STDIN:
                self._ready[path] = checked
            else:
                checked.stream.close()

    def _open(self, path: str) -> CaptureStream:
        """The input at ``path``, checked to be a capture (CaptureError if not)."""
        if path == _STDIN:
            stream = self._stdin
        else:
            try:
                stream = Path(path).open("rb")  # noqa: SIM115 - closed by the caller
            except FileNotFoundError:
                raise CaptureError(f"{path}: no such capture file") from None
            except IsADirectoryError:
                raise CaptureError(f"{path} is a directory, not a capture file") from None
            except OSError as exc:
                raise CaptureError(f"{path} cannot be read: {exc.strerror}") from None
        try:
            checked = CaptureStream(path, stream, self._tally)
        except OSError as exc:
            stream.close()
            raise CaptureError(f"{path} cannot be read: {exc.strerror}") from None
        if checked.format is None:
            if stream is not self._stdin:
                stream.close()
            raise checked.not_a_capture()
        return checked

    def __iter__(self) -> Iterator[Record]:
        if self._started:
            return
        self._started = True
        for path in self._paths:
            if self._tally.stopped:
                return
            self.name = path
            current = self._ready.pop(path, None) or self._open(path)
            self._current = current
            self._files += 1
            try:
                yield from current.records(self._tally)
            finally:
                self._current = None
                if current.stream is not self._stdin:
                    current.stream.close()

    def stats(self) -> dict[str, int]:
        """Counters so far: packets, bytes, truncated, files."""
        tally = self._tally
        return {
            "packets": tally.packets,
            "bytes": tally.bytes,
            "truncated": tally.truncated,
            "files": self._files,
        }

    def stop(self) -> None:
        """Ask the iterator to end at the next record; only sets a flag (signal-handler safe)."""
        self._tally.stopped = True

    def close(self) -> None:
        """Stop, and close the file being read (standard input is left open)."""
        self.stop()
        if self._current is not None and self._current.stream is not self._stdin:
            self._current.stream.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_files(paths: Sequence[str], *, stdin: BinaryIO | None = None) -> FileSource:
    """A source reading ``paths`` in order; ``-`` is standard input (or ``stdin`` if given).

    Raises :class:`~monitor.errors.CaptureError` for a missing or unreadable file or an unknown
    format. Checking standard input waits for its first bytes.
    """
    return FileSource(paths, stdin)
