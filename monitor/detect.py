"""Upload-burst detection: the heart of micwatch.

Per device and destination *organisation* (so a speaker talking to several Amazon addresses at
once makes one burst), the detector reads one-second upstream byte counts from the flows that
carried payload in each closed second (:class:`~monitor.events.Tick`). It learns each pair's idle
baseline from its recent active seconds outside bursts (a high quantile, so periodic keep-alives
and heartbeats are baseline, not bursts), opens a burst when the upstream rate rises above both
the floor and a multiple of that baseline, extends it while the rate stays above half the floor,
and closes it after a quiet gap. A closed burst is classified by its shape:

* ``audio``: at least ``audio_min_s`` strong seconds filling most of the burst, at most
  ``audio_max_s`` long, at a mean upstream rate between ``audio_min_kBps`` and
  ``audio_max_kBps``, upstream-dominant (speech after a wake word, a talking toy, a live
  microphone), from a device that may have a microphone (not a plug, bulb or sensor);
* ``video``: above the audio rate for at least ``video_min_s`` strong seconds (camera clips and
  streams);
* ``bulk``: anything else of reportable size (backups, logs, firmware).

Guarantees: every threshold is a configuration option (``detect.*``); a burst is emitted once, at
the first Tick after its quiet gap (a few seconds after it ends, while capture runs) or at
:class:`~monitor.events.Shutdown`; bursts smaller than ``min_bytes`` are not reported; the state
is bounded (least recently active pairs are dropped beyond ``max_pairs``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.config import Config
from monitor.events import Event, Shutdown, Tick, UploadBurst
from monitor.flows import HomeNetworks
from monitor.model import Destination, Device, Flow

is_multicast_text = HomeNetworks.is_multicast_text

# The baseline counts only once it has this many active seconds; before, the floor alone decides.
_MIN_BASELINE_SAMPLES = 10


@dataclass(frozen=True)
class DetectSettings:
    """The detector's thresholds, in bytes and seconds (read from ``detect.*`` options)."""

    floor_bps: float = 2000.0
    baseline_factor: float = 3.0
    baseline_quantile: float = 0.9
    baseline_window_s: float = 600.0
    gap_s: float = 3.0
    min_bytes: int = 8000
    max_duration_s: float = 600.0
    audio_min_s: float = 3.0
    audio_max_s: float = 300.0
    audio_min_bps: float = 1500.0
    audio_max_bps: float = 48000.0
    audio_min_up_ratio: float = 0.6
    video_min_s: float = 3.0
    voice_bps: float = 8000.0
    include_local: bool = False
    audio_min_density: float = 0.6
    audio_dominance: float = 4.0
    audio_min_dominant: float = 0.75
    no_mic_categories: frozenset[str] = frozenset(
        {"plug", "light", "sensor", "meter", "printer", "network"}
    )

    @classmethod
    def from_config(cls, config: Config) -> DetectSettings:
        return cls(
            floor_bps=config["detect.floor_kBps"] * 1000,
            baseline_factor=config["detect.baseline_factor"],
            baseline_quantile=config["detect.baseline_quantile"],
            baseline_window_s=config["detect.baseline_window"],
            gap_s=config["detect.gap"],
            min_bytes=config["detect.min_bytes"],
            max_duration_s=config["detect.max_duration"],
            audio_min_s=config["detect.audio_min_s"],
            audio_max_s=config["detect.audio_max_s"],
            audio_min_bps=config["detect.audio_min_kBps"] * 1000,
            audio_max_bps=config["detect.audio_max_kBps"] * 1000,
            audio_min_up_ratio=config["detect.audio_min_up_ratio"],
            video_min_s=config["detect.video_min_s"],
            voice_bps=config["detect.voice_kBps"] * 1000,
            include_local=config["detect.include_local"],
            audio_min_density=config["detect.audio_min_density"],
            audio_dominance=config["detect.audio_dominance"],
            audio_min_dominant=config["detect.audio_min_dominant"],
            no_mic_categories=frozenset(config["detect.no_mic_categories"]),
        )


@dataclass
class _Burst:
    """An open burst. ``last`` is its last strong second (upstream at or above the floor);
    ``pending`` holds the weaker seconds seen since, added only if a strong second follows."""

    start: int
    last: int
    strong: int = 0
    dominant: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    packets_up: int = 0
    peak: int = 0
    by_ip: dict[str, int] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)
    transports: set[str] = field(default_factory=set)
    pending: list[tuple[int, int, int, list]] = field(default_factory=list)

    def add(self, up: int, down: int, pkts: int, entries: list) -> None:
        self.bytes_up += up
        self.bytes_down += down
        self.packets_up += pkts
        self.peak = max(self.peak, up)
        for flow, destination, b in entries:
            self.by_ip[destination.ip] = self.by_ip.get(destination.ip, 0) + b[1]
            if flow.service:
                self.services.add(flow.service)
            self.transports.add(flow.proto)


@dataclass
class _Pair:
    """State of one (device, organisation) pair."""

    device_key: str
    baseline: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=900))
    burst: _Burst | None = None
    last_second: int = -1
    cached_threshold: float | None = None


def shape_of(
    settings: DetectSettings,
    duration_s: float,
    bytes_up: int,
    bytes_down: int,
    strong_seconds: int | None = None,
    category: str = "unknown",
    dominant_seconds: int | None = None,
) -> str:
    """``audio``, ``video`` or ``bulk`` for a burst (see the module docstring).

    ``strong_seconds`` counts the seconds at or above the floor (default: all of them); audio
    and video need that many sustained seconds, and audio needs them to fill at least
    ``audio_min_density`` of the burst, most of them (``audio_min_dominant``) upstream-dominant
    (``audio_dominance`` times more up than down: speech streams up while little comes back,
    where a chatty exchange of requests and replies does not). A device whose ``category`` has
    no microphone (a plug, a bulb, a sensor...) never sends audio: its bursts are bulk.
    """
    strong = duration_s if strong_seconds is None else strong_seconds
    dominant = strong if dominant_seconds is None else dominant_seconds
    mean = bytes_up / duration_s
    total = bytes_up + bytes_down
    up_ratio = bytes_up / total if total else 1.0
    if (
        category not in settings.no_mic_categories
        and settings.audio_min_s <= strong
        and duration_s <= settings.audio_max_s
        and strong / duration_s >= settings.audio_min_density
        and settings.audio_min_bps <= mean <= settings.audio_max_bps
        and up_ratio >= settings.audio_min_up_ratio
        and dominant >= settings.audio_min_dominant * strong
    ):
        return "audio"
    if mean > settings.audio_max_bps and strong >= settings.video_min_s:
        return "video"
    return "bulk"


class BurstDetector:
    """The detection handler (``on_tick``, ``on_shutdown``); see the module docstring."""

    def __init__(
        self,
        settings: DetectSettings,
        *,
        device_of: Callable[[str], Device | None],
        destination_of: Callable[[str, float], Destination],
        emit: Callable[[Event], None],
        max_pairs: int = 8192,
    ) -> None:
        self.settings = settings
        self.device_of = device_of
        self.destination_of = destination_of
        self.emit = emit
        self.max_pairs = max_pairs
        self.pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()
        self.open: dict[tuple[str, str], _Pair] = {}
        self.emitted = 0

    # -- per second ---------------------------------------------------------------------------

    def on_tick(self, event: Tick) -> None:
        second = event.second
        seconds: dict[tuple[str, str], list[tuple[Flow, Destination, tuple]]] = {}
        for flow in event.active:
            bins = flow.bins
            if not bins or bins[-1][0] != second:
                continue
            device_key = flow.device_mac or (f"ip:{flow.device_ip}" if flow.device_ip else None)
            if device_key is None:
                continue
            destination = self.destination_of(flow.remote_ip, event.ts)
            if (destination.local and not self.settings.include_local) or is_multicast_text(
                destination.ip
            ):
                continue
            group = destination.org or destination.ip
            seconds.setdefault((device_key, group), []).append((flow, destination, bins[-1]))
        for key, entries in seconds.items():
            self._second(key, second, entries)
        self._close_quiet(second)

    def _pair(self, key: tuple[str, str]) -> _Pair:
        pair = self.pairs.get(key)
        if pair is None:
            if len(self.pairs) >= self.max_pairs:
                oldest_key, oldest = next(iter(self.pairs.items()))
                self._close(oldest_key, oldest)
                del self.pairs[oldest_key]
            pair = self.pairs[key] = _Pair(key[0])
        else:
            self.pairs.move_to_end(key)
        return pair

    def _threshold(self, pair: _Pair, second: int) -> float:
        settings = self.settings
        window_start = second - settings.baseline_window_s
        baseline = pair.baseline
        while baseline and baseline[0][0] < window_start:
            baseline.popleft()
            pair.cached_threshold = None
        if pair.cached_threshold is None:
            if len(baseline) >= _MIN_BASELINE_SAMPLES:
                rates = sorted(rate for _sec, rate in baseline)
                index = min(len(rates) - 1, int(settings.baseline_quantile * len(rates)))
                level = rates[index] * settings.baseline_factor
            else:
                level = 0.0
            pair.cached_threshold = max(settings.floor_bps, level)
        return pair.cached_threshold

    def _second(self, key: tuple[str, str], second: int, entries: list) -> None:
        up = sum(b[1] for _f, _d, b in entries)
        down = sum(b[2] for _f, _d, b in entries)
        pkts = sum(b[3] for _f, _d, b in entries)
        pair = self._pair(key)
        pair.last_second = second
        burst = pair.burst
        floor = self.settings.floor_bps
        if burst is None:
            if up >= self._threshold(pair, second):
                burst = pair.burst = _Burst(start=second, last=second, strong=1)
                burst.dominant = int(up >= self.settings.audio_dominance * down)
                burst.add(up, down, pkts, entries)
                self.open[key] = pair
            elif up:
                pair.baseline.append((second, up))
                pair.cached_threshold = None
            return
        if up >= floor:
            for pending in burst.pending:
                burst.add(*pending)
            burst.pending.clear()
            burst.add(up, down, pkts, entries)
            burst.last = second
            burst.strong += 1
            burst.dominant += up >= self.settings.audio_dominance * down
        else:
            burst.pending.append((up, down, pkts, entries))
        if second - burst.start + 1 >= self.settings.max_duration_s:
            # A stream this long is the pair's new normal: it becomes baseline, so a steady
            # stream is reported once, not once per max_duration.
            mean = burst.bytes_up // (second - burst.start + 1)
            pair.baseline.extend((s, mean) for s in range(burst.start, second + 1))
            pair.cached_threshold = None
            self._close(key, pair)

    def _close_quiet(self, second: int) -> None:
        gap = self.settings.gap_s
        for key, pair in list(self.open.items()):
            if pair.burst is not None and second - pair.burst.last >= gap:
                self._close(key, pair)

    def on_shutdown(self, _event: Shutdown) -> None:
        for key, pair in list(self.open.items()):
            self._close(key, pair)

    # -- emission -----------------------------------------------------------------------------

    def _close(self, key: tuple[str, str], pair: _Pair) -> None:
        burst = pair.burst
        pair.burst = None
        self.open.pop(key, None)
        if burst is None or burst.bytes_up < self.settings.min_bytes:
            return
        device = self.device_of(key[0])
        if device is None:
            return
        settings = self.settings
        duration = float(burst.last - burst.start + 1)
        main_ip = max(burst.by_ip.items(), key=lambda item: item[1])[0]
        destination = self.destination_of(main_ip, float(burst.last))
        category = device.user_category or device.category
        shape = shape_of(
            settings,
            duration,
            burst.bytes_up,
            burst.bytes_down,
            burst.strong,
            category,
            burst.dominant,
        )
        self.emitted += 1
        self.emit(
            UploadBurst(
                device=device,
                destination=destination,
                ts_start=float(burst.start),
                ts_end=float(burst.last + 1),
                bytes_up=burst.bytes_up,
                bytes_down=burst.bytes_down,
                packets_up=burst.packets_up,
                duration_s=duration,
                mean_kbps=round(burst.bytes_up / duration / 1000, 3),
                peak_kbps=round(burst.peak / 1000, 3),
                shape=shape,
                audio_seconds=round(burst.bytes_up / settings.voice_bps, 1),
                dest_ips=sorted(burst.by_ip),
                services=sorted(burst.services),
                transports=sorted(burst.transports),
            )
        )
