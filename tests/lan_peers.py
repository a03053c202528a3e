"""Traffic ends for the LAN tests, run inside their network namespaces.

``python -m tests.lan_peers tcp_sink IP PORT``: accepts one TCP connection on IP:PORT, reads it
to the end and prints ``{"bytes": N, "sha256": HEX}``; prints ``ready`` first.

``python -m tests.lan_peers tcp_send IP PORT BYTES``: connects, sends BYTES of a fixed
pseudo-random payload and prints the same JSON for what it sent.

``python -m tests.lan_peers udp_pace IP PORT PPS SECONDS``: sends 64-byte UDP datagrams at PPS
a second (in 1 ms batches) for SECONDS and prints ``{"sent": N}`` (datagrams the kernel took).

``python -m tests.lan_peers udp_once IP PORT``: sends one datagram (to make hosts ARP).

``python -m tests.lan_peers whoami PORT``: accepts TCP connections on PORT (any address) and
answers each with the address it came from; prints ``ready`` first.

``python -m tests.lan_peers connect IP PORT``: opens TCP to IP:PORT (2 s timeout) and prints
what it read, or ``failed: REASON``.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sys
import time


def tcp_sink(address: str, port: int) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(1)
    print("ready", flush=True)
    conn, _ = server.accept()
    digest, total = hashlib.sha256(), 0
    while chunk := conn.recv(65536):
        digest.update(chunk)
        total += len(chunk)
    print(json.dumps({"bytes": total, "sha256": digest.hexdigest()}), flush=True)


def tcp_send(address: str, port: int, size: int) -> None:
    payload = random.Random(7).randbytes(size)
    with socket.create_connection((address, port), timeout=10) as conn:
        conn.sendall(payload)
    print(json.dumps({"bytes": size, "sha256": hashlib.sha256(payload).hexdigest()}), flush=True)


def udp_pace(address: str, port: int, pps: int, seconds: float) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect((address, port))
    payload = b"p" * 64
    batch = max(1, pps // 1000)
    sent = 0
    start = time.monotonic()
    for step in range(int(seconds * 1000)):
        for _ in range(batch):
            try:
                udp.send(payload)
                sent += 1
            except OSError:
                pass
        delay = start + (step + 1) / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": sent, "seconds": elapsed}), flush=True)


def udp_once(address: str, port: int) -> None:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", (address, port))


def whoami(port: int) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(8)
    print("ready", flush=True)
    while True:
        conn, peer = server.accept()
        conn.sendall(peer[0].encode())
        conn.close()


def connect(address: str, port: int) -> None:
    try:
        with socket.create_connection((address, port), timeout=2) as conn:
            print(conn.recv(100).decode(), flush=True)
    except OSError as exc:
        print(f"failed: {exc}", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "tcp_sink":
        tcp_sink(args[0], int(args[1]))
    elif command == "tcp_send":
        tcp_send(args[0], int(args[1]), int(args[2]))
    elif command == "whoami":
        whoami(int(args[0]))
    elif command == "connect":
        connect(args[0], int(args[1]))
    elif command == "udp_pace":
        udp_pace(args[0], int(args[1]), int(args[2]), float(args[3]))
    else:
        udp_once(args[0], int(args[1]))
