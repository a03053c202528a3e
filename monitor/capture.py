"""Capture sources: where micwatch's packets come from, behind one interface.

A :class:`PacketSource` is either a run of capture files (:func:`open_files`: pcap or pcapng,
plain or gzip-compressed, ``-`` for standard input) or a live interface (:func:`open_live`).
Iterating it yields ``(ts_seconds, linktype, frame_bytes)``; a live source also yields ``None``
about every ``idle_interval`` seconds while no packet arrives, so the caller can advance its
clock; a file source never does. ``linktype`` is a ``LINKTYPE_*`` value of
:mod:`monitor.pcapfile`. The guarantees of each kind are in :mod:`monitor.capture_files` and
:mod:`monitor.capture_live`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from monitor.capture_files import open_files
from monitor.capture_live import open_live

__all__ = ["PacketSource", "open_files", "open_live"]


class PacketSource(Protocol):
    """Where packets come from. ``name`` is the file path, ``-`` or the interface name."""

    name: str

    def __iter__(self) -> Iterator[tuple[float, int, bytes] | None]:
        """Yield ``(ts_seconds, linktype, frame_bytes)``; live sources also yield ``None``."""
        ...

    def stats(self) -> dict[str, int]:
        """At least ``packets``, ``bytes``, ``truncated``; live sources add ``kernel_received``,
        ``kernel_dropped`` and ``if_dropped``."""
        ...

    def stop(self) -> None:
        """Ask the iterator to end soon; safe to call from a signal handler."""
        ...

    def close(self) -> None:
        """Stop and release what the source holds (files, capture handle)."""
        ...
