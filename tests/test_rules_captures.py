"""Every built-in rule against a real capture that must raise it and one that must not."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from monitor.analyze import analyze_files
from monitor.config import load
from tests.conftest import DATA

IOT = DATA / "iot"
SETUP = IOT / "lifecycle_xiaobaiY2cam_setup.pcap"
SPEAK_REMOTE = IOT / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
SPEAK_LOCAL = IOT / "lifecycle_xiaobaiY2cam_speak_local.pcap"


def alerts(path: Path, tmp_path: Path, *, store: object = None, **options: object) -> list[dict]:
    cli = {"enrich.home": ["FR"], "rules.timezone": "UTC", **options}
    out = io.StringIO()
    analyze_files(load(env={}, cli=cli), [str(path)], fmt="jsonl", out=out, store=store)
    return [json.loads(line) for line in out.getvalue().splitlines() if '"kind":"alert"' in line]


def fired(rule: str, path: Path, tmp_path: Path, **options: object) -> list[dict]:
    return [a for a in alerts(path, tmp_path, **options) if a["rule"] == rule]


def indicator_file(tmp_path: Path, *entries: str) -> str:
    path = tmp_path / "list.txt"
    path.write_text("\n".join(entries) + "\n")
    return str(path)


# (rule, positive capture and options, negative capture and options, why the negative is quiet)
CASES = [
    (
        "audio-upload-foreign",
        (SPEAK_REMOTE, {}),
        (IOT / "lifecycle_xiaobaiY2cam_idle_remote.pcap", {}),
        "30 minutes idle: no audio burst",
    ),
    (
        "audio-upload-night",
        (SPEAK_REMOTE, {}),
        (SPEAK_REMOTE, {"rules.timezone": "Asia/Shanghai"}),
        "recorded at 05:59 UTC, which is 13:59 in Shanghai",
    ),
    (
        "video-upload-foreign",
        (IOT / "echo349_home_wifi.pcapng", {}),
        (IOT / "moniotr_yi_camera_sample.pcap", {}),
        "video to a phone on the LAN, not abroad",
    ),
    (
        "new-foreign-org",
        (SETUP, {}),
        (IOT / "iotsentinel_MAXGateway_Setup-A-6-STA.pcap", {"enrich.home": ["DE"]}),
        "a German gateway talking to its German cloud, in a German home",
    ),
    ("unencrypted-upload", (SPEAK_LOCAL, {}), (SPEAK_REMOTE, {}), "this talk goes over TLS/443"),
]


@pytest.mark.parametrize(("rule", "positive", "negative", "why"), CASES, ids=[c[0] for c in CASES])
def test_builtin_rule_on_real_captures(rule, positive, negative, why, tmp_path: Path) -> None:
    raised = fired(rule, positive[0], tmp_path, **positive[1])
    assert raised, f"{rule} did not fire on {positive[0].name}"
    assert all(a["message"] and a["device"] for a in raised)
    assert fired(rule, negative[0], tmp_path, **negative[1]) == [], why


def test_indicator_rules_on_real_captures(tmp_path: Path) -> None:
    listed = indicator_file(tmp_path, "io.mi.com", "110.43.68.240")
    [name] = fired("indicator-name", SETUP, tmp_path, **{"rules.indicators": [listed]})[:1]
    assert name["level"] == "high" and "mi.com" in name["message"] and "list" in name["message"]
    assert fired("indicator-address", SPEAK_REMOTE, tmp_path, **{"rules.indicators": [listed]})
    other = indicator_file(tmp_path, "stalker.example", "192.0.2.77")
    assert fired("indicator-name", SETUP, tmp_path, **{"rules.indicators": [other]}) == []
    assert fired("indicator-address", SPEAK_REMOTE, tmp_path, **{"rules.indicators": [other]}) == []


def test_new_device_on_real_captures(tmp_path: Path) -> None:
    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'db'}", sensor="t", retention_s=10**10)
    try:
        first = [a for a in alerts(SETUP, tmp_path, store=store) if a["rule"] == "new-device"]
        assert {a["device"] for a in first} == {"78:df:72:24:69:4d", "c8:bf:4c:77:a0:3a"}
    finally:
        store.close()
    store = Store(f"sqlite:///{tmp_path / 'db'}", sensor="t", retention_s=10**10)
    try:
        again = [a for a in alerts(SETUP, tmp_path, store=store) if a["rule"] == "new-device"]
        assert again == [], "the store already knew both devices"
    finally:
        store.close()
