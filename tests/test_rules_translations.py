"""Rule translations: every built-in rule speaks French, translated templates are checked like
the rule's own message, :meth:`RuleEngine.text` renders a stored alert's event in French, and the
dashboard and report show it (English when a rule has no translation)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from dashboard.formatting import BUILTIN_RULE_TITLES
from monitor.analyze import analyze_files
from monitor.report import render_report
from monitor.store import Store
from rules.conditions import Context, parse_hours
from rules.engine import RuleEngine
from rules.fields import flatten
from rules.fields_template import Template, render_value
from rules.indicators import IndicatorSet
from rules.loader import BUILTIN_DIR, DEFAULT_NIGHT
from rules.schema import parse_rule
from tests.test_dashboard import login, make_app, test_config
from tests.test_rules_support import PARIS, burst, seen, write_rule

ROOT = Path(__file__).parents[1]
SPEAK_REMOTE = ROOT / "tests" / "data" / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
PATH = Path("rules/x.yaml")
APOS = "\u2019"  # the French apostrophe of the rule files
CTX = Context(IndicatorSet(), PARIS, parse_hours(DEFAULT_NIGHT))

RULE = """\
id: spoke
title: Spoke
level: high
event: upload_burst
match:
  shape: audio
message: "{device.name} spoke"
"""


def _errors(extra: str) -> list[str]:
    rule, errors = parse_rule(RULE + extra, PATH, CTX)
    assert rule is None
    return [str(e) for e in errors]


def test_every_builtin_rule_has_a_french_title_and_message() -> None:
    engine = RuleEngine([BUILTIN_DIR], timezone="Europe/Paris")
    assert not engine.errors
    statuses = engine.rules
    assert len(statuses) == 8
    titles = {str(t) for t in BUILTIN_RULE_TITLES}
    for status in statuses:
        rule = engine._active[status.id]
        french = rule.translations.get("fr")
        assert french is not None, f"{status.path.name} has no French translation"
        assert french.title and french.title != rule.title
        assert french.message is not None and rule.message is not None
        # the French sentence uses the same fields as the English one
        assert french.message.fields == rule.message.fields, status.path.name
        assert french.message.text != rule.message.text
        # the dashboard's catalogue and the rule file agree on the French title
        assert rule.title in titles


def test_text_renders_a_french_message_from_a_record() -> None:
    engine = RuleEngine([BUILTIN_DIR], timezone="Europe/Paris")
    event = burst(bytes_up=96_000, duration_s=4.2, audio_seconds=6.0)
    [alert] = engine.evaluate(event)
    assert alert.rule == "audio-upload-foreign"
    title, message = engine.text(alert.rule, "fr", alert.event)
    assert title == f"Envoi de taille audio vers un serveur à l{APOS}étranger"
    assert "a envoyé 96 ko en 4 s vers" in message
    assert "environ 6 s de parole" in message
    assert engine.text(alert.rule, "de", alert.event) is None
    assert engine.text("no-such-rule", "fr", alert.event) is None
    # a record missing fields still renders, with the French word for unknown
    _title, bare = engine.text(alert.rule, "fr", {})
    assert bare.startswith("inconnu a envoyé inconnu")


def test_template_words_follow_the_language() -> None:
    template = Template("{a} {b} {c} {d}")
    record = {"a": True, "b": False, "c": None, "d": []}
    assert template.render(record) == "yes no unknown none"
    assert template.render(record, "fr") == "oui non inconnu aucun"
    assert template.render(record, "xx") == "yes no unknown none"
    assert render_value(None, "fr") == "inconnu"
    assert Template("{ts:time}").render({"ts": 10**30}, "fr") == "inconnu"


def test_a_rule_with_new_device_translation_says_yes_in_french(tmp_path: Path) -> None:
    write_rule(
        tmp_path,
        "first.yaml",
        """\
id: first
title: First
level: low
event: device_seen
match:
  first_ever: true
message: "first={first_ever}"
translations:
  fr:
    title: Premier
    message: "premier={first_ever}"
""",
    )
    engine = RuleEngine([tmp_path])
    [alert] = engine.evaluate(seen())
    assert alert.message == "first=yes"
    assert engine.text("first", "fr", alert.event) == ("Premier", "premier=oui")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'translations:\n  fr:\n    title: Parlé\n    message: "{device.nmae} a parlé"\n',
            "rules/x.yaml:11: translations.fr.message: unknown field 'device.nmae' for event "
            "upload_burst; did you mean device.name?",
        ),
        (
            'translations:\n  fr:\n    title: Parlé\n    message: "{device.name a parlé"\n',
            "rules/x.yaml:11: translations.fr.message: not a valid template",
        ),
        (
            "translations:\n  fr:\n    title: Parlé\n",
            "rules/x.yaml:10: translations.fr.message: is required",
        ),
        (
            "translations:\n  fr:\n    title: Parlé\n    message: m\n    mesage: m\n",
            "rules/x.yaml:12: translations.fr.mesage: unknown key; did you mean message?",
        ),
        (
            "translations:\n  french:\n    title: Parlé\n    message: m\n",
            "rules/x.yaml:9: translations.french: must be a two-letter language code",
        ),
        (
            "translations:\n  fr: Parlé\n",
            "rules/x.yaml:9: translations.fr: must be a mapping",
        ),
        (
            "translations:\n  fr:\n    title: ''\n    message: m\n",
            "rules/x.yaml:10: translations.fr.title: must be non-empty text",
        ),
        (
            "translations: [fr]\n",
            "rules/x.yaml:8: translations: must be a mapping",
        ),
    ],
)
def test_bad_translations_name_file_line_and_field(extra: str, expected: str) -> None:
    errors = _errors(extra)
    assert any(e.startswith(expected) for e in errors), errors


def test_translation_of_an_allow_rule_needs_only_a_title() -> None:
    text = """\
id: allow-echo
title: Echo may talk
action: allow
event: upload_burst
match:
  device.mac: "f0:27:2d:11:22:33"
translations:
  fr:
    title: L'Echo peut parler
"""
    rule, errors = parse_rule(text, PATH, CTX)
    assert not errors and rule is not None
    assert rule.translations["fr"].title == "L'Echo peut parler"


def test_translated_fields_count_as_used_fields() -> None:
    rule, errors = parse_rule(
        RULE + 'translations:\n  fr:\n    title: Parlé\n    message: "{dest.org} a reçu"\n',
        PATH,
        CTX,
    )
    assert not errors and rule is not None
    assert "dest.org" in rule.fields
    record = flatten(burst())
    assert rule.translations["fr"].message.render(record, "fr").endswith(" a reçu")


# -- the dashboard and the report over a real capture ---------------------------------------------


@pytest.fixture
def analysed(tmp_path: Path) -> Store:
    """A store holding the alerts of the Xiaobai camera talking through the remote app, with
    home FR."""
    store = Store(f"sqlite:///{tmp_path / 'micwatch.db'}", sensor="home", retention_s=10**12)
    analyze_files(test_config(tmp_path), [str(SPEAK_REMOTE)], out=io.StringIO(), store=store)
    yield store
    store.close()


def _french(client: FlaskClient) -> FlaskClient:
    assert login(client).status_code == 302
    client.get("/language/fr")
    return client


def test_french_dashboard_and_report_show_french_alert_messages(
    tmp_path: Path, analysed: Store
) -> None:
    alerts = analysed.alerts(limit=50)
    audio = [a for a in alerts if a["rule"] == "audio-upload-foreign"]
    assert audio, [a["rule"] for a in alerts]
    english = audio[0]["message"]
    assert "shaped like a voice recording" in english

    engine = RuleEngine([BUILTIN_DIR], timezone="")
    _title, french = engine.text("audio-upload-foreign", "fr", audio[0]["event"])
    assert " a envoyé " in french and f"forme d{APOS}un enregistrement vocal" in french

    client = _french(make_app(tmp_path, analysed).test_client())
    page = client.get("/alerts").text
    assert "a envoyé" in page and "enregistrement vocal" in page
    assert "shaped like a voice recording" not in page
    assert f"Envoi de taille audio vers un serveur à l{APOS}étranger" in page
    assert "(Chine)" in page  # the country in French words, as elsewhere on the page

    english_client = make_app(tmp_path, analysed).test_client()
    assert login(english_client).status_code == 302
    english_client.get("/language/en")
    assert "shaped like a voice recording" in english_client.get("/alerts").text

    since = time.time() - 10**10
    report = render_report(test_config(tmp_path), analysed, since, "fr")
    assert "a envoyé" in report and "shaped like a voice recording" not in report
    assert "shaped like a voice recording" in render_report(
        test_config(tmp_path), analysed, since, "en"
    )


def test_a_rule_without_translation_stays_english_in_the_french_ui(
    tmp_path: Path, analysed: Store
) -> None:
    """A user's copy of a built-in rule without translations replaces it: its alerts keep the
    stored English message in the French dashboard."""
    rules_dir = tmp_path / "mine"
    source = (BUILTIN_DIR / "audio-upload-foreign.yaml").read_text()
    write_rule(rules_dir, "audio-upload-foreign.yaml", source.split("translations:")[0])
    config = test_config(tmp_path).replace(rules__paths=[str(rules_dir)])
    app = make_app(tmp_path, analysed, MICWATCH_CONFIG=config)
    page = _french(app.test_client()).get("/alerts").text
    assert "shaped like a voice recording (enough for about" in page
    assert "de parole" not in page


def test_french_sizes_use_french_units_and_the_decimal_comma() -> None:
    from rules.fields_template import Template

    template = Template("{bytes_up:size}")
    assert template.render({"bytes_up": 1_250_000}, "fr") == "1,2 Mo"
    assert template.render({"bytes_up": 1_250_000}) == "1.2 MB"
    assert template.render({"bytes_up": 512}, "fr") == "512 octets"
