"""The dashboard's pages: home, devices, device detail, alerts, and the user's actions on them.

Every page reads the store through :class:`~monitor.store_reader.StoreReader` and
:mod:`monitor.store_views`; every action is a POST form (CSRF-checked by the app) that writes
the user's word through the reader's user-write methods and redirects back (post/redirect/get).
Device-controlled text (names, alert messages) reaches the templates as data and is escaped by
Jinja's autoescape.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from dashboard import LANGUAGES, sensors
from dashboard.auth import local_path
from dashboard.charts import country_bars, timeline
from monitor import store_views
from monitor.signatures import CATEGORIES

bp = Blueprint("views", __name__)

DAY_S = 86400.0
#: How long "mute this rule for this device" lasts, by the form's choice.
MUTE_CHOICES = {"1d": DAY_S, "7d": 7 * DAY_S, "30d": 30 * DAY_S, "365d": 365 * DAY_S}


def store() -> Any:
    """The store reader of the request's sensor (:func:`dashboard.sensors.reader`)."""
    return sensors.reader()


def _back(default: str) -> Response:
    """Redirect to the form's ``next`` field when it is a local path, else to ``default``."""
    return redirect(local_path(request.form.get("next"), default))


def _device_or_404(mac: str) -> dict[str, Any]:
    row = store().device(mac)
    if row is None:
        abort(404)
    return row


@bp.route("/")
def home() -> str:
    """Last alerts, audio-sized uploads of the last 24 h, where data goes, capture health."""
    now = time.time()
    reader = store()
    devices = {d["mac"]: d for d in reader.devices()}
    audio: dict[str, dict[str, Any]] = {}
    for burst in reader.bursts(since=now - DAY_S):
        if burst.get("shape") != "audio":
            continue
        entry = audio.setdefault(
            burst["device_mac"],
            {"device": devices.get(burst["device_mac"]), "count": 0, "bytes": 0, "seconds": 0.0},
        )
        entry["count"] += 1
        entry["bytes"] += burst.get("bytes_up") or 0
        entry["seconds"] += burst.get("audio_seconds") or 0.0
    stats = reader.events("capture_stats", limit=1)
    return render_template(
        "home.html",
        alerts=reader.alerts(include_acknowledged=False, limit=6),
        devices=devices,
        audio=sorted(audio.values(), key=lambda e: -e["bytes"]),
        chart=country_bars(store_views.countries(reader, now - DAY_S)),
        counts=store_views.alert_counts(reader),
        stats=stats[0] if stats else None,
        now=now,
    )


@bp.route("/devices")
def devices() -> str:
    """Every device with what was guessed about it and the forms to correct it."""
    return render_template("devices.html", devices=store().devices(), categories=CATEGORIES)


@bp.route("/devices/<mac>")
def device(mac: str) -> str:
    """One device: its upload timeline, destinations and alerts."""
    row = _device_or_404(mac)
    hours = 24 if request.args.get("hours") == "24" else 1
    end = (row.get("last_seen") or time.time()) // 60 * 60 + 60
    start = end - hours * 3600
    reader = store()
    bursts = [b for b in reader.bursts(device=mac, since=start) if b.get("ts_start", 0) < end]
    return render_template(
        "device.html",
        device=row,
        hours=hours,
        chart=timeline(store_views.upload_series(reader, mac, start, end), bursts, start, end),
        bursts=bursts,
        destinations=[{**d, "local": store_views.stays_home(d)} for d in reader.destinations(mac)],
        alerts=reader.alerts(device=mac, limit=50),
        categories=CATEGORIES,
    )


@bp.route("/devices/<mac>/label", methods=["POST"])
def label(mac: str) -> Response:
    """Name a device (an empty name gives back the guessed one)."""
    _device_or_404(mac)
    text = " ".join(request.form.get("label", "").split())[:80]
    store().set_label(mac, text or None)
    flash(_("Name saved."), "ok")
    return _back(url_for("views.devices"))


@bp.route("/devices/<mac>/category", methods=["POST"])
def set_category(mac: str) -> Response:
    """Set a device's category (``auto``: back to the guess)."""
    _device_or_404(mac)
    chosen = request.form.get("category", "auto")
    if chosen != "auto" and chosen not in CATEGORIES:
        abort(400)
    store().set_category(mac, None if chosen == "auto" else chosen)
    flash(_("Category saved."), "ok")
    return _back(url_for("views.devices"))


@bp.route("/devices/<mac>/forget", methods=["POST"])
def forget(mac: str) -> Response:
    """Delete everything stored about a device."""
    _device_or_404(mac)
    store().forget_device(mac)
    flash(_("The device and everything stored about it were deleted."), "ok")
    return redirect(url_for("views.devices"))


@bp.route("/alerts")
def alerts() -> str:
    """Alerts, filtered by level, device and rule; acknowledged ones on request."""
    reader = store()
    chosen = {k: request.args.get(k) or None for k in ("level", "device", "rule")}
    show_all = request.args.get("all") == "1"
    rows = reader.alerts(**chosen, include_acknowledged=show_all, limit=200)
    return render_template(
        "alerts.html",
        alerts=rows,
        chosen=chosen,
        show_all=show_all,
        devices={d["mac"]: d for d in reader.devices()},
        rules=store_views.alert_rules(reader),
    )


def _alert_or_404(alert_id: int) -> dict[str, Any]:
    row = store_views.alert(store(), alert_id)
    if row is None:
        abort(404)
    return row


@bp.route("/alerts/<int:alert_id>/acknowledge", methods=["POST"])
def acknowledge(alert_id: int) -> Response:
    """Mark an alert as seen."""
    if not store().acknowledge_alert(alert_id):
        abort(404)
    flash(_("Alert marked as seen."), "ok")
    return _back(url_for("views.alerts"))


@bp.route("/alerts/<int:alert_id>/mute", methods=["POST"])
def mute(alert_id: int) -> Response:
    """Mute the alert's rule for the alert's device for the chosen time."""
    alert = _alert_or_404(alert_id)
    period = MUTE_CHOICES.get(request.form.get("period", ""))
    if period is None or not alert.get("device_mac"):
        abort(400)
    store().mute(alert["rule"], alert["device_mac"], time.time() + period)
    flash(_("This kind of alert is muted for this device."), "ok")
    return _back(url_for("views.alerts"))


@bp.route("/alerts/<int:alert_id>/allow", methods=["POST"])
def allow(alert_id: int) -> Response:
    """Write an allow rule for the alert's device and destination into the user's rules."""
    from rules.loader import add_allow_rule

    alert = _alert_or_404(alert_id)
    destination = allowable_destination(alert)
    if destination is None or not alert.get("device_mac"):
        abort(400)
    try:
        path = add_allow_rule(
            current_app.config["MICWATCH_RULES_DIR"],
            alert["device_mac"],
            dest_org=destination.get("org"),
            dest_name=None if destination.get("org") else destination.get("name"),
            comment=_("Allowed from the dashboard."),
        )
    except (OSError, ValueError) as exc:
        flash(_("Not saved: %(problem)s", problem=str(exc)), "error")
    else:
        flash(_("Allowed: rule %(name)s written.", name=path.name), "ok")
    return _back(url_for("views.alerts"))


@bp.app_template_global("allowable")
def allowable_destination(alert: dict[str, Any]) -> dict[str, Any] | None:
    """The alert's destination (``org``, ``name``) when it has an organisation or a name an
    allow rule can match, else None (an address alone is not allow-listed: addresses change).
    None too for another sensor than the dashboard's own: an allow rule is a file in this
    box's rules directory, which another box's monitor never reads."""
    if sensors.active() != sensors.default():
        return None
    event = alert.get("event") or {}
    destination = {"org": event.get("dest.org"), "name": event.get("dest.name")}
    return destination if destination["org"] or destination["name"] else None


@bp.route("/language/<code>")
def language(code: str) -> Response:
    """Switch the interface language for this session."""
    if code not in LANGUAGES:
        abort(404)
    session["language"] = code
    return redirect(local_path(request.args.get("next"), url_for("views.home")))


@bp.route("/sensor")
def switch_sensor() -> Response:
    """Show the sensor ``?name=`` for this session (an unknown name: the default one)."""
    sensors.choose(request.args.get("name"))
    return redirect(local_path(request.args.get("next"), url_for("views.home")))


@bp.route("/about")
def about() -> str:
    """Where the sample captures come from and their licences."""
    notice = (resources.files("monitor") / "samples" / "NOTICE").read_text(encoding="utf-8")
    return render_template("about.html", notice=notice)
