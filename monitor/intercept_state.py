"""What ARP interception changed, kept in a state file so that any later run can undo it.

Guarantees:

* :func:`save` writes the state file atomically (write to a temporary file, fsync, rename)
  *before* the first poisoned reply or sysctl change, so a run killed at any moment leaves a
  file that describes everything it may have changed;
* :func:`undo` tells every poisoned host its peers' true MACs :data:`RESTORE_ROUNDS` times,
  spread over about two seconds (longer than the kernel's one-second ARP lock time, so the
  true binding is accepted even right after a poisoned one), puts the saved sysctl values back
  and only then removes the state file; an interface that has gone is logged, never blocks;
* :func:`restore_leftover` does that for a file left by a run that died, and returns whether
  there was one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from monitor.errors import CaptureError
from monitor.intercept_arp import ArpSender, Binding, local_link

log = logging.getLogger(__name__)

STATE_FILE = "intercept.json"
RESTORE_ROUNDS = 5
RESTORE_SPACING_S = 0.5


@dataclass
class InterceptState:
    """The poisoned hosts and the sysctls changed (path -> previous value) on ``interface``."""

    interface: str
    gateway: Binding
    devices: list[Binding]
    sysctls: dict[str, str] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)


def state_path(state_dir: Path) -> Path:
    """Where the state file lives in ``state_dir``."""
    return state_dir / STATE_FILE


def save(state: InterceptState, state_dir: Path) -> None:
    """Write ``state`` atomically to the state file (creating ``state_dir``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_path(state_dir)
    temporary = target.with_suffix(".tmp")
    with temporary.open("w") as out:
        json.dump(asdict(state), out)
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(target)


def load(state_dir: Path) -> InterceptState | None:
    """The state left in ``state_dir``, or None (an unreadable file is logged and ignored)."""
    path = state_path(state_dir)
    try:
        raw = json.loads(path.read_text())
        return InterceptState(
            interface=raw["interface"],
            gateway=Binding(**raw["gateway"]),
            devices=[Binding(**d) for d in raw["devices"]],
            sysctls=dict(raw["sysctls"]),
            pid=int(raw["pid"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("ignoring unreadable interception state %s: %s", path, exc)
        return None


def set_sysctl(path: str, value: str) -> None:
    """Write ``value`` to the /proc/sys file ``path``."""
    Path(path).write_text(value)


def _tell_true_bindings(state: InterceptState, sender: ArpSender | None) -> None:
    own = sender is None
    if sender is None:
        sender = ArpSender(local_link(state.interface))
    try:
        for round_ in range(RESTORE_ROUNDS):
            if round_:
                time.sleep(RESTORE_SPACING_S)
            for device in state.devices:
                sender.claim(device, state.gateway.ip, state.gateway.mac)
                sender.claim(state.gateway, device.ip, device.mac)
    finally:
        if own:
            sender.close()


def undo(state: InterceptState, state_dir: Path, sender: ArpSender | None = None) -> None:
    """Restore every cache and sysctl ``state`` names, then remove the state file. When the
    interface is gone the caches cannot be told (they heal by themselves within about a
    minute): that is logged, and the sysctls are restored all the same."""
    try:
        _tell_true_bindings(state, sender)
    except (OSError, CaptureError) as exc:
        log.error(
            "could not tell the devices on %s their true MACs again (%s); their ARP caches "
            "heal by themselves within about a minute",
            state.interface,
            exc,
        )
    for path, previous in state.sysctls.items():
        try:
            set_sysctl(path, previous)
        except OSError as exc:
            log.error("could not restore %s to %s: %s", path, previous, exc)
    state_path(state_dir).unlink(missing_ok=True)


def restore_leftover(state_dir: Path) -> bool:
    """Undo what a run that died left in ``state_dir``; True if there was something to undo."""
    state = load(state_dir)
    if state is None:
        return False
    log.warning(
        "restoring the ARP caches of %d device(s) and the gateway %s left poisoned by a run "
        "that stopped without cleaning up (pid %d)",
        len(state.devices),
        state.gateway.ip,
        state.pid,
    )
    undo(state, state_dir)
    return True
