"""Where micwatch keeps its state, without importing the database layer.

Guarantee: :func:`state_dir` only computes a path (nothing is created or checked), so any module
can call it cheaply: the configuration, the rules loader, the dashboard and the store agree on one
place.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir(configured: str = "") -> Path:
    """Where micwatch keeps its state: ``configured`` (``store.state_dir``) when given, else
    ``/var/lib/micwatch`` as root, else ``$XDG_STATE_HOME/micwatch`` (``~/.local/state``)."""
    if configured:
        return Path(configured).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/micwatch")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "micwatch"
