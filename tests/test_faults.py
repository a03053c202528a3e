"""Faults the daemon must survive: a full disk, a locked or deleted database, a read-only state
directory, and clock jumps in the packet timestamps. One test each; alerts are never lost.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from monitor.analyze import analyze_files
from monitor.config import load
from monitor.errors import StoreError
from monitor.events import AlertRaised, FlowEnd, HandlerChain
from monitor.health import store_failure_cause
from monitor.runtime import build
from monitor.store import Store, default_db_url, open_store
from monitor.store_journal import JOURNAL_FILE
from tests.conftest import require, require_root, require_tool
from tests.fuzz.targets import REGRESSIONS
from tests.netns import ip, veth_pair
from tests.test_load import _flood_module
from tests.test_store import alert, pg_url  # noqa: F401 - pg_url: the fixture


def _store(directory: Path) -> Store:
    return Store(
        default_db_url(directory),
        sensor="pi",
        retention_s=30 * 86400.0,
        batch_seconds=0.05,
        journal=directory / JOURNAL_FILE,
    )


def _alert_count(directory: Path) -> int:
    with contextlib.closing(sqlite3.connect(directory / "micwatch.db")) as conn:
        return conn.execute("SELECT count(*) FROM alerts").fetchone()[0]


@contextlib.contextmanager
def _tmpfs(directory: Path, size: str) -> Iterator[Path]:
    require_root()
    mount = require_tool("mount")
    directory.mkdir()
    subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with contextlib.suppress(OSError), open(path, "ab", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 512)


def test_disk_full_keeps_alerts_in_memory_and_writes_them_when_space_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _tmpfs(tmp_path / "state", "2m") as state:
        store = _store(state)
        try:
            chain = HandlerChain([store])
            chain.emit(AlertRaised(alert(0)))
            assert store.flush(10)
            _fill(state / "filler")
            with caplog.at_level(logging.WARNING):
                for i in range(1, 6):
                    chain.emit(AlertRaised(alert(i)))
                assert not chain.errors  # the capture goes on: no handler failed
                time.sleep(1.0)
            assert "disk is full" in caplog.text or "cannot be written" in caplog.text
            stats = store.stats()
            assert stats["pending_alerts"] == 5  # kept in memory
            assert stats["write_failures"] > 0  # what the health report shows
            writing = store.write_state()  # what the health alert says
            assert store_failure_cause(writing["error"]) == "disk-full"
            assert writing["failing_for_s"] > 0
            (state / "filler").unlink()
            assert store.flush(15)
            assert _alert_count(state) == 6
        finally:
            assert store.close(10)


def test_unwritable_journal_still_queues_the_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    journal = store._journal
    assert journal is not None

    def full(_row: dict) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal, "append", full)
    chain = HandlerChain([store])
    with caplog.at_level(logging.ERROR):
        chain.emit(AlertRaised(alert(0)))
    assert not chain.errors
    assert "cannot be written" in caplog.text
    assert store.flush(10)
    assert _alert_count(tmp_path) == 1
    assert store.close(10)


def test_locked_database_loses_no_alert(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.flush(10)
    lock = sqlite3.connect(tmp_path / "micwatch.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    chain = HandlerChain([store])
    for i in range(5):
        chain.emit(AlertRaised(alert(i)))
    deadline = time.monotonic() + 20
    while store.write_state()["failing_for_s"] is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the first attempt waits out SQLite's busy timeout (5 s)
    assert lock.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    assert (tmp_path / JOURNAL_FILE).read_bytes().count(b"\n") == 5  # on disk meanwhile
    assert store_failure_cause(store.write_state()["error"]) == "locked"
    lock.execute("COMMIT")
    lock.close()
    assert store.flush(20)
    assert _alert_count(tmp_path) == 5
    assert store.close(10)


def test_database_deleted_while_running_is_recreated_and_loses_no_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the fix the open connection went on writing into the unlinked file and the
    journal was emptied: the alert raised after the deletion was lost."""
    store = _store(tmp_path)
    chain = HandlerChain([store])
    chain.emit(AlertRaised(alert(0)))
    assert store.flush(10)
    for name in ("micwatch.db", "micwatch.db-wal", "micwatch.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            (tmp_path / name).unlink()
    with caplog.at_level(logging.ERROR):
        chain.emit(AlertRaised(alert(1)))
        assert store.flush(10)
    assert not chain.errors
    assert "was deleted; creating a new one" in caplog.text
    assert store.write_state()["recreated"] == 1
    assert store.close(10)
    assert _alert_count(tmp_path) == 1  # the new database holds the alert raised after
    again = _store(tmp_path)  # and the next start uses it
    assert again.close(10)


def test_new_connections_to_a_locked_database_do_not_wait_for_it(tmp_path: Path) -> None:
    """Before the fix every new connection set the file's modes, which takes the write lock:
    with the database locked by another program, each read from a new connection (the rules'
    mutes, a device's earlier destinations) waited out the busy timeout and then failed, holding
    up the capture thread."""
    store = _store(tmp_path)
    assert store.flush(10)
    lock = sqlite3.connect(tmp_path / "micwatch.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        connections = [store.engine.connect() for _ in range(4)]  # beyond the pooled one
        assert store.mutes(time.time()) == [] and store.destinations("02:00:00:00:00:01") == []
        for connection in connections:
            connection.close()
    finally:
        lock.execute("COMMIT")
        lock.close()
    assert store.close(10)


class TcpProxy:
    """Forwards a local port to PostgreSQL; :meth:`cut` drops every connection and refuses new
    ones (the server is gone), :meth:`resume` accepts again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for end in self._sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self._sockets.clear()


def test_postgresql_going_away_loses_no_alert(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """A sensor writing to PostgreSQL over the network: the server goes away (every connection
    dropped, new ones refused) and comes back; the store says it is unreachable meanwhile and
    writes every alert once it answers."""
    proxy = TcpProxy(("127.0.0.1", 5432))
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    store = Store(
        via_proxy,
        sensor="pi",
        retention_s=30 * 86400.0,
        batch_seconds=0.05,
        journal=tmp_path / JOURNAL_FILE,
    )
    direct = create_engine(pg_url)
    try:
        chain = HandlerChain([store])
        chain.emit(AlertRaised(alert(0)))
        assert store.flush(10)
        proxy.cut()
        for i in range(1, 4):
            chain.emit(AlertRaised(alert(i)))
        assert not chain.errors
        deadline = time.monotonic() + 20
        while store.write_state()["failing_for_s"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        writing = store.write_state()
        assert store_failure_cause(writing["error"]) == "unreachable", writing
        assert writing["pending_alerts"] == 3
        assert "***" not in writing["location"] and str(proxy.port) in writing["location"]
        proxy.resume()
        assert store.flush(30)
        assert store.write_state()["failing_for_s"] is None
        with direct.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alerts")).scalar_one() == 4
    finally:
        store.close(10)
        proxy.cut()
        direct.dispose()


def _writable(directory: Path) -> bool:
    try:
        (directory / "probe").touch()
    except OSError:
        return False
    (directory / "probe").unlink()
    return True


def test_read_only_state_directory_is_refused_clearly(tmp_path: Path) -> None:
    """Decision: micwatch refuses to start (exit status 2, one line naming the directory)
    rather than run without a store: the daemon's writer and the CLI's reader alike."""
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "micwatch.toml"
    config.write_text(f'[store]\nstate_dir = "{state}"\n')
    os.chmod(state, 0o500)
    if os.geteuid() == 0:  # root ignores modes: make the directory immutable instead
        subprocess.run([require_tool("chattr"), "+i", str(state)], check=False)
    try:
        require(not _writable(state), "cannot make a read-only directory here")
        with pytest.raises(StoreError, match="must be writable"):
            open_store(load(env={}, cli={"store.state_dir": str(state)}), writer=True)
        run = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "--config", str(config), "devices"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(state)], check=False)
        os.chmod(state, 0o700)
    assert run.returncode == 2, run
    assert "Traceback" not in run.stderr, run.stderr
    assert f"cannot open the store in {state}" in run.stderr, run.stderr


_SEND = "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); " + (
    "[s.sendto(b'x' * 100, (sys.argv[1], int(sys.argv[2]))) for _ in range(5)]"
)


def test_capture_interface_going_down_and_up_resumes_without_a_restart() -> None:
    require_root()
    require_tool("ip")
    with veth_pair(subnet=43) as pair:
        argv = ["capture", "-i", pair.if_a, "--format", "jsonl", "--home", "FR", "--no-store"]
        argv += ["--flows", "--health-stall-after", "10s", "--capture-stats-interval", "1s"]
        daemon = subprocess.Popen(
            pair.cmd(pair.ns_a, sys.executable, "-m", "monitor.cli", *argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        errors: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: [errors.put(x) for x in daemon.stderr], daemon=True
        )
        reader.start()

        def wait_for(text: str, seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    if text in errors.get(timeout=0.2):
                        return True
                except queue.Empty:
                    pass
            return False

        def send(port: int) -> None:
            send = [sys.executable, "-c", _SEND, pair.ip_b, str(port)]
            subprocess.run(pair.cmd(pair.ns_a, *send), check=True, timeout=30)

        try:
            time.sleep(3.0)  # let it open the interface (slow on a loaded machine)
            send(9001)
            time.sleep(0.5)
            ip("-n", pair.ns_a, "link", "set", pair.if_a, "down")
            assert wait_for("waiting for it to come back", 10)
            time.sleep(12.0)  # longer than health.stall_after: the daemon says so
            assert daemon.poll() is None  # still running while the interface is down
            ip("-n", pair.ns_a, "link", "set", pair.if_a, "up")
            assert wait_for("again after", 10)
            time.sleep(1.0)  # the link's carrier comes back
            send(9002)
            time.sleep(0.5)
        finally:
            daemon.send_signal(signal.SIGTERM)
            out, _ = daemon.communicate(timeout=30)
        assert daemon.returncode == 0
        flows = [json.loads(line) for line in out.splitlines() if '"kind":"flow"' in line]
        ports = {f["resp_port"] for f in flows if f["resp_ip"] == pair.ip_b}
        assert {9001, 9002} <= ports  # captured before the loss and after the return
        alerts = [json.loads(line)["rule"] for line in out.splitlines() if '"kind":"alert"' in line]
        health = [rule for rule in alerts if rule.startswith("health-")]
        assert health == ["health-capture-stopped", "health-capture-resumed"], alerts


def test_clock_jumps_keep_flows_consistent() -> None:
    flood = _flood_module()
    config = load(env={}, cli={"enrich.home": ["FR"], "network.lan": ["192.168.1.0/24"]})
    runtime = build(config)
    ended: list = []

    class Ends:
        def on_flow_end(self, event: FlowEnd) -> None:
            ended.append(event.flow)

    runtime.chain.add(Ends())
    # Ten flows (same 5-tuples again and again), a packet every 10 ms of capture time.
    base = list(flood.syn_flood(10, 5, seed=3))
    jumps = []
    for index in range(3000):
        ts, linktype, frame = base[index % 10]
        ts += index / 100
        if 1000 <= index < 2000:
            ts -= 3600  # back an hour
        elif index >= 2000:
            ts += 86400  # forward a day
        jumps.append((ts, linktype, frame))
    runtime.pipeline.run(iter(jumps))
    runtime.pipeline.finish()
    stats = runtime.pipeline.stats()
    assert stats["decoded"] == 3000 and stats["handler_errors"] == 0
    assert len(ended) == stats["flows"]
    assert ended
    for flow in ended:
        assert flow.last_ts >= flow.first_ts and flow.duration >= 0, flow


def test_clock_jump_capture_is_analysed_with_no_negative_duration() -> None:
    capture = REGRESSIONS / "capture" / "clock_jumps.pcap"
    out = io.StringIO()
    config = load(env={}, cli={"enrich.home": ["FR"]})
    summary = analyze_files(config, [str(capture)], fmt="jsonl", flows=True, out=out)
    assert summary["decoded"] == 300 and summary["handler_errors"] == 0
    flows = [json.loads(line) for line in out.getvalue().splitlines() if '"kind":"flow"' in line]
    assert sum(f["orig_pkts"] for f in flows) == 300
    assert all(f["duration"] >= 0 and f["last_ts"] >= f["first_ts"] for f in flows), flows
