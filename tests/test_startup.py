"""Offline analysis stays light: it does not load the database layer, the web framework or the
notification libraries unless asked (they cost ~0.3 s and ~35 MB, the bench's margin)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import DATA

CODE = """
import io, json, sys
from monitor.cli import main
sys.stdout = io.StringIO()
main(["analyze", sys.argv[1], "--home", "FR", "--format", "jsonl"])
heavy = [m for m in ("sqlalchemy", "alembic", "flask", "apprise", "paho", "scapy", "requests")
         if m in sys.modules]
sys.__stdout__.write(json.dumps(heavy))
"""


def test_analyze_imports_no_heavy_library() -> None:
    capture = str(DATA / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap")
    done = subprocess.run(
        [sys.executable, "-c", CODE, capture],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == []
