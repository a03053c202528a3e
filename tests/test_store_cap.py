"""The store's hard size cap and the alert journal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monitor.events import AlertRaised
from monitor.health import HealthReport
from monitor.model import Alert
from monitor.store import Store, default_db_url
from monitor.store_cap import TARGET_RATIO, database_bytes, file_bytes
from monitor.store_items import alert_item

CAP = 1_500_000
PAD = "x" * 1500  # an event body of about 1.5 kB


def _alert(ts: float, rule: str = "audio-upload-foreign") -> Alert:
    return Alert(rule, "high", ts, f"alert at {ts}", "aa:bb:cc:dd:ee:ff", "1.2.3.4", {"n": ts},
                 f"k{ts}", ts + 1800, title="t")  # fmt: skip


def _store(tmp_path: Path, **kwargs: object) -> Store:
    return Store(default_db_url(tmp_path), sensor="pi", retention_s=10 * 365 * 86400, **kwargs)  # type: ignore[arg-type]


def test_cap_prunes_oldest_events_first_and_keeps_alerts(tmp_path: Path) -> None:
    store = _store(tmp_path, max_bytes=CAP, batch_seconds=0.05)
    try:
        for i in range(3000):  # about 4.5 MB of events, three times the cap
            ts = 1_700_000_000.0 + 60 * i
            store.on_health_report(HealthReport(ts, {"i": i, "pad": PAD}))
            if i % 500 == 0:
                store.on_alert_raised(AlertRaised(_alert(ts)))
            if i % 200 == 0:
                assert store.flush(30)
        assert store.flush(30)
        size, on_disk = database_bytes(store.engine), file_bytes(store.engine)
        assert size is not None and on_disk is not None
        assert size <= CAP and on_disk <= CAP * 1.2, (size, on_disk)
        kept = [r["body"]["i"] for r in store.events("health", limit=10000)]
        assert 2999 in kept and 0 not in kept
        assert kept == list(range(min(kept), 3000))[::-1]  # oldest deleted first, no holes
        assert len(store.alerts()) == 6  # alerts are never pruned while events are left
        assert store.stats()["pruned"] >= 3000 - len(kept)
    finally:
        store.close()
    assert (database_bytes(_store(tmp_path).engine) or 0) < CAP * TARGET_RATIO * 1.1


def test_no_cap_keeps_everything(tmp_path: Path) -> None:
    store = _store(tmp_path, batch_seconds=0.05)
    try:
        for i in range(1500):
            store.on_health_report(HealthReport(1_700_000_000.0 + i, {"i": i, "pad": PAD}))
        assert store.flush(30)
        assert len(store.events("health", limit=10000)) == 1500
        assert (database_bytes(store.engine) or 0) > CAP
    finally:
        store.close()


def test_journal_replays_alerts_the_database_lacks_once(tmp_path: Path) -> None:
    journal = tmp_path / "alerts.journal"
    store = _store(tmp_path, journal=journal)
    store.on_alert_raised(AlertRaised(_alert(1.0)))
    assert store.close()
    assert journal.read_bytes() == b""  # everything written: the journal is empty
    # A crash after journaling 2 and 3, with 1 (again) written but not yet truncated,
    # and a torn last line.
    lines = [alert_item(_alert(ts)).row for ts in (1.0, 2.0, 3.0)]
    journal.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in lines) + b'{"rule": "tor')
    store = _store(tmp_path, journal=journal)
    try:
        assert sorted(a["ts"] for a in store.alerts()) == [1.0, 2.0, 3.0]
        assert journal.read_bytes() == b""
    finally:
        store.close()


def test_alert_is_on_disk_when_the_handler_returns(tmp_path: Path) -> None:
    journal = tmp_path / "alerts.journal"
    store = _store(tmp_path, journal=journal, batch_seconds=60)
    try:
        store.on_alert_raised(AlertRaised(_alert(5.0)))
        (line,) = journal.read_bytes().splitlines()
        assert json.loads(line)["ts"] == 5.0
    finally:
        store.close()


def test_soak_script_stays_under_its_cap(tmp_path: Path) -> None:
    """A short run of bench/soak.py (the README's figures come from a 24-hour one)."""
    script = Path(__file__).parent.parent / "bench" / "soak.py"
    done = subprocess.run(
        [sys.executable, str(script), "--hours", "3", "--every", "120", "--packets", "3000",
         "--cap", "300kB", "--db", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: under the cap, memory flat" in done.stdout
    pruned = [int(line.split("pruned")[1].split()[0]) for line in done.stdout.splitlines()
              if " pruned " in line]  # fmt: skip
    assert pruned[-1] > 0  # the cap was reached and enforced
