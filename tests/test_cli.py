"""The command line end to end: analyze into a store, the user's word, alerts, rules, config."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import OPTIONS, defaults_toml, load
from tests.conftest import DATA

CAMERA = "78:df:72:24:69:4d"
SETUP = str(DATA / "iot" / "lifecycle_xiaobaiY2cam_setup.pcap")
SPEAK = str(DATA / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap")


@pytest.fixture
def db(tmp_path: Path) -> list[str]:
    return ["--store-db", f"sqlite:///{tmp_path / 'micwatch.db'}", "--store-sensor", "home"]


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def analyze_into(db: list[str], capsys, *files: str) -> None:
    url = db[1]
    run(
        capsys,
        "analyze",
        *files,
        "--home",
        "FR",
        "--db",
        url,
        "--store-sensor",
        "home",
        "--format",
        "jsonl",
    )


def test_devices_label_and_category_override_the_guess_and_survive_a_new_run(db, capsys):
    analyze_into(db, capsys, SETUP)
    listing = run(capsys, "devices", *db)
    assert f"[camera, 98% sure]  {CAMERA}" in listing and "DHCP hostname chuangmi" in listing
    run(capsys, "devices", "label", CAMERA, "Baby monitor", *db)
    run(capsys, "devices", "category", CAMERA, "toy", *db)
    analyze_into(db, capsys, SPEAK)  # a "restart": the store already knows the camera
    listing = run(capsys, "devices", *db)
    assert f"Baby monitor  [toy, set by you]  {CAMERA}" in listing
    [row] = [
        r for r in json.loads(run(capsys, "devices", "--format", "json", *db)) if r["mac"] == CAMERA
    ]
    assert row["label"] == "Baby monitor" and row["category_guess"] == "camera"
    run(capsys, "devices", "category", CAMERA, "auto", *db)
    assert f"Baby monitor  [camera, 98% sure]  {CAMERA}" in run(capsys, "devices", *db)


def test_first_time_alerts_fire_once_per_device_not_once_per_run(db, capsys):
    analyze_into(db, capsys, SETUP)
    first = json.loads(run(capsys, "alerts", "--since", "10000d", "--format", "json", *db))
    analyze_into(db, capsys, SETUP)
    again = json.loads(run(capsys, "alerts", "--since", "10000d", "--format", "json", *db))
    new = [a for a in again if a["rule"] == "new-device" and a["device_mac"] == CAMERA]
    assert len(new) == 1
    first_time = ("new-device", "new-foreign-org")
    orgs = [a for a in first if a["rule"] == "new-foreign-org" and a["device_mac"] == CAMERA]
    assert orgs
    assert [a for a in again if a["rule"] in first_time] == [
        a for a in first if a["rule"] in first_time
    ]


def test_explain_prints_the_evidence_trail(db, capsys):
    analyze_into(db, capsys, SETUP)
    text = run(capsys, "devices", "--explain", CAMERA, *db)
    assert "DHCP hostname chuangmi_camera_060a02" in text and "decision: camera" in text


def test_destinations_and_forget(db, capsys):
    analyze_into(db, capsys, SETUP)
    text = run(capsys, "destinations", "--device", CAMERA, *db)
    assert "business.smartcamera.api.io.mi.com" in text and "[CN]" in text and "FOREIGN" in text
    run(capsys, "devices", "forget", CAMERA, *db)
    assert CAMERA not in run(capsys, "devices", *db)
    assert main(["devices", "--explain", CAMERA, *db]) == 2
    assert "no device" in capsys.readouterr().err


def test_alerts_are_stored_acknowledged_and_muted(db, capsys):
    analyze_into(db, capsys, SPEAK)
    alerts = json.loads(run(capsys, "alerts", "--since", "10000d", "--format", "json", *db))
    [audio] = [a for a in alerts if a["rule"] == "audio-upload-foreign"]
    assert audio["level"] == "high" and "CN" in audio["message"]
    assert audio["event"]["shape"] == "audio" and audio["event"]["device.mac"] == CAMERA
    run(capsys, "alerts", "ack", str(audio["id"]), *db)
    text = run(capsys, "alerts", "--since", "10000d", "--level", "high", *db)
    assert "(acknowledged)" in text
    run(capsys, "alerts", "mute", "new-foreign-org", "--device", CAMERA, *db)
    muted = json.loads(
        run(
            capsys,
            "alerts",
            "--since",
            "10000d",
            "--rule",
            "new-foreign-org",
            "--format",
            "json",
            *db,
        )
    )
    assert muted and all(a["muted"] for a in muted)
    assert main(["alerts", "ack", "999999", *db]) == 2


def test_rules_check_names_file_line_and_field(tmp_path, capsys):
    assert run(capsys, "rules", "check").startswith("8 rule files, 0 errors")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad-rule\ntitle: Bad\nlevel: urgent\nevent: upload_burst\n"
        "match:\n  shape: audio\nmessage: hi\n"
    )
    assert main(["rules", "check", str(bad)]) == 1
    assert f"{bad}:3: level:" in capsys.readouterr().out


def test_rules_test_shows_what_one_rule_raises(capsys):
    text = run(capsys, "rules", "test", "audio-upload-foreign", SPEAK, "--home", "FR")
    assert "[high]" in text and "in CN" in text and "audio-upload-foreign: 1 alerts" in text
    text = run(capsys, "rules", "test", "audio-upload-foreign", SPEAK, "--home", "CN")
    assert "audio-upload-foreign: 0 alerts" in text


def test_rules_allow_writes_an_allow_rule_that_silences_the_alert(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("MICWATCH_STORE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "1 alerts" in run(capsys, "rules", "test", "audio-upload-foreign", SPEAK, "--home", "FR")
    out = run(
        capsys,
        "rules",
        "allow",
        "--device",
        CAMERA,
        "--country",
        "CN",
        "--comment",
        "the baby monitor's own cloud",
    )
    written = Path(out.split()[1].rstrip(";"))
    assert written.is_file() and written.parent == tmp_path / "state" / "rules.d"
    jsonl = run(capsys, "analyze", SPEAK, "--home", "FR", "--format", "jsonl")
    assert '"rule":"audio-upload-foreign"' not in jsonl


def test_indicators_import_and_match(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    hosts = tmp_path / "stalkerware.txt"
    hosts.write_text("# test list\nio.mi.com\n")
    assert "1 indicators" in run(capsys, "indicators", "import", str(hosts))
    jsonl = run(capsys, "analyze", SETUP, "--home", "FR", "--format", "jsonl")
    alerts = [json.loads(line) for line in jsonl.splitlines() if '"kind":"alert"' in line]
    assert any(a["rule"] == "indicator-name" and "io.mi.com" in a["message"] for a in alerts)


def test_default_configuration_file_round_trips():
    text = defaults_toml()
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines()
    )
    data = tomllib.loads(uncommented)
    assert sum(len(v) for v in data.values()) == len(OPTIONS)
    for option in OPTIONS:
        assert option.help in text
    assert dict(load(env={})) == dict(load(env={}, cli={}))


def test_bad_configuration_file_names_the_option(tmp_path, capsys):
    path = tmp_path / "micwatch.toml"
    path.write_text("[flows]\nmax_flows = 'lots'\n")
    assert main(["--config", str(path), "analyze", SETUP, "--home", "FR"]) == 2
    err = capsys.readouterr().err
    assert "flows.max_flows" in err and "whole number" in err and str(path) in err


def test_capture_reads_a_router_pipe_on_standard_input(tmp_path):
    with open(SPEAK, "rb") as capture:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "capture",
                "-r",
                "-",
                "--format",
                "jsonl",
                "--no-store",
                "--home",
                "FR",
            ],
            stdin=capture,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records[-1]["kind"] == "summary" and records[-1]["packets"] == 789
    assert any(r["kind"] == "alert" and r["rule"] == "audio-upload-foreign" for r in records)


def test_jsonl_output_stays_clean(capsys):
    out = run(capsys, "-v", "analyze", SETUP, SPEAK, "--home", "FR", "--format", "jsonl")
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert {"device", "destination", "burst", "alert"} <= set(kinds) and kinds[-1] == "summary"


def test_demo_prints_devices_and_destinations(capsys):
    text = run(capsys, "demo", "--text")
    assert "micwatch demo" in text and "chuangmi" in text and "[CN] FOREIGN" in text
    assert "NOTICE" in text
