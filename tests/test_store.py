"""Tests for the store: round trips on SQLite and PostgreSQL, the user's word, forgetting,
per-minute traffic, alerts under a locked database, overflow and retention."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, create_engine, event, select, text

from monitor import config
from monitor.events import (
    AlertRaised,
    CaptureStats,
    DestinationContacted,
    DeviceSeen,
    DeviceUpdated,
    FlowEnd,
    HandlerChain,
    Shutdown,
    UploadBurst,
)
from monitor.model import Alert, Destination, Device, Flow
from monitor.store import Store, default_db_url, open_store, state_dir
from monitor.store_items import flow_item
from monitor.store_models import Base
from monitor.store_reader import StoreReader
from tests.conftest import require

T0 = 1_700_000_040.0  # a whole minute
MAC = "aa:bb:cc:00:00:01"
OTHER = "aa:bb:cc:00:00:02"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# --- builders ---


def device(mac: str = MAC, ts: float = T0, **facts: object) -> Device:
    dev = Device(mac=mac, first_seen=ts, last_seen=ts, ips={"192.168.1.5"})
    for name, value in facts.items():
        setattr(dev, name, value)
    return dev


def destination(ip: str = "52.1.2.3", org: str | None = "amazon.com") -> Destination:
    return Destination(
        ip=ip, names={"avs-alexa.amazon.com"}, country="US", org=org, asn=16509, foreign=True
    )


def flow(
    mac: str = MAC,
    remote: str = "52.1.2.3",
    start: float = T0,
    bins: list[tuple[int, int, int, int]] | None = None,
    up: int | None = None,
    down: int | None = None,
    pkts_up: int | None = None,
) -> Flow:
    """A finished flow from the home device ``mac``; totals default to the bins' sums."""
    f = Flow("C1", ("k",), "tcp", "192.168.1.5", 50000, remote, 443, mac, "gw", start, True, False)
    bins = bins or []
    f.bins = deque(bins) if bins else None
    f.orig_bytes = sum(b[1] for b in bins) if up is None else up
    f.resp_bytes = sum(b[2] for b in bins) if down is None else down
    f.orig_pkts = sum(b[3] for b in bins) if pkts_up is None else pkts_up
    f.last_ts = float(bins[-1][0]) if bins else start
    return f


def alert(i: int = 0, mac: str | None = MAC, ts: float = T0, rule: str = "audio-abroad") -> Alert:
    return Alert(
        rule=rule,
        level="high",
        ts=ts,
        message=f"The speaker sent audio-sized data abroad ({i})",
        device_mac=mac,
        dest="52.1.2.3",
        event={"device": mac, "bytes_up": 40000 + i, "names": {"a", "b"}},
        suppression_key=f"{mac}|52.1.2.3|{i}",
        suppressed_until=ts + 1800,
        title="Audio upload",
    )


def burst(mac: str = MAC, ts: float = T0) -> UploadBurst:
    return UploadBurst(
        device=device(mac),
        destination=destination(),
        ts_start=ts,
        ts_end=ts + 4,
        bytes_up=96000,
        bytes_down=4000,
        packets_up=80,
        duration_s=4.0,
        mean_kbps=24.0,
        peak_kbps=31.0,
        shape="audio",
        audio_seconds=12.0,
        dest_ips=["52.1.2.3"],
    )


# --- databases ---


def pg_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3)
    except psycopg.Error:
        return False
    return True


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return default_db_url(tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards."""
    require(pg_available(), "PostgreSQL on 127.0.0.1:5432 with psycopg")
    schema = f"micwatch_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def open_test_store(url: str, sensor: str = "pi", **kwargs: float) -> Store:
    options = {"retention_s": 30 * 86400.0, "batch_seconds": 0.05, **kwargs}
    return Store(url, sensor=sensor, **options)  # type: ignore[arg-type]


def all_rows(store: Store) -> dict[str, list[dict]]:
    with store.engine.connect() as conn:
        return {
            table.name: [dict(r) for r in conn.execute(select(table)).mappings()]
            for table in Base.metadata.sorted_tables
        }


# --- round trips ---


def test_round_trip(db_url: str) -> None:
    store = open_test_store(db_url)
    chain = HandlerChain([store])
    speaker = device(domains={"amazon.com"}, hostname="echo", category="speaker", confidence=0.9)
    chain.emit(DeviceSeen(T0, speaker))
    chain.emit(DestinationContacted(T0, speaker, destination()))
    chain.emit(FlowEnd(flow(bins=[(int(T0) + 1, 1000, 100, 3), (int(T0) + 2, 500, 50, 2)])))
    chain.emit(burst())
    chain.emit(CaptureStats(T0 + 60, {"received": 10, "dropped": 0}))
    chain.emit(AlertRaised(alert()))
    assert store.flush(10)
    assert chain.errors == {}

    dev = store.device(MAC)
    assert dev is not None
    assert (dev["hostname"], dev["category"], dev["domains"]) == ("echo", "speaker", ["amazon.com"])
    assert (dev["bytes_up"], dev["bytes_down"], dev["ips"]) == (1500, 150, ["192.168.1.5"])
    assert [d["mac"] for d in store.devices()] == [MAC]

    dests = store.destinations()
    assert [(d["ip"], d["org"], d["country"], d["foreign"]) for d in dests] == [
        ("52.1.2.3", "amazon.com", "US", True)
    ]
    (link,) = store.destinations(MAC)
    assert (link["ip"], link["bytes_up"], link["bytes_down"], link["flows"]) == (
        "52.1.2.3", 1500, 150, 1
    )  # fmt: skip
    assert link["names"] == ["avs-alexa.amazon.com"]

    (minute,) = store.traffic(MAC)
    assert (minute["minute"], minute["dest"], minute["bytes_up"], minute["flows"]) == (
        T0, "amazon.com", 1500, 1
    )  # fmt: skip

    (stored,) = store.alerts()
    assert stored["rule"] == "audio-abroad" and stored["device_mac"] == MAC
    assert stored["event"] == {"device": MAC, "bytes_up": 40000, "names": ["a", "b"]}
    assert not stored["acknowledged"] and not stored["muted"]
    (b,) = store.bursts(since=T0)
    assert (b["shape"], b["bytes_up"], b["dest"], b["device_mac"]) == (
        "audio", 96000, "amazon.com", MAC
    )  # fmt: skip
    (stats,) = store.events("capture_stats")
    assert stats["body"] == {"received": 10, "dropped": 0}
    assert store.stats()["written"] == 6
    assert store.close()


def test_user_settings_survive_reopen_and_capture_updates(db_url: str) -> None:
    store = open_test_store(db_url)
    store.on_device_seen(DeviceSeen(T0, device(category="speaker", confidence=0.8)))
    store.flush(10)
    store.set_label(MAC, "Kitchen speaker")
    store.set_category(MAC, "toy")
    store.close()

    store = open_test_store(db_url)
    # A new run: the inventory starts again from what it sees, with a new guess.
    update = device(ts=T0 + 3600, category="camera", confidence=0.5, domains={"tuya.com"})
    update.label = "from the capture"
    store.on_device_updated(DeviceUpdated(T0 + 3600, update, frozenset({"category"})))
    store.on_device_updated(DeviceUpdated(T0 + 3601, device(ts=T0 + 3601), frozenset()))
    assert store.flush(10)
    dev = store.device(MAC)
    assert dev is not None
    assert (dev["label"], dev["user_category"], dev["category"]) == (
        "Kitchen speaker",
        "toy",
        "toy",
    )
    # The guess was updated, then kept when a later snapshot knew nothing better.
    assert (dev["category_guess"], dev["domains"]) == ("camera", ["tuya.com"])
    assert (dev["first_seen"], dev["last_seen"]) == (T0, T0 + 3601)
    store.set_label(MAC, None)
    assert store.device(MAC)["label"] is None  # type: ignore[index]
    assert store.device(MAC)["category"] == "toy"  # type: ignore[index]
    store.close()


def test_a_reader_reads_and_writes_the_users_word_while_the_writer_runs(db_url: str) -> None:
    store = open_test_store(db_url)
    chain = HandlerChain([store])
    chain.emit(DeviceSeen(T0, device()))
    chain.emit(DeviceSeen(T0, device(OTHER)))
    chain.emit(AlertRaised(alert()))
    chain.emit(Shutdown(T0 + 1))  # the store writes its queue before the capture ends
    reader = StoreReader(db_url, sensor="pi")
    assert not hasattr(reader, "on_flow_end")
    assert reader.known_macs() == [MAC, OTHER]
    reader.set_label(MAC, "Kitchen")
    assert reader.forget_device(OTHER) == 1
    assert reader.close()
    assert store.known_macs() == [MAC]
    assert store.device(MAC)["label"] == "Kitchen"  # type: ignore[index]
    assert len(store.alerts()) == 1
    with StoreReader(db_url, sensor="elsewhere") as elsewhere:
        assert elsewhere.devices() == []
    store.close()


def test_alert_acknowledge_mute_and_filters(db_url: str) -> None:
    store = open_test_store(db_url)
    for i in range(3):
        store.on_alert_raised(AlertRaised(alert(i, ts=T0 + i)))
    store.on_alert_raised(AlertRaised(alert(9, mac=OTHER, ts=T0, rule="new-destination")))
    store.flush(10)
    newest = store.alerts(device=MAC)[0]
    assert newest["ts"] == T0 + 2
    assert store.acknowledge_alert(newest["id"])
    assert not store.acknowledge_alert(10_000)
    assert len(store.alerts(device=MAC, include_acknowledged=False)) == 2
    assert [a["device_mac"] for a in store.alerts(rule="new-destination")] == [OTHER]
    assert len(store.alerts(since=T0 + 1)) == 2
    assert store.alerts(level="low") == []

    assert store.mute("audio-abroad", MAC, until=T0 + 100) == 3
    store.on_alert_raised(AlertRaised(alert(4, ts=T0 + 50)))
    store.on_alert_raised(AlertRaised(alert(5, ts=T0 + 200)))
    store.flush(10)
    muted = {a["ts"]: a["muted"] for a in store.alerts(device=MAC)}
    assert muted == {T0: True, T0 + 1: True, T0 + 2: True, T0 + 50: True, T0 + 200: False}
    assert store.mutes(now=T0 + 99) == [
        {"sensor": "pi", "rule": "audio-abroad", "device_mac": MAC, "until": T0 + 100}
    ]
    assert store.mutes(now=T0 + 101) == []
    store.close()


def test_forget_device_leaves_no_row_mentioning_it(db_url: str) -> None:
    store = open_test_store(db_url)
    for mac in (MAC, OTHER):
        store.on_device_seen(DeviceSeen(T0, device(mac, hostname=f"host-{mac}")))
        store.on_destination_contacted(DestinationContacted(T0, device(mac), destination()))
        store.on_flow_end(FlowEnd(flow(mac, bins=[(int(T0), 10, 10, 1)])))
        store.on_upload_burst(burst(mac))
        store.on_alert_raised(AlertRaised(alert(mac=mac)))
    # An alert about another device that names this one in its record.
    mention = alert(8, mac=OTHER, rule="lateral")
    mention.event = {"peer": MAC}
    store.on_alert_raised(AlertRaised(mention))
    store.flush(10)
    store.set_label(MAC, "Kitchen")
    store.set_label(OTHER, "Hall")
    store.mute("audio-abroad", MAC, T0 + 3600)
    # Queued but not yet written when the forget arrives: discarded too.
    store.on_device_updated(DeviceUpdated(T0 + 5, device(hostname="late"), frozenset()))

    assert store.forget_device(MAC) == 8  # device, settings, link, traffic, mute, burst, 2 alerts

    rows = all_rows(store)
    mentioning = {name: [r for r in rs if MAC in repr(r)] for name, rs in rows.items()}
    assert {name: rs for name, rs in mentioning.items() if rs} == {}
    # The other device is untouched.
    assert {name for name, rs in rows.items() if any(OTHER in repr(r) for r in rs)} == {
        "devices", "device_settings", "device_destinations", "traffic_minutes", "events",
        "alerts",
    }  # fmt: skip
    assert store.device(OTHER)["label"] == "Hall"  # type: ignore[index]
    # A device still talking after the forget is recorded afresh.
    store.on_device_updated(DeviceUpdated(T0 + 9, device(ts=T0 + 9), frozenset()))
    store.flush(10)
    assert store.device(MAC)["first_seen"] == T0 + 9  # type: ignore[index]
    store.close()


def test_forget_discards_rows_held_back_by_a_locked_database(sqlite_url: str) -> None:
    # The writer's first attempt waits 1 s on the lock: the forget and the update after it
    # reach it together, and its pending batch still holds the rows queued before.
    store = open_test_store(sqlite_url, busy_timeout_s=1.0)
    lock = lock_sqlite(sqlite_url)
    store.on_device_seen(DeviceSeen(T0, device()))
    store.on_flow_end(FlowEnd(flow(bins=[(int(T0), 10, 10, 1)])))
    store.on_alert_raised(AlertRaised(alert()))
    assert not store.flush(0.5)  # the writer holds them in its pending batch
    forgetting = threading.Thread(target=store.forget_device, args=(MAC,))
    forgetting.start()
    time.sleep(0.05)
    # Queued after the forget: the device is still talking, so this is kept.
    store.on_device_updated(DeviceUpdated(T0 + 9, device(ts=T0 + 9, hostname="after"), frozenset()))
    time.sleep(0.9)
    lock.execute("COMMIT")
    lock.close()
    forgetting.join(10)
    assert store.flush(10)
    rows = all_rows(store)
    assert rows["traffic_minutes"] == rows["alerts"] == rows["device_destinations"] == []
    assert [(d["mac"], d["hostname"], d["first_seen"]) for d in rows["devices"]] == [
        (MAC, "after", T0 + 9)
    ]
    store.close()


# --- per-minute traffic ---


def test_flow_bins_over_three_minutes_become_three_rows(db_url: str) -> None:
    m0 = int(T0)
    bins = [(m0 + 50, 100, 1, 1), (m0 + 59, 200, 2, 1), (m0 + 60, 400, 4, 2), (m0 + 130, 800, 8, 3)]
    store = open_test_store(db_url)
    store.on_destination_contacted(DestinationContacted(T0, device(), destination()))
    store.on_flow_end(FlowEnd(flow(start=T0 + 50, bins=bins)))
    store.on_flow_end(FlowEnd(flow(start=T0 + 61, bins=[(m0 + 61, 5, 5, 1)])))
    store.flush(10)
    rows = [
        (r["minute"] - T0, r["bytes_up"], r["bytes_down"], r["packets_up"], r["flows"])
        for r in store.traffic(MAC, since=T0)
    ]
    assert rows == [(0, 300, 3, 2, 0), (60, 405, 9, 3, 1), (120, 800, 8, 3, 1)]
    assert store.traffic(MAC, since=T0 + 60)[0]["minute"] == T0 + 60
    store.close()


def test_flow_without_bins_goes_to_its_last_minute() -> None:
    f = flow(start=T0 + 10, up=700, down=70, pkts_up=7)
    f.last_ts = T0 + 130
    item = flow_item(f)
    assert item is not None
    assert item.minutes == [(T0 + 120, 700, 70, 7)]
    assert item.end_minute == T0 + 120


def test_bytes_older_than_the_bins_are_spread_before_them() -> None:
    """A 4-minute flow whose ring kept only its last minute of bins: the older bytes are spread
    over the three minutes before, and the sums equal the flow's totals."""
    bins = [(int(T0) + 180 + s, 10, 1, 1) for s in range(60)]
    f = flow(start=T0 + 5, bins=bins, up=600 + 3001, down=60 + 300, pkts_up=60 + 30)
    item = flow_item(f)
    assert item is not None
    assert [m - T0 for m, *_ in item.minutes] == [0, 60, 120, 180]
    assert [up for _, up, _, _ in item.minutes] == [1000, 1000, 1001, 600]
    assert sum(m[2] for m in item.minutes) == 360 and sum(m[3] for m in item.minutes) == 90


def test_flow_without_home_device_is_not_stored() -> None:
    f = Flow("C2", ("k",), "udp", "8.8.8.8", 53, "1.1.1.1", 53, None, None, T0, False, False)
    assert flow_item(f) is None


# --- the writer under pressure ---


def lock_sqlite(url: str) -> sqlite3.Connection:
    """Another connection holding the write lock (``BEGIN EXCLUSIVE``) until it commits."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_alerts_are_not_lost_while_the_database_is_locked(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_test_store(sqlite_url, busy_timeout_s=0.1)
    lock = lock_sqlite(sqlite_url)
    caplog.set_level(logging.WARNING, logger="monitor.store_writer")
    for i in range(50):
        store.on_alert_raised(AlertRaised(alert(i, ts=T0 + i)))
        store.on_device_seen(DeviceSeen(T0, device(f"02:00:00:00:00:{i:02x}")))
    assert not store.flush(2.0)
    assert store.stats()["write_failures"] >= 2
    assert lock.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    lock.execute("COMMIT")
    lock.close()
    assert store.flush(10)
    assert len(store.alerts()) == 50
    assert len(store.devices()) == 50
    failing = [r for r in caplog.records if "writes failing" in r.getMessage()]
    assert len(failing) == 1  # logged once per outage
    assert any("resumed" in r.getMessage() for r in caplog.records)
    store.close()


def test_an_alert_the_database_refuses_does_not_hold_back_the_others(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_test_store(db_url)
    poison = alert(1)
    poison.rule = None  # type: ignore[assignment]  # NOT NULL: no database accepts it
    store.on_alert_raised(AlertRaised(alert(0)))
    store.on_alert_raised(AlertRaised(poison))
    store.on_alert_raised(AlertRaised(alert(2, ts=T0 + 2)))
    assert store.flush(10)
    assert sorted(a["suppression_key"][-1] for a in store.alerts()) == ["0", "2"]
    assert store.stats()["failed"] == 1
    assert any("giving it up" in r.getMessage() for r in caplog.records)
    store.close()


def test_a_malformed_item_is_skipped_without_losing_the_rest(sqlite_url: str) -> None:
    store = open_test_store(sqlite_url)
    broken = device(OTHER)
    broken.first_seen = broken.last_seen = float("nan")
    store.on_device_seen(DeviceSeen(T0, broken))
    store.on_device_seen(DeviceSeen(T0, device()))
    store.on_alert_raised(AlertRaised(alert()))
    assert store.flush(10)
    assert [d["mac"] for d in store.devices()] == [MAC]
    assert len(store.alerts()) == 1
    assert store.stats()["failed"] == 1
    store.close()


def test_text_the_database_refuses_is_cleaned(db_url: str) -> None:
    store = open_test_store(db_url)
    odd = device(hostname="echo\x00dot", domains={"bad\udcff.example"})
    store.on_device_seen(DeviceSeen(T0, odd))
    weird = alert(0)
    weird.event = {"ratio": float("nan"), "name": "a\x00b"}
    store.on_alert_raised(AlertRaised(weird))
    assert store.flush(10)
    dev = store.device(MAC)
    assert dev is not None
    assert (dev["hostname"], dev["domains"]) == ("echo\ufffddot", ["bad?.example"])
    assert store.alerts()[0]["event"] == {"ratio": None, "name": "a\ufffdb"}
    store.close()


def test_overflow_drops_the_oldest_non_alert_items_and_counts_them(sqlite_url: str) -> None:
    store = open_test_store(sqlite_url, busy_timeout_s=0.1, max_queue=10)
    lock = lock_sqlite(sqlite_url)
    n = 1000
    for i in range(n):
        store.on_device_seen(DeviceSeen(T0 + i, device(f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}")))
        if i % 200 == 0:
            store.on_alert_raised(AlertRaised(alert(i)))
    lock.execute("COMMIT")
    lock.close()
    assert store.flush(10)
    stats = store.stats()
    stored = {d["mac"] for d in store.devices()}
    # Queue, backlog and the pending batch hold at most 10 each; the rest was dropped.
    assert stats["dropped"] >= n - 30
    assert len(stored) + stats["dropped"] == n
    newest = {f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}" for i in range(n - 10, n)}
    assert newest <= stored  # the oldest were dropped, never the newest
    assert len(store.alerts()) == 5
    store.close()


def test_handlers_never_wait_for_the_database(sqlite_url: str) -> None:
    store = open_test_store(sqlite_url, busy_timeout_s=5.0)
    lock = lock_sqlite(sqlite_url)
    time.sleep(0.2)  # the writer is now waiting on the lock
    bins = [(int(T0) + s, 1000, 100, 2) for s in range(30)]
    flows = [flow(bins=bins) for _ in range(5000)]
    started = time.perf_counter()
    for f in flows:
        store.on_flow_end(FlowEnd(f))
    elapsed = time.perf_counter() - started
    lock.execute("COMMIT")
    lock.close()
    assert elapsed < 2.0, f"5000 enqueues took {elapsed:.2f} s while the database was locked"
    assert store.flush(20)
    assert store.device(MAC)["bytes_up"] == 5000 * 30_000  # type: ignore[index]
    store.close()


def test_closed_store_refuses_events(sqlite_url: str) -> None:
    store = open_test_store(sqlite_url)
    assert store.close()
    assert store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.on_alert_raised(AlertRaised(alert()))


# --- retention ---


def count_deletes(store: Store, table: str) -> list[str]:
    statements: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith(f"DELETE FROM {table}"):
            statements.append(statement)

    return statements


def test_retention_deletes_old_rows_in_slices_and_keeps_recent_ones(db_url: str) -> None:
    day = 86400.0
    old, now = T0, T0 + 10 * day
    store = open_test_store(db_url, retention_s=100 * day)
    store.on_device_seen(DeviceSeen(old, device(OTHER)))
    for i in range(1200):  # 1200 old minutes of traffic and 600 old alerts
        store.on_flow_end(FlowEnd(flow(start=old + 60 * i, bins=[(int(old) + 60 * i, 1, 1, 1)])))
        if i % 2:
            store.on_alert_raised(AlertRaised(alert(i, ts=old + i)))
    store.on_flow_end(FlowEnd(flow(start=now - 60, bins=[(int(now - 60), 5, 5, 1)])))
    store.on_alert_raised(AlertRaised(alert(1, ts=now)))
    store.flush(10)
    store.set_label(OTHER, "Old lamp")
    store.close()
    store = open_test_store(db_url, retention_s=day)
    deletes = count_deletes(store, "traffic_minutes")

    deleted = store.expire(now=now)

    assert deleted == 1200 + 600 + 1  # traffic, alerts, the old device
    assert len(deletes) == 3 and all("LIMIT" in s for s in deletes)
    assert [r["minute"] for r in store.traffic(MAC)] == [now - 60]
    assert [a["ts"] for a in store.alerts()] == [now]
    assert [d["mac"] for d in store.devices()] == [MAC]
    with store.engine.connect() as conn:
        settings = conn.execute(text("SELECT mac, label FROM device_settings")).all()
    assert settings == [(OTHER, "Old lamp")]  # the user's word outlives retention
    store.close()


def test_retention_runs_in_the_writer_at_most_once_a_minute(db_url: str) -> None:
    day = 86400.0
    store = open_test_store(db_url, retention_s=day)
    store.on_flow_end(FlowEnd(flow(start=T0, bins=[(int(T0), 1, 1, 1)])))
    store.close()  # its clock is the old time: nothing was old enough to go

    store = open_test_store(db_url, retention_s=day)
    assert len(store.traffic(MAC)) == 1
    recent = T0 + 2 * day
    store.on_flow_end(FlowEnd(flow(start=recent, bins=[(int(recent), 1, 1, 1)])))
    store.flush(10)
    deadline = time.monotonic() + 10
    while len(store.traffic(MAC)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["minute"] for r in store.traffic(MAC)] == [recent]
    # Another old row now waits for the next pass, a minute later.
    store.on_flow_end(FlowEnd(flow(start=T0 + 60, bins=[(int(T0) + 60, 1, 1, 1)])))
    store.flush(10)
    time.sleep(1.0)  # twenty writer cycles
    assert [r["minute"] for r in store.traffic(MAC)] == [T0 + 60, recent]
    store.close()


# --- several sensors on PostgreSQL ---


def test_two_sensors_share_one_postgresql_database(pg_url: str) -> None:
    stores = {name: open_test_store(pg_url, sensor=name) for name in ("attic", "cellar")}

    def feed(name: str, store: Store) -> None:
        for i in range(200):
            mac = f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}"
            store.on_device_seen(DeviceSeen(T0, device(mac, hostname=f"{name}-{i}")))
            store.on_flow_end(FlowEnd(flow(mac, bins=[(int(T0) + i, 100, 10, 1)])))
            store.on_alert_raised(AlertRaised(alert(i, mac=mac)))

    threads = [threading.Thread(target=feed, args=item) for item in stores.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, store in stores.items():
        assert store.flush(20)
        store.set_label("02:00:00:00:00:00", f"{name} label")
    for name, store in stores.items():
        devices = store.devices()
        assert len(devices) == 200
        assert {d["sensor"] for d in devices} == {name}
        assert all(d["hostname"].startswith(f"{name}-") for d in devices)
        assert store.device("02:00:00:00:00:00")["label"] == f"{name} label"  # type: ignore[index]
        assert {a["sensor"] for a in store.alerts()} == {name}
        assert len(store.alerts()) == 200
        assert sum(r["bytes_up"] for r in store.traffic(None)) == 200 * 100
    with stores["attic"].engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM devices")).scalar() == 400
    for store in stores.values():
        store.close()


# --- configuration and schema ---


def test_state_dir_and_default_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert state_dir() == Path("/var/lib/micwatch")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "micwatch"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "micwatch"
    assert state_dir(str(tmp_path / "mine")) == tmp_path / "mine"
    assert default_db_url(tmp_path) == f"sqlite:///{tmp_path}/micwatch.db"


def test_open_store_from_configuration(tmp_path: Path) -> None:
    cfg = config.load(env={}, cli={"store.state_dir": str(tmp_path / "state")})
    reader = open_store(cfg, writer=False)
    assert type(reader) is StoreReader and reader.devices() == []
    reader.close()
    store = open_store(cfg)
    assert isinstance(store, Store)
    assert store.sensor  # the host name
    assert (tmp_path / "state" / "micwatch.db").is_file()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    store.close()


def test_unsupported_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        Store("sqlite://", sensor="pi", retention_s=3600)
    with pytest.raises(ValueError, match="unsupported"):
        Store("mysql://localhost/x", sensor="pi", retention_s=3600)


def test_newer_schema_is_refused(sqlite_url: str) -> None:
    open_test_store(sqlite_url).close()
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="schema version 99"):
        open_test_store(sqlite_url)


def test_every_table_has_a_sensor_and_no_column_can_hold_bytes() -> None:
    for table in Base.metadata.sorted_tables:
        assert "sensor" in table.c, table.name
        for column in table.c:
            assert not isinstance(column.type, LargeBinary), f"{table.name}.{column.name}"
