"""Many homes, one server: two sensors run the whole pipeline at once (two ``micwatch capture``
processes) into one PostgreSQL database (required in CI), and each reads back its own rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_store import pg_url  # noqa: F401 - the fixture: a fresh schema in database test

from monitor.store_reader import StoreReader

DATA = Path(__file__).parent / "data" / "iot"
HOMES = {
    "attic": (DATA / "lifecycle_xiaobaiY2cam_speak_remote.pcap", "78:df:72:24:69:4d"),
    "cellar": (DATA / "iotsentinel_TP-LinkPlugHS100_Setup-C-7-STA.pcap", None),
}


def test_two_capture_daemons_write_one_postgresql_database_at_once(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {**os.environ, "MICWATCH_NOTIFY_TARGETS": "", "MICWATCH_NOTIFY_MQTT": ""}
    procs = {}
    for sensor, (capture, _mac) in HOMES.items():
        command = [sys.executable, "-m", "monitor.cli", "capture", "-r", str(capture)]
        command += ["--home", "FR", "--db", pg_url, "--store-sensor", sensor]
        command += ["--store-state-dir", str(tmp_path / sensor)]
        procs[sensor] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
    for sensor, proc in procs.items():
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{sensor}: {err}"
    seen: dict[str, set[str]] = {}
    for sensor, (_capture, mac) in HOMES.items():
        reader = StoreReader(pg_url, sensor=sensor)
        try:
            devices = reader.devices()
            seen[sensor] = {d["mac"] for d in devices}
            assert devices and {d["sensor"] for d in devices} == {sensor}
            assert {a["sensor"] for a in reader.alerts()} <= {sensor}
            assert reader.events("health")  # each daemon stored its own health report
            if mac is not None:
                assert mac in seen[sensor]
                assert [a["rule"] for a in reader.alerts(rule="audio-upload-foreign")] == [
                    "audio-upload-foreign"
                ]
        finally:
            reader.close()
    assert seen["attic"].isdisjoint(seen["cellar"])
