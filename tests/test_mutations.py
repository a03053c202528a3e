"""Random damage to real captures never stops an analysis: every mutated file is read to the
end, each frame counted once as decoded, malformed or skipped, and no handler fails."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from monitor.analyze import analyze_files
from monitor.config import load
from tests.conftest import DATA

CAPTURES = [
    DATA / "iot" / "lifecycle_xiaobaiY2cam_setup.pcap",
    DATA / "iot" / "iotsentinel_D-LinkCam_Setup-A-2-STA.pcap",
    DATA / "protocols" / "zeek_quic_firefox_google.pcap",
    DATA / "protocols" / "ndpi_tls_huge_clienthello.pcapng",
    DATA / "protocols" / "zeek_mdns.pcap",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Flip, overwrite, insert or cut bytes after the file header (so the format is kept)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 40)):
        pos = rng.randrange(24, len(buf))
        action = rng.random()
        if action < 0.5:
            buf[pos] ^= 1 << rng.randrange(8)
        elif action < 0.8:
            buf[pos : pos + 4] = rng.randbytes(4)
        elif action < 0.9:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        else:
            del buf[pos : pos + rng.randint(1, 64)]
    if rng.random() < 0.2:
        del buf[rng.randrange(24, len(buf)) :]  # cut short
    return bytes(buf)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_mutated_real_captures_are_analysed_to_the_end(capture: Path, tmp_path: Path) -> None:
    rng = random.Random(capture.name)
    data = capture.read_bytes()
    config = load(env={}, cli={"enrich.home": ["FR"]})
    for round_ in range(25):
        path = tmp_path / f"mutant-{round_}{capture.suffix}"
        path.write_bytes(mutate(data, rng))
        out = io.StringIO()
        summary = analyze_files(config, [str(path)], fmt="jsonl", out=out)
        assert summary["packets"] == summary["decoded"] + summary["malformed"] + summary["skipped"]
        assert summary["handler_errors"] == 0, path
        assert json.loads(out.getvalue().splitlines()[-1])["kind"] == "summary"
