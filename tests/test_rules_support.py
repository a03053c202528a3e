"""Builders of synthetic events and rule files shared by the tests/test_rules_*.py modules."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.events import DestinationContacted, DeviceSeen, NameContacted, UploadBurst
from monitor.model import Destination, Device

PARIS = ZoneInfo("Europe/Paris")
MAC = "f0:27:2d:11:22:33"


def at(text: str, tz: ZoneInfo = PARIS) -> float:
    """The timestamp of a local time such as ``2024-03-05 14:00`` in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def device(**changes: Any) -> Device:
    """An Echo-like speaker; keyword arguments override its fields."""
    values: dict[str, Any] = {
        "mac": MAC,
        "first_seen": 0.0,
        "last_seen": 0.0,
        "vendor": "Amazon Technologies Inc.",
        "hostname": "amazon-echo",
        "category": "speaker",
        "name": "Echo Dot",
    }
    values.update(changes)
    return Device(**values)


def destination(**changes: Any) -> Destination:
    """An Amazon address in Ireland, foreign for a French home; keywords override fields."""
    values: dict[str, Any] = {
        "ip": "52.94.233.10",
        "names": {"avs-alexa-eu.amazon.com"},
        "country": "IE",
        "org": "amazon.com",
        "asn": 16509,
        "asn_org": "AMAZON-02",
        "jurisdiction": "US",
        "foreign": True,
    }
    values.update(changes)
    return Destination(**values)


def burst(
    ts: float | None = None,
    dev: Device | None = None,
    dest: Destination | None = None,
    **changes: Any,
) -> UploadBurst:
    """A 4-second audio-shaped burst over TLS ending at ``ts``; keywords override fields."""
    end = at("2024-03-05 14:00") if ts is None else ts
    values: dict[str, Any] = {
        "device": dev or device(),
        "destination": dest or destination(),
        "ts_start": end - 4.0,
        "ts_end": end,
        "bytes_up": 96_000,
        "bytes_down": 20_000,
        "packets_up": 120,
        "duration_s": 4.0,
        "mean_kbps": 24.0,
        "peak_kbps": 31.5,
        "shape": "audio",
        "audio_seconds": 12.0,
        "dest_ips": ["52.94.233.10"],
        "services": ["tls"],
        "transports": ["tcp"],
    }
    values.update(changes)
    return UploadBurst(**values)


def seen(first_ever: bool = True, ts: float = 1_700_000_000.0, **changes: Any) -> DeviceSeen:
    return DeviceSeen(ts=ts, device=device(**changes), first_ever=first_ever)


def contacted(
    new_org: bool = True, ts: float = 1_700_000_000.0, **dest: Any
) -> DestinationContacted:
    return DestinationContacted(
        ts=ts, device=device(), destination=destination(**dest), new_org=new_org
    )


def named(name: str, ts: float = 1_700_000_000.0, dest_ip: str | None = None) -> NameContacted:
    return NameContacted(ts=ts, device=device(), name=name, source="dns", dest_ip=dest_ip)


def write_rule(directory: Path, name: str, text: str) -> Path:
    """Write a rule file (dedented) into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path
