"""Replay: timestamps shifted to now, pacing divided by the speed, files played one after
another, stopping promptly, and the store filled as a live capture would."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from monitor.capture import open_files
from monitor.cli import main
from monitor.replay import FILE_GAP_S, PacedSource, Replay
from monitor.store import Store
from tests.test_dashboard import CAMERA, CAPTURES, test_config

SETUP, SPEAK = CAPTURES


def _original(path: str) -> list[float]:
    source = open_files([path])
    try:
        return [ts for ts, _lt, _frame in source]
    finally:
        source.close()


def test_timestamps_are_shifted_to_start_and_files_follow_each_other() -> None:
    source = PacedSource([SETUP, SPEAK], speed=0, start=1000.0)
    shifted = [ts for ts, _lt, _frame in source]
    setup, speak = _original(SETUP), _original(SPEAK)
    assert len(shifted) == len(setup) + len(speak)
    assert shifted[0] == 1000.0
    assert shifted[len(setup) - 1] == setup[-1] - setup[0] + 1000.0
    second_start = setup[-1] - setup[0] + 1000.0 + FILE_GAP_S
    assert shifted[len(setup)] == second_start
    assert shifted[-1] == speak[-1] - speak[0] + second_start
    offset = 1000.0 - setup[0]
    assert all(abs(new - old - offset) < 1e-6 for new, old in zip(shifted, setup, strict=False))
    assert source.stats()["packets"] == len(shifted)


def test_pacing_divides_the_capture_time_by_the_speed() -> None:
    span = _original(SPEAK)[-1] - _original(SPEAK)[0]  # 12 s of capture
    started = time.monotonic()
    count = sum(1 for _ in PacedSource([SPEAK], speed=40))
    elapsed = time.monotonic() - started
    assert count == 789
    assert span / 40 * 0.9 <= elapsed < span / 40 + 2.0


def test_stop_ends_a_slow_replay_promptly() -> None:
    source = PacedSource([SETUP], speed=0.01)
    seen = []
    worker = threading.Thread(target=lambda: seen.extend(source))
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    source.stop()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 1.0
    assert 1 <= len(seen) < 630


def test_replay_fills_the_store_as_if_now(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", sensor="home", retention_s=10**9)
    config = test_config(tmp_path).replace(dashboard__disabled_rules=["new-device"])
    before = time.time()
    replay = Replay(config, CAPTURES, store, speed=0).start()
    assert replay.done.wait(60)
    try:
        camera = store.device(CAMERA)
        assert camera["category"] == "camera" and before <= camera["last_seen"] <= before + 120
        rules = {a["rule"] for a in store.alerts()}
        assert "audio-upload-foreign" in rules and "new-device" not in rules
        assert [b["shape"] for b in store.bursts(since=before) if b["shape"] == "audio"]
    finally:
        store.close()


def test_cli_replay_into_a_database(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    argv = ["replay", *CAPTURES, "--speed", "0", "--db", url, "--store-sensor", "home"]
    argv += ["--home", "FR", "--store-state-dir", str(tmp_path)]
    assert main(argv) == 0
    assert "replayed 1419 packets" in capsys.readouterr().err
    with Store(url, sensor="home", retention_s=10**9) as store:
        assert store.device(CAMERA) is not None
        assert store.alerts(rule="audio-upload-foreign")
