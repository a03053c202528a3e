"""Offline analysis: run capture files through the whole pipeline and report what was found.

Guarantees: every file is read to its end (a broken record ends that file with the damage
counted, never the run); progress goes to standard error and only when asked; with ``jsonl`` the
output is one JSON object per line (``device``, ``destination``, optional ``flow``, ``burst``,
``alert``) and the ``summary`` line comes last.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from monitor.capture import open_files
from monitor.config import Config
from monitor.output import JsonLinesPrinter, RunCollector, burst_record
from monitor.runtime import build


class Progress:
    """A single updating line on standard error: packets so far and the rate."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()

    def __call__(self, packets: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        sys.stderr.write(
            f"\r{self.label}: {packets:,} packets, {packets / elapsed:,.0f} packets/s   "
        )
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 79 + "\r")
        sys.stderr.flush()


def analyze_files(
    config: Config,
    files: Sequence[str],
    *,
    fmt: str = "text",
    flows: bool = False,
    progress: bool = False,
    out: IO[str] = sys.stdout,
    store: Any = None,
    only_rules: list[Path] | None = None,
) -> dict[str, Any]:
    """Analyse ``files`` and write the report in ``fmt``; returns the summary counters.
    ``only_rules`` replaces the configured rule files."""
    printer = JsonLinesPrinter(out, flows=flows) if fmt == "jsonl" else None
    runtime = build(config, store=store, only_rules=only_rules)
    collector = RunCollector(runtime.inventory.destination)
    runtime.chain.add(collector)
    if printer is not None:
        runtime.chain.add(printer)
    flow_records: list[dict[str, Any]] = []
    if fmt == "json" and flows:
        runtime.chain.add(_FlowGatherer(flow_records))
    source = open_files(list(files))
    meter = Progress("analysing " + ", ".join(files)[:40]) if progress else None
    try:
        runtime.pipeline.run(source, progress=meter)
    finally:
        source.close()
        if meter is not None:
            meter.done()
    runtime.pipeline.finish()
    if store is not None:
        store.flush(30.0)
    summary = runtime.pipeline.stats()
    if fmt == "jsonl":
        assert printer is not None
        for record in collector.device_records():
            printer.write({"kind": "device", **record})
        for record in collector.destination_records():
            printer.write({"kind": "destination", **record})
        printer.write({"kind": "summary", **summary})
    elif fmt == "json":
        json.dump(
            {
                "devices": collector.device_records(),
                "destinations": collector.destination_records(),
                "flows": flow_records,
                "bursts": [burst_record(b) for b in collector.bursts],
                "alerts": [a.to_record() for a in collector.alerts],
                "summary": summary,
            },
            out,
            indent=2,
            default=str,
        )
        out.write("\n")
    else:
        collector.write_text(out, summary)
    out.flush()
    return summary


class _FlowGatherer:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def on_flow_end(self, event: Any) -> None:
        self.records.append(event.flow.to_record())
