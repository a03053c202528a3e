"""Compiled conditions: a rule's ``match`` and ``when`` turned into fast predicates.

A ``match`` key is a field followed by modifiers, ``dest.country|not|in``; its value is one
value or a list meaning any of. Semantics, as predicates over a flattened record:

* plain equality (and ``|in``) compares text case-insensitively, numbers and booleans exactly;
  ``null`` in the values matches a missing or unknown field;
* a condition on a list field (``services``) holds when it holds for any element;
* a missing or unknown field never satisfies a condition other than ``null``, even under
  ``|not``: unknown is never evidence (``dest.country|not|in: [FR]`` does not fire when the
  country is unknown);
* ``|not`` negates the rest of the condition for a known value.

Compilation does all the parsing once (regular expressions, networks, sets), so evaluating a
condition is a dict look-up and one or two comparisons.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.fields import INDICATOR_SUFFIX, Field
from rules.indicators import IndicatorSet

Predicate = Callable[[dict[str, Any]], bool]
TimePredicate = Callable[[float], bool]

#: Modifier -> what it does, for the reference documentation.
MODIFIERS: dict[str, str] = {
    "gte": "field >= value (numbers)",
    "lte": "field <= value (numbers)",
    "gt": "field > value (numbers)",
    "lt": "field < value (numbers)",
    "in": "field equals one of the listed values (a list is required)",
    "cidr": "the address is inside one of the networks (IPv4 or IPv6, e.g. 10.0.0.0/8)",
    "endswith": "text ends with the value (case-insensitive)",
    "startswith": "text starts with the value (case-insensitive)",
    "contains": "text contains the value (case-insensitive)",
    "re": "a Python regular expression is found in the text (case-sensitive; use (?i))",
    "indicator": "the name or address is on an indicator list: `any`, or list names",
    "not": "negates the condition (combinable: `|not|in`); a missing field still never matches",
}
_NUMERIC_OPS = frozenset({"gte", "lte", "gt", "lt"})
_TEXT_OPS = frozenset({"cidr", "endswith", "startswith", "contains", "re", "indicator"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass
class Context:
    """What compiled rules read when they run: indicator lists, time zone and night hours.

    ``tz`` None means the system's local time zone. ``indicators`` may be replaced at run time;
    compiled ``|indicator`` conditions read it on each evaluation.
    """

    indicators: IndicatorSet
    tz: tzinfo | None
    night: tuple[int, int]


def parse_timezone(name: str) -> tzinfo | None:
    """The tzinfo named ``name`` (IANA, e.g. Europe/Paris); None for "" or "local" (the system's).

    Raises ValueError when the name is unknown.
    """
    if name in ("", "local"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None


def parse_hours(text: str) -> tuple[int, int]:
    """Minutes after midnight of ``"HH:MM-HH:MM"`` (start inclusive, end exclusive).

    A start after the end wraps midnight. Raises ValueError for anything else or an empty span.
    """
    match = _HOURS.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a span of hours such as 22:00-07:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{text!r} is not a valid time of day span")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{text!r} is empty: start and end are the same time")
    return start, end


def compile_when(
    hours: tuple[int, int] | None, days: frozenset[int] | None, ctx: Context
) -> TimePredicate:
    """A predicate on an event timestamp, evaluated in ``ctx.tz``: inside ``hours`` (if given)
    and on one of ``days`` (0 = Monday; if given). The day is the calendar day of the event's
    local time, so 01:00 on Saturday is a Saturday even inside Friday's night."""
    tz = ctx.tz

    def when(ts: float) -> bool:
        local = datetime.fromtimestamp(ts, tz)
        if days is not None and local.weekday() not in days:
            return False
        if hours is None:
            return True
        minute = local.hour * 60 + local.minute
        start, end = hours
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end

    return when


def split_modifiers(field: Field, modifiers: list[str]) -> tuple[str, bool]:
    """The operator (``eq`` when none) and negation of a modifier chain for ``field``.

    Raises ValueError naming the problem: an unknown or repeated modifier, two operators, or an
    operator that does not apply to the field's type.
    """
    negate = False
    op = "eq"
    for modifier in modifiers:
        if modifier == "not":
            if negate:
                raise ValueError("|not appears twice")
            negate = True
        elif modifier not in MODIFIERS:
            raise ValueError(f"unknown modifier |{modifier}; modifiers are " + ", ".join(MODIFIERS))
        elif op != "eq":
            raise ValueError(f"|{op} and |{modifier} cannot be combined (one operator per key)")
        else:
            op = modifier
    if op in _NUMERIC_OPS and field.kind not in ("int", "float"):
        raise ValueError(f"|{op} compares numbers but {field.name} is {field.kind}")
    if op in _TEXT_OPS and field.kind not in ("str", "list"):
        raise ValueError(f"|{op} applies to text but {field.name} is {field.kind}")
    return op, negate


def value_kind(op: str, field: Field) -> str:
    """The type the values of an ``op`` condition on ``field`` must have."""
    if op in _NUMERIC_OPS:
        return "number"
    if op in _TEXT_OPS or field.kind == "list":
        return "str"
    return "number" if field.kind in ("int", "float") else field.kind


def compile_condition(
    field: Field, op: str, negate: bool, values: list[Any], ctx: Context
) -> Predicate:
    """A predicate over a flattened record for one ``match`` key (see the module semantics).

    ``values`` have already been checked to be of :func:`value_kind` (or None). Raises ValueError
    when a value cannot be compiled (bad regular expression or network, null with an operator,
    several values for a comparison).
    """
    has_null = any(v is None for v in values)
    values = [v for v in values if v is not None]
    if has_null and op not in ("eq", "in"):
        raise ValueError(f"null can only be compared for equality, not with |{op}")
    test = _test(op, values, ctx) if values else None
    name = field.name
    is_list = field.kind == "list"
    missing = has_null and not negate
    if op == "indicator":
        mark = name + INDICATOR_SUFFIX

        def indicator(record: dict[str, Any]) -> bool:
            value = record.get(name)
            if value is None:
                return False
            hit = None
            for item in value if is_list else (value,):
                hit = test(item)  # type: ignore[misc]
                if hit:
                    break
            if hit and not negate:
                record[mark] = hit
            return bool(hit) != negate

        return indicator

    def condition(record: dict[str, Any]) -> bool:
        value = record.get(name)
        if value is None:
            return missing
        if test is None:
            hit = False
        elif is_list:
            hit = any(test(item) for item in value)
        else:
            hit = test(value)
        return hit != negate

    return condition


def _test(op: str, values: list[Any], ctx: Context) -> Callable[[Any], Any]:
    if op in _NUMERIC_OPS:
        if len(values) != 1:
            raise ValueError(f"|{op} takes one number, not a list")
        bound = values[0]
        return {
            "gte": lambda v: _num(v) and v >= bound,
            "lte": lambda v: _num(v) and v <= bound,
            "gt": lambda v: _num(v) and v > bound,
            "lt": lambda v: _num(v) and v < bound,
        }[op]
    if op == "cidr":
        return _cidr(values)
    if op == "indicator":
        return _indicator(values, ctx)
    if op == "re":
        try:
            patterns = [re.compile(v) for v in values]
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return lambda v: isinstance(v, str) and any(p.search(v) for p in patterns)
    if op in ("endswith", "startswith", "contains"):
        folded = tuple(v.casefold() for v in values)
        if op == "endswith":
            return lambda v: isinstance(v, str) and v.casefold().endswith(folded)
        if op == "startswith":
            return lambda v: isinstance(v, str) and v.casefold().startswith(folded)
        return lambda v: isinstance(v, str) and any(s in v.casefold() for s in folded)
    texts = frozenset(v.casefold() for v in values if isinstance(v, str))
    others = frozenset(v for v in values if not isinstance(v, str))

    def equal(value: Any) -> bool:
        if isinstance(value, str):
            return value.casefold() in texts
        return value in others

    return equal


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cidr(values: list[str]) -> Callable[[Any], bool]:
    try:
        networks = [ipaddress.ip_network(v, strict=False) for v in values]
    except ValueError as exc:
        raise ValueError(f"not a network: {exc}") from None
    v4 = tuple(n for n in networks if n.version == 4)
    v6 = tuple(n for n in networks if n.version == 6)

    def inside(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return any(address in n for n in (v4 if address.version == 4 else v6))

    return inside


def _indicator(values: list[str], ctx: Context) -> Callable[[Any], str | None]:
    lists = None if any(v.lower() == "any" for v in values) else frozenset(values)

    def on_list(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        indicators = ctx.indicators
        if ":" in value or value[-1].isdigit():
            return indicators.match_ip(value, lists)
        return indicators.match_name(value, lists)

    return on_list
