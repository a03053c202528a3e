"""The dashboard's settings file: validated atomic writes, and its place in the configuration's
precedence (after the TOML file, before the environment and the command line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load
from monitor.errors import ConfigError
from monitor.settings_file import SETTINGS_FILE, read_settings, write_settings


def test_write_validates_merges_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / SETTINGS_FILE
    write_settings(path, {"enrich.home": "FR,BE", "dashboard.disabled_rules": ["new-device"]})
    write_settings(path, {"store.retention": "14d"})
    assert read_settings(path) == {
        "enrich.home": ["FR", "BE"],
        "dashboard.disabled_rules": ["new-device"],
        "store.retention": 14 * 86400.0,
    }
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError):
        write_settings(path, {"store.retention": "a while"})
    with pytest.raises(ConfigError):
        write_settings(path, {"nothing.here": 1})
    assert read_settings(path)["store.retention"] == 14 * 86400.0
    write_settings(path, {"enrich.home": None})
    assert "enrich.home" not in read_settings(path)


def test_strings_are_quoted_safely(tmp_path: Path) -> None:
    path = tmp_path / SETTINGS_FILE
    targets = ['json://host/"quoted"\\path', "ntfy://example.org/a\nb"]
    write_settings(path, {"notify.targets": targets})
    assert read_settings(path)["notify.targets"] == [
        'json://host/"quoted"\\path',
        "ntfy://example.org/a\nb",
    ]


def test_precedence_file_then_settings_then_environment_then_cli(tmp_path: Path) -> None:
    config_file = tmp_path / "micwatch.toml"
    config_file.write_text(
        f'[store]\nstate_dir = "{tmp_path}"\nretention = "2d"\n[enrich]\nhome = ["DE"]\n'
        '[rules]\nnight = "23:00-06:00"\n'
    )
    write_settings(tmp_path / SETTINGS_FILE, {"store.retention": "5d", "enrich.home": ["FR"]})
    config = load(config_file, env={})
    assert config["store.retention"] == 5 * 86400 and config["enrich.home"] == ["FR"]
    assert config["rules.night"] == "23:00-06:00"
    assert config.sources["enrich.home"] == str(tmp_path / SETTINGS_FILE)
    config = load(config_file, env={"MICWATCH_ENRICH_HOME": "BE"}, cli={"store.retention": "9d"})
    assert config["enrich.home"] == ["BE"] and config["store.retention"] == 9 * 86400


def test_the_state_dir_of_the_environment_or_cli_locates_the_file(tmp_path: Path) -> None:
    write_settings(tmp_path / SETTINGS_FILE, {"enrich.home": ["IE"]})
    assert load(None, env={"MICWATCH_STORE_STATE_DIR": str(tmp_path)})["enrich.home"] == ["IE"]
    assert load(None, env={}, cli={"store.state_dir": str(tmp_path)})["enrich.home"] == ["IE"]


def test_a_broken_settings_file_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text("[store]\nretention = 'soon'\n")
    with pytest.raises(ConfigError, match=r"settings\.toml"):
        load(None, env={"MICWATCH_STORE_STATE_DIR": str(tmp_path)})
