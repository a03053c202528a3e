"""Configuration: one registry of options, read from TOML, the environment and the command line.

Every option is declared once in :data:`OPTIONS` with its type, default and help. The same entry
gives its TOML key (``[section] name``), its environment variable (``MICWATCH_SECTION_NAME``) and
its command-line flag (``--section-name``, plus a short alias for the common ones), and writes the
commented default file (``micwatch config --defaults``).

Precedence, lowest first: defaults, the TOML file, the dashboard's ``settings.toml`` in the state
directory (what the user changed on the Settings and Rules pages), ``MICWATCH_*`` variables,
command-line flags.
Guarantee: :func:`load` either returns a fully validated :class:`Config` or raises
:class:`~monitor.errors.ConfigError` whose message names the option, where the bad value came from
and what the option accepts; micwatch refuses to start rather than run on a guess.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h``, ``30d`` or ``2w``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text).lower())
    if not match:
        raise ValueError("a duration such as 90s, 15m, 12h or 30d")
    return float(match.group(1)) * _DURATION_UNITS.get(match.group(2) or "s", 1)


def parse_size(text: str | int) -> int:
    """Bytes from ``1048576``, ``500MB``, ``2GiB``..."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)\s*", str(text).lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError("a size such as 500MB, 2GB or 1GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("true or false")


def _parse_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        items = [v.strip() for v in str(value).split(",")]
    return [v for v in items if v]


_KINDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "str": (lambda v: str(v), "text"),
    "int": (lambda v: int(v) if not isinstance(v, bool) else _bad(), "a whole number"),
    "float": (lambda v: float(v) if not isinstance(v, bool) else _bad(), "a number"),
    "bool": (_parse_bool, "true or false"),
    "list": (_parse_list, "a list (comma-separated on the command line)"),
    "duration": (parse_duration, "a duration such as 90s, 15m, 12h or 30d"),
    "size": (parse_size, "a size such as 500MB, 2GB or 1GiB"),
}


def _bad() -> Any:
    raise ValueError


@dataclass(frozen=True)
class Option:
    """One configuration option. ``key`` is ``section.name``; ``kind`` one of :data:`_KINDS`."""

    key: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    alias: str | None = None

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    @property
    def env(self) -> str:
        return "MICWATCH_" + self.key.replace(".", "_").upper()

    @property
    def flag(self) -> str:
        return "--" + self.key.replace(".", "-").replace("_", "-")

    def accepts(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        text = _KINDS[self.kind][1]
        if self.minimum is not None and self.maximum is not None:
            text += f" from {self.minimum:g} to {self.maximum:g}"
        elif self.minimum is not None:
            text += f" of at least {self.minimum:g}"
        return text

    def convert(self, value: Any, origin: str) -> Any:
        """The typed value, or ConfigError naming the option, the origin and what it accepts."""
        try:
            typed = _KINDS[self.kind][0](value)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{origin}: option {self.key} = {value!r} is not valid; it accepts {self.accepts()}"
            ) from None
        bad = (
            (self.choices and typed not in self.choices)
            or (self.minimum is not None and typed < self.minimum)
            or (self.maximum is not None and typed > self.maximum)
        )
        if bad:
            raise ConfigError(
                f"{origin}: option {self.key} = {value!r} is not valid; it accepts {self.accepts()}"
            )
        return typed


# The registry. Sections: capture, decode, flows, network, classify, enrich, store, detect,
# rules, notify, dashboard. Keep help texts one sentence a user can act on.
OPTIONS: tuple[Option, ...] = (
    # --- capture ---
    Option(
        "capture.interface",
        "str",
        "",
        "Network interface to capture on live (e.g. eth0).",
        alias="-i",
    ),
    Option(
        "capture.filter",
        "str",
        "",
        "BPF filter applied to live capture (tcpdump syntax).",
        alias="--filter",
    ),
    Option(
        "capture.snaplen",
        "int",
        65535,
        "Bytes kept of each packet by the capture.",
        minimum=64,
        maximum=262144,
    ),
    Option("capture.buffer_size", "size", "16MB", "Kernel capture buffer size.", minimum=65536),
    Option("capture.promiscuous", "bool", True, "Capture other hosts' traffic, not only ours."),
    Option(
        "capture.stats_interval",
        "duration",
        "60s",
        "How often the live daemon logs capture statistics.",
        minimum=1,
    ),
    Option(
        "capture.intercept",
        "list",
        [],
        "Devices (MAC or IPv4 addresses, or 'all') whose traffic micwatch intercepts by ARP on "
        "capture.interface; empty means no interception.",
    ),
    Option(
        "capture.intercept_allow_large",
        "bool",
        False,
        "Allow ARP interception on a network larger than a /22.",
    ),
    Option(
        "capture.intercept_interval",
        "duration",
        "2s",
        "How often the ARP interception repeats its replies (jittered by a quarter).",
        minimum=0.5,
        maximum=30,
    ),
    Option(
        "capture.intercept_rescan",
        "duration",
        "5m",
        "How often interception of 'all' (or of a device not found yet) looks for new devices.",
        minimum=1,
    ),
    Option(
        "capture.gateway",
        "str",
        "",
        "IPv4 address of the home router for ARP interception; empty means the default route's.",
    ),
    Option(
        "capture.command",
        "str",
        "",
        "Command whose standard output is a pcap stream to capture from, restarted when it ends "
        "(e.g. ssh root@router tcpdump -i br-lan -U -w -).",
    ),
    Option(
        "capture.command_retry_max",
        "duration",
        "60s",
        "Longest wait before restarting a capture command that ended (the wait doubles from 1s).",
        minimum=1,
    ),
    # --- flows ---
    Option(
        "flows.idle_timeout_tcp",
        "duration",
        "5m",
        "A TCP flow ends after this long idle.",
        minimum=1,
    ),
    Option(
        "flows.idle_timeout_udp",
        "duration",
        "60s",
        "A UDP or other flow ends after this long idle.",
        minimum=1,
    ),
    Option(
        "flows.active_timeout",
        "duration",
        "1h",
        "A flow is reported and restarted after this long even if still active.",
        minimum=10,
    ),
    Option(
        "flows.max_flows",
        "int",
        50000,
        "Hard cap on flows held in memory (about 0.8 kB each, 40 MB at this default; a home has "
        "a few thousand); the least recently active are evicted beyond it.",
        minimum=100,
    ),
    Option(
        "flows.max_devices",
        "int",
        4096,
        "Hard cap on devices held in memory (about 2.2 kB each); when full, the eighth seen "
        "longest ago are forgotten to make room, at most every 10 seconds.",
        minimum=16,
    ),
    Option(
        "flows.bin_seconds",
        "int",
        180,
        "Seconds of per-second upstream counts each flow keeps for burst detection.",
        minimum=10,
        maximum=3600,
    ),
    # --- network ---
    Option(
        "network.lan",
        "list",
        [],
        "LAN prefixes that are 'the home' (e.g. 192.168.1.0/24); empty means the capture "
        "interface's networks live, or the private and link-local ranges for a file.",
    ),
    # --- classify ---
    Option(
        "classify.min_confidence",
        "float",
        0.35,
        "A device whose best category has a lower confidence stays unknown, its evidence "
        "still listed.",
        minimum=0.0,
        maximum=1.0,
    ),
    Option(
        "classify.switch_margin",
        "float",
        0.15,
        "A classified device changes category only when the new category's score beats the "
        "current one's by this much.",
        minimum=0.0,
        maximum=1.0,
    ),
    Option(
        "classify.signatures",
        "list",
        [],
        "Extra device signature files or folders, read after the builtin ones and the "
        "signatures.d folders; a signature with the same id replaces the earlier one.",
    ),
    # --- enrich ---
    Option(
        "enrich.home",
        "list",
        ["auto"],
        "Home set: country codes (FR, DE...) and/or presets EU, EEA, GDPR-adequate; auto "
        "derives the country from the system time zone.",
        alias="--home",
    ),
    Option(
        "enrich.maxmind_db",
        "str",
        "",
        "Optional MaxMind-format .mmdb: GeoLite2 ASN names the operator of unnamed addresses; "
        "a City or Country database's country replaces the registry's.",
    ),
    Option(
        "enrich.oui_file",
        "str",
        "",
        "Optional newer vendor table layered over the built-in one: an IEEE "
        "oui.csv/mam.csv/oas.csv (or .txt) or a Wireshark manuf file.",
    ),
    # --- store ---
    Option(
        "store.db",
        "str",
        "",
        "Database URL (SQLAlchemy): empty means SQLite in the state directory; "
        "postgresql+psycopg://... for a shared server.",
        alias="--db",
    ),
    Option(
        "store.state_dir",
        "str",
        "",
        "Where micwatch keeps its database and state; empty means /var/lib/micwatch as root, "
        "else ~/.local/state/micwatch.",
    ),
    Option("store.retention", "duration", "30d", "How long stored metadata is kept.", minimum=3600),
    Option(
        "store.batch_seconds",
        "float",
        1.0,
        "The writer flushes at least this often (seconds).",
        minimum=0.05,
        maximum=60,
    ),
    Option(
        "store.sensor",
        "str",
        "",
        "Name of this sensor when several write to one database; empty means the host name.",
    ),
    Option(
        "store.max_size",
        "size",
        "500MB",
        "Hard cap on the SQLite database (file and WAL): beyond it the oldest traffic and "
        "events are deleted first, alerts last; 0 means no cap.",
    ),
    # --- detect ---
    Option(
        "detect.floor_kBps",
        "float",
        2.0,
        "A burst opens only above this upstream rate (kB/s) to one destination.",
        minimum=0.1,
    ),
    Option(
        "detect.baseline_factor",
        "float",
        3.0,
        "A burst opens only above this multiple of the device's idle baseline.",
        minimum=1.0,
    ),
    Option(
        "detect.baseline_quantile",
        "float",
        0.9,
        "Quantile of a device's recent active seconds taken as its idle baseline.",
        minimum=0.5,
        maximum=1.0,
    ),
    Option(
        "detect.baseline_window",
        "duration",
        "10m",
        "How much recent traffic the idle baseline is learnt from.",
        minimum=30,
    ),
    Option(
        "detect.gap",
        "duration",
        "3s",
        "Quiet time that closes a burst; the burst is reported then.",
        minimum=1,
    ),
    Option(
        "detect.min_bytes", "size", "8kB", "Smallest upstream burst reported (bytes).", minimum=1000
    ),
    Option(
        "detect.max_duration",
        "duration",
        "10m",
        "A longer burst is reported and a new one started.",
        minimum=10,
    ),
    Option(
        "detect.audio_min_s",
        "float",
        3.0,
        "Fewest sustained seconds (at or above the floor) of an audio burst.",
        minimum=1,
    ),
    Option(
        "detect.audio_max_s",
        "float",
        300.0,
        "Longest burst still called audio (a live microphone), seconds.",
        minimum=5,
    ),
    Option(
        "detect.audio_min_kBps",
        "float",
        1.5,
        "Lowest mean upstream rate of an audio burst (Opus speech is 2-8 kB/s).",
        minimum=0.1,
    ),
    Option(
        "detect.audio_max_kBps",
        "float",
        48.0,
        "Highest mean upstream rate of an audio burst (16 kHz 16-bit PCM is 32 kB/s).",
        minimum=1,
    ),
    Option(
        "detect.audio_min_up_ratio",
        "float",
        0.6,
        "Share of the burst's bytes that must go upstream for audio.",
        minimum=0,
        maximum=1,
    ),
    Option(
        "detect.video_min_s",
        "float",
        3.0,
        "Shortest burst above the audio rate that is called video (seconds).",
        minimum=1,
    ),
    Option(
        "detect.voice_kBps",
        "float",
        8.0,
        "Voice bitrate (kB/s) used to turn bytes into audio_seconds.",
        minimum=0.5,
    ),
    Option(
        "detect.audio_min_density",
        "float",
        0.6,
        "Share of an audio burst's seconds that must be at or above the floor.",
        minimum=0,
        maximum=1,
    ),
    Option(
        "detect.audio_dominance",
        "float",
        4.0,
        "A second is upstream-dominant when it sends this many times more than it receives.",
        minimum=1,
    ),
    Option(
        "detect.audio_min_dominant",
        "float",
        0.75,
        "Share of an audio burst's sustained seconds that must be upstream-dominant.",
        minimum=0,
        maximum=1,
    ),
    Option(
        "detect.no_mic_categories",
        "list",
        ["plug", "light", "sensor", "meter", "printer", "network"],
        "Device categories without a microphone: their bursts are never called audio.",
    ),
    Option(
        "detect.include_local",
        "bool",
        False,
        "Also report bursts to devices inside the home (LAN), not only to the outside.",
    ),
    # --- rules ---
    Option(
        "rules.paths",
        "list",
        [],
        "Extra rule directories or files, read after the built-in rules and the user's "
        "rules.d (/etc/micwatch/rules.d as root, else ~/.config/micwatch/rules.d); a rule "
        "with an earlier rule's id replaces it.",
    ),
    Option(
        "rules.indicators",
        "list",
        [],
        "Indicator list files or directories (STIX2 bundles or host lists), read besides the "
        "lists imported with micwatch indicators import.",
    ),
    Option(
        "rules.timezone",
        "str",
        "",
        "Time zone of the rules' time-of-day conditions (e.g. Europe/Paris); empty means the "
        "system's.",
    ),
    Option(
        "rules.night",
        "str",
        "22:00-07:00",
        "The night hours (HH:MM-HH:MM, may wrap midnight) that rules with hours: night use.",
    ),
    # --- notify ---
    Option(
        "notify.targets",
        "list",
        [],
        "Where notifications go: apprise URLs (ntfy://host/topic, gotify://, mailto://, "
        "tgram://, matrix://, json://...); empty means no notifications.",
    ),
    Option(
        "notify.now_levels",
        "list",
        ["high", "medium"],
        "Alert levels notified at once (after grouping); the other levels go to the daily digest.",
    ),
    Option(
        "notify.group_window",
        "duration",
        "60s",
        "Alerts raised within this time after a first one are sent together as one message.",
        maximum=3600,
    ),
    Option(
        "notify.min_interval",
        "duration",
        "60s",
        "At most one message per this interval; alerts meanwhile join the next message.",
        maximum=86400,
    ),
    Option(
        "notify.quiet_hours",
        "str",
        "",
        "Hours (HH:MM-HH:MM, local time, may wrap midnight) when only high alerts are sent; "
        "the others wait until the quiet hours end. Empty means none.",
    ),
    Option(
        "notify.digest_at",
        "str",
        "08:00",
        "Local time (HH:MM) of the daily digest of the alerts not sent at once.",
    ),
    Option(
        "notify.max_queue",
        "int",
        100,
        "Messages kept per target while it is down; beyond, the oldest without a high alert "
        "is dropped.",
        minimum=1,
    ),
    Option(
        "notify.language",
        "str",
        "",
        "Language of notifications (titles and messages); empty means dashboard.language, "
        "else English.",
        choices=("", "en", "fr"),
    ),
    Option(
        "notify.mqtt",
        "str",
        "",
        "MQTT broker for Home Assistant (mqtt://user:password@host:1883); empty means off.",
    ),
    Option(
        "notify.mqtt_discovery_prefix",
        "str",
        "homeassistant",
        "Home Assistant's MQTT discovery prefix.",
    ),
    # --- health ---
    Option(
        "health.stall_after",
        "duration",
        "5m",
        "Notify when live capture receives no packet for this long.",
        minimum=10,
    ),
    Option(
        "health.loss_threshold",
        "float",
        0.01,
        "Notify when the kernel drops more than this share of packets between two reports.",
        minimum=0,
        maximum=1,
    ),
    Option(
        "health.disk_min_free",
        "size",
        "100MB",
        "Notify when the disk holding the state directory has less free space than this.",
        minimum=0,
    ),
    # --- dashboard ---
    Option(
        "dashboard.bind",
        "str",
        "",
        "Address and port the dashboard listens on (e.g. 127.0.0.1:8080); empty means the "
        "address of the interface holding the default route, port 8080.",
        alias="--bind",
    ),
    Option(
        "dashboard.secret_file",
        "str",
        "",
        "File holding the key that signs dashboard sessions; empty means dashboard_secret in "
        "the state directory (created with mode 0600).",
    ),
    Option(
        "dashboard.secure_cookie",
        "bool",
        False,
        "Send the session cookie over https only (set this when a proxy serves the dashboard "
        "over https).",
    ),
    Option(
        "dashboard.language",
        "str",
        "",
        "Language of the dashboard and the report; empty follows the browser.",
        choices=("", "en", "fr"),
    ),
    Option(
        "dashboard.disabled_rules",
        "list",
        [],
        "Ids of rules switched off on the dashboard's Rules page; the daemon skips them.",
    ),
)

OPTIONS_BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}


class Config(Mapping[str, Any]):
    """Validated option values, read-only, indexed by ``section.name``."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str]) -> None:
        self._values = values
        self.sources = sources

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **overrides: Any) -> Config:
        """A copy with some options replaced (keys with ``__`` for ``.``), validated."""
        values = dict(self._values)
        for key, value in overrides.items():
            option = OPTIONS_BY_KEY[key.replace("__", ".", 1)]
            values[option.key] = option.convert(value, "override")
        return Config(values, dict(self.sources))


def default_config_paths() -> list[Path]:
    """Where the TOML file is looked for, first found wins."""
    paths = [Path("/etc/micwatch/micwatch.toml")]
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths.insert(0, Path(home) / "micwatch" / "micwatch.toml")
    return paths


def load(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from defaults, the file, the environment and CLI values.

    ``path`` None searches :func:`default_config_paths`; a given path must exist. ``cli`` maps
    option keys to values given on the command line (None values are ignored).
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {o.key: o.convert(o.default, "default") for o in OPTIONS}
    sources = {o.key: "default" for o in OPTIONS}
    file_path: Path | None = None
    if path is not None:
        file_path = Path(path)
        if not file_path.is_file():
            raise ConfigError(f"configuration file {file_path} does not exist")
    else:
        file_path = next((p for p in default_config_paths() if p.is_file()), None)
    if file_path is not None:
        _apply_file(file_path, values, sources)
    settings = _settings_file(values, env, cli or {})
    if settings.is_file():
        _apply_file(settings, values, sources)
    for option in OPTIONS:
        if option.env in env:
            values[option.key] = option.convert(env[option.env], f"environment {option.env}")
            sources[option.key] = "environment"
    for key, value in (cli or {}).items():
        if value is None:
            continue
        option = OPTIONS_BY_KEY.get(key)
        if option is None:
            raise ConfigError(f"unknown option {key}")
        values[key] = option.convert(value, f"command line {option.flag}")
        sources[key] = "command line"
    return Config(values, sources)


def _settings_file(values: dict[str, Any], env: Mapping[str, str], cli: Mapping[str, Any]) -> Path:
    """The dashboard's settings file, in the state directory the other sources name."""
    from monitor.settings_file import settings_path

    option = OPTIONS_BY_KEY["store.state_dir"]
    configured = values[option.key]
    if option.env in env:
        configured = option.convert(env[option.env], f"environment {option.env}")
    if cli.get(option.key) is not None:
        configured = option.convert(cli[option.key], f"command line {option.flag}")
    return settings_path(configured)


def _apply_file(path: Path, values: dict[str, Any], sources: dict[str, str]) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: '{section}' must be a [section] table; sections are "
                + ", ".join(sorted({o.section for o in OPTIONS}))
            )
        for name, value in table.items():
            key = f"{section}.{name}"
            option = OPTIONS_BY_KEY.get(key)
            if option is None:
                known = sorted(o.name for o in OPTIONS if o.section == section)
                hint = f"; [{section}] accepts {', '.join(known)}" if known else ""
                raise ConfigError(f"{path}: unknown option {key}{hint}")
            values[key] = option.convert(value, str(path))
            sources[key] = str(path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def defaults_toml() -> str:
    """The commented default configuration file: every option, its help and default."""
    lines = [
        "# micwatch configuration. Every option below shows its default, commented out.",
        "# Each can also be set as an environment variable MICWATCH_SECTION_NAME or a",
        "# command-line flag --section-name.",
    ]
    section = None
    for option in OPTIONS:
        if option.section != section:
            section = option.section
            lines += ["", f"[{section}]"]
        lines.append(f"# {option.help} Accepts {option.accepts()}.")
        lines.append(f"# {option.name} = {_toml_value(option.default)}")
    return "\n".join(lines) + "\n"
