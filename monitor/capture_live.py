"""Packet source on a live network interface, through libpcap (pcapy-ng).

Guarantees:

* opening a missing interface, lacking permission, a down interface or a bad BPF filter raises
  :class:`~monitor.errors.CaptureError` with a plain-English message saying what to do;
* the capture is non-blocking and waits with ``select`` on its descriptor, so iteration never
  hangs: while no packet arrives it yields ``None`` about every ``idle_interval`` seconds (so
  the caller can advance its clock), and it ends within about ``idle_interval`` of
  :meth:`LiveSource.stop`, which only sets a flag and is safe from a signal handler;
* a packet is handed on at most about 100 ms after it arrives (the kernel block timeout);
* a capture error while the interface still exists (it went down) does not end the capture:
  the loss is logged, the source yields ``None`` every ``idle_interval`` while it tries to
  reopen the interface about once a second, and capture resumes (logged) once it is up again;
  ``stats()`` keeps counting across the reopenings. An interface removed while capturing
  raises :class:`~monitor.errors.CaptureError` ("capture on interface ... failed");
* ``stats()`` reports what was yielded and the kernel's counts (received, dropped by the
  kernel for lack of buffer space, dropped by the interface), still readable after close.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pcapy

from monitor.errors import CaptureError
from monitor.pcapfile import LINKTYPE_RAW, Record

# libpcap status codes returned by pcap_activate() (pcap/pcap.h).
_NO_SUCH_DEVICE = -5
_PERM_DENIED = -8
_IFACE_NOT_UP = -9
_PROMISC_PERM_DENIED = -11

# libpcap DLT_* values that differ from the LINKTYPE_* value written in files.
_DLT_TO_LINKTYPE = {12: LINKTYPE_RAW, 14: LINKTYPE_RAW}

log = logging.getLogger(__name__)
_REOPEN_EVERY_S = 1.0

_PERMISSION = "permission denied: run as root or grant CAP_NET_RAW and CAP_NET_ADMIN"


def linktype_of(dlt: int) -> int:
    """The LINKTYPE_* value (as in capture files) of a libpcap DLT_* value."""
    return _DLT_TO_LINKTYPE.get(dlt, dlt)


class LiveSource:
    """A :class:`~monitor.capture.PacketSource` on a live interface (see module guarantees).

    ``linktype`` is the interface's link type. ``stats()`` gives ``packets`` and ``bytes``
    (captured bytes) yielded, ``truncated`` (always 0 live), ``kernel_received``,
    ``kernel_dropped`` and ``if_dropped``.
    """

    def __init__(
        self,
        interface: str,
        handle: Any,
        idle_interval: float,
        reopen: Callable[[], Any] | None = None,
    ) -> None:
        # ``handle`` is an activated pcapy reader (pcapy does not export its type); ``reopen``
        # makes a new one (CaptureError while it cannot) after the interface went down.
        self.name = interface
        self._reopen = reopen
        self._kernel_before = (0, 0, 0)
        self.linktype = linktype_of(handle.datalink())
        self._handle = handle
        self._idle = idle_interval
        self._stopped = False
        self._closed = False
        self._packets = 0
        self._bytes = 0
        self._kernel = (0, 0, 0)

    def __iter__(self) -> Iterator[Record | None]:
        handle, linktype, idle = self._handle, self.linktype, self._idle
        fd = handle.getfd()
        deadline = time.monotonic() + idle
        while not self._stopped:
            try:
                header, frame = handle.next()
            except pcapy.PcapError as exc:
                if self._reopen is None or not _exists(self.name):
                    raise CaptureError(f"capture on interface {self.name} failed: {exc}") from None
                handle = yield from self._reconnect(self._reopen, str(exc))
                if handle is None:
                    return
                fd = handle.getfd()
                deadline = time.monotonic() + idle
                continue
            if header is not None:
                sec, usec = header.getts()
                self._packets += 1
                self._bytes += len(frame)
                yield sec + usec * 1e-6, linktype, frame
                deadline = time.monotonic() + idle
                continue
            wait = deadline - time.monotonic()
            if wait <= 0:
                yield None
                deadline = time.monotonic() + idle
            else:
                select.select([fd], [], [], wait)

    def _reconnect(self, reopen: Callable[[], Any], reason: str) -> Generator[None, None, Any]:
        """Wait (yielding ``None``) until the interface can be captured on again; the new
        handle, or ``None`` when stopped first."""
        log.warning(
            "capture on interface %s stopped (%s); waiting for it to come back", self.name, reason
        )
        self._retire_handle()
        started = time.monotonic()
        while not self._stopped:
            try:
                handle = reopen()
            except CaptureError:
                handle = None
            if handle is not None:
                self._handle = handle
                log.warning(
                    "capturing on interface %s again after %.1f s",
                    self.name,
                    time.monotonic() - started,
                )
                return handle
            waited = 0.0
            while waited < _REOPEN_EVERY_S and not self._stopped:
                yield None
                time.sleep(min(self._idle, _REOPEN_EVERY_S))
                waited += min(self._idle, _REOPEN_EVERY_S)
        return None

    def _retire_handle(self) -> None:
        """Close the current handle, keeping its kernel counters in the running totals."""
        try:
            counts = tuple(self._handle.stats())
        except pcapy.PcapError:
            counts = (0, 0, 0)
        self._kernel_before = tuple(a + b for a, b in zip(self._kernel_before, counts, strict=True))
        self._kernel = self._kernel_before
        self._handle.close()
        self._handle = None

    def stats(self) -> dict[str, int]:
        """Packets and bytes yielded so far, and the kernel's counters (summed over every
        reopening of the interface)."""
        if not self._closed and self._handle is not None:
            counts = tuple(self._handle.stats())
            self._kernel = tuple(a + b for a, b in zip(self._kernel_before, counts, strict=True))
        received, dropped, if_dropped = self._kernel
        return {
            "packets": self._packets,
            "bytes": self._bytes,
            "truncated": 0,
            "kernel_received": received,
            "kernel_dropped": dropped,
            "if_dropped": if_dropped,
        }

    def stop(self) -> None:
        """Ask the iterator to end; only sets a flag (signal-handler safe)."""
        self._stopped = True

    def close(self) -> None:
        """Stop and release the capture handle (kernel counters are kept for stats())."""
        self.stop()
        if not self._closed:
            self.stats()
            self._closed = True
            if self._handle is not None:
                self._handle.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_live(
    interface: str,
    *,
    bpf_filter: str = "",
    snaplen: int = 65535,
    promiscuous: bool = True,
    buffer_size: int = 16 << 20,
    idle_interval: float = 0.5,
) -> LiveSource:
    """Start capturing on ``interface`` (see module guarantees); CaptureError if it cannot."""
    options = (bpf_filter, snaplen, promiscuous, buffer_size, idle_interval)
    handle = _activate(interface, *options)
    return LiveSource(
        interface, handle, idle_interval, reopen=lambda: _activate(interface, *options)
    )


def _activate(
    interface: str,
    bpf_filter: str,
    snaplen: int,
    promiscuous: bool,
    buffer_size: int,
    idle_interval: float,
) -> Any:
    """An activated, non-blocking pcapy handle on ``interface``; CaptureError if it cannot."""
    handle = pcapy.create(interface)
    handle.set_snaplen(snaplen)
    handle.set_promisc(promiscuous)
    handle.set_buffer_size(buffer_size)
    handle.set_timeout(max(1, min(100, int(idle_interval * 1000))))
    status = handle.activate()
    if status < 0:
        handle.close()
        raise CaptureError(_activate_error(interface, status))
    try:
        if bpf_filter:
            handle.setfilter(bpf_filter)
        handle.setnonblock(True)
    except pcapy.PcapError as exc:
        handle.close()
        raise CaptureError(f"invalid capture filter {bpf_filter!r}: {exc}") from None
    return handle


def _exists(interface: str) -> bool:
    """Whether ``interface`` exists in this network namespace."""
    try:
        socket.if_nametoindex(interface)
    except OSError:
        return False
    return True


def _activate_error(interface: str, status: int) -> str:
    """A plain-English message for a failed pcap_activate()."""
    if status == _NO_SUCH_DEVICE:
        available = ", ".join(pcapy.findalldevs())
        return f"interface {interface} does not exist; available: {available}"
    if status in (_PERM_DENIED, _PROMISC_PERM_DENIED):
        return _PERMISSION
    if status == _IFACE_NOT_UP:
        return f"interface {interface} is down; bring it up with: ip link set {interface} up"
    return f"cannot capture on interface {interface} (libpcap error {status})"
