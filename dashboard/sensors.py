"""Which sensor (which home) the dashboard shows, when several write to one database.

The *default* sensor is the store's own (``store.sensor``, else the host name). The *active*
sensor of a request is, in this order: the ``sensor`` field of a submitted form (the sensor of
the page the form was on), the ``?sensor=NAME`` argument of an ``/api/`` request, the one chosen
for the session with the switch link (:data:`SESSION_KEY`), else the default.

Guarantees: a name that is not a sensor of the database (:func:`choices`) is never used: it
falls back to the default, except in a submitted form, which is refused (400) rather than
applied to another sensor's rows. Every page, API route, action and the report read and write
through :func:`reader`, which is the app's store itself for the default sensor and, for another,
a view of the same store sharing its engine (:meth:`~monitor.store_reader.StoreReader.for_sensor`),
made once per sensor and kept (:meth:`dashboard.Dashboard.reader`): no request opens a database.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app, request, session

from monitor import store_views

#: Where the session keeps the sensor chosen with the switch link.
SESSION_KEY = "sensor"
#: Where a request keeps what it worked out (in its WSGI environ: one per request).
_CHOICES = "micwatch.sensor_choices"
_ACTIVE = "micwatch.active_sensor"


def _dashboard() -> Any:
    return current_app.extensions["micwatch"]


def default() -> str:
    """The sensor shown unless another is chosen: the store's own."""
    return str(_dashboard().store.sensor)


def choices() -> list[str]:
    """The sensors one can switch to, sorted: every sensor with devices in the database, and
    the default one. Read once per request."""
    memo = request.environ
    if _CHOICES not in memo:
        memo[_CHOICES] = sorted(set(store_views.sensors(_dashboard().store)) | {default()})
    return memo[_CHOICES]  # type: ignore[no-any-return]


def _wanted() -> tuple[str | None, bool]:
    """The name the request asks for (None: none) and whether it comes from a form."""
    if request.method == "POST" and SESSION_KEY in request.form:
        return request.form[SESSION_KEY], True
    if request.blueprint == "api" and request.args.get(SESSION_KEY):
        return request.args[SESSION_KEY], False
    chosen = session.get(SESSION_KEY)
    return (chosen if isinstance(chosen, str) else None), False


def active() -> str:
    """The request's sensor (see the module's docstring); aborts with 400 when a submitted
    form names a sensor the database does not hold."""
    memo = request.environ
    if _ACTIVE not in memo:
        fallback = default()
        wanted, from_form = _wanted()
        if wanted is None or wanted == fallback:
            memo[_ACTIVE] = fallback
        elif wanted in choices():
            memo[_ACTIVE] = wanted
        elif from_form:
            abort(400)
        else:
            memo[_ACTIVE] = fallback
    return memo[_ACTIVE]  # type: ignore[no-any-return]


def reader() -> Any:
    """The store reader of the request's active sensor."""
    return _dashboard().reader(active())


def choose(name: str | None) -> str:
    """Make ``name`` the session's sensor when it is one of :func:`choices`, else go back to
    the default; the session's sensor."""
    if name and name != default() and name in choices():
        session[SESSION_KEY] = name
        return name
    session.pop(SESSION_KEY, None)
    return default()


def init_app(app: Flask) -> None:
    """Give the templates :func:`choices` as ``sensor_choices()`` and :func:`active` as
    ``active_sensor()``."""
    app.add_template_global(choices, "sensor_choices")
    app.add_template_global(active, "active_sensor")
