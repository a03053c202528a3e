"""An alert's title and message in the reader's language, for the pages and the report.

The monitor stores each alert's message in the rule's own words (English for the built-in
rules) together with the rule id and the flattened event it was rendered from. When the request's
language is not English and the rule has a translation into it (the rule file's
``translations``), the message is rendered again from the stored event in that language, with
country codes and device categories in words of that language; otherwise the stored message is
shown as it is. Guarantees: never raises on a stored row (a missing rule, a broken rules
directory or an odd event falls back to the stored text); the rules are read once and read again
only when a rule file changes.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app, g

from dashboard.formatting import category, country_name, current_locale, rule_title
from monitor.errors import ConfigError
from rules.engine import RuleEngine
from rules.loader import rule_paths

_KEY = "micwatch_alert_text"
_lock = threading.Lock()


def _engine() -> RuleEngine | None:
    """The app's rule engine (for its rules' translations), reloaded when a file changed."""
    with _lock:
        slot = current_app.extensions.get(_KEY)
        if slot is None:
            config = current_app.extensions["micwatch"].config
            try:
                engine: RuleEngine | None = RuleEngine(
                    rule_paths(config),
                    timezone=config["rules.timezone"],
                    night=config["rules.night"],
                )
            except ConfigError:
                engine = None
            slot = current_app.extensions[_KEY] = [engine]
        engine = slot[0]
        if engine is not None and not g.get(_KEY) and engine.changed():
            engine.reload()
        g.setdefault(_KEY, True)  # one look at the rule files per request
        return engine


def _localised(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its country codes and device category in the request's language."""
    out = dict(record)
    for name in ("dest.country", "dest.jurisdiction"):
        if isinstance(out.get(name), str) and out[name]:
            out[name] = country_name(out[name])
    if isinstance(out.get("device.category"), str) and out["device.category"]:
        out["device.category"] = category(out["device.category"])
    return out


def alert_text(alert: dict[str, Any]) -> tuple[str, str]:
    """(title, message) of a stored alert row in the request's language (see the module)."""
    title = rule_title(alert.get("title")) if alert.get("title") else str(alert.get("rule") or "")
    message = str(alert.get("message") or "")
    language = current_locale().split("_")[0]
    event = alert.get("event")
    if language == "en" or not alert.get("rule") or not isinstance(event, dict):
        return title, message
    engine = _engine()
    if engine is None:
        return title, message
    translated = engine.text(str(alert["rule"]), language, _localised(event))
    return translated if translated is not None else (title, message)


def alert_title(alert: dict[str, Any]) -> str:
    """The alert's title in the request's language."""
    return alert_text(alert)[0]


def alert_message(alert: dict[str, Any]) -> str:
    """The alert's message in the request's language."""
    return alert_text(alert)[1]


def init_app(app: Flask) -> None:
    """Register the ``alert_title`` and ``alert_message`` filters on ``app``."""
    app.jinja_env.filters["alert_title"] = alert_title
    app.jinja_env.filters["alert_message"] = alert_message
