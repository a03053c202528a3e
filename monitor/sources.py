"""Which packet source the daemon reads, from the configuration and the command line.

Guarantee: :func:`open_capture` returns an open source and the home's networks as seen from it
(the interface's own networks when capturing live; None for files and commands, meaning the
private ranges), or raises :class:`~monitor.errors.ConfigError` saying what to set, or
:class:`~monitor.errors.CaptureError` saying why the source cannot be opened.

With ``capture.intercept`` the live source comes with an ARP interception (see
:mod:`monitor.intercept`) that the source's ``close()`` ends, restoring every cache; the capture
then drops the copies of forwarded packets the kernel sends back out (our MAC as source, not
our address), so each intercepted packet is counted once. A SIGTERM arriving before the caller
installs its own handler (while it is still starting) exits through Python, restoring the
caches, instead of killing the process with the caches poisoned.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Any

from monitor.capture import open_files, open_live
from monitor.config import Config
from monitor.errors import ConfigError
from monitor.netif import interface_networks


def open_capture(config: Config, read: Sequence[str] | None = None) -> tuple[Any, list[str] | None]:
    """The source to capture from: ``read`` files (``-`` for standard input), else the command
    ``capture.command``, else the live interface ``capture.interface`` (intercepting the
    devices of ``capture.intercept`` if any)."""
    if read:
        return open_files(list(read)), None
    if config["capture.command"]:
        from monitor.capture_command import open_command

        return open_command(
            config["capture.command"], retry_max=config["capture.command_retry_max"]
        ), None
    interface = config["capture.interface"]
    if not interface:
        raise ConfigError(
            "nothing to capture from: give an interface with -i IFACE (option "
            "capture.interface), a command with --capture-command, or read a capture with "
            "-r FILE (- for standard input)"
        )
    if config["capture.intercept"]:
        return _open_intercepted(config, interface), interface_networks(interface)
    return _open_live(config, interface, config["capture.filter"]), interface_networks(interface)


def _open_live(config: Config, interface: str, bpf_filter: str) -> Any:
    return open_live(
        interface,
        bpf_filter=bpf_filter,
        snaplen=config["capture.snaplen"],
        promiscuous=config["capture.promiscuous"],
        buffer_size=config["capture.buffer_size"],
    )


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _open_intercepted(config: Config, interface: str) -> Any:
    from monitor.intercept import InterceptedSource, start_interception
    from monitor.paths import state_dir

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        # Until the caller installs its own handler, SIGTERM exits through Python, so the
        # interception's exit hook restores the caches (the default would kill outright).
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    interception = start_interception(
        interface,
        config["capture.intercept"],
        state_dir(config["store.state_dir"]),
        gateway=config["capture.gateway"],
        allow_large=config["capture.intercept_allow_large"],
        interval=config["capture.intercept_interval"],
        rescan_interval=config["capture.intercept_rescan"],
    )
    link = interception.link
    forwarded_copies = f"not (ether src {link.mac} and not src host {link.ip})"
    user = config["capture.filter"]
    bpf_filter = f"({user}) and {forwarded_copies}" if user else forwarded_copies
    try:
        source = _open_live(config, interface, bpf_filter)
    except BaseException:
        interception.restore()
        raise
    return InterceptedSource(source, interception)
