"""The dashboard's settings file: ``<state_dir>/settings.toml``.

What the user changes on the dashboard's Settings and Rules pages (home set, retention,
notification targets, rules switched off) is written here as ordinary configuration options;
:func:`monitor.config.load` reads it after the main configuration file and before the
environment and the command line, so the daemon picks it up at its next start (or reload).

Guarantees: :func:`write_settings` validates every value with the option registry before
writing (a bad value raises :class:`~monitor.errors.ConfigError` and the file is unchanged),
writes atomically (a reader never sees half a file) with mode 0600, and keeps the options it was
not asked to change.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError

SETTINGS_FILE = "settings.toml"


def settings_path(configured_state_dir: str = "") -> Path:
    """The settings file in the state directory (see :func:`monitor.store.state_dir`)."""
    from monitor.paths import state_dir

    return state_dir(configured_state_dir) / SETTINGS_FILE


def read_settings(path: Path) -> dict[str, Any]:
    """The options stored in ``path`` as ``{"section.name": value}``; empty when missing."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    return {
        f"{section}.{name}": value
        for section, table in data.items()
        if isinstance(table, dict)
        for name, value in table.items()
    }


def write_settings(path: Path, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` (option key -> value, None removes the key) into the file and return
    the stored options. Values are validated and stored in their typed form."""
    from monitor.config import OPTIONS_BY_KEY

    stored = read_settings(path)
    for key, value in updates.items():
        option = OPTIONS_BY_KEY.get(key)
        if option is None:
            raise ConfigError(f"unknown option {key}")
        if value is None:
            stored.pop(key, None)
        else:
            stored[key] = option.convert(value, "settings")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(_to_toml(stored))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return stored


def _to_toml(options: Mapping[str, Any]) -> str:
    lines = ["# Written by the micwatch dashboard; read after micwatch.toml."]
    by_section: dict[str, list[str]] = {}
    for key in sorted(options):
        section, name = key.split(".", 1)
        by_section.setdefault(section, []).append(f"{name} = {_value(options[key])}")
    for section, entries in by_section.items():
        lines += ["", f"[{section}]", *entries]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    text = str(value)
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'
