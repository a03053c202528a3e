"""Jinja filters and labels shared by the pages and the report, in the request's language.

Guarantees: every filter accepts None (rendered as an em dash or the untranslated fallback) and
returns plain text; Jinja escapes it when it lands in a page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask_babel import format_datetime, format_decimal, get_locale, lazy_gettext
from flask_babel import gettext as _

from monitor import alert_i18n

LEVEL_LABELS = {
    "high": lazy_gettext("high"),
    "medium": lazy_gettext("medium"),
    "low": lazy_gettext("low"),
    "info": lazy_gettext("info"),
}
SHAPE_LABELS = {
    "audio": lazy_gettext("audio-sized"),
    "video": lazy_gettext("video-sized"),
    "bulk": lazy_gettext("bulk"),
}
RULE_STATES = {
    "active": lazy_gettext("active"),
    "disabled": lazy_gettext("switched off"),
    "stale": lazy_gettext("file broken, previous version runs"),
    "error": lazy_gettext("file broken, not running"),
    "overridden": lazy_gettext("replaced by another file"),
    "duplicate": lazy_gettext("same id as another file"),
}
#: The titles of the built-in rules, marked for translation: :func:`rule_title` looks a stored
#: title up in the catalogue, so a built-in rule's alerts are titled in the reader's language and
#: a user's own rule keeps its words.
BUILTIN_RULE_TITLES = (
    lazy_gettext("Audio-sized upload to a server abroad"),
    lazy_gettext("Audio-sized upload at night from a speaker, toy or camera"),
    lazy_gettext("Traffic with an address on an indicator list"),
    lazy_gettext("Contact with a server on an indicator list"),
    lazy_gettext("New device on the network"),
    lazy_gettext("First contact with a new organisation abroad"),
    lazy_gettext("Unencrypted upload from a speaker, toy or camera"),
    lazy_gettext("Video-sized upload to a server abroad"),
)
DASH = "—"


def human_bytes(value: Any) -> str:
    """``373 kB``, ``1.2 MB`` (``373 ko``, ``1,2 Mo`` in French)."""
    if value is None:
        return DASH
    size = float(value)
    if size < 1000:
        return _("%(n)s B", n=format_decimal(int(size)))
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    number = format_decimal(round(size, 1 if size < 10 else 0))
    units = {"kB": _("%(n)s kB", n=number), "MB": _("%(n)s MB", n=number)}
    return units.get(unit) or _("%(n)s GB", n=number)


def when(ts: Any) -> str:
    """A timestamp as a short local date and time."""
    if ts is None:
        return DASH
    return format_datetime(datetime.fromtimestamp(float(ts), UTC), "short")


def clock(ts: Any) -> str:
    """A timestamp as a local time of day (HH:MM)."""
    if ts is None:
        return DASH
    return format_datetime(datetime.fromtimestamp(float(ts), UTC), "HH:mm")


def percent(value: Any) -> str:
    """0.985 -> ``98 %`` in French, ``98%`` in English."""
    return _("%(n)s%%", n=round(100 * float(value or 0)))


def device_name(row: dict[str, Any] | None) -> str:
    """What a person calls the device: their label, else the guessed name, the host name or
    the MAC address."""
    if not row:
        return DASH
    return row.get("label") or row.get("name") or row.get("hostname") or row.get("mac") or DASH


def category(value: Any) -> str:
    """A category in words (:data:`monitor.alert_i18n.CATEGORY_WORDS`)."""
    return alert_i18n.category_name(value, current_locale())


def rule_title(value: Any) -> str:
    """A rule's title in the current language when it is a built-in one, else as written."""
    return _(str(value)) if value else DASH


def level(value: Any) -> str:
    """An alert level in words."""
    return str(LEVEL_LABELS.get(value, value))


def shape(value: Any) -> str:
    """A burst shape in words."""
    return str(SHAPE_LABELS.get(value, value))


def country_name(code: str | None) -> str:
    """A country code as the country's name in the current language."""
    if not code:
        return _("unknown country")
    return alert_i18n.country_name(code, current_locale())


def rule_state(value: str) -> str:
    """A rule's status in words."""
    return str(RULE_STATES.get(value, value))


def current_locale() -> str:
    """The language code of the current request (``en`` or ``fr``)."""
    return str(get_locale() or "en")


def init_app(app: Flask) -> None:
    """Register the filters and globals on ``app``'s Jinja environment."""
    app.jinja_env.globals.update(
        country_name=country_name, rule_state=rule_state, current_locale=current_locale
    )
    for name, function in {
        "bytes": human_bytes,
        "when": when,
        "clock": clock,
        "percent": percent,
        "device_name": device_name,
        "category": category,
        "level": level,
        "rule_title": rule_title,
        "shape": shape,
    }.items():
        app.jinja_env.filters[name] = function
