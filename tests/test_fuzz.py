"""Coverage-guided fuzzing in CI: every parser target runs under atheris for a bounded time.

Each target in :mod:`tests.fuzz.targets` runs for :data:`SECONDS` seconds (about two minutes in
all) from its real-payload seeds; a crash fails the test and names the saved input. The saved
regression inputs in ``tests/data/regressions/`` are replayed directly (no atheris needed), and
a planted bug shows that a target does report what its contract forbids.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import Malformed
from tests.conftest import require
from tests.fuzz import targets
from tests.fuzz.targets import TARGETS, regressions, seeds, split_frames

SECONDS = int(os.environ.get("MICWATCH_FUZZ_SECONDS", "8"))
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(SECONDS * 4 + 60)
@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_target_finds_no_crash(name: str, tmp_path: Path) -> None:
    require(importlib.util.find_spec("atheris") is not None, "atheris is not installed")
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            name,
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={crashes}/",
            "-timeout=10",
            "-rss_limit_mb=2048",
            str(tmp_path / "corpus"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS * 4 + 45,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    saved = [p.name for p in crashes.iterdir()]
    assert run.returncode == 0 and not saved, f"{name}: {saved}\n{run.stderr[-4000:]}"
    done = re.search(r"Done (\d+) runs in (\d+) second", run.stderr)
    assert done is not None, run.stderr[-2000:]
    print(f"fuzz {name}: {done.group(1)} executions in {done.group(2)} s")
    assert int(done.group(1)) > 1000  # it really fuzzed, not just replayed the seeds


_PLANTED = """
import sys
from tests.fuzz import run, targets
def broken(data):
    if data:
        raise IndexError("planted bug")
targets.TARGETS["dns"] = targets.Target(broken)
run.main(["run", "dns", "-runs=2000", "-artifact_prefix=" + sys.argv[1], sys.argv[2]])
"""


def test_the_runner_fails_and_saves_the_input_on_a_planted_bug(tmp_path: Path) -> None:
    require(importlib.util.find_spec("atheris") is not None, "atheris is not installed")
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", _PLANTED, f"{crashes}/", str(tmp_path / "corpus")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode != 0, run.stderr[-2000:]
    assert "planted bug" in run.stdout + run.stderr
    [saved] = list(crashes.iterdir())
    assert saved.name.startswith("crash-") and saved.read_bytes()


@pytest.mark.parametrize("name", list(TARGETS))
def test_seeds_and_regressions_pass(name: str) -> None:
    inputs = seeds(name) + [p.read_bytes() for p in regressions(name)]
    assert len(inputs) >= 5
    for data in inputs:
        TARGETS[name].function(data)


def test_every_regression_folder_names_a_target_and_is_documented() -> None:
    readme = (targets.REGRESSIONS / "README.md").read_text()
    for folder in targets.REGRESSIONS.iterdir():
        if folder.is_dir():
            assert folder.name in TARGETS, folder
            for path in folder.iterdir():
                assert f"{folder.name}/{path.name}" in readme, path


def test_a_target_reports_an_exception_its_contract_forbids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_payload: bytes) -> None:
        raise IndexError("planted bug")

    def refuses(_payload: bytes) -> None:
        raise Malformed("bad input")

    monkeypatch.setattr(targets, "parse_dns", refuses)
    targets.fuzz_dns(b"\x00")  # Malformed is the contract: let through
    monkeypatch.setattr(targets, "parse_dns", broken)
    with pytest.raises(IndexError):
        targets.fuzz_dns(b"\x00")


def test_frames_split_as_framed() -> None:
    data = targets.join_frames([b"ab", b"", b"cde"])
    assert list(split_frames(data)) == [b"ab", b"", b"cde"]
