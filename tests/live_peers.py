"""The two ends of the live tests' traffic, run inside their network namespaces.

``python -m tests.live_peers server IP_B REMOTE_B``: answers DNS queries on IP_B:53 with an A
record pointing at REMOTE_B, and swallows TCP on REMOTE_B:443 and UDP on REMOTE_B:9999.

``python -m tests.live_peers client IP_B REMOTE_B NAME UPLOAD_BYTES SECONDS``: looks NAME up,
opens TCP to REMOTE_B:443, sends a real TLS ClientHello for NAME (made by Python's ssl module),
then UPLOAD_BYTES evenly over SECONDS, then 10 UDP datagrams of 100 bytes to port 9999; prints
one JSON line with what it sent and when it finished.

``python -m tests.live_peers flood REMOTE_B SECONDS``: sends 64-byte UDP datagrams as fast as
it can for SECONDS and prints how many it sent.

``python -m tests.live_peers replay IFACE CAPTURE``: sends the capture's Ethernet frames, as they
are, out of IFACE (a veth inside the test's namespaces: the frames reach only the other end) at
the capture's own pace, and prints the wall-clock time of the first and last frame.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import sys
import threading
import time


def dns_answer(query: bytes, address: str) -> bytes:
    """A response to ``query`` with one A record for its question (no compression tricks)."""
    header = query[:2] + b"\x81\x80" + query[4:6] + b"\x00\x01\x00\x00\x00\x00"
    question = query[12:]
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + socket.inet_aton(address)
    return header + question + answer


def dns_query(name: str, ident: int = 0x4D57) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


def client_hello(name: str) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server: hello is out
        tls.do_handshake()
    return outgoing.read()


def serve(ip_b: str, remote_b: str) -> None:
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((ip_b, 53))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((remote_b, 9999))
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((remote_b, 443))
    tcp.listen()

    def answer_dns() -> None:
        while True:
            query, peer = dns.recvfrom(2048)
            dns.sendto(dns_answer(query, remote_b), peer)

    def drain_udp() -> None:
        while True:
            sink.recvfrom(65535)

    def drain_tcp() -> None:
        while True:
            conn, _ = tcp.accept()
            threading.Thread(
                target=lambda c=conn: [None for _ in iter(lambda: c.recv(65536), b"")], daemon=True
            ).start()

    for target in (answer_dns, drain_udp, drain_tcp):
        threading.Thread(target=target, daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def client(ip_b: str, remote_b: str, name: str, upload: int, seconds: float) -> None:
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.settimeout(5)
    dns.sendto(dns_query(name), (ip_b, 53))
    dns.recvfrom(2048)
    hello = client_hello(name)
    conn = socket.create_connection((remote_b, 443), timeout=5)
    conn.sendall(hello)
    steps = max(1, int(seconds * 10))
    chunk = upload // steps
    sent = 0
    started = time.time()
    for step in range(steps):
        part = chunk if step < steps - 1 else upload - sent
        conn.sendall(b"\xa5" * part)
        sent += part
        time.sleep(max(0.0, started + (step + 1) * seconds / steps - time.time()))
    finished = time.time()
    conn.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(10):
        udp.sendto(b"u" * 100, (remote_b, 9999))
    print(json.dumps({"hello": len(hello), "upload": sent, "finished": finished}), flush=True)


def flood(remote_b: str, seconds: float) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"f" * 64
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(256):
            try:
                udp.sendto(payload, (remote_b, 9999))
                count += 1
            except OSError:
                pass
    print(json.dumps({"sent": count}), flush=True)


def replay(interface: str, capture: str) -> None:
    from monitor.capture import open_files

    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((interface, 0))
    started = first_ts = None
    sent = 0
    for item in open_files([capture]):
        if item is None:
            continue
        ts, _linktype, frame = item
        if started is None:
            started, first_ts = time.time(), ts
        time.sleep(max(0.0, started + (ts - first_ts) - time.time()))
        raw.send(frame)
        sent += 1
    print(json.dumps({"started": started, "finished": time.time(), "sent": sent}), flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "server":
        serve(*args)
    elif command == "client":
        client(args[0], args[1], args[2], int(args[3]), float(args[4]))
    elif command == "replay":
        replay(args[0], args[1])
    else:
        flood(args[0], float(args[1]))
