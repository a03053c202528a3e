"""The printable report: content over a replayed capture, both languages, self-contained, escaped,
served by the dashboard with its own CSP, and written by ``micwatch report``."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from dashboard.admin import REPORT_CSP
from monitor.cli import main
from monitor.report import render_report
from monitor.store import Store
from tests.test_dashboard import CAMERA, login, make_app, replayed_store, test_config


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = replayed_store(tmp_path)
    yield store
    store.close()


def test_report_lists_uploads_countries_devices_alerts_and_advice(
    tmp_path: Path, store: Store
) -> None:
    html = render_report(test_config(tmp_path), store, time.time() - 86400, "en")
    assert "Home “home”" in html
    assert "Mi Home camera chuangmi.camera.060a02" in html
    uploads = html.split("Audio-sized uploads</h2>")[1].split("<h2>")[0]
    assert "China" in uploads and re.search(r"about \d+ s", uploads)
    assert "Audio-sized upload to a server abroad" not in html  # titles stay out; messages in
    assert "shaped like a voice recording" in html
    assert "Mute the microphone" in html and "CNIL" in html


def test_report_in_french(tmp_path: Path, store: Store) -> None:
    html = render_report(test_config(tmp_path), store, time.time() - 86400, "fr")
    assert '<html lang="fr">' in html
    assert (
        "Envois de taille audio" in html and "Chine" in html and "Ce que vous pouvez faire" in html
    )
    # alert messages come from the rules' French translations, rendered from the stored event
    assert "a envoyé" in html and "shaped like a voice recording" not in html


def test_report_is_self_contained_and_escaped(tmp_path: Path, store: Store) -> None:
    store.set_label(CAMERA, "<img src=x onerror=alert(1)>")
    html = render_report(test_config(tmp_path), store, time.time() - 86400, "en")
    assert "<script" not in html and "<img" not in html and "&lt;img src=x" in html
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html)
    assert "<link" not in html and "@import" not in html


def test_a_period_without_activity_says_so(tmp_path: Path, store: Store) -> None:
    config = test_config(tmp_path)
    active = render_report(config, store, time.time() - 86400, "en")
    assert "No audio-sized upload in this period." not in active
    quiet = render_report(config, store, time.time() + 3600, "en")
    assert "No audio-sized upload in this period." in quiet
    assert "No alert in this period." in quiet and "No device was seen in this period." in quiet


def test_dashboard_serves_the_report_with_its_own_csp(tmp_path: Path, store: Store) -> None:
    client = make_app(tmp_path, store).test_client()
    login(client)
    response = client.get("/report?since=24h&download=1")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == REPORT_CSP
    assert "attachment" in response.headers["Content-Disposition"]
    assert "Mi Home camera" in response.text
    assert client.get("/report?since=forever").status_code == 400


def test_cli_writes_the_report(tmp_path: Path, store: Store, capsys) -> None:
    store.flush()
    out = tmp_path / "report.html"
    argv = ["report", "--since", "2d", "--out", str(out), "--language", "fr"]
    argv += ["--db", f"sqlite:///{tmp_path / 'micwatch.db'}", "--store-sensor", "home"]
    argv += ["--store-state-dir", str(tmp_path)]
    assert main(argv) == 0
    assert "Chine" in out.read_text() and str(out) in capsys.readouterr().out
