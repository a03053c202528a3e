"""The JSON API under ``/api/``: what the pages show, for the live refresh and for scripts.

Read-only (GET only: the user's writes go through the CSRF-protected forms). Authentication is
the session or ``Authorization: Bearer <token>`` (:mod:`dashboard.auth`); without either every
route answers 401. Timestamps are float epoch seconds, as in the store. Every route reads one
sensor's rows: ``?sensor=NAME`` (one of ``/api/sensors``), else the one chosen in the session,
else the default one; an unknown name gets the default's, and every answer names its sensor in
the ``X-Micwatch-Sensor`` header.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, jsonify, request
from werkzeug.wrappers import Response

from dashboard import sensors
from monitor import store_views

bp = Blueprint("api", __name__, url_prefix="/api")
#: ``/metrics`` for Prometheus (same authentication as the API: a session or a bearer token).
metrics_bp = Blueprint("metrics", __name__)


@metrics_bp.route("/metrics")
def metrics() -> Response:
    """The latest health report of the active sensor in Prometheus' text exposition format."""
    from monitor.health import store_metrics_text

    return Response(
        store_metrics_text(_store()), mimetype="text/plain; version=0.0.4; charset=utf-8"
    )


def _store() -> Any:
    """The reader of the request's sensor: ``?sensor=NAME``, else the session's, else the
    default one (see :mod:`dashboard.sensors`)."""
    return sensors.reader()


@bp.after_request
def _name_the_sensor(response: Response) -> Response:
    """Say which sensor's rows answered (``?sensor=`` with an unknown name gets the default's)."""
    if response.status_code != 401:
        response.headers["X-Micwatch-Sensor"] = sensors.active()
    return response


def _since() -> float | None:
    value = request.args.get("since")
    try:
        return float(value) if value else None
    except ValueError:
        abort(400)


@bp.route("/summary")
def summary() -> Response:
    """``stamp`` (changes whenever the store does: the pages poll it), device count, open
    alerts per level and the latest capture statistics."""
    reader = _store()
    stats = reader.events("capture_stats", limit=1)
    return jsonify(
        stamp=store_views.change_stamp(reader),
        devices=len(reader.known_macs()),
        open_alerts=store_views.alert_counts(reader),
        capture=stats[0]["body"] if stats else None,
        now=time.time(),
    )


@bp.route("/sensors")
def sensor_names() -> Response:
    """``sensors``: the names ``?sensor=`` accepts; ``active``: the one this request reads."""
    return jsonify(sensors=sensors.choices(), active=sensors.active())


@bp.route("/devices")
def devices() -> Response:
    """Every device (as :meth:`StoreReader.devices`)."""
    return jsonify(_store().devices())


@bp.route("/devices/<mac>")
def device(mac: str) -> Response:
    """One device with its destinations; 404 when unknown."""
    row = _store().device(mac)
    if row is None:
        abort(404)
    return jsonify(device=row, destinations=_store().destinations(mac))


@bp.route("/alerts")
def alerts() -> Response:
    """Alerts newest first; filters ``level``, ``device``, ``rule``, ``since``."""
    args = {k: request.args.get(k) or None for k in ("level", "device", "rule")}
    return jsonify(_store().alerts(since=_since(), limit=500, **args))


@bp.route("/bursts")
def bursts() -> Response:
    """Upload bursts newest first; filters ``device``, ``since``."""
    return jsonify(_store().bursts(since=_since(), device=request.args.get("device") or None))


@bp.route("/destinations")
def destinations() -> Response:
    """Every destination with country, organisation and the foreign flag."""
    return jsonify(_store().destinations())


@bp.route("/countries")
def countries() -> Response:
    """Bytes per destination country since ``since`` (default: the last 24 hours)."""
    since = _since()
    return jsonify(store_views.countries(_store(), time.time() - 86400 if since is None else since))
