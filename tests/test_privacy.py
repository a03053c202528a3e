"""The monitor must not become an eavesdropper: no payload byte reaches the store."""

from __future__ import annotations

import io
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from monitor.analyze import analyze_files
from monitor.config import load
from monitor.events import AlertRaised, DestinationContacted, DeviceSeen, FlowEnd
from monitor.pcapfile import write_pcap
from monitor.store import Store, default_db_url
from monitor.store_journal import JOURNAL_FILE
from tests.test_store import T0, alert, destination, device, flow

SECRET = b"the-cake-recipe-is-in-the-drawer-7f3a9c"
DEVICE = "02:11:22:33:44:55"
ROUTER = "02:aa:bb:cc:dd:ee"


def frames() -> list[tuple[float, bytes]]:
    """A device looks a name up, then POSTs a secret over plain HTTP and over raw UDP."""
    lan = Ether(src=DEVICE, dst=ROUTER) / IP(src="192.168.1.20", dst="192.168.1.1")
    back = Ether(src=ROUTER, dst=DEVICE) / IP(src="192.168.1.1", dst="192.168.1.20")
    out = Ether(src=DEVICE, dst=ROUTER) / IP(src="192.168.1.20", dst="203.0.113.9")
    query = DNS(id=7, rd=1, qd=DNSQR(qname="upload.example.com"))
    answer = DNS(
        id=7,
        qr=1,
        qd=DNSQR(qname="upload.example.com"),
        an=DNSRR(rrname="upload.example.com", rdata="203.0.113.9", ttl=60),
    )
    http = (
        b"POST /voice HTTP/1.1\r\nHost: upload.example.com\r\nUser-Agent: toy/1.0\r\n"
        b"Content-Length: 4000\r\n\r\n"
    )
    packets = [
        (100.0, bytes(lan / UDP(sport=5555, dport=53) / query)),
        (100.01, bytes(back / UDP(sport=53, dport=5555) / answer)),
        (100.1, bytes(out / TCP(sport=40000, dport=80, flags="S", seq=1))),
        (100.2, bytes(out / TCP(sport=40000, dport=80, flags="PA", seq=2) / Raw(http + SECRET))),
    ]
    for i in range(40):  # a few seconds of "audio" carrying the secret, over HTTP and UDP
        ts = 101.0 + i * 0.1
        body = SECRET * 30
        packets.append(
            (ts, bytes(out / TCP(sport=40000, dport=80, flags="PA", seq=100 + i) / Raw(body)))
        )
        packets.append((ts + 0.01, bytes(out / UDP(sport=6000, dport=7000) / Raw(body))))
    return packets


def test_no_payload_byte_reaches_the_database(tmp_path: Path) -> None:
    capture = tmp_path / "secret.pcap"
    write_pcap(capture, frames())
    db = tmp_path / "micwatch.db"
    store = Store(f"sqlite:///{db}", sensor="home", retention_s=10**10)
    out = io.StringIO()
    try:
        analyze_files(
            load(env={}, cli={"enrich.home": ["FR"]}),
            [str(capture)],
            fmt="jsonl",
            out=out,
            store=store,
        )
    finally:
        store.close()
    # The run did see and store the metadata...
    assert '"kind":"burst"' in out.getvalue()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("micwatch.db*"))
    assert b"upload.example.com" in stored and DEVICE.encode() in stored
    # ...and no byte of the content: not the secret, not part of it, not the request path.
    assert SECRET not in stored and SECRET[:12] not in stored and b"/voice" not in stored
    assert SECRET not in out.getvalue().encode()


def _files_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def test_forgotten_device_leaves_no_byte_in_any_file_while_the_store_runs(tmp_path: Path) -> None:
    """ "Forget device" on a running store: afterwards no file of the state directory (the
    database, its write-ahead log, the alert journal) holds the device's MAC or hostname, not
    even in freed pages or old page copies; another device's data is still there."""
    hostname = b"kids-room-talking-bear"
    store = Store(
        default_db_url(tmp_path),
        sensor="home",
        retention_s=10**10,
        batch_seconds=0.05,
        journal=tmp_path / JOURNAL_FILE,
    )
    try:
        for index in range(40):  # other devices, so the database has several pages
            other = f"02:00:00:00:01:{index:02x}"
            store.on_device_seen(DeviceSeen(T0, device(other, hostname=f"lamp-{index}")))
        store.on_device_seen(DeviceSeen(T0, device(DEVICE, hostname=hostname.decode())))
        store.on_destination_contacted(DestinationContacted(T0, device(DEVICE), destination()))
        store.on_flow_end(FlowEnd(flow(DEVICE, bins=[(int(T0), 4000, 10, 4)])))
        store.on_alert_raised(AlertRaised(alert(mac=DEVICE)))
        assert store.flush(10)
        before = _files_bytes(tmp_path)
        assert hostname in before and DEVICE.encode() in before
        assert store.forget_device(DEVICE) > 0
        after = _files_bytes(tmp_path)
        assert hostname not in after and DEVICE.encode() not in after
        assert b"lamp-39" in after
    finally:
        store.close()
    closed = _files_bytes(tmp_path)
    assert hostname not in closed and DEVICE.encode() not in closed
