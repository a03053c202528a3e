"""Message templates: one plain-language sentence over the flattened fields of an event.

A placeholder names a field, ``{device.name}``; alternatives separated by ``|`` take the first
known one (not missing, not an empty list), ``{dest.org|dest.name|dest.ip}``; an optional format
after a colon is ``size`` (bytes as "1.2 MB"), ``duration`` (seconds as "2 min 5 s"), ``percent``
(a ratio as "8.7%", in French "8,7 %"), ``time`` (a timestamp as "02:14" in the rules' time zone)
or a Python format spec (``{mean_kbps:.1f}``).
``{{`` and ``}}`` are literal braces.

Guarantees: :meth:`Template.render` never raises; a missing or ``None`` field renders as
"unknown", booleans as "yes"/"no", an empty list as "none" (those words in the language passed to
render, see :data:`WORDS`; English otherwise), lists joined by ", ", other numbers with at most
one decimal (none from 10 up). Every rendered value is cleaned: control characters (C0, DEL,
C1), Unicode bidirectional overrides and invisible format characters are replaced by visible
escapes such as ``\\x1b``, and a value is cut at :data:`MAX_VALUE_CHARS` characters, so an
attacker-chosen device name cannot inject lines, terminal escapes or reorder text. The message
is plain text, not HTML: each renderer escapes it for its medium (the dashboard's templates
autoescape).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

MAX_VALUE_CHARS = 120
UNKNOWN = "unknown"

#: The words the template layer itself writes, by language; a language not listed is English.
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "unknown": UNKNOWN,
        "yes": "yes",
        "no": "no",
        "none": "none",
        "decimal": ".",
        "bytes": "bytes",
        "kB": "kB",
        "MB": "MB",
        "GB": "GB",
        "percent": "%",
    },
    "fr": {
        "unknown": "inconnu",
        "yes": "oui",
        "no": "non",
        "none": "aucun",
        "decimal": ",",
        "bytes": "octets",
        "kB": "ko",
        "MB": "Mo",
        "GB": "Go",
        "percent": "\u202f%",
    },
}

_INVISIBLE = (
    *range(0x200B, 0x2010),
    *range(0x2028, 0x202F),
    *range(0x2060, 0x206A),
    0xFEFF,
)
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({c: f"\\u{c:04x}" for c in _INVISIBLE})


def clean_text(text: str) -> str:
    """``text`` with control and invisible characters escaped and cut to MAX_VALUE_CHARS."""
    text = text.translate(_ESCAPES)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _number(value: float) -> str:
    if isinstance(value, int) or abs(value) >= 10:
        return str(round(value))
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _size(value: float, language: str = "en") -> str:
    said = words(language)
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= factor:
            number = _number(value / factor).replace(".", said["decimal"])
            return f"{number} {said[unit]}"
    return f"{round(value)} {said['bytes']}"


def _percent(value: float, language: str = "en") -> str:
    number = _number(value * 100).replace(".", words(language)["decimal"])
    return f"{number}{words(language)['percent']}"


def _duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def words(language: str = "en") -> dict[str, str]:
    """The template layer's own words in ``language`` (English for a language not in WORDS)."""
    return WORDS.get(language, WORDS["en"])


def render_value(value: Any, language: str = "en") -> str:
    """The default cleaned text of one field value (see the module guarantees)."""
    said = words(language)
    if value is None:
        return said["unknown"]
    if isinstance(value, bool):
        return said["yes"] if value else said["no"]
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, (list, tuple)):
        return clean_text(", ".join(str(v) for v in value)) if value else said["none"]
    return clean_text(str(value))


class Template:
    """A compiled message template (see the module docstring for the syntax).

    ``fields`` is the set of field names the placeholders use, for the caller to check against
    the event's vocabulary. Construction raises ValueError with a one-line reason when the text is
    not a valid template.
    """

    __slots__ = ("_parts", "fields", "text")

    def __init__(self, text: str, tz: tzinfo | None = None) -> None:
        self.text = text
        self.fields: set[str] = set()
        parts: list[str | tuple[tuple[str, ...], Callable[[Any, str], str]]] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(
                f"not a valid template ({exc}); write {{{{ and }}}} for braces"
            ) from None
        for literal, name, spec, conversion in parsed:
            if literal:
                parts.append(literal)
            if name is None:
                continue
            if conversion is not None or not name.strip():
                raise ValueError(f"placeholder {{{name}}} must name fields, like {{device.name}}")
            names = tuple(n.strip() for n in name.split("|"))
            if not all(names):
                raise ValueError(f"placeholder {{{name}}} has an empty alternative")
            self.fields.update(names)
            parts.append((names, _formatter(spec or "", tz)))
        self._parts = tuple(parts)

    def render(self, record: dict[str, Any], language: str = "en") -> str:
        """The message for one flattened record; never raises. ``language`` picks the words
        the template layer writes itself ("unknown", "yes", "no", "none"; see :data:`WORDS`)."""
        out = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            names, fmt = part
            value = None
            for name in names:
                value = record.get(name)
                if value is not None and value != []:
                    break
            out.append(words(language)["unknown"] if value is None else fmt(value, language))
        return "".join(out)


def _formatter(spec: str, tz: tzinfo | None) -> Callable[[Any, str], str]:
    if spec in ("size", "duration", "percent", "time"):

        def special(value: Any, language: str) -> str:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return render_value(value, language)
            if spec == "size":
                return _size(value, language)
            if spec == "duration":
                return _duration(value)
            if spec == "percent":
                return _percent(value, language)
            try:
                return datetime.fromtimestamp(value, tz).strftime("%H:%M")
            except (OverflowError, OSError, ValueError):
                return words(language)["unknown"]

        return special
    if not spec:
        return render_value

    def python(value: Any, language: str) -> str:
        try:
            return clean_text(format(value, spec))
        except (ValueError, TypeError):
            return render_value(value, language)

    return python
