"""Many homes, one database: the dashboard's sensor selector.

Two sensors write one database (SQLite here, PostgreSQL too when it runs): ``attic`` saw the
Xiaobai camera talk to a server abroad, ``cellar`` saw the same camera's setup and a TP-Link
plug. The dashboard is configured as ``attic`` (its default) and switches per session; every
page, API route, action and the report show one sensor's rows, never both, and an unknown
name falls back to the default.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_store import pg_url  # noqa: F401 - the fixture: a fresh schema in database test

from monitor import store_views
from monitor.analyze import analyze_files
from monitor.store import Store
from monitor.store_reader import StoreReader
from tests.conftest import DATA
from tests.test_dashboard import CAMERA, csrf, login, make_app, test_config

PLUG = "50:c7:bf:00:fc:a3"
HOMES = {
    "attic": ["lifecycle_xiaobaiY2cam_speak_remote.pcap"],
    "cellar": [
        "iotsentinel_TP-LinkPlugHS100_Setup-C-7-STA.pcap",
        "lifecycle_xiaobaiY2cam_setup.pcap",
    ],
}
ABROAD = "Audio-sized upload to a server abroad"


def fill(url: str, state: Path, homes: dict[str, list[str]]) -> None:
    """Analyse each home's captures into ``url`` as that sensor (``homes``: sensor name ->
    capture file names in tests/data/iot)."""
    for sensor, files in homes.items():
        store = Store(url, sensor=sensor, retention_s=10**10)
        try:
            captures = [str(DATA / "iot" / name) for name in files]
            analyze_files(test_config(state / sensor), captures, store=store, out=io.StringIO())
        finally:
            store.close()


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[StoreReader]:
    """The dashboard's store (sensor ``attic``) over a SQLite database holding both homes."""
    url = f"sqlite:///{tmp_path / 'micwatch.db'}"
    fill(url, tmp_path, HOMES)
    reader = StoreReader(url, sensor="attic")
    yield reader
    reader.close()


@pytest.fixture
def app(tmp_path: Path, reader: StoreReader) -> Flask:
    return make_app(tmp_path, reader)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client).status_code == 302
    return client


def switch(client: FlaskClient, name: str, page: str = "/devices") -> str:
    """Follow the selector's link to ``name`` from ``page``; where it leads."""
    response = client.get("/sensor", query_string={"name": name, "next": page})
    assert response.status_code == 302
    return response.location


def selector(text: str) -> dict[str, str | None]:
    """The navbar's sensors: name -> link (None for the active one)."""
    match = re.search(r'<div class="sensors".*?</div>', text, re.S)
    if not match:
        return {}
    found: dict[str, str | None] = {}
    for link, name in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', match.group(0)):
        found[name] = link.replace("&amp;", "&")
    for name in re.findall(r'<strong aria-current="true">([^<]+)</strong>', match.group(0)):
        found[name] = None
    return found


def form_sensors(text: str) -> set[str]:
    return set(re.findall(r'<input type="hidden" name="sensor" value="([^"]*)">', text))


# --- the query --------------------------------------------------------------------------------


def test_sensors_are_the_names_in_the_devices_table(reader: StoreReader, tmp_path: Path) -> None:
    assert store_views.sensors(reader) == ["attic", "cellar"]
    assert store_views.sensors(reader.for_sensor("cellar")) == ["attic", "cellar"]
    with StoreReader(f"sqlite:///{tmp_path / 'empty.db'}", sensor="lonely") as empty:
        assert store_views.sensors(empty) == ["lonely"]


def test_a_sensor_view_shares_the_engine_and_reads_only_its_rows(reader: StoreReader) -> None:
    assert reader.for_sensor("attic") is reader
    cellar = reader.for_sensor("cellar")
    assert cellar.engine is reader.engine and cellar.sensor == "cellar"
    assert {d["mac"] for d in cellar.devices()} >= {CAMERA, PLUG}
    assert {d["mac"] for d in reader.devices()} == {CAMERA}
    assert {a["sensor"] for a in cellar.alerts()} == {"cellar"}
    cellar.close()  # a view leaves the engine to its owner
    assert reader.device(CAMERA) is not None


# --- the selector ------------------------------------------------------------------------------


def test_selector_shows_every_sensor_the_active_one_marked(client: FlaskClient) -> None:
    for path in ("/", "/devices", f"/devices/{CAMERA}", "/alerts", "/rules", "/settings"):
        links = selector(client.get(path).text)
        assert set(links) == {"attic", "cellar"} and links["attic"] is None, path
        assert links["cellar"].startswith("/sensor?name=cellar&next="), path  # type: ignore[union-attr]
    links = selector(client.get(f"/devices/{CAMERA}").text)
    assert "next=/devices" in links["cellar"]  # type: ignore[operator]
    assert "next=/devices/" not in links["cellar"]  # type: ignore[operator]


def test_no_selector_with_a_single_sensor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    fill(url, tmp_path, {"attic": HOMES["attic"]})
    with StoreReader(url, sensor="attic") as only:
        client = make_app(tmp_path, only).test_client()
        login(client)
        text = client.get("/devices").text
        assert CAMERA in text
        assert 'class="sensors"' not in text and "Sensor:" not in text
        assert form_sensors(text) == {"attic"}


def test_a_remote_sensor_alone_in_the_database_can_be_chosen(tmp_path: Path) -> None:
    """A central server whose own name has no rows still offers the homes that write there."""
    url = f"sqlite:///{tmp_path / 'central.db'}"
    fill(url, tmp_path, {"cellar": HOMES["cellar"]})
    with StoreReader(url, sensor="server") as central:
        client = make_app(tmp_path, central).test_client()
        login(client)
        links = selector(client.get("/").text)
        assert set(links) == {"server", "cellar"} and links["server"] is None
        switch(client, "cellar")
        assert PLUG in client.get("/devices").text


def test_the_selector_is_translated(client: FlaskClient) -> None:
    client.get("/language/fr")
    text = client.get("/devices").text
    assert "Capteur\u00a0:" in text or "Capteur :" in text
    assert "Quel logement afficher" in text


# --- switching ---------------------------------------------------------------------------------


def test_switching_shows_the_other_sensor_and_never_mixes(client: FlaskClient) -> None:
    attic = client.get("/devices").text
    assert CAMERA in attic and PLUG not in attic and "Imilab camera" in attic
    assert "Mi Home camera" not in attic
    assert ABROAD in client.get("/alerts").text

    assert switch(client, "cellar") == "/devices"
    cellar = client.get("/devices").text
    assert PLUG in cellar and "TP-Link" in cellar and "Mi Home camera" in cellar
    assert "Imilab camera" not in cellar
    assert selector(cellar)["cellar"] is None
    assert form_sensors(cellar) == {"cellar"}
    alerts = client.get("/alerts").text
    assert ABROAD not in alerts and "unencrypted-upload" in alerts
    assert ABROAD not in client.get("/").text
    assert "TP-Link" in client.get(f"/devices/{PLUG}").text
    report = client.get("/report?since=5000w").text  # the captures are years old
    assert "<title>micwatch report · cellar</title>" in report
    assert "TP-Link" in report and "Mi Home camera" in report
    assert "No audio-sized upload in this period." in report  # attic's are not cellar's
    api = client.get("/api/devices")
    assert {d["sensor"] for d in api.json} == {"cellar"}
    assert api.headers["X-Micwatch-Sensor"] == "cellar"
    assert {a["sensor"] for a in client.get("/api/alerts").json} == {"cellar"}
    assert client.get("/api/summary").json["devices"] == 4

    switch(client, "attic")
    back = client.get("/devices").text
    assert PLUG not in back and "Imilab camera" in back
    assert client.get(f"/devices/{PLUG}").status_code == 404
    report = client.get("/report?since=5000w").text
    assert "<title>micwatch report · attic</title>" in report
    assert "Imilab camera" in report and "TP-Link" not in report
    assert "No audio-sized upload in this period." not in report
    with client.session_transaction() as session:
        assert "sensor" not in session  # the default is not stored


def test_the_choice_is_per_session(app: Flask, client: FlaskClient) -> None:
    switch(client, "cellar")
    other = app.test_client()
    login(other)
    assert PLUG not in other.get("/devices").text
    assert PLUG in client.get("/devices").text


def test_the_summary_stamp_follows_the_active_sensor(client: FlaskClient) -> None:
    attic = client.get("/api/summary").json
    switch(client, "cellar")
    cellar = client.get("/api/summary").json
    assert (attic["devices"], cellar["devices"]) == (1, 4)
    assert attic["stamp"] != cellar["stamp"]
    assert attic["open_alerts"].get("high") == 1 and "high" not in cellar["open_alerts"]


# --- the API's ?sensor= -----------------------------------------------------------------------


def test_api_sensor_argument(client: FlaskClient) -> None:
    assert client.get("/api/sensors").json == {"sensors": ["attic", "cellar"], "active": "attic"}
    response = client.get("/api/devices?sensor=cellar")
    assert {d["mac"] for d in response.json} >= {CAMERA, PLUG}
    assert response.headers["X-Micwatch-Sensor"] == "cellar"
    assert client.get(f"/api/devices/{PLUG}?sensor=cellar").json["device"]["sensor"] == "cellar"
    assert client.get(f"/api/devices/{PLUG}").status_code == 404
    assert client.get("/api/sensors?sensor=cellar").json["active"] == "cellar"
    assert {a["sensor"] for a in client.get("/api/alerts?sensor=cellar").json} == {"cellar"}
    assert {b["shape"] for b in client.get("/api/bursts?sensor=attic").json} >= {"audio"}
    cellar_countries = client.get("/api/countries?sensor=cellar&since=0").json
    attic_countries = client.get("/api/countries?sensor=attic&since=0").json
    assert cellar_countries != attic_countries
    assert {d["sensor"] for d in client.get("/api/destinations?sensor=cellar").json} == {"cellar"}
    # ?sensor= reads once; the session keeps its own choice
    assert client.get("/api/devices").headers["X-Micwatch-Sensor"] == "attic"
    switch(client, "cellar")
    response = client.get("/api/devices?sensor=attic")
    assert {d["mac"] for d in response.json} == {CAMERA}
    assert response.headers["X-Micwatch-Sensor"] == "attic"


def test_api_sensor_argument_with_a_token(app: Flask, tmp_path: Path) -> None:
    from dashboard.credentials import Credentials

    token = Credentials(tmp_path).new_token()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    response = client.get("/api/devices?sensor=cellar", headers=headers)
    assert response.status_code == 200 and PLUG in {d["mac"] for d in response.json}
    unauthenticated = client.get("/api/devices?sensor=cellar")
    assert unauthenticated.status_code == 401
    assert "X-Micwatch-Sensor" not in unauthenticated.headers


# --- unknown names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ghost", "", "attic ", "ATTIC", "'; DROP TABLE devices; --"])
def test_an_unknown_sensor_falls_back_to_the_default(client: FlaskClient, name: str) -> None:
    response = client.get("/api/devices", query_string={"sensor": name})
    assert response.status_code == 200
    assert {d["mac"] for d in response.json} == {CAMERA}
    assert response.headers["X-Micwatch-Sensor"] == "attic"
    switch(client, "cellar")
    assert switch(client, name) == "/devices"  # an unknown choice goes back to the default
    assert PLUG not in client.get("/devices").text
    with client.session_transaction() as session:
        session["sensor"] = name  # a stale or forged session
    for path in ("/", "/devices", f"/devices/{CAMERA}", "/alerts", "/report", "/api/summary"):
        assert client.get(path).status_code == 200, path
    text = client.get("/devices").text
    assert "Imilab camera" in text and PLUG not in text
    assert selector(text)["attic"] is None


def test_a_session_sensor_of_the_wrong_type_falls_back(client: FlaskClient) -> None:
    with client.session_transaction() as session:
        session["sensor"] = ["cellar"]
    assert "Imilab camera" in client.get("/devices").text


def test_switch_redirects_only_to_local_paths(client: FlaskClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert switch(client, "cellar", target) == "/"


# --- actions ----------------------------------------------------------------------------------


def post(client: FlaskClient, path: str, data: dict[str, str], page: str = "/devices") -> Any:
    return client.post(path, data={**data, "csrf_token": csrf(client, page)})


def test_actions_write_the_active_sensors_rows(client: FlaskClient, reader: StoreReader) -> None:
    cellar = reader.for_sensor("cellar")
    switch(client, "cellar")
    response = post(client, f"/devices/{CAMERA}/label", {"label": "Cellar cam", "sensor": "cellar"})
    assert response.status_code == 302
    assert cellar.device(CAMERA)["label"] == "Cellar cam"
    assert reader.device(CAMERA)["label"] is None
    post(client, f"/devices/{PLUG}/category", {"category": "toy", "sensor": "cellar"})
    assert cellar.device(PLUG)["category"] == "toy"
    attic_alert = reader.alerts(rule="audio-upload-foreign")[0]
    post(client, f"/alerts/{attic_alert['id']}/mute", {"period": "7d"}, "/alerts")  # session's
    assert not reader.mutes(0) and not reader.alerts(rule="audio-upload-foreign")[0]["muted"]
    ack = post(client, f"/alerts/{attic_alert['id']}/acknowledge", {}, "/alerts")
    assert ack.status_code == 404, "attic's alert is not cellar's"
    assert not reader.alerts(rule="audio-upload-foreign")[0]["acknowledged"]
    post(client, f"/devices/{CAMERA}/forget", {"sensor": "cellar"})
    assert cellar.device(CAMERA) is None and reader.device(CAMERA) is not None
    assert reader.alerts(device=CAMERA)


def test_a_form_acts_on_the_sensor_of_its_page(client: FlaskClient, reader: StoreReader) -> None:
    """A form shown for attic, sent after another tab switched to cellar, still acts on attic;
    a form naming a sensor the database does not hold is refused."""
    page = client.get("/devices").text
    assert form_sensors(page) == {"attic"}
    switch(client, "cellar")
    post(client, f"/devices/{CAMERA}/label", {"label": "Attic cam", "sensor": "attic"})
    assert reader.device(CAMERA)["label"] == "Attic cam"
    assert reader.for_sensor("cellar").device(CAMERA)["label"] is None
    refused = post(client, f"/devices/{CAMERA}/label", {"label": "x", "sensor": "ghost"})
    assert refused.status_code == 400
    assert reader.device(CAMERA)["label"] == "Attic cam"


def test_allow_rules_only_for_the_dashboards_own_sensor(
    client: FlaskClient, reader: StoreReader, tmp_path: Path
) -> None:
    """An allow rule is a file on this box, read by this box's monitor only: offered for the
    dashboard's own sensor, not for another home's alerts."""
    box = tmp_path / "cellar-box"
    box.mkdir()
    own = make_app(box, reader.for_sensor("cellar")).test_client()  # cellar's own dashboard
    login(own)
    assert "/allow" in own.get("/alerts").text
    switch(client, "cellar")
    assert "/allow" not in client.get("/alerts").text
    contact = reader.for_sensor("cellar").alerts(rule="new-foreign-org")[0]
    refused = post(client, f"/alerts/{contact['id']}/allow", {"sensor": "cellar"}, "/alerts")
    assert refused.status_code == 400
    assert not list((tmp_path / "rules.d").glob("*.yaml"))


# --- readers ----------------------------------------------------------------------------------


def test_one_cached_view_per_sensor_over_the_apps_engine(app: Flask, reader: StoreReader) -> None:
    dashboard = app.extensions["micwatch"]
    assert dashboard.reader("attic") is reader
    got: list[Any] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        got.append(dashboard.reader("cellar"))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(view) for view in got}) == 1
    assert got[0].engine is reader.engine and got[0].sensor == "cellar"


def test_pages_use_the_cached_view(app: Flask, client: FlaskClient, reader: StoreReader) -> None:
    switch(client, "cellar")
    client.get("/devices")
    view = app.extensions["micwatch"].reader("cellar")
    client.get("/alerts")
    client.get("/api/summary")
    assert app.extensions["micwatch"].reader("cellar") is view
    assert set(app.extensions["micwatch"]._views) == {"cellar"}


# --- PostgreSQL -------------------------------------------------------------------------------


def test_the_selector_over_postgresql(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    fill(pg_url, tmp_path, HOMES)
    with StoreReader(pg_url, sensor="attic") as central:
        assert store_views.sensors(central) == ["attic", "cellar"]
        client = make_app(tmp_path, central).test_client()
        login(client)
        assert set(selector(client.get("/devices").text)) == {"attic", "cellar"}
        assert PLUG not in client.get("/devices").text
        switch(client, "cellar")
        text = client.get("/devices").text
        assert PLUG in text and "Imilab camera" not in text
        assert ABROAD not in client.get("/alerts").text
        response = client.get("/api/devices?sensor=attic")
        assert {d["mac"] for d in response.json} == {CAMERA}
        unknown = client.get("/api/devices?sensor=ghost")
        assert unknown.headers["X-Micwatch-Sensor"] == "attic"
        post(client, f"/devices/{CAMERA}/label", {"label": "Cellar cam", "sensor": "cellar"})
        assert central.for_sensor("cellar").device(CAMERA)["label"] == "Cellar cam"
        assert central.device(CAMERA)["label"] is None
