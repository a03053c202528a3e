"""Which packet source the daemon reads, from the configuration and the command line.

Guarantee: :func:`open_capture` returns an open source and the home's networks as seen from it
(the interface's own networks when capturing live; None for files, meaning the private ranges),
or raises :class:`~monitor.errors.ConfigError` saying what to set, or
:class:`~monitor.errors.CaptureError` saying why the source cannot be opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.capture import open_files, open_live
from monitor.config import Config
from monitor.errors import ConfigError
from monitor.netif import interface_networks


def open_capture(config: Config, read: Sequence[str] | None = None) -> tuple[Any, list[str] | None]:
    """The source to capture from: ``read`` files (``-`` for standard input), else the live
    interface ``capture.interface``."""
    if read:
        return open_files(list(read)), None
    interface = config["capture.interface"]
    if not interface:
        raise ConfigError(
            "nothing to capture from: give an interface with -i IFACE (option "
            "capture.interface) or read a capture with -r FILE (- for standard input)"
        )
    source = open_live(
        interface,
        bpf_filter=config["capture.filter"],
        snaplen=config["capture.snaplen"],
        promiscuous=config["capture.promiscuous"],
        buffer_size=config["capture.buffer_size"],
    )
    return source, interface_networks(interface)
