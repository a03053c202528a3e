"""The rules engine: runs compiled rules on events and raises alerts.

Guarantees:

* :meth:`RuleEngine.evaluate` flattens an event once and runs only the enabled rules listening to
  it; a rule that raises is logged once, counted and skipped, never fatal to the others.
* An allow rule that matches an event suppresses, for that event, the alerts of the rules it
  applies to (every rule when it has no ``applies_to``). Allowed and muted matches neither alert
  nor start a suppression period.
* Suppression: after an alert, the same rule and suppression key stay quiet until
  ``ts + period``, measured on event timestamps (a replay behaves like live capture); the state is
  in memory, bounded (least recently used entries are dropped first).
* :meth:`RuleEngine.reload` is atomic per file: a file that fails to load keeps its previous
  version running (status ``stale``) while its errors are reported; a deleted file's rule goes.
  It swaps the new rule set in with one assignment, so it may run on another thread than
  :meth:`evaluate` (one reloader at a time).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.events import AlertRaised, Event
from monitor.model import Alert
from rules.conditions import Context, parse_hours, parse_timezone
from rules.fields import flatten
from rules.indicators import IndicatorSet
from rules.loader import (
    DEFAULT_NIGHT,
    Stamp,
    duplicate_error,
    load_rule_file,
    rule_files,
    snapshot,
    stamp,
)
from rules.schema import Rule, RuleError

log = logging.getLogger(__name__)

#: Default bound on the suppression entries kept in memory.
MAX_SUPPRESSIONS = 10_000

Muted = Callable[[str, str | None], bool]


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """One line of the rule listing.

    ``status`` is ``active``, ``disabled`` (switched off in the file or by :meth:`set_enabled`),
    ``stale`` (the file is broken; its previous version runs), ``error`` (broken, nothing runs),
    ``overridden`` (a later directory has a rule with this id) or ``duplicate`` (an earlier file of
    the same directory has this id). ``id`` is None when a broken file never loaded.
    """

    id: str | None
    path: Path
    status: str
    title: str = ""
    level: str = ""
    events: tuple[str, ...] = ()
    action: str = ""
    enabled: bool = False
    error: str | None = None
    alerts: int = 0
    suppressed: int = 0
    failures: int = 0


@dataclass(slots=True)
class _File:
    stamp: Stamp | None
    rule: Rule | None
    errors: list[RuleError]


class RuleEngine:
    """Loads rule files from ``paths`` (in override order, see :mod:`rules.loader`) and evaluates
    events against them (see the module guarantees).

    ``timezone`` is an IANA name or "" for the system's; ``night`` the hours ``hours: night``
    means. ``muted(rule_id, device_mac)`` returning True drops that alert (the user muted it).
    Raises ConfigError for an unknown time zone or malformed night hours; broken rule files are
    not fatal (see :attr:`errors`).
    """

    def __init__(
        self,
        paths: list[Path],
        indicators: IndicatorSet | None = None,
        timezone: str = "",
        muted: Muted | None = None,
        *,
        night: str = DEFAULT_NIGHT,
        max_suppressions: int = MAX_SUPPRESSIONS,
    ) -> None:
        try:
            tz = parse_timezone(timezone)
        except ValueError as exc:
            raise ConfigError(f"option rules.timezone: {exc}") from None
        try:
            night_hours = parse_hours(night)
        except ValueError as exc:
            raise ConfigError(f"option rules.night: {exc}") from None
        self.paths = [Path(p) for p in paths]
        self.muted = muted
        self.max_suppressions = max_suppressions
        self._ctx = Context(
            indicators if indicators is not None else IndicatorSet(), tz, night_hours
        )
        self._files: dict[Path, _File] = {}
        self._snapshot: dict[Path, Stamp | None] = {}
        self._overrides: dict[str, bool] = {}
        self._statuses: list[RuleStatus] = []
        self._active: dict[str, Rule] = {}
        self._by_event: dict[str, tuple[tuple[Rule, ...], tuple[Rule, ...]]] = {}
        self._errors: list[RuleError] = []
        self._suppressed: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._counts: dict[str, list[int]] = {}
        self.reload()

    # -- loading -------------------------------------------------------------------------------

    @property
    def indicators(self) -> IndicatorSet:
        """The indicator lists ``|indicator`` conditions use; assign to replace them."""
        return self._ctx.indicators

    @indicators.setter
    def indicators(self, value: IndicatorSet) -> None:
        self._ctx.indicators = value

    @property
    def errors(self) -> list[RuleError]:
        """The problems found by the last reload (broken files, duplicate ids)."""
        return list(self._errors)

    def changed(self) -> bool:
        """True when a rule file appeared, disappeared or changed (mtime or size) since the last
        reload. Costs one directory listing and one stat per file."""
        return snapshot(self.paths) != self._snapshot

    def reload(self) -> list[RuleError]:
        """Re-read the rule files and return every current problem (see module guarantees).

        Unchanged files (same mtime and size) are not parsed again.
        """
        files: dict[Path, _File] = {}
        errors: list[RuleError] = []
        found = rule_files(self.paths)
        for _, path in found:
            now = stamp(path)
            old = self._files.get(path)
            if old is not None and old.stamp == now and now is not None:
                files[path] = old
            else:
                rule, file_errors = load_rule_file(path, self._ctx)
                if rule is None and old is not None:
                    rule = old.rule
                files[path] = _File(now, rule, file_errors)
            errors += files[path].errors
        statuses: dict[Path, RuleStatus] = {}
        chosen: dict[str, tuple[int, Rule]] = {}
        for index, path in found:
            entry = files[path]
            rule = entry.rule
            if rule is None:
                statuses[path] = RuleStatus(None, path, "error", error=_first(entry.errors))
                continue
            previous = chosen.get(rule.id)
            if previous is not None and previous[0] == index:
                error = duplicate_error(rule, previous[1].path)
                errors.append(error)
                statuses[path] = self._status(rule, "duplicate", str(error))
                continue
            if previous is not None:
                statuses[previous[1].path] = self._status(
                    previous[1], "overridden", f"replaced by {path}"
                )
            chosen[rule.id] = (index, rule)
            state = "stale" if entry.errors else "active"
            statuses[path] = self._status(rule, state, _first(entry.errors))
        self._files = files
        self._snapshot = {path: entry.stamp for path, entry in files.items()}
        self._active = {rule_id: rule for rule_id, (_, rule) in chosen.items()}
        self._errors = errors
        self._statuses = [statuses[path] for _, path in found]
        self._index()
        return list(errors)

    def _status(self, rule: Rule, state: str, error: str | None) -> RuleStatus:
        return RuleStatus(
            rule.id,
            rule.path,
            state,
            rule.title,
            rule.level,
            rule.events,
            rule.action,
            rule.enabled,
            error,
        )

    def _enabled(self, rule: Rule) -> bool:
        return self._overrides.get(rule.id, rule.enabled)

    def _index(self) -> None:
        by_event: dict[str, tuple[list[Rule], list[Rule]]] = {}
        for rule in self._active.values():
            if not self._enabled(rule):
                continue
            for event in rule.events:
                alerts, allows = by_event.setdefault(event, ([], []))
                (allows if rule.action == "allow" else alerts).append(rule)
        self._by_event = {
            event: (tuple(alerts), tuple(allows))
            for event, (alerts, allows) in by_event.items()
            if alerts
        }

    # -- listing and switches ------------------------------------------------------------------

    @property
    def rules(self) -> list[RuleStatus]:
        """Every rule file in load order with its status, error and counters."""
        out = []
        for status in self._statuses:
            rule = self._active.get(status.id or "")
            if rule is not None and rule.path == status.path:
                enabled = self._enabled(rule)
                state = status.status
                if not enabled and state == "active":
                    state = "disabled"
                alerts, suppressed, failures = self._counts.get(rule.id, (0, 0, 0))
                status = RuleStatus(
                    status.id,
                    status.path,
                    state,
                    status.title,
                    status.level,
                    status.events,
                    status.action,
                    enabled,
                    status.error,
                    alerts,
                    suppressed,
                    failures,
                )
            out.append(status)
        return out

    def events(self) -> frozenset[str]:
        """The event names at least one enabled alert rule listens to."""
        return frozenset(self._by_event)

    def set_enabled(self, rule_id: str, enabled: bool) -> None:
        """Switch a rule on or off; the switch outlives reloads. KeyError for an unknown id."""
        if rule_id not in self._active:
            raise KeyError(f"no rule has the id {rule_id!r}")
        self._overrides[rule_id] = enabled
        self._index()

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self, event: Event) -> list[Alert]:
        """The alerts this event raises (see the module guarantees); usually none."""
        entry = self._by_event.get(event.event_name)
        if entry is None:
            return []
        alert_rules, allow_rules = entry
        record = flatten(event)
        matched = [rule for rule in alert_rules if self._matches(rule, record)]
        if not matched:
            return []
        allowed: set[str] = set()
        for rule in allow_rules:
            if self._matches(rule, record):
                if rule.applies_to is None:
                    return []
                allowed |= rule.applies_to
        alerts = []
        device = record.get("device.mac")
        ts = record["ts"]
        for rule in matched:
            if rule.id in allowed or (self.muted is not None and self.muted(rule.id, device)):
                continue
            key = ";".join(f"{name}={_key_text(record.get(name))}" for name in rule.suppress_key)
            until = ts + rule.suppress_period
            if rule.suppress_period > 0 and not self._start_quiet(rule.id, key, ts, until):
                self._count(rule.id, 1)
                continue
            self._count(rule.id, 0)
            alerts.append(
                Alert(
                    rule=rule.id,
                    level=rule.level,
                    ts=ts,
                    message=rule.message.render(record) if rule.message else rule.title,
                    device_mac=device,
                    dest=record.get("dest.name") or record.get("name") or record.get("dest.ip"),
                    event=dict(record),
                    suppression_key=key,
                    suppressed_until=until,
                    title=rule.title,
                )
            )
        return alerts

    def text(self, rule_id: str, language: str, record: dict[str, Any]) -> tuple[str, str] | None:
        """(title, message) of rule ``rule_id`` in ``language``, the message rendered from
        ``record`` (a stored alert's flattened ``event``); None when no loaded rule has this id
        or the rule has no translation into ``language``. Never raises on odd records."""
        rule = self._active.get(rule_id)
        translation = rule.translations.get(language) if rule is not None else None
        if translation is None:
            return None
        record = record if isinstance(record, dict) else {}
        if translation.message is None:
            return translation.title, translation.title
        return translation.title, translation.message.render(record, language)

    def resume_quiet(self, rule_id: str, key: str, until: float) -> None:
        """Carry over a quiet period from an earlier run (an alert in the store whose
        suppression has not expired), so a restart does not repeat the alert."""
        slot = (rule_id, key)
        if self._suppressed.get(slot, 0.0) < until:
            self._suppressed[slot] = until
            if len(self._suppressed) > self.max_suppressions:
                self._suppressed.popitem(last=False)

    def _matches(self, rule: Rule, record: dict[str, Any]) -> bool:
        try:
            return rule.matches(record)
        except Exception:
            if not self._counts.get(rule.id, (0, 0, 0))[2]:
                log.exception("rule %s failed on an event; it is skipped", rule.id)
            self._count(rule.id, 2)
            return False

    def _start_quiet(self, rule_id: str, key: str, ts: float, until: float) -> bool:
        """False when (rule, key) is still quiet at ``ts``; else start a quiet period."""
        slot = (rule_id, key)
        quiet = self._suppressed.get(slot)
        if quiet is not None and ts < quiet:
            self._suppressed.move_to_end(slot)
            return False
        self._suppressed[slot] = until
        self._suppressed.move_to_end(slot)
        if len(self._suppressed) > self.max_suppressions:
            self._suppressed.popitem(last=False)
        return True

    def _count(self, rule_id: str, which: int) -> None:
        counts = self._counts.setdefault(rule_id, [0, 0, 0])
        counts[which] += 1


def _key_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value).lower()


def _first(errors: Iterable[RuleError]) -> str | None:
    errors = list(errors)
    if not errors:
        return None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return str(errors[0]) + more


class RulesHandler:
    """The event handler that runs the engine and emits :class:`AlertRaised` for each alert.

    It answers ``on_<event>`` only for the events some enabled rule listens to (see
    :meth:`RuleEngine.events`), so the handler chain does not route other events to it.
    HandlerChain caches its routes: after a reload or switch that makes rules listen to an event
    they did not listen to before, the chain's routes must be refreshed for it to reach the rules.
    """

    __slots__ = ("emit", "engine")

    def __init__(self, engine: RuleEngine, emit: Callable[[Event], None]) -> None:
        self.engine = engine
        self.emit = emit

    def __getattr__(self, name: str) -> Callable[[Event], None]:
        if name.startswith("on_") and name[3:] in self.engine.events():
            return self.handle
        raise AttributeError(name)

    def handle(self, event: Event) -> None:
        """Evaluate one event and emit an AlertRaised per alert."""
        for alert in self.engine.evaluate(event):
            self.emit(AlertRaised(alert))
