"""The upload-burst detector on synthetic per-second traffic: voice, video, bulk, heartbeats."""

from __future__ import annotations

import socket

import pytest

from monitor.detect import BurstDetector, DetectSettings, shape_of
from monitor.events import Shutdown, Tick, UploadBurst
from monitor.flows import FlowTable, HomeNetworks, close_bin
from monitor.model import Destination, Device

ORGS = {"203.0.113.7": "amazon.com", "203.0.113.8": "amazon.com", "198.51.100.9": "mi.com"}


class Harness:
    """Feeds per-second upstream/downstream bytes of flows to a detector, like the pipeline."""

    def __init__(self, **settings: float) -> None:
        self.table = FlowTable(
            home=HomeNetworks(),
            idle_timeout_tcp=300,
            idle_timeout_udp=60,
            active_timeout=3600,
            max_flows=1000,
            bin_seconds=180,
        )
        self.device = Device(mac="02:00:00:00:00:01", first_seen=0, last_seen=0)
        self.bursts: list[UploadBurst] = []
        self.detector = BurstDetector(
            DetectSettings(**settings),
            device_of={self.device.mac: self.device}.get,
            destination_of=self.destination,
            emit=self.bursts.append,
        )
        self.flows: dict[str, object] = {}

    def destination(self, ip: str, _ts: float) -> Destination:
        return Destination(ip=ip, org=ORGS.get(ip), country="US", foreign=True)

    def flow(self, remote: str):
        if remote not in self.flows:
            key = (
                6,
                socket.inet_aton("192.168.1.10"),
                40000 + len(self.flows),
                socket.inet_aton(remote),
                443,
            )
            self.flows[remote] = self.table.add(
                key, 0.0, b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\xfe", lambda f: None
            )
        return self.flows[remote]

    def second(self, sec: int, traffic: dict[str, tuple[int, int]]) -> None:
        active = []
        for remote, (up, down) in traffic.items():
            flow = self.flow(remote)
            flow.service = "tls"
            flow.bin_sec, flow.bin_bytes_up, flow.bin_bytes_down = sec, up, down
            flow.bin_pkts_up = max(1, up // 1000)
            close_bin(flow, 180)
            active.append(flow)
        self.detector.on_tick(Tick(float(sec + 1), sec, active))

    def idle(self, start: int, end: int, heartbeat: int = 1500, every: int = 30) -> None:
        for sec in range(start, end):
            traffic = {"203.0.113.7": (heartbeat, 300)} if sec % every == 0 else {}
            self.second(sec, traffic)


def test_voice_request_is_an_audio_burst_reported_after_the_gap() -> None:
    h = Harness()
    h.idle(0, 600)
    for sec in range(600, 605):  # 5 s of speech at 20 kB/s, a little downstream
        h.second(sec, {"203.0.113.7": (20_000, 1_500)})
    h.second(605, {"203.0.113.7": (0, 30_000)})  # the reply comes back
    h.second(606, {})
    assert h.bursts == []
    h.second(608, {})  # three quiet seconds after the last upstream second
    [burst] = h.bursts
    assert burst.shape == "audio" and burst.duration_s == 5.0
    assert burst.bytes_up == 100_000 and burst.ts_start == 600.0 and burst.ts_end == 605.0
    assert burst.mean_kbps == pytest.approx(20.0) and burst.peak_kbps == pytest.approx(20.0)
    assert burst.audio_seconds == pytest.approx(12.5)
    assert burst.destination.org == "amazon.com" and burst.services == ["tls"]


def test_heartbeats_and_keepalives_are_baseline_not_bursts() -> None:
    h = Harness()
    h.idle(0, 3600, heartbeat=6_000, every=20)  # 6 kB every 20 s: above the floor, small
    h.detector.on_shutdown(Shutdown(3600.0))
    assert h.bursts == []


def test_several_addresses_of_one_organisation_make_one_burst() -> None:
    h = Harness()
    for sec in range(100, 104):
        h.second(sec, {"203.0.113.7": (9_000, 0), "203.0.113.8": (9_000, 0)})
    h.detector.on_shutdown(Shutdown(110.0))
    [burst] = h.bursts
    assert burst.dest_ips == ["203.0.113.7", "203.0.113.8"] and burst.bytes_up == 72_000


def test_other_organisations_are_separate_bursts() -> None:
    h = Harness()
    for sec in range(100, 104):
        h.second(sec, {"203.0.113.7": (9_000, 0), "198.51.100.9": (9_000, 0)})
    h.detector.on_shutdown(Shutdown(110.0))
    assert sorted(b.destination.org for b in h.bursts) == ["amazon.com", "mi.com"]


def test_camera_stream_is_video_and_a_firmware_log_is_bulk() -> None:
    h = Harness()
    for sec in range(0, 20):
        h.second(sec, {"198.51.100.9": (120_000, 2_000)})
    h.second(30, {"203.0.113.7": (400_000, 1_000)})
    h.detector.on_shutdown(Shutdown(40.0))
    shapes = {b.destination.org: b.shape for b in h.bursts}
    assert shapes == {"mi.com": "video", "amazon.com": "bulk"}


def test_a_download_is_not_audio() -> None:
    settings = DetectSettings()
    assert shape_of(settings, 5.0, 50_000, 900_000) == "bulk"
    assert shape_of(settings, 5.0, 50_000, 5_000) == "audio"
    assert shape_of(settings, 0.9, 50_000, 0) == "bulk"


def test_small_bursts_are_not_reported() -> None:
    h = Harness()
    h.second(10, {"203.0.113.7": (5_000, 0)})
    h.detector.on_shutdown(Shutdown(20.0))
    assert h.bursts == []


def test_a_steady_stream_is_reported_once_then_becomes_baseline() -> None:
    h = Harness(max_duration_s=60)
    for sec in range(0, 300):
        h.second(sec, {"203.0.113.7": (10_000, 500)})
    h.detector.on_shutdown(Shutdown(300.0))
    assert len(h.bursts) == 1 and h.bursts[0].duration_s == 60.0


def test_one_voice_request_does_not_hide_the_next() -> None:
    h = Harness()
    h.idle(0, 300)
    for start in (300, 330):
        for sec in range(start, start + 4):
            h.second(sec, {"203.0.113.7": (18_000, 500)})
        h.idle(start + 4, start + 30)
    h.detector.on_shutdown(Shutdown(400.0))
    assert [b.shape for b in h.bursts] == ["audio", "audio"]


def test_settings_come_from_the_configuration() -> None:
    from monitor.config import load

    config = load(env={"MICWATCH_DETECT_FLOOR_KBPS": "5", "MICWATCH_DETECT_GAP": "4s"})
    settings = DetectSettings.from_config(config)
    assert settings.floor_bps == 5000 and settings.gap_s == 4.0
