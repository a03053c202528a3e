"""ARP interception: put the Pi between chosen devices and the home router, forwarding through
the kernel, so a Pi plugged into an ordinary switch port sees those devices' traffic.

How: each chosen device is told that the gateway's IPv4 address is at our MAC, and the gateway
that each device's address is at our MAC; the kernel forwards what arrives (forwarding is turned
on for the interface only, and ICMP redirects off, both put back afterwards), so nothing is lost
or slowed. IPv4 only: IPv6 traffic of intercepted devices does not pass the Pi.

Guarantees:

* a state file left by a run that died is undone first (caches and sysctls restored), before
  anything else is sent;
* networks larger than a /22 are refused unless ``allow_large`` is set; "all" (or a device
  given by MAC) scans the interface's subnet, paced; with "all", or while a chosen device has
  not answered, the scan is repeated every ``rescan_interval`` seconds and the devices found
  are intercepted too (the state file updated first);
* the state file is written before the first poisoned reply or sysctl change;
* replies are sent at once, three more times 0.6 s apart (a poisoned reply arriving within a
  second of a true one is ignored by Linux), then every ``interval`` seconds jittered by a
  quarter, from one background thread;
* :meth:`Interception.restore` (called by the source's ``close()``, and at interpreter exit
  should the caller fail before closing) stops the thread and restores every cache and sysctl
  it changed; it is idempotent. After SIGKILL the state file remains for the next run.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from monitor.errors import CaptureError, ConfigError
from monitor.intercept_arp import ArpSender, Binding, LocalLink, default_gateway, local_link
from monitor.intercept_arp import resolve as arp_resolve
from monitor.intercept_state import InterceptState, restore_leftover, save, set_sysctl, undo
from monitor.pcapfile import LINKTYPE_ETHERNET, Record

log = logging.getLogger(__name__)

LARGEST_PREFIX = 22
START_BURST = 3
START_SPACING_S = 0.6
IPV6_WARNING = (
    "ARP interception is IPv4 only: IPv6 traffic of the intercepted devices does not pass "
    "through micwatch and is not seen"
)


def _sysctls(interface: str) -> dict[str, str]:
    """The sysctls interception needs (path -> value), in this network namespace."""
    conf = "/proc/sys/net/ipv4/conf"
    return {
        f"{conf}/{interface}/forwarding": "1",
        f"{conf}/{interface}/send_redirects": "0",
        f"{conf}/all/send_redirects": "0",
    }


_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")


def _targets(link: LocalLink, wanted: Sequence[str], gateway: str) -> tuple[list[str], set[str]]:
    """The IPv4 addresses to ask, and the MACs and addresses wanted among those that answer
    (an empty set of both: every host that answers)."""
    others = [str(a) for a in link.network.hosts() if str(a) not in (link.ip, gateway)]
    if [w.lower() for w in wanted] == ["all"]:
        return others, set()
    ips: list[str] = []
    keys: set[str] = set()
    for item in wanted:
        if _MAC.fullmatch(item):
            keys.add(item.lower())
            continue
        try:
            address = ipaddress.IPv4Address(item)
        except ValueError:
            raise ConfigError(
                f"capture.intercept: {item!r} is neither a MAC address, an IPv4 address nor 'all'"
            ) from None
        if address not in link.network:
            raise ConfigError(
                f"capture.intercept: {item} is not on {link.interface}'s network {link.network}"
            )
        ips.append(str(address))
    keys.update(ips)
    macs_wanted = len(keys) > len(set(ips))  # a MAC's address is found by asking the subnet
    return (others if macs_wanted else ips), keys


class Interception:
    """ARP interception of chosen devices on one interface (see the module guarantees)."""

    def __init__(
        self,
        link: LocalLink,
        gateway: Binding,
        devices: list[Binding],
        state_dir: Path,
        interval: float,
        rescan: Callable[[], list[Binding]] | None = None,
        rescan_interval: float = 300.0,
    ) -> None:
        self.link = link
        self.gateway = gateway
        self.devices = devices
        self.true_macs = _true_macs(devices)
        self._state_dir = state_dir
        self._interval = interval
        self._rescan = rescan
        self._rescan_interval = rescan_interval
        self._stop = threading.Event()
        self._sender = ArpSender(link)
        self._state = InterceptState(link.interface, gateway, devices)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Save the state, turn on forwarding, poison, and keep poisoning in the background.

        Sysctls already at the needed value are left alone (and not restored); CaptureError if
        one cannot be changed, with everything undone."""
        current = {path: Path(path).read_text().strip() for path in _sysctls(self.link.interface)}
        changes = {p: v for p, v in _sysctls(self.link.interface).items() if current[p] != v}
        self._state.sysctls = {path: current[path] for path in changes}
        save(self._state, self._state_dir)
        atexit.register(self.restore)
        for number, (path, value) in enumerate(changes.items()):
            try:
                set_sysctl(path, value)
            except OSError as exc:
                self._state.sysctls = {p: current[p] for p in list(changes)[:number]}
                self.restore()
                raise CaptureError(_sysctl_advice(self.link.interface, path, exc)) from None
        self._poison()
        self._thread = threading.Thread(target=self._run, name="arp-intercept", daemon=True)
        self._thread.start()
        log.warning(
            "intercepting %d device(s) on %s via gateway %s: %s",
            len(self.devices),
            self.link.interface,
            self.gateway.ip,
            ", ".join(f"{d.ip} ({d.mac})" for d in self.devices),
        )
        log.warning(IPV6_WARNING)

    def _poison(self) -> None:
        for device in self.devices:
            self._sender.claim(device, self.gateway.ip, self.link.mac)
            self._sender.claim(self.gateway, device.ip, self.link.mac)

    def _run(self) -> None:
        for _ in range(START_BURST):  # spaced beyond the kernel's 1 s ARP lock time
            if self._stop.wait(START_SPACING_S):
                return
            self._poison()
        next_scan = time.monotonic() + self._rescan_interval
        while not self._stop.wait(self._interval * random.uniform(0.75, 1.25)):
            try:
                if self._rescan is not None and time.monotonic() >= next_scan:
                    self._add(self._rescan())
                    next_scan = time.monotonic() + self._rescan_interval
                self._poison()
            except OSError as exc:
                log.error("ARP interception: sending failed: %s", exc)

    def _add(self, found: list[Binding]) -> None:
        """Intercept the devices of ``found`` not yet intercepted (state saved first)."""
        known = {d.ip for d in self.devices}
        new = [b for b in found if b.ip not in known]
        if not new:
            return
        self.devices.extend(new)  # the same list as the state's
        save(self._state, self._state_dir)
        self.true_macs = _true_macs(self.devices)
        log.warning(
            "intercepting %d more device(s): %s",
            len(new),
            ", ".join(f"{d.ip} ({d.mac})" for d in new),
        )

    def restore(self) -> None:
        """Stop poisoning and restore every cache and sysctl (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        atexit.unregister(self.restore)
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            undo(self._state, self._state_dir, self._sender)
            log.warning("ARP caches of the intercepted devices and the gateway restored")
        finally:
            self._sender.close()


def _sysctl_advice(interface: str, path: str, exc: OSError) -> str:
    name = path.removeprefix("/proc/sys/").replace("/", ".")
    return (
        f"cannot set {name} ({exc.strerror}): run as root, or set these once in "
        f"/etc/sysctl.d/90-micwatch-intercept.conf (the micwatch service may not change them): "
        f"net.ipv4.conf.{interface}.forwarding=1, net.ipv4.conf.{interface}.send_redirects=0, "
        "net.ipv4.conf.all.send_redirects=0"
    )


def _true_macs(devices: list[Binding]) -> dict[bytes, bytes]:
    """Packed IPv4 address -> packed true MAC of each device."""
    return {socket.inet_aton(d.ip): _mac_bytes(d.mac) for d in devices}


def start_interception(
    interface: str,
    wanted: Sequence[str],
    state_dir: Path,
    *,
    gateway: str = "",
    allow_large: bool = False,
    interval: float = 2.0,
    rescan_interval: float = 300.0,
) -> Interception:
    """Restore any leftover, find the gateway and devices, and start intercepting them
    (CaptureError in plain words without the permission to send raw frames or set sysctls)."""
    try:
        return _start(interface, wanted, state_dir, gateway, allow_large, interval, rescan_interval)
    except PermissionError:
        raise CaptureError(
            "permission denied: ARP interception needs root (or CAP_NET_RAW and CAP_NET_ADMIN)"
        ) from None


def _start(
    interface: str,
    wanted: Sequence[str],
    state_dir: Path,
    gateway: str,
    allow_large: bool,
    interval: float,
    rescan_interval: float,
) -> Interception:
    restore_leftover(state_dir)
    link = local_link(interface)
    if link.network.prefixlen < LARGEST_PREFIX and not allow_large:
        raise ConfigError(
            f"{interface}'s network {link.network} is larger than a /{LARGEST_PREFIX}: ARP "
            "interception refuses to run there unless capture.intercept_allow_large is set"
        )
    gateway_ip = gateway or default_gateway(interface)
    if not gateway_ip:
        raise ConfigError(
            f"no default route through {interface}: give the router's address with capture.gateway"
        )
    found = arp_resolve(interface, [gateway_ip])
    if not found:
        raise CaptureError(f"the gateway {gateway_ip} does not answer ARP on {interface}")
    ask, keys = _targets(link, wanted, gateway_ip)

    def scan() -> list[Binding]:
        return [b for b in arp_resolve(interface, ask) if not keys or {b.ip, b.mac} & keys]

    devices = scan()
    if not devices:
        raise CaptureError(
            f"none of the devices to intercept ({', '.join(wanted)}) answered ARP on {interface}"
        )
    missing = keys - {d.ip for d in devices} - {d.mac for d in devices}
    rescan = scan if not keys or missing else None
    interception = Interception(
        link, found[0], devices, state_dir, interval, rescan, rescan_interval
    )
    interception.start()
    return interception


class InterceptedSource:
    """A live source under ARP interception (see :func:`monitor.sources.open_capture`).

    Guarantees: every IPv4 frame that reached us only because of the interception (our MAC as
    destination, another host's address as destination IP) is yielded with the destination MAC
    it would have had without interception (the device's or the gateway's true MAC), so
    devices are inventoried under their own MACs; other frames are yielded as captured.
    ``close()`` closes the capture and then ends the interception, restoring every cache.
    """

    def __init__(self, source: Any, interception: Interception) -> None:
        self._source = source
        self._interception = interception
        self.name = source.name

    def __iter__(self) -> Iterator[Record | None]:
        interception = self._interception
        ours = _mac_bytes(interception.link.mac)
        our_ip = socket.inet_aton(interception.link.ip)
        gateway = _mac_bytes(interception.gateway.mac)
        for item in self._source:
            if item is not None and item[2][:6] == ours:
                ts, linktype, frame = item
                if linktype == LINKTYPE_ETHERNET and frame[12:14] == _IPV4:
                    destination = frame[30:34]
                    if destination != our_ip:
                        true_mac = interception.true_macs.get(destination, gateway)
                        item = (ts, linktype, true_mac + frame[6:])
            yield item

    def stats(self) -> dict[str, int]:
        """The live source's counters, plus ``intercepted_devices``."""
        return {**self._source.stats(), "intercepted_devices": len(self._interception.devices)}

    def stop(self) -> None:
        """Ask the capture to end (signal-handler safe); restoring happens in close()."""
        self._source.stop()

    def close(self) -> None:
        """Close the capture, then restore every cache and sysctl the interception changed."""
        try:
            self._source.close()
        finally:
            self._interception.restore()


_IPV4 = b"\x08\x00"


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))
