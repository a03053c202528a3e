"""Signature files: schema errors name file, line and field; pattern semantics; loading order."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.model import Device
from monitor.signatures import (
    CATEGORIES,
    Facts,
    SignatureError,
    builtin_signature_dir,
    check_signatures,
    compile_pattern,
    default_signature_paths,
    load_signatures,
)

GOOD = """\
- id: demo-plug
  family: Demo
  category: plug
  weight: 0.8
  name: Demo {model}
  match:
    hostname: 're:^(?P<model>DP-\\d+)'
"""


def write(tmp_path: Path, text: str, name: str = "sigs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def device(**facts: object) -> Device:
    return Device(mac="02:00:00:00:00:01", first_seen=0.0, last_seen=0.0, **facts)  # type: ignore[arg-type]


def test_builtin_signatures_are_valid_and_cover_every_category() -> None:
    assert check_signatures([builtin_signature_dir()]) == []
    signatures = load_signatures([builtin_signature_dir()])
    assert len(signatures) > 200
    covered = {s.category for s in signatures}
    assert covered == set(CATEGORIES)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        # Each case: a broken entry, the line the error must point at, and what it must name.
        (GOOD.replace("category: plug", "category: kettle"), 3, "field 'category' must be one of"),
        (GOOD.replace("weight: 0.8", "weight: 1.5"), 4, "field 'weight' must be a number"),
        (GOOD.replace("weight: 0.8", "weight: yes"), 4, "field 'weight' must be a number"),
        (GOOD.replace("    hostname:", "    hostnam:"), 7, "field 'match.hostnam' is unknown"),
        (GOOD.replace("'re:^(?P<model>DP-\\d+)'", "'re:^(DP-'"), 7, "invalid regular expression"),
        (GOOD.replace("'re:^(?P<model>DP-\\d+)'", "42"), 7, "must be a text pattern"),
        (GOOD.replace("Demo {model}", "Demo {serial}"), 5, "field 'name' uses {serial}"),
        (GOOD.replace("  family: Demo\n", ""), 1, "field 'family' is missing"),
        (GOOD + "  colour: red\n", 8, "field 'colour' is unknown"),
        (GOOD.replace("id: demo-plug", "id: Demo Plug"), 1, "field 'id' must be lowercase"),
        (
            GOOD.replace("    hostname: 're:^(?P<model>DP-\\d+)'", "    mdns_txt: md"),
            7,
            "field 'match.mdns_txt': must map TXT keys",
        ),
        (GOOD + GOOD, 8, "field 'id' repeats the id of"),
        (GOOD.replace("  weight: 0.8\n", "  weight: 0.8\n  weight: 0.7\n"), 5, "given twice"),
    ],
)
def test_bad_signature_reports_file_line_and_field(
    tmp_path: Path, text: str, line: int, needle: str
) -> None:
    path = write(tmp_path, text)
    errors = check_signatures([path])
    assert errors, "the broken file was accepted"
    assert any(e.startswith(f"{path}:{line}: ") and needle in e for e in errors), errors
    with pytest.raises(SignatureError) as raised:
        load_signatures([path])
    assert raised.value.errors == errors


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "- id: [unclosed\n")
    errors = check_signatures([path])
    assert len(errors) == 1
    assert errors[0].startswith(f"{path}:9: not valid YAML")


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    bad = GOOD.replace("category: plug", "category: kettle").replace("weight: 0.8", "weight: 0")
    errors = check_signatures([write(tmp_path, bad), tmp_path / "missing.yaml"])
    assert len(errors) == 3
    assert errors[-1] == f"{tmp_path / 'missing.yaml'}: no such signature file or folder"


def test_file_must_be_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "id: lonely\n")
    assert check_signatures([path]) == [
        f"{path}:1: a signature file must be a YAML list of signatures"
    ]


def test_good_signature_compiles_with_source_and_renders_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (signature,) = load_signatures([path])
    assert signature.source == f"{path}:1"
    hit = signature.match(Facts(device(hostname="DP-100")))
    assert hit is not None
    assert hit.evidence == "DHCP hostname DP-100"
    assert signature.render_name(device(hostname="DP-100"), hit.groups) == "Demo DP-100"
    assert signature.match(Facts(device(hostname="XP-100"))) is None


def test_later_root_replaces_same_id_and_folders_read_yaml_files_in_order(tmp_path: Path) -> None:
    builtin = tmp_path / "builtin"
    user = tmp_path / "user"
    builtin.mkdir()
    user.mkdir()
    write(builtin, GOOD, "a.yaml")
    write(builtin, GOOD.replace("demo-plug", "demo-two"), "b.yml")
    write(builtin, "not: yaml signatures", "notes.txt")
    write(user, GOOD.replace("weight: 0.8", "weight: 0.2"), "override.yaml")
    signatures = {s.id: s for s in load_signatures([builtin, user])}
    assert set(signatures) == {"demo-plug", "demo-two"}
    assert signatures["demo-plug"].weight == 0.2


def test_default_paths_add_existing_user_folders(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_signature_paths()[0] == builtin_signature_dir()
    assert tmp_path / "micwatch" / "signatures.d" not in default_signature_paths()
    (tmp_path / "micwatch" / "signatures.d").mkdir(parents=True)
    assert default_signature_paths()[-1] == tmp_path / "micwatch" / "signatures.d"


@pytest.mark.parametrize(
    ("kind", "pattern", "value", "matches"),
    [
        ("domain", "*.amazon.com", "avs-alexa-4-na.amazon.com", True),
        ("domain", "*.amazon.com", "amazon.com", True),
        ("domain", "*.amazon.com", "notamazon.com", False),
        ("domain", "avs-alexa-*.amazon.com", "avs-alexa-4-na.amazon.com", True),
        ("domain", "avs-alexa-*.amazon.com", "avs-alexa.evil.example.amazon.com", False),
        ("domain", "*.p2psy*.io.mi.com", "xiaomi8.p2psy2.io.mi.com", True),
        ("domain", "*.io.mi.com", "io.mi.com.example.org", False),
        ("dhcp_fingerprint", "1,3,6,15", "1,3,6,15", True),
        ("dhcp_fingerprint", "1,3,6,15", "1,3,6,15,28", False),
        ("dhcp_fingerprint", "1,3,6,*", "1,3,6,15,28", True),
        ("dhcp_fingerprint", "1,3,6,*", "1,3,6", True),
        ("dhcp_fingerprint", "1,3,6,*", "1,3,60", False),
        ("vendor", "belkin", "Belkin International Inc.", True),
        (
            "vendor",
            "re:^LG Electronics(?! \\(Mobile)",
            "LG Electronics (Mobile Communications)",
            False,
        ),
        ("hostname", "*-pc", "LIVINGROOM-PC", True),
        ("hostname", "*-pc", "LIVINGROOM-PC2", False),
        ("hostname", "re:iphone", "Annas-iPhone", True),
        ("mdns_service", "_googlecast._tcp.local.", "_googlecast._tcp", True),
    ],
)
def test_pattern_semantics(kind: str, pattern: str, value: str, matches: bool) -> None:
    assert (compile_pattern(kind, pattern).match(value) is not None) is matches


def test_domain_evidence_counts_further_matches(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "- id: cloud\n  family: Demo\n  category: camera\n  weight: 0.5\n"
        "  match:\n    domain: '*.example.com'\n",
    )
    (signature,) = load_signatures([path])
    facts = Facts(device(domains={"b.example.com", "a.example.com", "other.org", "c.example.com"}))
    hit = signature.match(facts)
    assert hit is not None
    assert hit.evidence == "contacts a.example.com (+2 more)"


def test_matchers_in_one_signature_are_anded_and_lists_are_any_of(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "- id: both\n  family: Demo\n  category: camera\n  weight: 0.5\n  match:\n"
        "    vendor: [Acme, Globex]\n    mdns_service: _demo._tcp\n"
        "    mdns_txt: {md: 'Cam*', fn: '*'}\n",
    )
    (signature,) = load_signatures([path])
    full = {
        "vendor": "Globex Corp",
        "services": {"_demo._tcp"},
        "mdns_txt": {"md": "Cam 2", "fn": "x"},
    }
    hit = signature.match(Facts(device(**full)))
    assert hit is not None
    assert hit.evidence == "OUI Globex Corp + mDNS _demo._tcp md=Cam 2 fn=x"
    for missing in ("vendor", "services", "mdns_txt"):
        partial = {k: v for k, v in full.items() if k != missing}
        assert signature.match(Facts(device(**partial))) is None, missing
