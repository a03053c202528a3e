"""Chart geometry: store aggregates turned into the coordinates the SVG templates draw.

No JavaScript library: the templates draw ``<rect>`` elements (SVG attributes, not inline
styles, so the strict CSP holds) from the numbers computed here. Guarantees: every coordinate
is finite and inside the chart's box; an empty input gives an empty chart, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Width of the drawing area of the per-country bars (SVG units).
BAR_WIDTH = 600
#: Height of the timeline's drawing area (SVG units).
TIMELINE_HEIGHT = 160


@dataclass
class Timeline:
    """Bars of bytes sent per minute (``x``, ``width``, ``height``, ``minute``, ``bytes_up``),
    burst marks (``x``, ``width``, ``shape``), the largest minute and the time span."""

    bars: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    peak: int = 0
    start: float = 0.0
    end: float = 0.0
    width: int = 720
    height: int = TIMELINE_HEIGHT


def country_bars(rows: list[dict[str, Any]], limit: int = 8) -> list[dict[str, Any]]:
    """The ``limit`` countries with the most bytes sent, each with ``width`` (its share of the
    largest, in SVG units, at least 2 so a small one still shows), ``y`` and its row."""
    top = [r for r in rows if (r.get("bytes_up") or 0) + (r.get("bytes_down") or 0) > 0][:limit]
    largest = max(((r.get("bytes_up") or 0) for r in top), default=0) or 1
    return [
        {
            **row,
            "width": max(2, round(BAR_WIDTH * (row.get("bytes_up") or 0) / largest)),
            "y": index * 36,
        }
        for index, row in enumerate(top)
    ]


def timeline(
    series: list[dict[str, Any]], bursts: list[dict[str, Any]], start: float, end: float
) -> Timeline:
    """Per-minute upload bars between ``start`` and ``end`` (one column per minute of the span,
    bucketed when the span has more minutes than the chart has room for) and the bursts."""
    chart = Timeline(start=start, end=end)
    span = max(end - start, 60.0)
    columns = min(int(span // 60), 240)
    bucket = span / columns
    sums: dict[int, int] = {}
    for row in series:
        column = min(int((row["minute"] - start) // bucket), columns - 1)
        if column >= 0:
            sums[column] = sums.get(column, 0) + int(row["bytes_up"] or 0)
    chart.peak = max(sums.values(), default=0)
    step = chart.width / columns
    for column, total in sorted(sums.items()):
        height = max(1.0, chart.height * total / chart.peak) if chart.peak else 0.0
        chart.bars.append(
            {
                "x": round(column * step, 2),
                "width": round(max(step - 1, 1), 2),
                "height": round(height, 2),
                "y": round(chart.height - height, 2),
                "minute": start + column * bucket,
                "bytes_up": total,
            }
        )
    for burst in bursts:
        left = max(burst.get("ts_start", start), start)
        right = min(burst.get("ts_end", left), end)
        x = min(chart.width * (left - start) / span, chart.width - 3.0)
        width = max(3.0, chart.width * (right - left) / span)
        chart.marks.append(
            {
                "x": round(x, 2),
                "width": round(min(width, chart.width - x), 2),
                "shape": burst.get("shape") or "bulk",
                "burst": burst,
            }
        )
    return chart
