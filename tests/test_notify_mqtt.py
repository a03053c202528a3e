"""Home Assistant over MQTT: a replayed capture with an audio upload abroad, published to the
local Mosquitto broker (127.0.0.1:1883; required in CI) and read back by a subscriber."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import require

from monitor.config import load
from monitor.daemon import run_daemon
from monitor.notify_mqtt import send_test

BROKER = ("127.0.0.1", 1883)
CAPTURE = Path(__file__).parent / "data" / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
CAMERA = "78df7224694d"


def _broker_up() -> bool:
    try:
        socket.create_connection(BROKER, timeout=1).close()
    except OSError:
        return False
    return True


class Subscriber:
    """Collects every message on ``topics`` (retained ones included)."""

    def __init__(self, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4()}")
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, m.payload, m.retain)
        )
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect(*BROKER)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(5)

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p, _r in self.messages if t == topic]

    def wait_for(self, topic: str, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while not self.payloads(topic) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.payloads(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker() -> None:
    require(_broker_up(), "no MQTT broker on 127.0.0.1:1883 (Mosquitto)")


def _clear_retained(topic: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(*BROKER)
    client.loop_start()
    client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize("language", ["", "fr"])
def test_replayed_audio_upload_reaches_home_assistant(
    language: str, broker: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sensor = f"test{uuid.uuid4().hex[:8]}"
    discovery = f"homeassistant/binary_sensor/micwatch_{CAMERA}/audio_upload/config"
    _clear_retained(discovery)
    sub = Subscriber([f"micwatch/{sensor}/#", "homeassistant/#"])
    try:
        config = load(None, env={}).replace(
            enrich__home=["FR"],
            notify__mqtt="mqtt://127.0.0.1:1883",
            notify__language=language,
            store__sensor=sensor,
        )
        assert run_daemon(config, read=[str(CAPTURE)], use_store=False) == 0
        capsys.readouterr()
        alerts = [json.loads(p) for p in sub.wait_for(f"micwatch/{sensor}/alert")]
        configs = [json.loads(p) for p in sub.wait_for(discovery) if p]
        state = sub.wait_for(f"micwatch/{sensor}/{CAMERA}/audio_upload")
        last = sub.wait_for(f"micwatch/{sensor}/{CAMERA}/last_alert")
        status = sub.wait_for(f"micwatch/{sensor}/status")
    finally:
        sub.close()
        for topic in {t for t, _p, _r in sub.messages if sensor in t or CAMERA in t}:
            _clear_retained(topic)  # leave no retained message of this test on the broker
    audio = [a for a in alerts if a["rule"] == "audio-upload-foreign"]
    assert len(audio) == 1
    assert audio[0]["device_name"] == "Imilab camera" and audio[0]["country"] == "CN"
    assert audio[0]["level"] == "high"
    assert configs, "no discovery config published"
    if language == "fr":  # titles, messages and entity names in French; values stay codes
        assert audio[0]["title"] == "Envoi de taille audio vers un serveur à l\u2019étranger"
        assert "a envoyé 373 ko" in audio[0]["message"] and "(Chine)" in audio[0]["message"]
        assert any("(Chine)" in p.decode() for p in last)
        assert configs[-1]["name"] == "Envoi audio vers l\u2019étranger"
    else:
        assert audio[0]["title"] == "Audio-sized upload to a server abroad"
        assert " CN" in audio[0]["message"] and "shaped like" in audio[0]["message"]
        assert configs[-1]["name"] == "Audio upload abroad"
    config_payload = configs[-1]  # Home Assistant keeps the last (retained) one
    assert config_payload["state_topic"] == f"micwatch/{sensor}/{CAMERA}/audio_upload"
    assert config_payload["device"]["name"] == "Imilab camera"
    assert config_payload["device"]["connections"] == [["mac", "78:df:72:24:69:4d"]]
    assert state == [b"ON"]
    assert status[-1] == b"offline"


def test_send_test_reports_broker_and_failure(broker: None) -> None:
    sensor = f"test{uuid.uuid4().hex[:8]}"
    sub = Subscriber([f"micwatch/{sensor}/test"])
    try:
        assert send_test("mqtt://127.0.0.1:1883", sensor, "hello")
        assert sub.wait_for(f"micwatch/{sensor}/test") == [b"hello"]
    finally:
        sub.close()
    assert not send_test("mqtt://127.0.0.1:9", sensor, "nobody listens", timeout=1)
