"""The rule file format: validation of one YAML rule and its compilation into a :class:`Rule`.

A rule file holds one YAML mapping (Sigma-like) with the keys of :data:`KEYS`. Validation walks
the composed YAML node tree, so each problem is reported as a :class:`RuleError` naming the file,
the line and the field (``rules/x.yaml:7: match.dest.contry: unknown field ...``); every problem
of a file is reported, not only the first. A file either compiles completely or not at all.

Text values are taken as written: ``dest.country: NO`` is Norway, not false, and an unquoted MAC
such as ``00:11:22:33:44:55`` stays text, because the field's type (see :mod:`rules.fields`)
decides how a value is read.

:mod:`rules.schema_reference` writes the rule reference (``rules/FIELDS.md``) from :data:`KEYS`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from monitor.config import parse_duration
from rules.conditions import (
    DAYS,
    Context,
    Predicate,
    TimePredicate,
    compile_condition,
    compile_when,
    parse_hours,
    split_modifiers,
    value_kind,
)
from rules.fields import EVENT_FIELDS, EVENTS, INDICATOR_SUFFIX, Field
from rules.fields_template import Template

LEVELS = ("info", "low", "medium", "high")
ACTIONS = ("alert", "allow")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2}$")

#: Every key of a rule file and what it means (the reference documentation is built from it).
KEYS: dict[str, str] = {
    "id": "Unique identifier, a slug (lower-case letters, digits, - and _; at most 64). "
    "Required. A rule in a later directory with the id of an earlier one replaces it.",
    "title": "A short name for the rule. Required.",
    "description": "What the rule detects and why it matters.",
    "level": "info, low, medium or high. Required for alert rules.",
    "event": "The event listened to (`upload_burst`, `device_seen`, `destination_contacted`, "
    "`name_contacted`, `flow_end`), or a list of them. Required.",
    "action": "`alert` (default) raises an alert; `allow` suppresses the alerts of other rules "
    "on the same event whenever it matches.",
    "applies_to": "For allow rules: the rule ids it suppresses (default: every rule).",
    "match": "Field conditions, AND across keys; a list value means any of; keys take "
    "modifiers (`bytes_up|gte: 100000`). An allow rule needs at least one.",
    "when": 'Time of day: `hours: "22:00-07:00"` (may wrap midnight; `night` means the '
    "configured night hours) and/or `days: [sat, sun]`, evaluated on the event's timestamp in "
    "the configured time zone.",
    "suppress": "`key`: fields whose values identify repeats (e.g. `[device.mac, dest.org]`); "
    "`period`: how long repeats stay quiet (`30m`). Without it every match alerts.",
    "message": "One plain-language sentence with `{field}` placeholders. Required for alert rules.",
    "translations": "The title and message in other languages, by two-letter language code: "
    "`fr: {title: ..., message: ...}`. Same placeholders as `message`; the dashboard and the "
    "report show them to readers of that language (the rule's own words otherwise).",
    "falsepositives": "A list of innocent reasons the rule may fire.",
    "references": "A list of links or citations behind the rule.",
    "enabled": "false switches the rule off (default true).",
}
_REQUIRED = ("id", "title", "event")
_REQUIRED_ALERT = ("level", "message")


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem with a rule file; ``str()`` gives ``file:line: field: problem``.

    ``line`` is 1-based, None when the problem is not at a line (an unreadable file).
    """

    path: Path
    line: int | None
    field: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.field}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Translation:
    """A rule's title and message template in one language."""

    title: str
    message: Template | None


@dataclass(slots=True, eq=False)
class Rule:
    """A compiled rule: predicates built once, ready to run on flattened records.

    ``fields`` names every field the rule uses (conditions, suppression key, messages).
    ``translations`` maps a language code to the rule's (title, message) in that language (the
    message None when the rule has none, an allow rule). ``applies_to`` is None for an allow
    rule that applies to every rule. ``lines`` gives the line of each top-level key, for
    messages about the rule as a whole (a duplicate id).
    """

    id: str
    title: str
    level: str
    events: tuple[str, ...]
    action: str
    enabled: bool
    path: Path
    description: str
    conditions: tuple[Predicate, ...]
    when: TimePredicate | None
    suppress_key: tuple[str, ...]
    suppress_period: float
    message: Template | None
    applies_to: frozenset[str] | None
    falsepositives: tuple[str, ...]
    references: tuple[str, ...]
    fields: frozenset[str]
    lines: dict[str, int]
    translations: dict[str, Translation] = dataclass_field(default_factory=dict)

    def matches(self, record: dict[str, Any]) -> bool:
        """True when every condition and the time of day hold for the record."""
        for condition in self.conditions:
            if not condition(record):
                return False
        return self.when is None or self.when(record["ts"])


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Parser:
    """Walks one composed rule document, collecting errors and compiled parts."""

    def __init__(self, path: Path, ctx: Context) -> None:
        self.path = path
        self.ctx = ctx
        self.errors: list[RuleError] = []
        self.constructor = SafeConstructor()
        self.fields: set[str] = set()

    def error(self, node: yaml.Node | None, field: str, problem: str) -> None:
        line = _line(node) if node is not None else 1
        self.errors.append(RuleError(self.path, line, field, problem))

    # -- scalar readers: each returns None after recording an error ---------------------------

    def text(self, node: yaml.Node, field: str) -> str | None:
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag != "tag:yaml.org,2002:null"
            and node.value.strip()
        ):
            return node.value
        self.error(node, field, "must be non-empty text")
        return None

    def texts(self, node: yaml.Node, field: str) -> list[str] | None:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not items:
            self.error(node, field, "must not be an empty list")
            return None
        out = [self.text(item, field) for item in items]
        return None if None in out else out  # type: ignore[return-value]

    def mapping(self, node: yaml.Node, field: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys -> (key node, value node); records errors for non-mappings and duplicates."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, field or "(file)", "must be a mapping of keys to values")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            name = f"{field}.{key}" if field and key is not None else str(key)
            if key is None:
                self.error(key_node, field or "(file)", "keys must be plain text")
            elif key in out:
                self.error(key_node, name, f"appears twice (first on line {_line(out[key][0])})")
            else:
                out[key] = (key_node, value_node)
        return out

    def unknown(
        self,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        allowed: tuple[str, ...],
        prefix: str,
    ) -> None:
        for key, (key_node, _) in entries.items():
            if key not in allowed:
                guess = difflib.get_close_matches(key, allowed, n=1)
                hint = (
                    f"; did you mean {guess[0]}?" if guess else "; keys are " + ", ".join(allowed)
                )
                self.error(key_node, prefix + key, "unknown key" + hint)

    def value(self, node: yaml.Node, kind: str, field: str) -> tuple[bool, Any]:
        """(ok, value) of one match value of ``kind`` (str, bool or number); null is None."""
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, field, "a value must be a single scalar, not a list or mapping")
            return False, None
        if node.tag == "tag:yaml.org,2002:null":
            return True, None
        if kind == "str":
            return True, node.value
        value = self.constructor.construct_object(node)
        if kind == "bool" and isinstance(value, bool):
            return True, value
        if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, value
        wanted = "true or false" if kind == "bool" else "a number"
        self.error(node, field, f"expects {wanted}, got {node.value!r}")
        return False, None

    # -- sections ------------------------------------------------------------------------------

    def field(
        self, name: str, events: tuple[str, ...], node: yaml.Node, where: str
    ) -> Field | None:
        for event in events:
            field = EVENT_FIELDS[event].get(name)
            if field is None:
                known = list(EVENT_FIELDS[event])
                guess = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {guess[0]}?" if guess else ""
                self.error(node, where, f"unknown field {name!r} for event {event}{hint}")
                return None
        self.fields.add(name)
        return EVENT_FIELDS[events[0]][name]

    def match(self, node: yaml.Node, events: tuple[str, ...]) -> list[Predicate]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        predicates = []
        for key, (key_node, value_node) in self.mapping(node, "match").items():
            where = f"match.{key}"
            name, *modifiers = [part.strip() for part in key.split("|")]
            field = self.field(name, events, key_node, where)
            if field is None:
                continue
            try:
                op, negate = split_modifiers(field, modifiers)
            except ValueError as exc:
                self.error(key_node, where, str(exc))
                continue
            is_list = isinstance(value_node, yaml.SequenceNode)
            if op == "in" and not is_list:
                self.error(value_node, where, "|in takes a list of values")
                continue
            items = value_node.value if is_list else [value_node]
            if not items:
                self.error(value_node, where, "an empty list can never match")
                continue
            kind = value_kind(op, field)
            read = [self.value(item, kind, where) for item in items]
            if not all(ok for ok, _ in read):
                continue
            try:
                predicates.append(
                    compile_condition(field, op, negate, [v for _, v in read], self.ctx)
                )
            except ValueError as exc:
                self.error(value_node, where, str(exc))
        return predicates

    def when(self, node: yaml.Node) -> TimePredicate | None:
        entries = self.mapping(node, "when")
        self.unknown(entries, ("hours", "days"), "when.")
        if not entries:
            self.error(node, "when", "needs hours and/or days")
            return None
        hours = days = None
        errors = len(self.errors)
        if "hours" in entries:
            value_node = entries["hours"][1]
            text = self.text(value_node, "when.hours")
            if text is not None and text.strip().lower() == "night":
                hours = self.ctx.night
            elif text is not None:
                try:
                    hours = parse_hours(text)
                except ValueError as exc:
                    self.error(value_node, "when.hours", str(exc))
        if "days" in entries:
            value_node = entries["days"][1]
            names = self.texts(value_node, "when.days") or []
            bad = [n for n in names if n.strip().lower()[:3] not in DAYS]
            if bad:
                self.error(value_node, "when.days", f"{bad[0]!r} is not a day ({', '.join(DAYS)})")
            days = frozenset(DAYS.index(n.strip().lower()[:3]) for n in names if n not in bad)
        if len(self.errors) > errors:
            return None
        return compile_when(hours, days, self.ctx)

    def suppress(self, node: yaml.Node, events: tuple[str, ...]) -> tuple[tuple[str, ...], float]:
        entries = self.mapping(node, "suppress")
        self.unknown(entries, ("key", "period"), "suppress.")
        key: list[str] = []
        if "key" in entries:
            value_node = entries["key"][1]
            for name in self.texts(value_node, "suppress.key") or []:
                if self.field(name, events, value_node, "suppress.key") is not None:
                    key.append(name)
        if "period" not in entries:
            self.error(node, "suppress.period", "is required (e.g. 30m)")
            return tuple(key), 0.0
        value_node = entries["period"][1]
        raw = value_node.value if isinstance(value_node, yaml.ScalarNode) else None
        try:
            period = parse_duration(raw if raw is not None else "")
        except ValueError as exc:
            self.error(value_node, "suppress.period", f"expects {exc}")
            return tuple(key), 0.0
        return tuple(key), period

    def message(
        self, node: yaml.Node, events: tuple[str, ...], where: str = "message"
    ) -> Template | None:
        text = self.text(node, where)
        if text is None:
            return None
        try:
            template = Template(" ".join(text.split()), self.ctx.tz)
        except ValueError as exc:
            self.error(node, where, str(exc))
            return None
        for name in sorted(template.fields):
            base = name[: -len(INDICATOR_SUFFIX)] if name.endswith(INDICATOR_SUFFIX) else name
            self.field(base, events, node, where)
        return template

    def translations(
        self, node: yaml.Node, events: tuple[str, ...], alert: bool
    ) -> dict[str, Translation]:
        """``translations``: language code -> {title, message}, each checked like the rule's
        own title and message (message required for alert rules)."""
        out: dict[str, Translation] = {}
        for language, (key_node, value_node) in self.mapping(node, "translations").items():
            where = f"translations.{language}"
            if not LANGUAGE_PATTERN.match(language):
                self.error(key_node, where, "must be a two-letter language code such as fr")
                continue
            entries = self.mapping(value_node, where)
            if not isinstance(value_node, yaml.MappingNode):
                continue
            self.unknown(entries, ("title", "message"), where + ".")
            required = ("title", "message") if alert else ("title",)
            for key in required:
                if key not in entries:
                    self.error(value_node, f"{where}.{key}", "is required")
            title = message = None
            if "title" in entries:
                title = self.text(entries["title"][1], f"{where}.title")
            if "message" in entries:
                message = self.message(entries["message"][1], events, f"{where}.message")
            if title is not None and (message is not None or not alert):
                out[language] = Translation(" ".join(title.split()), message)
        return out


def parse_rule(text: str, path: Path, ctx: Context) -> tuple[Rule | None, list[RuleError]]:
    """Validate and compile one rule file's text: (the rule, []) or (None, every error found)."""
    parser = _Parser(path, ctx)
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        return None, [RuleError(path, line, "yaml", f"not valid YAML: {problem}")]
    except yaml.YAMLError as exc:
        return None, [RuleError(path, None, "yaml", f"not valid YAML: {exc}")]
    if root is None:
        return None, [RuleError(path, 1, "(file)", "is empty; a rule file holds one mapping")]
    entries = parser.mapping(root, "")
    if parser.errors or not entries:
        if not parser.errors:
            parser.error(root, "(file)", "holds no keys")
        return None, parser.errors
    parser.unknown(entries, tuple(KEYS), "")

    def get(key: str) -> yaml.Node | None:
        return entries[key][1] if key in entries else None

    action = "alert"
    if (node := get("action")) is not None:
        action = parser.text(node, "action") or "alert"
        if action not in ACTIONS:
            parser.error(node, "action", f"must be one of {', '.join(ACTIONS)}")
    required = _REQUIRED + (_REQUIRED_ALERT if action == "alert" else ())
    for key in required:
        if key not in entries:
            parser.error(root, key, "is required")

    rule_id = ""
    if (node := get("id")) is not None:
        rule_id = parser.text(node, "id") or ""
        if rule_id and not ID_PATTERN.match(rule_id):
            parser.error(node, "id", "must be a slug: lower-case letters, digits, - and _")
    title = ""
    if (node := get("title")) is not None:
        title = parser.text(node, "title") or ""
    description = ""
    if (node := get("description")) is not None:
        description = " ".join((parser.text(node, "description") or "").split())
    level = "info"
    if (node := get("level")) is not None:
        level = parser.text(node, "level") or "info"
        if level not in LEVELS:
            parser.error(node, "level", f"must be one of {', '.join(LEVELS)}")
    enabled = True
    if (node := get("enabled")) is not None:
        ok, value = parser.value(node, "bool", "enabled")
        enabled = value if ok and value is not None else True

    events: tuple[str, ...] = ()
    if (node := get("event")) is not None:
        names = parser.texts(node, "event") or []
        bad = [n for n in names if n not in EVENTS]
        if bad:
            parser.error(node, "event", f"unknown event {bad[0]!r}; events are {', '.join(EVENTS)}")
        elif len(set(names)) != len(names):
            parser.error(node, "event", "lists an event twice")
        else:
            events = tuple(names)

    conditions: list[Predicate] = []
    when = None
    suppress_key: tuple[str, ...] = ()
    period = 0.0
    message = None
    translations: dict[str, Translation] = {}
    if events:
        if (node := get("match")) is not None:
            conditions = parser.match(node, events)
        if (node := get("when")) is not None:
            when = parser.when(node)
        if (node := get("suppress")) is not None:
            if action == "allow":
                parser.error(node, "suppress", "an allow rule raises nothing to suppress")
            else:
                suppress_key, period = parser.suppress(node, events)
        if (node := get("message")) is not None:
            message = parser.message(node, events)
        if (node := get("translations")) is not None:
            translations = parser.translations(node, events, action == "alert")
    if action == "allow" and not conditions and "match" not in entries:
        parser.error(root, "match", "an allow rule needs at least one condition")

    applies_to = None
    if (node := get("applies_to")) is not None:
        if action != "allow":
            parser.error(node, "applies_to", "only allow rules have applies_to")
        ids = parser.texts(node, "applies_to") or []
        bad = [i for i in ids if not ID_PATTERN.match(i)]
        if bad:
            parser.error(node, "applies_to", f"{bad[0]!r} is not a rule id")
        applies_to = frozenset(ids)

    falsepositives: list[str] = []
    if (node := get("falsepositives")) is not None:
        falsepositives = [" ".join(t.split()) for t in parser.texts(node, "falsepositives") or []]
    references: list[str] = []
    if (node := get("references")) is not None:
        references = parser.texts(node, "references") or []

    if parser.errors:
        return None, sorted(parser.errors, key=lambda e: (e.line or 0, e.field))
    rule = Rule(
        id=rule_id,
        title=" ".join(title.split()),
        level=level,
        events=events,
        action=action,
        enabled=enabled,
        path=path,
        description=description,
        conditions=tuple(conditions),
        when=when,
        suppress_key=suppress_key,
        suppress_period=period,
        message=message,
        applies_to=applies_to,
        falsepositives=tuple(falsepositives),
        references=tuple(references),
        fields=frozenset(parser.fields),
        lines={key: _line(key_node) for key, (key_node, _) in entries.items()},
        translations=translations,
    )
    return rule, []
