"""Home Assistant over MQTT: alerts and per-device state, with MQTT discovery.

:class:`HomeAssistantMqtt` is an event handler. Its ``on_*`` methods hand messages to paho's
client, whose own network thread delivers them (``publish`` only queues: the packet loop never
waits for the broker). Messages use QoS 1, so paho keeps them while the broker is away and sends
them on reconnection, up to :data:`MAX_QUEUED` messages.

The owner calls :meth:`HomeAssistantMqtt.close` after the capture's last event.

Topics (``<sensor>`` is the store's sensor name, ``<id>`` the MAC without colons):

- ``<prefix>/binary_sensor/micwatch_<id>/audio_upload/config`` and
  ``<prefix>/sensor/micwatch_<id>/last_alert/config``: discovery configs, retained, published
  the first time an event names a device in this run and again when its display name changes.
  The device entry carries the device's display name, vendor and MAC.
- ``micwatch/<sensor>/<id>/audio_upload``: ``ON`` when the device sends an audio-shaped burst
  to a foreign destination (Home Assistant turns it off after :data:`OFF_DELAY_S`).
- ``micwatch/<sensor>/<id>/last_alert``: the last alert's message (retained), with its record
  as JSON attributes on ``.../last_alert/attributes``.
- ``micwatch/<sensor>/alert``: every alert as JSON (not retained).
- ``micwatch/<sensor>/status``: ``online`` / ``offline`` (retained; ``offline`` is also the last
  will, so a crashed daemon shows as unavailable).

Alert titles and messages, and the entities' names, are in ``language`` (``notify.language``):
see :func:`monitor.alert_i18n.alert_text`; the record's other fields (rule, level, country code)
are values for automations and stay as they are.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from monitor.alert_i18n import alert_text, catalogue

if TYPE_CHECKING:
    from monitor.events import AlertRaised, DeviceSeen, DeviceUpdated, UploadBurst
    from monitor.model import Device
    from rules.engine import RuleEngine

log = logging.getLogger(__name__)

MAX_QUEUED = 1000
OFF_DELAY_S = 120
#: Home Assistant limits a sensor's state to 255 characters.
STATE_MAX = 255


def _client(url: str, client_id: str) -> tuple[mqtt.Client, str, int]:
    """A paho client for ``url`` (credentials and TLS set) with the broker's host and port;
    ValueError for a URL that is not mqtt:// or mqtts://."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("notify.mqtt must look like mqtt://host:1883 or mqtts://host:8883")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    if parts.scheme == "mqtts":
        client.tls_set()
    return client, parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883)


def send_test(url: str, sensor: str, text: str, timeout: float = 5.0) -> bool:
    """Publish ``text`` to ``micwatch/<sensor>/test`` with its own client (a running daemon
    keeps its connection); True when the broker acknowledged it within ``timeout``."""
    client, host, port = _client(url, f"micwatch-{sensor}-test-{os.getpid()}")
    try:
        client.connect(host, port)
    except OSError:
        return False
    client.loop_start()
    try:
        info = client.publish(f"micwatch/{sensor}/test", text, qos=1)
        info.wait_for_publish(timeout)
        return info.is_published()
    except (RuntimeError, ValueError):
        return False
    finally:
        client.disconnect()
        client.loop_stop()


def node_id(mac: str) -> str:
    """The MAC as a topic segment: lower-case hex without separators."""
    return mac.replace(":", "").replace("-", "").lower()


class HomeAssistantMqtt:
    """Publishes alerts and device state for Home Assistant; see the module docstring.
    ``engine`` holds the rules' translations (None: alerts in their stored words)."""

    def __init__(
        self,
        url: str,
        *,
        sensor: str,
        discovery_prefix: str = "homeassistant",
        shutdown_s: float = 5.0,
        language: str = "en",
        engine: RuleEngine | None = None,
    ) -> None:
        client, host, port = _client(url, f"micwatch-{sensor}")
        self.sensor = sensor
        self.language = language
        self.engine = engine
        self.prefix = discovery_prefix
        self.base = f"micwatch/{sensor}"
        self.shutdown_s = shutdown_s
        self._announced: dict[str, str] = {}
        self._sent: deque[mqtt.MQTTMessageInfo] = deque(maxlen=MAX_QUEUED)
        client.max_queued_messages_set(MAX_QUEUED)
        client.will_set(f"{self.base}/status", "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.connect_async(host, port)
        client.loop_start()
        self.client = client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        client.publish(f"{self.base}/status", "online", qos=1, retain=True)

    # --- handlers ---

    def on_device_seen(self, event: DeviceSeen) -> None:
        self._announce(event.device.mac, event.device)

    def on_device_updated(self, event: DeviceUpdated) -> None:
        self._announce(event.device.mac, event.device)

    def on_upload_burst(self, event: UploadBurst) -> None:
        if event.shape == "audio" and event.destination.foreign:
            self._announce(event.device.mac, event.device)
            self._publish(f"{self.base}/{node_id(event.device.mac)}/audio_upload", "ON")

    def on_alert_raised(self, event: AlertRaised) -> None:
        alert = event.alert
        title, message = alert_text(alert, self.language, self.engine)
        record = {
            "rule": alert.rule,
            "level": alert.level,
            "title": title,
            "message": message,
            "ts": alert.ts,
            "device": alert.device_mac,
            "device_name": alert.event.get("device.name"),
            "dest": alert.dest,
            "country": alert.event.get("dest.country"),
            "sensor": self.sensor,
        }
        payload = json.dumps(record, separators=(",", ":"))
        self._publish(f"{self.base}/alert", payload)
        if alert.device_mac:
            self._announce(alert.device_mac, None, record["device_name"])
            topic = f"{self.base}/{node_id(alert.device_mac)}/last_alert"
            self._publish(topic, message[:STATE_MAX], retain=True)
            self._publish(f"{topic}/attributes", payload, retain=True)

    def close(self) -> bool:
        """Publish ``offline``, wait up to ``shutdown_s`` for queued messages, disconnect;
        True when everything queued was delivered. Idempotent."""
        if self.client is None:
            return True
        self._publish(f"{self.base}/status", "offline", retain=True)
        deadline = time.monotonic() + self.shutdown_s
        while any(not info.is_published() for info in self._sent):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        delivered = all(info.is_published() for info in self._sent)
        if not delivered:
            log.error("MQTT: messages undelivered at shutdown (broker unreachable?)")
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None
        return delivered

    # --- discovery ---

    def _announce(self, mac: str, device: Device | None, name: str | None = None) -> None:
        display = (device.display_name if device is not None else None) or name or mac
        if mac in self._announced and (device is None or self._announced[mac] == display):
            return
        self._announced[mac] = display
        nid = node_id(mac)
        entry: dict[str, Any] = {
            "identifiers": [f"micwatch_{nid}"],
            "connections": [["mac", mac]],
            "name": display,
        }
        if device is not None and device.vendor:
            entry["manufacturer"] = device.vendor
        common = {"device": entry, "availability_topic": f"{self.base}/status"}
        words = catalogue(self.language)
        audio = {
            **common,
            "name": words.gettext("Audio upload abroad"),
            "unique_id": f"micwatch_{self.sensor}_{nid}_audio_upload",
            "state_topic": f"{self.base}/{nid}/audio_upload",
            "device_class": "sound",
            "off_delay": OFF_DELAY_S,
        }
        last = {
            **common,
            "name": words.gettext("Last micwatch alert"),
            "unique_id": f"micwatch_{self.sensor}_{nid}_last_alert",
            "state_topic": f"{self.base}/{nid}/last_alert",
            "json_attributes_topic": f"{self.base}/{nid}/last_alert/attributes",
            "icon": "mdi:microphone-message",
        }
        for component, object_id, config in (
            ("binary_sensor", "audio_upload", audio),
            ("sensor", "last_alert", last),
        ):
            topic = f"{self.prefix}/{component}/micwatch_{nid}/{object_id}/config"
            self._publish(topic, json.dumps(config, separators=(",", ":")), retain=True)

    def _publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        if self.client is not None:
            self._sent.append(self.client.publish(topic, payload, qos=1, retain=retain))
