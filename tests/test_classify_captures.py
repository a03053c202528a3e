"""Real captures through the real pipeline, classified on device events as in production.

Each row names a capture in tests/data/iot, the device of interest (MAC from
tests/data/labels/iotsentinel_device_macs.tsv, the dataset's description, or the device's own
announcements), its true category, and what micwatch must report: the true category when the
Device facts carry a clue to it, else ``unknown`` ("unknown is honest": a guess there would be a
failure), with the missing clue named.

Generalisation. Before the signatures were written, these captures were set aside and their
facts not read: WeMoSwitch2, EdimaxCam2, D-LinkSiren, D-LinkWaterSensor, ndpi_tplink_shp,
ndpi_tuya_lp, moniotr_yi_camera_sample and lifecycle_xiaodu_plug_on_voice (a caveat: the
dataset README in tests/data, read at the start, quotes the D-Link held-out hostnames
DCH-S220/DCH-S160 and the WeMoSwitch2 SSDP string). Checked last, before any further change:

- held-out devices with a clue: 4 of 4 right (WeMo plug, Edimax camera, D-Link siren and water
  sensor); the Edimax camera is right only through the "cam" host-name rule learnt from
  EdimaxCam1, the same camera line;
- held-out devices without a clue: all unknown, no wrong guess (the tplink_shp trace holds no
  TP-Link device at all, only Google devices probing UDP 9999; the Tuya devices show only their
  OUI; the YI camera only an ODM's OUI; the Xiaodu voice phase only the OUI);
- against the true category, held-out: 4 of the 6 rows whose truth is known right, 2 unknown,
  0 wrong.
Changes made after that check, none prompted by a held-out row, which all re-ran with the same
result: two lone-OUI weights lowered (D-Link, Edimax network 0.35 -> 0.3: a tuned row showed a
lone OUI crossing min_confidence); ambiguous facts (Apple, Amazon, D-Link, TP-Link, Edimax OUIs,
_companion-link, the iOS DHCP list, Android traits) made to list every kind they fit, so they no
longer count against an Apple TV; host-name word rules and Wyze/Netatmo model host names (from
the synthetic bench capture, not from these captures).

Tuned rows: 31 of 31 devices with a clue right; the 7 without a clue stay unknown.
"""

from __future__ import annotations

from functools import cache

import pytest

from monitor import config as config_module
from monitor.capture import open_files
from monitor.model import Device
from monitor.runtime import build
from tests.conftest import DATA

NO_CLUE = "unknown"

# (capture, mac, true category, expected report, note)
# fmt: off
TUNED = [
    ("iotsentinel_Aria_Setup-C-1-STA.pcap", "20:f8:5e:ca:91:52", "sensor", "sensor",
     "Fitbit Aria scale: www.fitbit.com"),
    ("iotsentinel_D-LinkCam_Setup-A-2-STA.pcap", "b0:c5:54:25:5b:0e", "camera", "camera",
     "DHCP hostname DCS-935L"),
    ("iotsentinel_D-LinkDoorSensor_Setup-C-18-STA.pcap", "1c:5f:2b:aa:fd:4e", "hub", "hub",
     "the MAC is the DCH-G020 gateway; the Z-Wave door sensor has no IP"),
    ("iotsentinel_D-LinkHomeHub_Setup-C-3-STA.pcap", "1c:5f:2b:aa:fd:4e", "hub", "hub",
     "DHCP hostname DCH-G020"),
    ("iotsentinel_D-LinkSensor_Setup-A-1-STA.pcap", "90:8d:78:a8:e1:43", "sensor", "sensor",
     "DHCP hostname DCH-S150"),
    ("iotsentinel_D-LinkSwitch_Setup-C-4-STA.pcap", "90:8d:78:a9:3d:6f", "plug", "plug",
     "DHCP hostname DSP-W215"),
    ("iotsentinel_EdimaxCam1_Setup-A-3-STA.pcap", "74:da:38:80:7a:08", "camera", "camera",
     "mDNS host localcam.local"),
    ("iotsentinel_EdimaxPlug1101W_Setup-C-2-STA.pcap", "74:da:38:4a:76:49", "plug", NO_CLUE,
     "only the Edimax OUI and myedimax.com; the plug's HTTP server on TCP 10000 is no fact"),
    ("iotsentinel_EdnetCam1_Setup-C-5-STA.pcap", "3c:49:37:03:17:db", "camera", NO_CLUE,
     "only an ASSMANN OUI and udhcp"),
    ("iotsentinel_EdnetGateway_Setup-A-2-STA.pcap", "ac:cf:23:62:3c:6e", "hub", NO_CLUE,
     "a Hi-Flying Wi-Fi module and its maker's cloud"),
    ("iotsentinel_HomeMaticPlug_Setup-C-8-STA.pcap", "00:1a:22:05:c4:2e", "plug", NO_CLUE,
     "ARP only: the eQ-3 OUI"),
    ("iotsentinel_HueBridge_Setup-A-2-STA.pcap", "00:17:88:24:76:ff", "hub", "hub",
     "Philips-hue, IpBridge, md=BSB002"),
    ("iotsentinel_MAXGateway_Setup-A-6-STA.pcap", "00:1a:22:03:cb:be", "hub", "hub",
     "eQ-3 OUI with a serial-number host name, ntp.homematic.com"),
    ("iotsentinel_SmarterCoffee_Setup-A-6-STA.pcap", "5c:cf:7f:07:ae:fb", "appliance", NO_CLUE,
     "Espressif OUI and default ESP_ hostname"),
    ("iotsentinel_TP-LinkPlugHS100_Setup-C-7-STA.pcap", "50:c7:bf:00:fc:a3", "plug", "plug",
     "DHCP hostname HS100(EU)"),
    ("iotsentinel_WeMoInsightSwitch2_Setup-C-4-STA.pcap", "94:10:3e:42:80:69", "plug", "plug",
     "Belkin OUI, xbcs.net, insight.lswf.net"),
    ("iotsentinel_WeMoSwitch_Setup-C-2-STA.pcap", "94:10:3e:35:01:c1", "plug", "plug",
     "Belkin OUI, xbcs.net"),
    ("lifecycle_xiaobaiY2cam_setup.pcap", "78:df:72:24:69:4d", "camera", "camera",
     "Imilab OUI, smartcamera.api.io.mi.com"),
    ("lifecycle_xiaobaiY2cam_idle_remote.pcap", "78:df:72:24:69:4d", "camera", "camera",
     "Imilab OUI"),
    ("lifecycle_xiaobaiY2cam_speak_local.pcap", "78:df:72:24:69:4d", "camera", "camera",
     "Imilab OUI"),
    ("lifecycle_xiaobaiY2cam_speak_remote.pcap", "78:df:72:24:69:4d", "camera", "camera",
     "Imilab OUI"),
    ("lifecycle_xiaodu_plug_full.pcap", "f4:21:ae:9e:8f:cb", "plug", "plug",
     "DuerOS smart-home endpoints (the weakest rule: learnt from this device)"),
    ("lifecycle_xiaodu_plug_setup.pcap", "f4:21:ae:9e:8f:cb", "plug", NO_CLUE,
     "Xiaodu OUI and ota.baidu.com only"),
    ("ndpi_sonos.pcapng", "34:7e:5c:ff:a2:6e", "speaker", "speaker", "Sonos OUI"),
    ("ndpi_sonos.pcapng", "5c:aa:fd:02:92:1a", "speaker", "speaker", "Sonos OUI"),
    ("ndpi_nest_log_sink.pcap", "18:b4:30:26:34:40", "sensor", "sensor",
     "Nest Labs OUI, Weave log sink: a Nest thermostat or Protect"),
    ("ndpi_alexa_android_app.pcapng", "78:f8:82:d3:fb:c2", "phone", "phone",
     "Android phone running the Alexa app: not a speaker"),
    ("echo349_home_wifi.pcapng", "d4:f5:47:17:05:1b", "speaker", "speaker",
     "Google Nest Mini: _googlecast md=Google Nest Mini"),
    ("echo349_home_wifi.pcapng", "d8:f1:5b:a0:4c:71", NO_CLUE, NO_CLUE,
     "the Espressif/Tuya device: its UDP 6667 broadcast is no Device fact, kind unknowable"),
    ("echo349_home_wifi.pcapng", "e8:6e:3a:ef:35:71", "console", "console", "PlayStation 5"),
    ("echo349_home_wifi.pcapng", "3c:31:78:50:af:79", "hub", "hub", "Qolsys alarm panel"),
    ("echo349_home_wifi.pcapng", "e6:07:60:f1:7f:2c", "computer", "computer", "MacBook Pro"),
    ("echo349_home_wifi.pcapng", "8a:23:2d:5b:2a:53", "computer", "computer", "MacBook Air"),
    ("echo349_home_wifi.pcapng", "5e:43:6f:b2:af:98", "computer", "computer", "MacBook Air"),
    ("echo349_home_wifi.pcapng", "3a:b9:e4:59:fe:ab", "phone", "phone", "iPad (tablet)"),
    ("echo349_home_wifi.pcapng", "42:b3:df:0e:fc:32", "phone", "phone", "iPad (tablet)"),
    ("echo349_home_wifi.pcapng", "9c:1e:95:20:00:20", "network", "network", "Actiontec gateway"),
    ("ndpi_whatsapp_voice_call.pcap", "d8:30:62:56:00:1c", "computer", "computer",
     "DHCP hostname Lucas-iMac"),
]

HELD_OUT = [
    ("iotsentinel_WeMoSwitch2_Setup-C-4-STA.pcap", "94:10:3e:34:0c:b5", "plug", "plug",
     "Belkin OUI, xbcs.net"),
    ("iotsentinel_EdimaxCam2_Setup-C-2-STA.pcap", "74:da:38:80:79:fc", "camera", "camera",
     "mDNS host localcam.local"),
    ("iotsentinel_D-LinkSiren_Setup-C-19-STA.pcap", "90:8d:78:dd:0d:60", "sensor", "sensor",
     "DHCP hostname DCH-S220 (sirens count as sensor)"),
    ("iotsentinel_D-LinkWaterSensor_Setup-C-16-STA.pcap", "6c:72:20:c5:17:5a", "sensor",
     "sensor", "DHCP hostname DCH-S160"),
    ("ndpi_tplink_shp.pcap", "20:df:b9:b4:ba:b1", NO_CLUE, NO_CLUE,
     "a Google device probing for Kasa plugs: Google OUI only"),
    ("ndpi_tuya_lp.pcap", "38:1f:8d:45:1e:b5", NO_CLUE, NO_CLUE,
     "Tuya OUI only; the UDP 6667 discovery is no Device fact"),
    ("ndpi_tuya_lp.pcap", "cc:50:e3:7d:88:34", NO_CLUE, NO_CLUE, "Espressif OUI only"),
    ("moniotr_yi_camera_sample.pcap", "b0:d5:9d:b9:f0:b4", "camera", NO_CLUE,
     "an ODM's OUI (Zowee), no DHCP, DNS or TLS in the sample"),
    ("lifecycle_xiaodu_plug_on_voice.pcap", "f4:21:ae:9e:8f:cb", "plug", NO_CLUE,
     "Xiaodu OUI only in this phase"),
]
# fmt: on


@cache
def classified(capture: str) -> dict[str, Device]:
    """The devices of ``capture`` after a full run of the pipeline."""
    config = config_module.load(env={}, cli={"enrich.home": "DE"})
    runtime = build(config)  # classification is part of the chain
    source = open_files([str(DATA / "iot" / capture)])
    try:
        runtime.pipeline.run(source)
    finally:
        source.close()
    runtime.pipeline.finish()
    return dict(runtime.inventory.devices)


def _check(capture: str, mac: str, truth: str, expected: str, note: str) -> None:
    device = classified(capture).get(mac)
    assert device is not None, f"{mac} not found in {capture}"
    assert device.category == expected, (
        f"{capture} {mac} ({note}): got {device.category} {device.confidence}, "
        f"want {expected} (true category {truth}); evidence {device.evidence}"
    )
    if expected == NO_CLUE:
        assert device.confidence == 0.0
    else:
        assert device.confidence >= 0.35
        assert device.evidence and device.name


@pytest.mark.parametrize(("capture", "mac", "truth", "expected", "note"), TUNED)
def test_tuned_capture_device_category(
    capture: str, mac: str, truth: str, expected: str, note: str
) -> None:
    _check(capture, mac, truth, expected, note)


@pytest.mark.parametrize(("capture", "mac", "truth", "expected", "note"), HELD_OUT)
def test_held_out_capture_device_category(
    capture: str, mac: str, truth: str, expected: str, note: str
) -> None:
    _check(capture, mac, truth, expected, note)
