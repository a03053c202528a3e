"""Rule discovery, ``check_rules`` (micwatch rules check) and ``add_allow_rule``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_rules_support import MAC, burst, contacted, destination, device, named, seen, write_rule

from rules.engine import RuleEngine
from rules.loader import BUILTIN_DIR, add_allow_rule, check_rules, rule_files, rule_paths


def test_rule_files_order_and_filter(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.yml", ".hidden.yaml", "notes.txt", "c.yaml~"):
        (tmp_path / name).write_text("x")
    single = tmp_path / "other" / "z.yaml"
    single.parent.mkdir()
    single.write_text("x")
    found = rule_files([tmp_path, single, tmp_path / "missing"])
    assert [(i, p.name) for i, p in found] == [(0, "a.yml"), (0, "b.yaml"), (1, "z.yaml")]


def test_rule_paths_follow_the_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    paths = rule_paths({"rules.paths": ["/srv/rules"], "store.state_dir": str(tmp_path / "s")})
    assert paths[0] == BUILTIN_DIR
    assert paths[-1] == Path("/srv/rules")
    assert paths[1].name == "rules.d"
    assert paths[2] == tmp_path / "s" / "rules.d"  # where micwatch writes the user's rules


def test_check_rules_reports_every_problem_as_file_line_field(tmp_path: Path) -> None:
    good = write_rule(
        tmp_path,
        "good.yaml",
        """
        id: good
        title: Good
        level: low
        event: device_seen
        message: hi
        """,
    )
    bad = write_rule(
        tmp_path,
        "bad.yaml",
        """
        id: bad
        title: Bad
        level: loud
        event: device_seen
        message: hi
        """,
    )
    dup = write_rule(tmp_path, "same-id.yaml", good.read_text())
    allow = write_rule(
        tmp_path,
        "zz-allow.yaml",
        """
        id: zz-allow
        title: Allow
        action: allow
        event: device_seen
        match: {first_ever: false}
        applies_to: [new-device, no-such-rule]
        """,
    )
    missing = tmp_path / "missing.yaml"
    errors = [str(e) for e in check_rules([tmp_path, missing])]
    assert errors == [
        f"{missing}: (file): does not exist",
        f"{bad}:3: level: must be one of info, low, medium, high",
        f"{dup}:1: id: 'good' is already the id of {good}",
        f"{allow}:6: applies_to: no rule has the id 'no-such-rule'",
    ]


def test_add_allow_rule_writes_a_rule_that_allows(tmp_path: Path) -> None:
    rules_d = tmp_path / "rules.d"
    path = add_allow_rule(
        rules_d,
        MAC.upper(),
        dest_org="Amazon.com",
        dest_country="ie",
        comment="The kitchen Echo\nis fine",
    )
    assert path.parent == rules_d
    document = yaml.safe_load(path.read_text())
    assert document["action"] == "allow"
    assert document["match"] == {"device.mac": MAC, "dest.org": "amazon.com", "dest.country": "IE"}
    assert document["description"] == "The kitchen Echo is fine"
    assert check_rules([BUILTIN_DIR, rules_d]) == []
    engine = RuleEngine([BUILTIN_DIR, rules_d])
    assert engine.evaluate(burst()) == []
    assert engine.evaluate(contacted()) == []
    assert [a.rule for a in engine.evaluate(burst(dest=destination(country="US")))] == [
        "audio-upload-foreign"
    ]
    other = device(mac="aa:aa:aa:aa:aa:aa")
    assert [a.rule for a in engine.evaluate(burst(dev=other))] == ["audio-upload-foreign"]
    assert not [p for p in rules_d.iterdir() if p.name.startswith(".")]


def test_add_allow_rule_for_a_whole_device(tmp_path: Path) -> None:
    path = add_allow_rule(tmp_path, MAC)
    engine = RuleEngine([BUILTIN_DIR, tmp_path])
    assert engine.evaluate(burst()) == []
    assert engine.evaluate(seen()) == []
    assert engine.evaluate(named("a.example")) == []
    assert path.stem.startswith("allow-f0-27-2d-11-22-33")


def test_add_allow_rule_never_replaces_a_file(tmp_path: Path) -> None:
    first = add_allow_rule(tmp_path, MAC, dest_name="avs-alexa-eu.amazon.com.")
    second = add_allow_rule(tmp_path, MAC, dest_name="avs-alexa-eu.amazon.com")
    assert first != second
    assert second.stem == first.stem + "-2"
    assert yaml.safe_load(second.read_text())["id"] == second.stem
    assert check_rules([tmp_path]) == []


@pytest.mark.parametrize(
    ("mac", "country"), [("not-a-mac", None), (MAC, "Ireland"), ("f0:27:2d:11:22", None)]
)
def test_add_allow_rule_rejects_bad_arguments(
    tmp_path: Path, mac: str, country: str | None
) -> None:
    with pytest.raises(ValueError):
        add_allow_rule(tmp_path, mac, dest_country=country)
    assert list(tmp_path.iterdir()) == []


def test_hostile_values_are_quoted_safely(tmp_path: Path) -> None:
    path = add_allow_rule(tmp_path, MAC, dest_org="evil.example\nenabled: false # x: 'y'")
    document = yaml.safe_load(path.read_text())
    assert document["match"]["dest.org"] == "evil.example\nenabled: false # x: 'y'"
    assert "enabled" not in document
