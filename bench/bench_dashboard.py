"""Page-load benchmark of the dashboard: 30 days of data for 50 devices, every page timed.

Fills a fresh SQLite store (direct inserts into the store's tables: per-minute traffic for each
device's active minutes, destinations, links, upload bursts, alerts, capture statistics), then
loads every page with Flask's test client, logged in, ``--loads`` times, and prints the median
and worst time per page next to the 300 ms target. It reports, it does not assert.

    python bench/bench_dashboard.py                  # 50 devices, 30 days, 15 loads per page
    python bench/bench_dashboard.py --devices 10 --days 3 --loads 5
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from dashboard import create_app
from dashboard.credentials import Credentials
from monitor.config import load
from monitor.store import Store
from monitor.store_sql import ALERTS, DESTINATIONS, DEVICES, EVENTS, LINKS, TRAFFIC

TARGET_MS = 300.0
SENSOR = "bench"
COUNTRIES = ["FR", "IE", "US", "CN", "DE", "NL", "SG", "JP"]
CATEGORIES = ["speaker", "camera", "toy", "tv", "plug", "phone", "computer", "hub"]


def fill(store: Store, devices: int, days: int, seed: int = 1) -> dict[str, int]:
    """Write ``days`` of synthetic history for ``devices`` devices; the row counts."""
    rng = random.Random(seed)
    now = time.time() // 60 * 60
    start = now - days * 86400
    macs = [f"02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(devices)]
    dests = [
        {"ip": f"203.0.{i // 256}.{i % 256}", "org": f"cloud{i % 40}.example", "country": c}
        for i, c in enumerate(rng.choice(COUNTRIES) for _ in range(400))
    ]
    counts = dict.fromkeys(("traffic", "events", "alerts", "links"), 0)
    with store.engine.begin() as conn:
        conn.execute(insert(DEVICES), [
            {"sensor": SENSOR, "mac": mac, "vendor": "Example Corp", "hostname": f"device-{i}",
             "category": CATEGORIES[i % len(CATEGORIES)], "confidence": 0.8, "name": None,
             "evidence": ["DHCP hostname device", "OUI Example Corp"], "first_seen": start,
             "last_seen": now - rng.random() * 600, "bytes_up": 10**8, "bytes_down": 10**9}
            for i, mac in enumerate(macs)
        ])  # fmt: skip
        conn.execute(insert(DESTINATIONS), [
            {"sensor": SENSOR, "ip": d["ip"], "names": [f"api.{d['org']}"], "country": d["country"],
             "org": d["org"], "foreign": d["country"] != "FR", "first_seen": start,
             "last_seen": now}
            for d in dests
        ])  # fmt: skip
        for mac in macs:
            mine = rng.sample(dests, 20)
            conn.execute(insert(LINKS), [
                {"sensor": SENSOR, "device_mac": mac, "dest_ip": d["ip"], "first_seen": start,
                 "last_seen": now - rng.random() * 86400 * 3, "bytes_up": rng.randrange(10**7),
                 "bytes_down": rng.randrange(10**8), "flows": rng.randrange(1, 5000)}
                for d in mine
            ])  # fmt: skip
            counts["links"] += len(mine)
            orgs = sorted({d["org"] for d in mine})
            rows = []
            minute = start
            while minute < now:  # active about one minute in ten, to two destinations
                minute += 60 * rng.randint(1, 19)
                for org in rng.sample(orgs, 2):
                    rows.append({"sensor": SENSOR, "device_mac": mac, "minute": minute,
                                 "dest": org, "bytes_up": rng.randrange(200, 400000),
                                 "bytes_down": rng.randrange(200, 900000),
                                 "packets_up": rng.randrange(1, 400), "flows": 1})  # fmt: skip
            conn.execute(insert(TRAFFIC), rows)
            counts["traffic"] += len(rows)
            bursts = []
            for _ in range(days * 12):
                ts = rng.uniform(start, now)
                dest = rng.choice(mine)
                body = {"destination": {**dest, "name": None, "foreign": True}, "ts_start": ts,
                        "ts_end": ts + 8, "bytes_up": 150000, "bytes_down": 9000,
                        "packets_up": 200, "duration_s": 8.0, "mean_kbps": 18.0,
                        "peak_kbps": 30.0, "shape": rng.choice(["audio", "audio", "bulk"]),
                        "audio_seconds": 18.0, "dest_ips": [dest["ip"]], "services": [],
                        "transports": ["tcp"]}  # fmt: skip
                bursts.append({"sensor": SENSOR, "ts": ts, "kind": "upload_burst",
                               "device_mac": mac, "dest": dest["org"], "body": body})  # fmt: skip
            conn.execute(insert(EVENTS), bursts)
            counts["events"] += len(bursts)
            alerts = [
                {"sensor": SENSOR, "rule": "audio-upload-foreign", "level": rng.choice(
                    ["high", "medium", "low"]), "ts": b["ts"], "device_mac": mac, "dest": b["dest"],
                 "title": "Audio-sized upload to a server abroad",
                 "message": f"device-{mac} sent 150 kB in 8 s to {b['dest']}.",
                 "event": {"dest.org": b["dest"]}, "suppression_key": f"{mac}|{b['dest']}",
                 "suppressed_until": b["ts"] + 1800}
                for b in bursts[: days * 3]
            ]  # fmt: skip
            conn.execute(insert(ALERTS), alerts)
            counts["alerts"] += len(alerts)
        conn.execute(insert(EVENTS), [
            {"sensor": SENSOR, "ts": now, "kind": "capture_stats", "device_mac": None, "dest": None,
             "body": {"packets": 10**7, "malformed": 3, "capture": {"kernel_dropped": 0}}}
        ])  # fmt: skip
    counts["devices"] = devices
    return counts


def time_pages(store: Store, state: Path, loads: int) -> list[tuple[str, float, float]]:
    """(path, median ms, worst ms) for every page, logged in."""
    Credentials(state).set_password("benchmark password")
    config = load(None, env={}).replace(store__state_dir=str(state), enrich__home=["FR"])
    app = create_app({"MICWATCH_CONFIG": config, "STORE": store})
    client = app.test_client()
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"password": "benchmark password", "csrf_token": token})
    mac = store.devices()[0]["mac"]
    paths = ["/", "/devices", f"/devices/{mac}", f"/devices/{mac}?hours=24", "/alerts",
             "/alerts?level=high", "/rules", "/settings", "/report", "/api/summary",
             "/api/devices", "/api/countries"]  # fmt: skip
    results = []
    for path in paths:
        assert client.get(path).status_code == 200, path
        times = []
        for _ in range(loads):
            started = time.perf_counter()
            client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        results.append((path, statistics.median(times), max(times)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="micwatch-bench-") as folder:
        state = Path(folder)
        store = Store(f"sqlite:///{state / 'bench.db'}", sensor=SENSOR, retention_s=10**9)
        started = time.perf_counter()
        counts = fill(store, args.devices, args.days)
        print(f"filled in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{v:,} {k}" for k, v in counts.items()))  # fmt: skip
        results = time_pages(store, state, args.loads)
        store.close()
    print(f"{'page':<40} {'median ms':>10} {'worst ms':>10}  target {TARGET_MS:.0f} ms")
    for path, median, worst in results:
        flag = "" if median < TARGET_MS else "  SLOW"
        print(f"{path:<40} {median:>10.1f} {worst:>10.1f}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
