"""A stand-in for ``ssh router tcpdump -U -w -``: writes a pcap stream to standard output.

``python -m tests.pcap_stream RUN_FILE PER_RUN BREAK_RUNS``: each run reads and bumps the run
number kept in RUN_FILE, writes the pcap header and PER_RUN UDP packets numbered
``run * PER_RUN + i`` (the number is the 4-byte payload, to 198.18.9.10:9999), and then, for
the first BREAK_RUNS runs, half of one more record, flushes, writes its pid to RUN_FILE.pid
and waits to be killed (the pipe breaks mid-record); later runs stay quiet until ended.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path

import dpkt

from monitor.pcapfile import pcap_header, pcap_record


def frame(number: int) -> bytes:
    udp = dpkt.udp.UDP(sport=40000, dport=9999, data=struct.pack("!I", number))
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(
        src=bytes([10, 0, 9, 2]), dst=bytes([198, 18, 9, 10]), p=dpkt.ip.IP_PROTO_UDP, data=udp
    )
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(
        src=b"\x02\x00\x00\x00\x09\x02", dst=b"\x02\x00\x00\x00\x09\x01", data=ip
    )
    return bytes(eth)


def main(run_file: Path, per_run: int, break_runs: int) -> None:
    run = int(run_file.read_text()) if run_file.exists() else 0
    run_file.write_text(str(run + 1))
    out = sys.stdout.buffer
    out.write(pcap_header(snaplen=65535))
    now = time.time()
    for i in range(per_run):
        out.write(pcap_record(now + i * 0.001, frame(run * per_run + i)))
    if run < break_runs:
        out.write(pcap_record(now, frame(10**6))[:30])
    out.flush()
    Path(f"{run_file}.pid").write_text(str(os.getpid()))
    time.sleep(3600)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
