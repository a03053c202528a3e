"""Logging in and out, and the gate in front of every other route.

Guarantees:

* every endpoint except ``auth.login`` and ``static`` requires a logged-in session, checked in
  one place (:func:`require_login`, run before every request): a page answers 302 to the login
  page, an ``/api/`` route 401; the API also accepts ``Authorization: Bearer <token>``;
* a session is cleared and rebuilt at login (no fixation) and carries the password's epoch, so
  changing the password ends every older session;
* a client IP gets :data:`MAX_FAILURES` failed logins per :data:`WINDOW_S` seconds, then 429.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

bp = Blueprint("auth", __name__)

MAX_FAILURES = 5
WINDOW_S = 300.0
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static"})


class LoginLimiter:
    """Failed logins per client address in a sliding window, in memory (one process)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked(self, client: str) -> bool:
        """True when ``client`` used up its failures in the window."""
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.max_failures

    def failed(self, client: str) -> None:
        """Count one failed login of ``client``."""
        with self._lock:
            self._recent(client, time.monotonic()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures."""
        with self._lock:
            self._failures.pop(client, None)


def local_path(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site (``/...``; not ``//host`` nor ``/\\host``,
    which browsers read as another site), else ``default``: no open redirect."""
    if target and target.startswith("/") and target[1:2] not in ("/", "\\"):
        return target
    return default


def _credentials() -> Any:
    return current_app.extensions["micwatch"].credentials


def _bearer_ok() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    return scheme.lower() == "bearer" and bool(token) and _credentials().check_token(token.strip())


def logged_in() -> bool:
    """True when the session belongs to the current password."""
    return session.get("epoch") == _credentials().password_epoch() and "user" in session


@bp.before_app_request
def require_login() -> Response | None:
    """Refuse every non-public endpoint without a session (or, for the API, a token)."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if logged_in():
        return None
    if request.path.startswith("/api/") or request.path == "/metrics":
        if _bearer_ok():
            return None
        response = jsonify(error="authentication required")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return redirect(url_for("auth.login", next=request.full_path if request.args else request.path))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; on success a fresh session and a redirect to ``next`` (a local path)."""
    limiter: LoginLimiter = current_app.extensions["micwatch"].limiter
    client = request.remote_addr or "?"
    if request.method == "POST":
        if limiter.blocked(client):
            abort(429)
        if _credentials().check_password(request.form.get("password", "")):
            limiter.succeeded(client)
            language = session.get("language")
            session.clear()
            session["user"] = "admin"
            session["epoch"] = _credentials().password_epoch()
            if language:
                session["language"] = language
            return redirect(local_path(request.args.get("next"), url_for("views.home")))
        limiter.failed(client)
        flash(_("Wrong password."), "error")
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """End the session."""
    session.clear()
    return redirect(url_for("auth.login"))
