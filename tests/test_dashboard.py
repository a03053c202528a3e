"""The dashboard app: authentication on every route, security headers, CSRF, escaping, the
pages over a replayed shared capture, and the user's actions written to the store.

The helpers here (:func:`replayed_store`, :func:`make_app`, :func:`login`) are shared by the other
dashboard test modules.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard import SECURITY_HEADERS, create_app
from dashboard.credentials import Credentials
from monitor.config import Config, load
from monitor.replay import Replay
from monitor.settings_file import SETTINGS_FILE, read_settings
from monitor.store import Store
from tests.conftest import DATA

CAMERA = "78:df:72:24:69:4d"
PASSWORD = "correct horse battery"
CAPTURES = [
    str(DATA / "iot" / "lifecycle_xiaobaiY2cam_setup.pcap"),
    str(DATA / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"),
]


def test_config(state: Path) -> Config:
    """micwatch's configuration for a test: home FR, state in ``state``, no user files."""
    return load(None, env={}).replace(enrich__home=["FR"], store__state_dir=str(state))


test_config.__test__ = False  # type: ignore[attr-defined]


def replayed_store(state: Path) -> Store:
    """A store in ``state`` holding the Xiaobai camera's setup and two-way talk, replayed as if
    it happened now."""
    store = Store(f"sqlite:///{state / 'micwatch.db'}", sensor="home", retention_s=10**9)
    replay = Replay(test_config(state), CAPTURES, store, speed=0).start()
    assert replay.done.wait(60)
    return store


def make_app(state: Path, store: Any, **extra: Any) -> Flask:
    """The app over ``store`` with the password :data:`PASSWORD`."""
    Credentials(state).set_password(PASSWORD)
    settings = {
        "MICWATCH_CONFIG": test_config(state),
        "STORE": store,
        "MICWATCH_RULES_DIR": state / "rules.d",
        "TESTING": True,
        **extra,
    }
    return create_app(settings)


def csrf(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the form on ``path``."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, password: str = PASSWORD) -> Any:
    """Log in through the form; the response."""
    return client.post("/login", data={"password": password, "csrf_token": csrf(client)})


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = replayed_store(tmp_path)
    yield store
    store.close()


@pytest.fixture
def app(tmp_path: Path, store: Store) -> Flask:
    return make_app(tmp_path, store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client).status_code == 302
    return client


def post(client: FlaskClient, path: str, data: dict[str, str], page: str = "/devices") -> Any:
    return client.post(path, data={**data, "csrf_token": csrf(client, page)})


# --- authentication -----------------------------------------------------------------------


def _example_path(rule: Any) -> str:
    values = {"mac": CAMERA, "alert_id": 1, "code": "fr", "rule_id": "new-device"}
    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<(?:\w+:)?{name}>", str(values[name]), path)
    return path


def test_every_route_refuses_an_unauthenticated_request(app: Flask) -> None:
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("auth.login", "static"):
            continue
        path = _example_path(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            if path.startswith("/api/") or path == "/metrics":
                assert response.status_code == 401, (method, path)
                assert response.json == {"error": "authentication required"}
            else:
                assert response.status_code == 302, (method, path)
                assert response.location.startswith("/login"), (method, path)
            checked += 1
    assert checked >= 25


def test_login_logout_and_wrong_password(app: Flask) -> None:
    client = app.test_client()
    assert login(client, "wrong password").status_code == 200
    assert client.get("/devices").status_code == 302
    response = login(client)
    assert response.status_code == 302 and response.location == "/"
    assert client.get("/devices").status_code == 200
    client.post("/logout", data={"csrf_token": csrf(client, "/devices")})
    assert client.get("/devices").status_code == 302


def test_login_redirects_only_to_local_paths(app: Flask) -> None:
    client = app.test_client()
    token = csrf(client)
    response = client.post(
        "/login?next=//evil.example/", data={"password": PASSWORD, "csrf_token": token}
    )
    assert response.location == "/"
    client = app.test_client()
    token = csrf(client)
    response = client.post("/login?next=/alerts", data={"password": PASSWORD, "csrf_token": token})
    assert response.location == "/alerts"
    for target in ("/\\evil.example/", "https://evil.example/", "//evil.example"):
        assert client.get("/language/en", query_string={"next": target}).location == "/"


def test_login_is_rate_limited_per_client(app: Flask) -> None:
    client = app.test_client()
    for _ in range(5):
        assert login(client, "nope nope").status_code == 200
    assert login(client).status_code == 429, "even the right password waits"
    other = app.test_client()
    response = other.post(
        "/login",
        data={"password": PASSWORD, "csrf_token": csrf(other)},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert response.status_code == 302


def test_session_is_regenerated_at_login(app: Flask) -> None:
    client = app.test_client()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    login(client)
    with client.session_transaction() as session:
        assert "planted" not in session and session["user"] == "admin"


def test_password_change_ends_older_sessions(app: Flask, tmp_path: Path) -> None:
    first = app.test_client()
    login(first)
    second = app.test_client()
    login(second)
    response = post(
        second,
        "/settings/password",
        {"current": PASSWORD, "new": "a new password", "confirm": "a new password"},
        "/settings",
    )
    assert response.location == "/login"
    assert first.get("/devices").status_code == 302
    assert Credentials(tmp_path).check_password("a new password")


def test_cookie_flags_and_security_headers(app: Flask) -> None:
    client = app.test_client()
    response = login(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    for path in ("/", "/devices", "/login", "/api/summary", "/static/style.css"):
        headers = client.get(path).headers
        for name, value in SECURITY_HEADERS.items():
            assert headers[name] == value, (path, name)
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_secure_cookie_when_configured(tmp_path: Path, store: Store) -> None:
    config = test_config(tmp_path).replace(dashboard__secure_cookie=True)
    app = make_app(tmp_path, store, MICWATCH_CONFIG=config)
    response = login(app.test_client())
    assert "Secure" in response.headers["Set-Cookie"]


def test_templates_have_no_inline_script_or_style() -> None:
    folder = Path(__file__).parents[1] / "dashboard" / "templates"
    for path in folder.glob("*.html"):
        text = path.read_text()
        if path.name == "report.html":  # a standalone document, served with its own CSP
            assert "<script" not in text
            continue
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"\son[a-z]+=", text), path


def test_forms_without_csrf_token_are_refused(client: FlaskClient, store: Store) -> None:
    response = client.post(f"/devices/{CAMERA}/label", data={"label": "x"})
    assert response.status_code == 400
    assert store.device(CAMERA)["label"] is None


def test_api_token(app: Flask, tmp_path: Path) -> None:
    token = Credentials(tmp_path).new_token()
    client = app.test_client()
    response = client.get("/api/devices", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and {d["mac"] for d in response.json} >= {CAMERA}
    bad = client.get("/api/devices", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert client.get("/devices", headers={"Authorization": f"Bearer {token}"}).status_code == 302
    assert token not in (tmp_path / "dashboard_auth.json").read_text()


def test_metrics_for_prometheus_with_a_token(app: Flask, tmp_path: Path, store: Store) -> None:
    from monitor.health import HealthReport

    token = Credentials(tmp_path).new_token()
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    store.on_health_report(HealthReport(time.time(), {"packets": 1234, "loss_ratio": 0.0}))
    store.flush(10)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'micwatch_up{sensor="' in text and "} 1\n" in text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(samples) >= 3 and all(float(line.rsplit(" ", 1)[1]) >= 0 for line in samples)


def test_state_files_are_private(app: Flask, tmp_path: Path) -> None:
    Credentials(tmp_path).new_token()
    assert (tmp_path / "dashboard_auth.json").stat().st_mode & 0o777 == 0o600


# --- pages ----------------------------------------------------------------------------------


def test_home_shows_audio_upload_alerts_countries_and_health(client: FlaskClient) -> None:
    text = client.get("/").text
    assert "Mi Home camera" in text
    assert "audio-sized upload" in text
    assert "Audio-sized upload to a server abroad" in text
    assert "China" in text  # the per-country chart names the country
    assert "Packets seen" in text and ">1419<" in text


def test_devices_page_lists_devices_with_evidence_and_forms(client: FlaskClient) -> None:
    text = client.get("/devices").text
    assert "Mi Home camera chuangmi.camera.060a02" in text and CAMERA in text
    assert "DHCP hostname chuangmi_camera_060a02" in text
    assert re.search(r"<small>9\d% sure</small>", text) and "Shanghai Imilab" in text
    assert text.count('name="csrf_token"') >= 7


def test_device_page_timeline_marks_the_audio_burst(client: FlaskClient) -> None:
    text = client.get(f"/devices/{CAMERA}").text
    assert 'class="burst audio"' in text
    assert re.search(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" class="up"', text)
    assert "110.43.68.240" in text and "abroad" in text
    assert client.get(f"/devices/{CAMERA}?hours=24").status_code == 200
    assert client.get("/devices/00:00:00:00:00:00").status_code == 404


def test_device_controlled_strings_are_escaped(client: FlaskClient, store: Store) -> None:
    store.set_label(CAMERA, "<script>alert(1)</script>")
    for path in ("/", "/devices", f"/devices/{CAMERA}", "/alerts"):
        text = client.get(path).text
        assert "<script>alert(1)</script>" not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path


def test_rename_set_category_and_forget(client: FlaskClient, store: Store) -> None:
    response = post(client, f"/devices/{CAMERA}/label", {"label": "  Baby   monitor "})
    assert response.status_code == 302
    assert store.device(CAMERA)["label"] == "Baby monitor"
    post(client, f"/devices/{CAMERA}/category", {"category": "toy"})
    assert store.device(CAMERA)["category"] == "toy"
    post(client, f"/devices/{CAMERA}/category", {"category": "auto"})
    assert store.device(CAMERA)["category"] == "camera"
    assert post(client, f"/devices/{CAMERA}/category", {"category": "rocket"}).status_code == 400
    post(client, f"/devices/{CAMERA}/forget", {})
    assert store.device(CAMERA) is None and not store.alerts(device=CAMERA)


def test_alerts_filter_acknowledge_and_mute(client: FlaskClient, store: Store) -> None:
    text = client.get("/alerts?level=high").text
    assert "Audio-sized upload to a server abroad" in text and "New device" not in text
    assert "unencrypted-upload" in client.get("/alerts").text  # the rule filter lists it
    high = store.alerts(level="high")[0]
    response = post(client, f"/alerts/{high['id']}/acknowledge", {"next": "/alerts"}, "/alerts")
    assert response.location == "/alerts"
    assert store.alerts(level="high")[0]["acknowledged"]
    assert "Audio-sized upload to a server abroad" not in client.get("/alerts?level=high").text
    assert "Audio-sized upload to a server abroad" in client.get("/alerts?level=high&all=1").text
    post(client, f"/alerts/{high['id']}/mute", {"period": "7d"}, "/alerts")
    mutes = store.mutes(time.time())
    assert [(m["rule"], m["device_mac"]) for m in mutes] == [("audio-upload-foreign", CAMERA)]
    assert 6.9 * 86400 < mutes[0]["until"] - time.time() <= 7 * 86400
    assert (
        post(client, f"/alerts/{high['id']}/mute", {"period": "9y"}, "/alerts").status_code == 400
    )
    assert post(client, "/alerts/99999/acknowledge", {}, "/alerts").status_code == 404


def test_allow_list_a_destination_writes_an_allow_rule(
    client: FlaskClient, store: Store, tmp_path: Path
) -> None:
    contact = next(a for a in store.alerts(rule="new-foreign-org") if "mi.com" in a["message"])
    assert f"/alerts/{contact['id']}/allow" in client.get("/alerts").text
    post(client, f"/alerts/{contact['id']}/allow", {}, "/alerts")
    [path] = (tmp_path / "rules.d").glob("*.yaml")
    text = path.read_text()
    assert "action: allow" in text and CAMERA in text and "mi.com" in text
    bare = next(a for a in store.alerts(level="high"))
    assert post(client, f"/alerts/{bare['id']}/allow", {}, "/alerts").status_code == 400


def test_rules_page_switch_persists_and_shows_broken_files(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = tmp_path / "extra-rules"
    extra.mkdir()
    (extra / "broken.yaml").write_text("id: broken\nlevel: loud\n")
    config = test_config(tmp_path).replace(rules__paths=[str(extra)])
    client = make_app(tmp_path, store, MICWATCH_CONFIG=config).test_client()
    login(client)
    text = client.get("/rules").text
    assert "broken.yaml" in text and 'class="error"' in text
    assert "new-device" in text
    post(client, "/rules/new-device/switch", {"enabled": "0"}, "/rules")
    stored = read_settings(tmp_path / SETTINGS_FILE)
    assert stored["dashboard.disabled_rules"] == ["new-device"]
    assert load(None, env={"MICWATCH_STORE_STATE_DIR": str(tmp_path)})[
        "dashboard.disabled_rules"
    ] == ["new-device"]
    assert 'aria-pressed="false"' in client.get("/rules").text
    post(client, "/rules/new-device/switch", {"enabled": "1"}, "/rules")
    assert read_settings(tmp_path / SETTINGS_FILE)["dashboard.disabled_rules"] == []


def test_settings_are_validated_and_persisted(client: FlaskClient, tmp_path: Path) -> None:
    form = {"home": "FR, BE", "retention": "14d", "notify": "ntfy://example.org/topic\n"}
    post(client, "/settings", form, "/settings")
    config = load(None, env={"MICWATCH_STORE_STATE_DIR": str(tmp_path)})
    assert config["enrich.home"] == ["FR", "BE"]
    assert config["store.retention"] == 14 * 86400
    assert config["notify.targets"] == ["ntfy://example.org/topic"]
    assert config.sources["store.retention"] == str(tmp_path / SETTINGS_FILE)
    response = post(client, "/settings", {**form, "retention": "forever"}, "/settings")
    assert "Not saved" in client.get(response.location).text
    assert load(None, env={"MICWATCH_STORE_STATE_DIR": str(tmp_path)})["store.retention"] == (
        14 * 86400
    )
    assert 'value="14d"' in client.get("/settings").text


def test_about_page_shows_the_capture_licences(client: FlaskClient) -> None:
    text = client.get("/about").text
    assert "Apache License 2.0" in text and "IoT Sentinel" in text
    assert 'href="/about"' in client.get("/").text


def test_api_summary_stamp_moves_when_the_store_changes(client: FlaskClient, store: Store) -> None:
    first = client.get("/api/summary").json
    assert first["devices"] == 2 and first["open_alerts"]["high"] == 1
    assert first["capture"]["packets"] == 1419
    assert client.get("/api/summary").json["stamp"] == first["stamp"]
    store.acknowledge_alert(store.alerts(level="high")[0]["id"])
    assert client.get("/api/summary").json["stamp"] != first["stamp"]


def test_api_routes(client: FlaskClient) -> None:
    assert client.get(f"/api/devices/{CAMERA}").json["device"]["category"] == "camera"
    assert client.get("/api/devices/00:00:00:00:00:00").status_code == 404
    assert any(a["level"] == "high" for a in client.get("/api/alerts").json)
    assert client.get("/api/alerts?since=x").status_code == 400
    assert "audio" in {b["shape"] for b in client.get(f"/api/bursts?device={CAMERA}").json}
    assert any(d["country"] == "CN" for d in client.get("/api/destinations").json)
    countries = client.get("/api/countries").json
    assert countries[0]["country"] == "CN" and countries[0]["foreign"] is True


def test_countries_leave_out_what_stays_home(tmp_path: Path) -> None:
    from monitor import store_views

    store = Store(f"sqlite:///{tmp_path / 'dlink.db'}", sensor="home", retention_s=10**9)
    capture = Path(__file__).parents[1] / "monitor/samples/iotsentinel_D-LinkCam_Setup-A-2-STA.pcap"
    replay = Replay(test_config(tmp_path), [str(capture)], store, speed=0).start()
    assert replay.done.wait(60)
    try:
        multicast = [d for d in store.destinations() if d["ip"].startswith("239.")]
        assert multicast and store_views.stays_home(multicast[0])
        countries = store_views.countries(store, 0)
        assert {c["country"] for c in countries} == {"US", "DE"}
        assert all(c["foreign"] for c in countries)
        assert all(c["devices"] == 1 for c in countries)
    finally:
        store.close()


def test_live_refresh_script_is_served_and_wired(client: FlaskClient) -> None:
    page = client.get("/").text
    assert '<script src="/static/live.js" defer></script>' in page
    assert 'data-summary="/api/summary"' in page
    script = client.get("/static/live.js").text
    assert 'getAttribute("data-summary")' in script and "setInterval(poll, 5000)" in script
