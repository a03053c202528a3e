"""A capture command for the daemon-level tests: capture files dropped into a spool directory,
streamed out as if they happened now.

``python -m tests.pcap_feed SPOOL_DIR`` writes a pcap header (Ethernet) to standard output, then
watches SPOOL_DIR: each ``*.pcap`` file that appears there (the test writes it under another name
and renames it, so it is whole) is sent at its own pace, its timestamps shifted so that its
first packet is now (the daemon's clock, which follows the wall clock between packets, never
sees time go back), and renamed to ``*.pcap.done`` once sent. The daemon reads it with
``--capture-command``, exactly like a router's ``tcpdump -U -w -``, and the test decides when
the traffic comes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from monitor.capture import open_files
from monitor.pcapfile import LINKTYPE_ETHERNET, pcap_header, pcap_record


def send(capture: Path, out) -> int:
    """Write ``capture``'s Ethernet frames at their pace, shifted to start now; return how
    many."""
    frames = [item for item in open_files([str(capture)]) if item is not None]
    shift = time.time() - frames[0][0]
    for ts, linktype, frame in frames:
        assert linktype == LINKTYPE_ETHERNET, f"{capture}: not Ethernet"
        ts += shift
        if ts > time.time():
            out.flush()
            time.sleep(ts - time.time())
        out.write(pcap_record(ts, frame))
    out.flush()
    return len(frames)


def main(spool: Path) -> None:
    out = sys.stdout.buffer
    out.write(pcap_header())
    out.flush()
    parent = os.getppid()
    while os.getppid() == parent:  # ends with the daemon, even one killed with SIGKILL
        for capture in sorted(spool.glob("*.pcap")):
            send(capture, out)
            capture.rename(capture.with_suffix(".pcap.done"))
        time.sleep(0.05)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
