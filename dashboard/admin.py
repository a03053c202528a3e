"""The Rules and Settings pages, and the report download.

Rule switches and settings are written to ``<state_dir>/settings.toml``
(:mod:`monitor.settings_file`) as the options ``dashboard.disabled_rules``, ``enrich.home``,
``store.retention`` and ``notify.targets``; the daemon reads them through
:func:`monitor.config.load`. Guarantee: a value that does not validate is refused with a
message and nothing is written.
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _

from dashboard import sensors
from monitor.config import OPTIONS_BY_KEY, parse_duration
from monitor.errors import ConfigError
from monitor.settings_file import SETTINGS_FILE, read_settings, write_settings
from rules.engine import RuleEngine
from rules.loader import rule_paths

bp = Blueprint("admin", __name__)

DISABLED = "dashboard.disabled_rules"
#: The notification targets option (apprise URLs) of issue 6.
NOTIFY_KEY = "notify.targets"
#: The report's own CSP: a standalone document with its style inline, no script at all.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


def _dashboard() -> Any:
    return current_app.extensions["micwatch"]


def _settings_path() -> Any:
    return _dashboard().state_dir / SETTINGS_FILE


def _current(key: str) -> Any:
    """The option's value: the settings file's when set there, else the loaded config's."""
    stored = read_settings(_settings_path())
    if key in stored:
        return OPTIONS_BY_KEY[key].convert(stored[key], "settings")
    return _dashboard().config[key]


@bp.route("/rules")
def rules() -> str:
    """Every rule file with its status; broken files show their error."""
    config = _dashboard().config
    engine = RuleEngine(rule_paths(config), night=config["rules.night"])
    disabled = set(_current(DISABLED))
    for status in engine.rules:
        if status.id in disabled and status.status == "active":
            engine.set_enabled(status.id, False)
    return render_template("rules.html", rules=engine.rules)


@bp.route("/rules/<rule_id>/switch", methods=["POST"])
def switch(rule_id: str) -> Response:
    """Switch a rule on (``enabled=1``) or off; persisted in the settings file."""
    disabled = [r for r in _current(DISABLED) if r != rule_id]
    if request.form.get("enabled") != "1":
        disabled.append(rule_id)
    write_settings(_settings_path(), {DISABLED: sorted(disabled)})
    flash(_("Rule switched. The monitor applies it at its next reload."), "ok")
    return redirect(url_for("admin.rules"))


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Any:
    """Home set, retention and notification targets."""
    if request.method == "POST":
        updates = {
            "enrich.home": request.form.get("home", ""),
            "store.retention": request.form.get("retention", ""),
            NOTIFY_KEY: [line.strip() for line in request.form.get("notify", "").splitlines()],
        }
        try:
            write_settings(_settings_path(), updates)
        except ConfigError as exc:
            flash(_("Not saved: %(problem)s", problem=str(exc)), "error")
        else:
            flash(_("Settings saved. Restart the monitor to apply them."), "ok")
        return redirect(url_for("admin.settings"))
    retention_days = round(_current("store.retention") / 86400)
    return render_template(
        "settings.html",
        home=", ".join(_current("enrich.home")),
        retention=f"{retention_days}d",
        notify="\n".join(_current(NOTIFY_KEY)),
    )


@bp.route("/settings/password", methods=["POST"])
def password() -> Response:
    """Change the password (the current one is asked again); ends the other sessions."""
    credentials = _dashboard().credentials
    if not credentials.check_password(request.form.get("current", "")):
        flash(_("The current password is wrong."), "error")
        return redirect(url_for("admin.settings"))
    new = request.form.get("new", "")
    if new != request.form.get("confirm", ""):
        flash(_("The two new passwords differ."), "error")
        return redirect(url_for("admin.settings"))
    try:
        credentials.set_password(new)
    except ValueError:
        flash(_("A password needs at least 8 characters."), "error")
        return redirect(url_for("admin.settings"))
    return redirect(url_for("auth.login"))


@bp.route("/report")
def report() -> Response:
    """The printable report of the active sensor's last ``since`` (default 7d) as one HTML
    document."""
    from monitor.report import report_context

    try:
        since = time.time() - parse_duration(request.args.get("since", "7d"))
    except ValueError:
        abort(400)
    context = report_context(sensors.reader(), since, time.time())
    response = make_response(render_template("report.html", **context, lang=str(get_locale())))
    response.headers["Content-Security-Policy"] = REPORT_CSP
    if request.args.get("download") == "1":
        response.headers["Content-Disposition"] = 'attachment; filename="micwatch-report.html"'
    return response
