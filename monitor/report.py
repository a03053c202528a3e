"""The printable report: one self-contained HTML page per home (sensor) for a period.

What it holds: the devices seen, where the data went by country, the audio-sized uploads, the
alerts (muted ones left out), and advice written for people. Guarantees: the page is one file
with its style inline and no script, image or font fetched from anywhere (it opens offline and
prints); every string is in the chosen language (English or French, the dashboard's
translations); device-controlled text is escaped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from monitor import store_views
from monitor.config import Config


def report_context(store: Any, since: float, now: float) -> dict[str, Any]:
    """What the report template shows for the store's sensor between ``since`` and ``now``."""
    devices = [d for d in store.devices() if (d.get("last_seen") or 0) >= since]
    by_mac = {d["mac"]: d for d in store.devices()}
    uploads: dict[str, dict[str, Any]] = {}
    for burst in store.bursts(since=since, limit=5000):
        if burst.get("shape") != "audio":
            continue
        entry = uploads.setdefault(
            burst["device_mac"],
            {"device": by_mac.get(burst["device_mac"]), "count": 0, "bytes": 0, "seconds": 0.0,
             "countries": set()},
        )  # fmt: skip
        entry["count"] += 1
        entry["bytes"] += burst.get("bytes_up") or 0
        entry["seconds"] += burst.get("audio_seconds") or 0.0
        country = (burst.get("destination") or {}).get("country")
        if country:
            entry["countries"].add(country)
    alerts = [a for a in store.alerts(since=since, limit=500) if not a.get("muted")]
    return {
        "sensor": store.sensor,
        "since": since,
        "now": now,
        "devices": devices,
        "by_mac": by_mac,
        "countries": store_views.countries(store, since),
        "uploads": sorted(uploads.values(), key=lambda e: -e["bytes"]),
        "alerts": alerts,
    }


def render_report(
    config: Config, store: Any, since: float, language: str = "en", now: float | None = None
) -> str:
    """The report as an HTML document in ``language`` (``en`` or ``fr``)."""
    from flask import render_template
    from flask_babel import force_locale

    from dashboard import create_app

    app = create_app({"MICWATCH_CONFIG": config, "STORE": store, "SECRET_KEY": "report"})
    with app.test_request_context(), force_locale(language):
        context = report_context(store, since, time.time() if now is None else now)
        return render_template("report.html", **context, lang=language)


def write_report(config: Config, store: Any, since: float, out: Path, language: str = "en") -> Path:
    """Write the report to ``out`` and return the path."""
    out.write_text(render_report(config, store, since, language), encoding="utf-8")
    return out
