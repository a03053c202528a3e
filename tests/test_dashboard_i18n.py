"""Languages: every string of the UI and the report has a French translation, the compiled
catalogues match their sources, no template shows text outside a translation call, and the
language follows the browser, the configuration and the switch link."""

from __future__ import annotations

import gettext
import io
import re
from pathlib import Path

import pytest
import yaml
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from monitor.events import HandlerChain, Tick
from monitor.health import HealthMonitor
from monitor.store import Store
from rules.loader import BUILTIN_DIR
from tests.test_dashboard import login, make_app, replayed_store, test_config

ROOT = Path(__file__).parents[1]
DASHBOARD = ROOT / "dashboard"
TRANSLATIONS = DASHBOARD / "translations"
#: Words a template may show untranslated: names and the language switch's own labels.
UNTRANSLATED = {"micwatch", "English", "Français"}


def _extracted() -> set[str]:
    """Every message id in the sources babel.cfg names, extracted as pybabel would."""
    with open(DASHBOARD / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def _catalog(language: str):
    with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", "rb") as po:
        return read_po(po, locale=language)


def test_every_string_has_a_french_translation() -> None:
    extracted = _extracted()
    assert len(extracted) > 150, "extraction found too little: is babel.cfg right?"
    catalog = _catalog("fr")
    missing = sorted(
        m
        for m in extracted
        if not catalog.get(m) or not catalog.get(m).string or catalog.get(m).fuzzy
    )
    assert not missing, f"untranslated in fr/messages.po: {missing}"
    stale = sorted(m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id)
    assert set(stale) <= extracted, "messages.po holds strings no source uses any more"


def test_french_translations_keep_their_placeholders() -> None:
    problems = [(m.id, errors) for m, errors in _catalog("fr").check()]
    assert not problems


@pytest.mark.parametrize("language", ["en", "fr"])
def test_compiled_catalogue_matches_its_source(language: str) -> None:
    fresh = io.BytesIO()
    write_mo(fresh, _catalog(language))
    fresh.seek(0)
    with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo", "rb") as mo:
        committed = gettext.GNUTranslations(mo)
    expected = gettext.GNUTranslations(fresh)
    assert committed._catalog == expected._catalog, (  # type: ignore[attr-defined]
        "run: pybabel compile -d dashboard/translations"
    )


def test_templates_show_no_text_outside_translation_calls() -> None:
    for path in sorted((DASHBOARD / "templates").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"<style>.*?</style>", " ", text, flags=re.S)
        text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", text, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text)
        words = {w for w in re.findall(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'\u2019-]+", text)} - UNTRANSLATED
        assert not words, f"{path.name} shows untranslated text: {sorted(words)}"


def test_every_builtin_rule_title_is_marked_for_translation() -> None:
    titles = {yaml.safe_load(p.read_text())["title"] for p in BUILTIN_DIR.glob("*.yaml")}
    assert len(titles) >= 8
    assert titles <= _extracted(), "list every built-in rule title in BUILTIN_RULE_TITLES"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = replayed_store(tmp_path)
    yield store
    store.close()


def test_language_follows_browser_switch_and_configuration(tmp_path: Path, store: Store) -> None:
    client: FlaskClient = make_app(tmp_path, store).test_client()
    login(client)
    assert "Appareils" in client.get("/devices", headers={"Accept-Language": "fr-FR,fr"}).text
    assert "Devices" in client.get("/devices", headers={"Accept-Language": "en"}).text
    response = client.get("/language/fr?next=/alerts")
    assert response.location == "/alerts"
    page = client.get("/", headers={"Accept-Language": "en"}).text
    assert '<html lang="fr">' in page and "Dernières alertes" in page
    assert "caméra" in client.get("/devices").text
    assert "Envoi de taille audio vers un serveur à l\u2019étranger" in client.get("/alerts").text
    assert client.get("/language/de").status_code == 404
    config = test_config(tmp_path).replace(dashboard__language="fr")
    other = make_app(tmp_path, store, MICWATCH_CONFIG=config).test_client()
    assert "Se connecter" in other.get("/login", headers={"Accept-Language": "en"}).text


def test_builtin_rule_french_titles_match_the_catalogue() -> None:
    catalog = _catalog("fr")
    for path in BUILTIN_DIR.glob("*.yaml"):
        rule = yaml.safe_load(path.read_text())
        assert rule["translations"]["fr"]["title"] == catalog.get(rule["title"]).string, path.name


def test_french_pages_show_french_alert_messages(tmp_path: Path, store: Store) -> None:
    client = make_app(tmp_path, store).test_client()
    login(client)
    client.get("/language/fr")
    for path in ("/", "/alerts"):
        page = client.get(path).text
        assert "a envoyé" in page and "shaped like a voice recording" not in page, path
    client.get("/language/en")
    assert "shaped like a voice recording" in client.get("/alerts").text


def test_french_numbers_and_units(tmp_path: Path, store: Store) -> None:
    client = make_app(tmp_path, store).test_client()
    login(client)
    client.get("/language/fr")
    text = client.get("/devices").text
    assert re.search(r"\d+(,\d)? ko", text) and "sûr à 9" in text


def test_french_pages_show_health_alerts_in_french(tmp_path: Path, store: Store) -> None:
    """A health alert (raised by the health monitor in English, with its event) reads in French
    on the French pages, title and message."""

    class Failing:
        def write_state(self) -> dict:
            location = str(tmp_path / "micwatch.db")
            return {"failing_for_s": 30.0, "error": "database or disk is full",
                    "pending_alerts": 2, "recreated": 0, "location": location}  # fmt: skip

    chain = HandlerChain([store])
    HealthMonitor(chain.emit, stall_after=300, loss_threshold=0.01, store=Failing()).on_tick(
        Tick(1_713_250_000.0, 1_713_249_999, [])
    )
    assert not chain.errors and store.flush(10)
    client = make_app(tmp_path, store).test_client()
    login(client)
    english = client.get("/alerts").text
    assert "Alerts cannot be saved" in english and "2 alert(s) are kept in memory" in english
    client.get("/language/fr")
    french = client.get("/alerts").text
    assert "Les alertes ne peuvent pas être enregistrées" in french
    assert "2 alerte(s) sont gardées en mémoire" in french
    assert "Alerts cannot be saved" not in french
