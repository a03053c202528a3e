"""The micwatch dashboard: a Flask app over the store (pages, a JSON API, the report).

:func:`create_app` builds it from micwatch's configuration (``store.*``, ``dashboard.*``).
Guarantees: every response carries the security headers of :data:`SECURITY_HEADERS` (a CSP
allowing only this origin's files: no inline script or style, no framing); every form is
CSRF-protected; every route but the login page and static files requires a login
(:mod:`dashboard.auth`); every asset is served from ``static/``: no request leaves the box.
When several sensors write to one database, each session shows one of them, chosen in the
navbar (:mod:`dashboard.sensors`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, render_template, request, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from dashboard.auth import LoginLimiter
from dashboard.credentials import SECRET_FILE, Credentials, secret_key
from monitor.config import Config, load
from rules.loader import state_rules_dir

LANGUAGES = ("en", "fr")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Dashboard:
    """What the app's views share, in ``app.extensions["micwatch"]``."""

    config: Config
    store: Any
    state_dir: Path
    credentials: Credentials
    limiter: LoginLimiter
    _views: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def reader(self, sensor: str) -> Any:
        """The store reader of ``sensor``: :attr:`store` for its own sensor, else a view of it
        sharing its engine, made at the first request and kept (the callers pass only names
        of :func:`dashboard.sensors.choices`, so this holds one view per sensor at most)."""
        if sensor == self.store.sensor:
            return self.store
        with self._lock:
            view = self._views.get(sensor)
            if view is None:
                view = self._views[sensor] = self.store.for_sensor(sensor)
            return view


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The dashboard app.

    ``test_config`` may hold Flask settings (``MICWATCH_RULES_DIR``: where allow rules are
    written, default the user's rules directory) plus ``MICWATCH_CONFIG`` (a
    :class:`~monitor.config.Config`; default: :func:`monitor.config.load`) and ``STORE`` (an
    open :class:`~monitor.store_reader.StoreReader`; default: the configured store, opened
    read-only). The session key comes from ``dashboard.secret_file`` unless ``SECRET_KEY`` is
    given.
    """
    from monitor.store import open_store, state_dir

    settings = dict(test_config or {})
    config: Config = settings.pop("MICWATCH_CONFIG", None) or load()
    store = settings.pop("STORE", None) or open_store(config, writer=False)
    directory = state_dir(config["store.state_dir"])
    app = Flask(__name__)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config["dashboard.secure_cookie"],
        SESSION_COOKIE_NAME="micwatch_session",
        MAX_CONTENT_LENGTH=64 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        MICWATCH_RULES_DIR=state_rules_dir(config),
    )
    app.config.update(settings)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(
            Path(config["dashboard.secret_file"] or directory / SECRET_FILE)
        )
    app.extensions["micwatch"] = Dashboard(
        config, store, directory, Credentials(directory), LoginLimiter()
    )
    Babel(app, locale_selector=_locale, timezone_selector=lambda: _timezone(config))

    from dashboard import admin, alert_text, api, auth, formatting, sensors, views

    formatting.init_app(app)
    alert_text.init_app(app)
    sensors.init_app(app)
    app.register_blueprint(auth.bp)  # first: the login gate runs before the CSRF check
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.metrics_bp)
    app.register_blueprint(admin.bp)
    CSRFProtect(app)
    app.after_request(_secure)
    app.register_error_handler(429, _too_many)
    return app


def _locale() -> str:
    """The user's switch, else the configured language, else the browser's best match."""
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    configured = current_app.extensions["micwatch"].config["dashboard.language"]
    return configured or request.accept_languages.best_match(LANGUAGES) or "en"


def _timezone(config: Config) -> str:
    """The rules' time zone, else the system's (from /etc/localtime), else UTC."""
    if config["rules.timezone"]:
        return config["rules.timezone"]
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _too_many(_error: Exception) -> tuple[str, int]:
    return render_template("error.html", code=429), 429
