"""An alert's title and message in the reader's language, for the pages and the report: the
request's language applied to :func:`monitor.alert_i18n.alert_text` (see there for what is
translated and how).

Guarantees: never raises on a stored row (a missing rule, a broken rules directory or an odd
event falls back to the stored text); the rules are read once and read again only when a rule
file changes.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app, g

from dashboard.formatting import current_locale
from monitor import alert_i18n
from rules.engine import RuleEngine

_KEY = "micwatch_alert_text"
_lock = threading.Lock()


def _engine() -> RuleEngine | None:
    """The app's rule engine (for its rules' translations), reloaded when a file changed."""
    with _lock:
        slot = current_app.extensions.get(_KEY)
        if slot is None:
            config = current_app.extensions["micwatch"].config
            slot = current_app.extensions[_KEY] = [alert_i18n.rule_engine(config)]
        engine = slot[0]
        if engine is not None and not g.get(_KEY) and engine.changed():
            engine.reload()
        g.setdefault(_KEY, True)  # one look at the rule files per request
        return engine


def alert_text(alert: dict[str, Any]) -> tuple[str, str]:
    """(title, message) of a stored alert row in the request's language (see the module)."""
    language = current_locale().split("_")[0]
    return alert_i18n.alert_text(alert, language, _engine() if language != "en" else None)


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
