"""Run one fuzz target under atheris (libFuzzer), seeded from the test captures.

Usage: ``python -m tests.fuzz.run TARGET [libFuzzer flags...]``, e.g.
``python -m tests.fuzz.run dns -max_total_time=60 -artifact_prefix=/tmp/crashes/``.
``python -m tests.fuzz.run --list`` names the targets.

The seeds (and every saved regression input of the target) are written into the corpus folder
(the first non-flag argument, created when missing; a fresh temporary folder when none is given).
A crash (any exception the target does not allow) makes
libFuzzer save the input as ``<artifact_prefix>crash-<sha1>`` and exit non-zero; copy it into
``tests/data/regressions/<TARGET>/`` with a line in that folder's README once it is fixed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["monitor"]):
    from tests.fuzz.targets import TARGETS, regressions, seeds


def main(argv: list[str]) -> None:
    """Fuzz the target named in ``argv[1]`` with the libFuzzer flags that follow it."""
    if len(argv) < 2 or argv[1] not in TARGETS:
        print("targets:", " ".join(TARGETS))
        raise SystemExit(0 if argv[1:] == ["--list"] else 2)
    name, flags = argv[1], argv[2:]
    folders = [flag for flag in flags if not flag.startswith("-")]
    if not folders:
        folders.append(tempfile.mkdtemp(prefix=f"micwatch-fuzz-{name}-"))
        flags.append(folders[0])
    corpus = Path(folders[0])
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds(name)):
        (corpus / f"seed-{index:03d}").write_bytes(seed)
    for path in regressions(name):
        (corpus / f"regression-{path.name}").write_bytes(path.read_bytes())
    atheris.Setup([argv[0], *flags], TARGETS[name].function)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
