"""When an alert becomes a notification: routing by level, grouping, rate limit, quiet hours and
the daily digest. Pure logic on an injected clock; :mod:`monitor.notify` runs it in a thread.

Guarantees (``now`` is wall-clock epoch seconds, hours are local time):

- An alert whose level is in ``now_levels`` joins the open *group*; every other alert joins the
  *digest*. Nothing is dropped here except digest lines beyond :data:`DIGEST_MAX_LINES` (they
  are counted in the digest's last line).
- A group is released as ONE message ``group_window`` seconds after its first alert, and never
  sooner than ``min_interval`` seconds after the previous group: alerts arriving meanwhile join
  it, so ten bursts in a minute make one message.
- During ``quiet_hours`` a group is held until the quiet hours end, unless it holds a ``high``
  alert: a device sending what it hears abroad is worth waking up for. Held alerts are then
  sent as one message.
- The digest is released once a day at ``digest_at`` when it holds at least one alert.
- :meth:`Policy.flush` releases the group at once (shutdown), quiet hours still respected.
- Messages are written in ``language`` (see :func:`monitor.alert_i18n.notify_language`): each
  alert's title and message through :func:`monitor.alert_i18n.alert_text` with the rules of
  ``engine``, and the words around them from the catalogue. They are written when a message is
  released, on the worker thread, never when an alert is added.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from babel.numbers import format_decimal

from monitor.alert_i18n import alert_text, catalogue, notify_language
from monitor.model import Alert

if TYPE_CHECKING:
    from rules.engine import RuleEngine

LEVELS = ("low", "medium", "high")
#: Alert lines listed in one digest message; the rest are counted.
DIGEST_MAX_LINES = 50
#: Alert lines listed in one grouped message; the rest are counted.
GROUP_MAX_LINES = 20


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: what every target receives. ``level`` is the highest alert level in
    it (``info`` for tests and health notes without alerts)."""

    title: str
    body: str
    level: str
    alerts: int = 1


def parse_hhmm(text: str) -> tuple[int, int]:
    """``(hour, minute)`` from ``"HH:MM"``; ValueError otherwise."""
    hour, _, minute = text.strip().partition(":")
    h, m = int(hour), int(minute)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"not a time of day: {text!r}")
    return h, m


def parse_quiet_hours(text: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``((h, m), (h, m))`` from ``"22:00-07:00"`` (may wrap midnight); None for ``""``."""
    if not text.strip():
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"quiet hours must be HH:MM-HH:MM, not {text!r}")
    return parse_hhmm(start), parse_hhmm(end)


@dataclass
class PolicySettings:
    """The ``notify.*`` options the policy uses."""

    now_levels: frozenset[str] = frozenset({"high", "medium"})
    group_window: float = 60.0
    min_interval: float = 60.0
    quiet_hours: str = ""
    digest_at: str = "08:00"
    language: str = "en"

    @classmethod
    def from_config(cls, config: Any) -> PolicySettings:
        return cls(
            now_levels=frozenset(config["notify.now_levels"]),
            group_window=config["notify.group_window"],
            min_interval=config["notify.min_interval"],
            quiet_hours=config["notify.quiet_hours"],
            digest_at=config["notify.digest_at"],
            language=notify_language(config),
        )


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


def _minutes(hm: tuple[int, int]) -> int:
    return hm[0] * 60 + hm[1]


@dataclass
class Policy:
    """Routing, timing and wording of notifications; see the module docstring. ``engine``
    holds the rules' translations (None: each alert in its stored words)."""

    settings: PolicySettings
    clock: Callable[[], float] = time.time
    engine: RuleEngine | None = None
    _group: list[Alert] = field(default_factory=list)
    _group_opened: float = 0.0
    _last_sent: float = float("-inf")
    _digest: list[Alert] = field(default_factory=list)
    _digest_extra: int = 0
    _next_digest: float = 0.0

    def __post_init__(self) -> None:
        self._quiet = parse_quiet_hours(self.settings.quiet_hours)
        self._digest_hm = parse_hhmm(self.settings.digest_at)
        self._next_digest = self._next_digest_after(self.clock())

    def add(self, alert: Alert) -> None:
        """Route one alert to the group or the digest."""
        if alert.level in self.settings.now_levels:
            if not self._group:
                self._group_opened = self.clock()
            self._group.append(alert)
        elif len(self._digest) < DIGEST_MAX_LINES:
            self._digest.append(alert)
        else:
            self._digest_extra += 1

    def due(self) -> list[Message]:
        """The messages to send now (possibly none)."""
        now = self.clock()
        out: list[Message] = []
        ready = max(
            self._group_opened + self.settings.group_window,
            self._last_sent + self.settings.min_interval,
        )
        if self._group and now >= ready:
            out += self._release_group(now)
        if now >= self._next_digest:
            self._next_digest = self._next_digest_after(now)
            if self._digest:
                out.append(self._digest_message())
        return out

    def flush(self) -> list[Message]:
        """Release the open group now (at shutdown), unless quiet hours hold it."""
        return self._release_group(self.clock()) if self._group else []

    def quiet(self, now: float) -> bool:
        """True during the quiet hours."""
        if self._quiet is None:
            return False
        local = _local(now)
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self._quiet[0]), _minutes(self._quiet[1])
        return start <= minute < end if start <= end else minute >= start or minute < end

    def _release_group(self, now: float) -> list[Message]:
        if self.quiet(now) and not any(a.level == "high" for a in self._group):
            return []
        group, self._group = self._group, []
        self._last_sent = now
        return [self._group_message(group)]

    def _group_message(self, alerts: list[Alert]) -> Message:
        """One message for a group: a single alert as itself, several as a list."""
        level = _highest(alerts)
        words = catalogue(self.settings.language)
        if len(alerts) == 1:
            title, message = alert_text(alerts[0], self.settings.language, self.engine)
            return Message(title or words.gettext("micwatch alert"), message, level)
        lines = self._lines(alerts[:GROUP_MAX_LINES], len(alerts) - GROUP_MAX_LINES)
        title = words.gettext("micwatch: %(n)s alerts") % {"n": self._number(len(alerts))}
        return Message(title, lines, level, len(alerts))

    def _digest_message(self) -> Message:
        alerts, extra = self._digest, self._digest_extra
        self._digest, self._digest_extra = [], 0
        total = len(alerts) + extra
        title = catalogue(self.settings.language).ngettext(
            "micwatch daily digest: %(n)s alert", "micwatch daily digest: %(n)s alerts", total
        ) % {"n": self._number(total)}
        return Message(title, self._lines(alerts, extra), _highest(alerts), total)

    def _lines(self, alerts: list[Alert], more: int) -> str:
        """One line per alert (its local time and message), then how many more when ``more``."""
        language = self.settings.language
        lines = [f"- {_hhmm(a.ts)} {alert_text(a, language, self.engine)[1]}" for a in alerts]
        if more > 0:
            more_text = catalogue(language).gettext("... and %(n)s more: see the dashboard.")
            lines.append(more_text % {"n": self._number(more)})
        return "\n".join(lines)

    def _number(self, n: int) -> str:
        return format_decimal(n, locale=self.settings.language)

    def _next_digest_after(self, now: float) -> float:
        local = _local(now)
        target = local.replace(
            hour=self._digest_hm[0], minute=self._digest_hm[1], second=0, microsecond=0
        )
        if target.timestamp() <= now:
            target += timedelta(days=1)
        return target.timestamp()


def _highest(alerts: list[Alert]) -> str:
    return max((a.level for a in alerts), key=_rank, default="low")


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def _hhmm(ts: float) -> str:
    return _local(ts).strftime("%H:%M")
