"""The burst detector on the real captures: the camera's two-way talk is caught, idle traffic,
keep-alives, discovery chatter and a smart plug's whole lifecycle are not."""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path

import pytest

from monitor.analyze import analyze_files
from monitor.capture import open_files
from monitor.config import load
from monitor.runtime import build
from tests.conftest import DATA

ALL = sorted((DATA / "iot").iterdir()) + sorted((DATA / "protocols").iterdir())
# The captures with a microphone's upload in them (labelled phases of the Lifecycle dataset).
VOICE = {"lifecycle_xiaobaiY2cam_speak_local.pcap", "lifecycle_xiaobaiY2cam_speak_remote.pcap"}
# Captures that may hold media, not pinned either way: the camera's pairing (the app shows its
# live view: 51 kB in 2-3 s to the relay of the talk phases, audio-shaped when it spans three
# one-second bins) and the Alexa phone app in use (which takes voice requests).
MAYBE = {"lifecycle_xiaobaiY2cam_setup.pcap", "ndpi_alexa_android_app.pcapng"}


@cache
def records(path: Path, home: str = "FR") -> tuple[dict, ...]:
    out = io.StringIO()
    analyze_files(load(env={}, cli={"enrich.home": [home]}), [str(path)], fmt="jsonl", out=out)
    return tuple(json.loads(line) for line in out.getvalue().splitlines())


def bursts(path: Path, home: str = "FR") -> list[dict]:
    return [r for r in records(path, home) if r["kind"] == "burst"]


@pytest.mark.parametrize("name", sorted(VOICE))
def test_two_way_talk_is_an_audio_or_video_burst_to_china_with_a_high_alert(name: str) -> None:
    path = DATA / "iot" / name
    [talk] = [b for b in bursts(path) if b["shape"] in ("audio", "video")]
    assert talk["device"]["mac"] == "78:df:72:24:69:4d" and talk["device"]["category"] == "camera"
    assert talk["dest"]["country"] == "CN" and talk["dest"]["foreign"]
    assert talk["duration_s"] >= 10 and talk["bytes_up"] > 300_000
    alerts = [r for r in records(path) if r["kind"] == "alert" and r["level"] == "high"]
    assert [a["rule"] for a in alerts] == ["audio-upload-foreign"]
    eu = [r for r in records(path, "EU") if r["kind"] == "alert" and r["level"] == "high"]
    assert len(eu) == 1
    assert not [r for r in records(path, "CN") if r["kind"] == "alert" and r["level"] == "high"]


def shifted_audio(path: Path, shift: float) -> list[tuple]:
    """Audio bursts when every timestamp moves by ``shift`` seconds (another alignment of the
    one-second bins)."""
    found: list[tuple] = []

    class Collect:
        def on_upload_burst(self, event) -> None:
            if event.shape == "audio":
                found.append((event.device.mac, event.destination.ip, event.bytes_up))

    runtime = build(load(env={}, cli={"enrich.home": ["FR"]}))
    runtime.chain.add(Collect())
    runtime.pipeline.run((ts + shift, lt, frame) for ts, lt, frame in open_files([str(path)]))
    runtime.pipeline.finish()
    return found


@pytest.mark.parametrize("path", [p for p in ALL if p.name not in MAYBE], ids=lambda p: p.name)
def test_no_audio_burst_without_a_voice_in_the_capture(path: Path) -> None:
    for shift in (0.0, 0.25, 0.5, 0.75):
        audio = shifted_audio(path, shift)
        if path.name in VOICE:
            assert audio, shift
        else:
            assert audio == [], (shift, audio)


def test_idle_camera_and_plug_lifecycle_stay_quiet() -> None:
    idle = bursts(DATA / "iot" / "lifecycle_xiaobaiY2cam_idle_remote.pcap")
    assert [b for b in idle if b["shape"] == "audio"] == []
    plug = bursts(DATA / "iot" / "lifecycle_xiaodu_plug_full.pcap")
    assert plug, "the plug does upload (setup, updates, app commands): as bulk, not audio"
    assert {b["shape"] for b in plug} == {"bulk"}
