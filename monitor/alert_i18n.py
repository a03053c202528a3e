"""An alert's title and message in a reader's language, for the dashboard, the report and the
notifiers; the catalogue of micwatch's own words, shared with the dashboard.

The monitor stores each alert's message in the rule's own words (English for the built-in rules)
together with the rule id and the flattened event it was rendered from. :func:`alert_text`
renders it again in another language:

- a health alert (rule id ``health-...``) from :func:`monitor.health.health_text`;
- a rule's alert from the rule file's ``translations`` (:meth:`rules.engine.RuleEngine.text`),
  the stored event's country codes and device category put into words of that language first;
- otherwise (English, a rule without a translation, a rule no longer loaded, no engine) the
  stored message, under the stored title looked up in the catalogue (a built-in rule's title is
  translated there, a user's own rule keeps its words).

Guarantees: :func:`alert_text` never raises on a stored row or an :class:`~monitor.model.Alert`
(a missing rule or an odd event falls back to the stored text) and returns English texts
unchanged. The catalogues are the dashboard's compiled ones (``dashboard/translations``, the
same files flask-babel reads); a language without one reads as English. Nothing here imports
Flask.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.model import Alert
    from rules.engine import RuleEngine

#: The compiled catalogues (``<language>/LC_MESSAGES/messages.mo``), shipped in the package.
TRANSLATIONS = Path(__file__).resolve().parent.parent / "dashboard" / "translations"


def _(text: str) -> str:
    """Mark ``text`` for the catalogue (``pybabel extract`` finds it); it is translated where it
    is shown, through :func:`catalogue`."""
    return text


#: Device categories (:data:`monitor.signatures.CATEGORIES`) in English words, the catalogue's
#: keys for every other language.
CATEGORY_WORDS = {
    "speaker": _("smart speaker"),
    "toy": _("connected toy"),
    "camera": _("camera"),
    "tv": _("TV"),
    "console": _("game console"),
    "plug": _("smart plug"),
    "light": _("light"),
    "hub": _("hub"),
    "sensor": _("sensor"),
    "appliance": _("appliance"),
    "meter": _("meter"),
    "printer": _("printer"),
    "network": _("network equipment"),
    "phone": _("phone"),
    "computer": _("computer"),
    "unknown": _("unknown"),
}


@functools.cache
def catalogue(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``language``; for English or a language without a catalogue,
    one that returns every text as it is."""
    from babel.support import Translations

    return Translations.load(str(TRANSLATIONS), [language])


@functools.cache
def _territories(language: str) -> Mapping[str, str]:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(language).territories
    except (UnknownLocaleError, ValueError):
        return {}


def country_name(code: str, language: str) -> str:
    """A country code as the country's name in ``language`` (Babel's CLDR names); the code as
    it is when the language or the code is unknown."""
    return _territories(language).get(code.upper()) or code


def category_name(value: str | None, language: str) -> str:
    """A device category in words of ``language``; an unknown category as it is."""
    key = str(value or "unknown")
    return catalogue(language).gettext(CATEGORY_WORDS.get(key, key))


def localised(record: dict[str, Any], language: str) -> dict[str, Any]:
    """``record`` (a flattened event) with its country codes and device category in words of
    ``language``; the other fields unchanged."""
    out = dict(record)
    for name in ("dest.country", "dest.jurisdiction"):
        if isinstance(out.get(name), str) and out[name]:
            out[name] = country_name(out[name], language)
    if isinstance(out.get("device.category"), str) and out["device.category"]:
        out["device.category"] = category_name(out["device.category"], language)
    return out


def _field(alert: Mapping[str, Any] | Alert, name: str) -> Any:
    return alert.get(name) if isinstance(alert, Mapping) else getattr(alert, name, None)


def alert_text(
    alert: Mapping[str, Any] | Alert, language: str, engine: RuleEngine | None
) -> tuple[str, str]:
    """(title, message) of a stored alert row or an Alert in ``language`` (see the module
    docstring); ``engine`` holds the rules' translations (None: stored texts only)."""
    rule = str(_field(alert, "rule") or "")
    stored_title = _field(alert, "title")
    title = catalogue(language).gettext(str(stored_title)) if stored_title else rule
    message = str(_field(alert, "message") or "")
    event = _field(alert, "event")
    if language == "en" or not rule or not isinstance(event, dict):
        return title, message
    if rule.startswith("health-"):
        from monitor.health import health_text

        translated = health_text(rule, language, event)
    else:
        translated = engine.text(rule, language, localised(event, language)) if engine else None
    return translated if translated is not None else (title, message)


def notify_language(config: Any) -> str:
    """The language of notifications: ``notify.language``, else ``dashboard.language``, else
    English."""
    return str(config["notify.language"] or config["dashboard.language"] or "en")


def rule_engine(config: Any) -> RuleEngine | None:
    """A rule engine over the configured rule files, for their translations; None when they
    cannot be read (bad time zone or night hours: the stored texts are shown then)."""
    from rules.engine import RuleEngine
    from rules.loader import rule_paths

    try:
        return RuleEngine(
            rule_paths(config), timezone=config["rules.timezone"], night=config["rules.night"]
        )
    except ConfigError:
        return None
