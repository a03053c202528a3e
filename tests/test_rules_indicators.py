"""Indicator lists: STIX2 bundles, plain host lists, suffix matching, import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules.indicators import IndicatorError, IndicatorSet, import_indicators, normalize_domain


def stix_bundle(objects: list[dict], **extra) -> str:
    return json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects, **extra})


def indicator(ident: str, pattern: str) -> dict:
    return {
        "type": "indicator",
        "id": f"indicator--{ident}",
        "pattern": pattern,
        "pattern_type": "stix",
        "spec_version": "2.1",
    }


SPY_OBJECTS = [
    {"type": "malware", "id": "malware--spy", "name": "SpyPhone", "is_family": True},
    {"type": "malware", "id": "malware--track", "name": "TrackKid", "is_family": True},
    indicator(
        "1",
        "[domain-name:value = 'spyphone.example'] OR "
        "[domain-name:value = 'cdn.spyphone-cloud.test']",
    ),
    indicator(
        "2",
        "[url:value = 'https://upload.trackkid.example:8443/api?x=1' OR "
        "domain-name:value = 'TrackKid.test']",
    ),
    indicator("3", "[ipv4-addr:value = '203.0.113.9'] OR [ipv6-addr:value = '2001:DB8::9']"),
    indicator("4", "[ipv4-addr:value = '198.51.100.0/24']"),
    indicator("5", "[domain-name:value = 'and.example' AND url:value = 'http://b.example/']"),
    indicator("6", "[file:hashes.'SHA-256' = 'abc']"),
    indicator("7", "[domain-name:value = 'o\\'brien.example']"),
    {
        "type": "relationship",
        "id": "relationship--1",
        "relationship_type": "indicates",
        "source_ref": "indicator--1",
        "target_ref": "malware--spy",
    },
    {
        "type": "relationship",
        "id": "relationship--2",
        "relationship_type": "indicates",
        "source_ref": "indicator--2",
        "target_ref": "malware--track",
    },
]


def test_stix_bundle_patterns(tmp_path: Path) -> None:
    path = tmp_path / "stalkerware.stix2"
    path.write_text(stix_bundle(SPY_OBJECTS))
    indicators = IndicatorSet()
    report = indicators.load_file(path)
    # OR-joined comparisons all count; AND and file-hash patterns are skipped, not guessed at;
    # a quote inside a value cannot form a domain and is skipped too
    assert (report.name, report.count, report.skipped) == ("stalkerware", 7, 3)
    assert indicators.match_name("spyphone.example") == "SpyPhone"
    assert indicators.match_name("a.b.cdn.spyphone-cloud.test") == "SpyPhone"
    assert indicators.match_name("upload.trackkid.example") == "TrackKid"  # host of the URL
    assert indicators.match_name("trackkid.test") == "TrackKid"
    assert indicators.match_name("trackkid.example") is None  # only the URL's host is listed
    assert indicators.match_name("and.example") is None
    assert indicators.match_ip("203.0.113.9") == "stalkerware"
    assert indicators.match_ip("2001:db8:0::9") == "stalkerware"
    assert indicators.match_ip("198.51.100.200") == "stalkerware"
    assert indicators.match_ip("198.51.101.1") is None
    # a rule may ask for the malware or for the file's list
    assert indicators.match_name("spyphone.example", frozenset({"stalkerware"})) == "stalkerware"
    assert indicators.match_name("spyphone.example", frozenset({"TrackKid"})) is None
    assert indicators.lists == {"stalkerware", "SpyPhone", "TrackKid"}


def test_bundle_list_name_from_its_only_malware_or_its_name(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(stix_bundle([SPY_OBJECTS[0], indicator("1", "[domain-name:value = 'a.test']")]))
    assert IndicatorSet().load_file(one).name == "SpyPhone"
    named = tmp_path / "named.json"
    named.write_text(stix_bundle([indicator("1", "[domain-name:value = 'a.test']")], name="IOCs"))
    assert IndicatorSet().load_file(named).name == "IOCs"


def test_suffix_matching() -> None:
    indicators = IndicatorSet()
    assert indicators.add("example.com", ("bad",))
    assert indicators.match_name("example.com") == "bad"
    assert indicators.match_name("evil.example.com") == "bad"
    assert indicators.match_name("EVIL.Example.COM.") == "bad"
    assert indicators.match_name("notexample.com") is None
    assert indicators.match_name("example.com.au") is None
    assert indicators.match_name("com") is None
    assert indicators.match_name("") is None


def test_most_specific_entry_wins() -> None:
    indicators = IndicatorSet()
    indicators.add("example.com", ("broad",))
    indicators.add("spy.example.com", ("narrow",))
    assert indicators.match_name("x.spy.example.com") == "narrow"
    assert indicators.match_name("x.spy.example.com", frozenset({"broad"})) == "broad"
    assert indicators.match_name("other.example.com") == "broad"


def test_plain_list_formats(tmp_path: Path) -> None:
    path = tmp_path / "trackers.txt"
    path.write_text(
        "# a comment\n"
        "tracker.example   # trailing comment\n"
        "0.0.0.0 ads.example metrics.example\n"
        "127.0.0.1 localhost\n"
        "*.wild.example\n"
        "https://Collect.Example:443/path\n"
        "192.0.2.7\n"
        "2001:db8::/48\n"
        "\n"
        "not a domain at all\n"
        "single\n"
        "bad_label-.example\n"
    )
    indicators = IndicatorSet()
    report = indicators.load_file(path)
    assert (report.name, report.count, report.skipped) == ("trackers", 7, 3)
    for name in (
        "tracker.example",
        "x.ads.example",
        "metrics.example",
        "a.wild.example",
        "collect.example",
    ):
        assert indicators.match_name(name) == "trackers", name
    assert indicators.match_name("localhost") is None
    assert indicators.match_ip("192.0.2.7") == "trackers"
    assert indicators.match_ip("2001:db8:1::5") is None
    assert indicators.match_ip("2001:db8::5") == "trackers"
    assert indicators.match_ip("0.0.0.0") is None
    assert indicators.match_ip("not-an-ip") is None


def test_normalize_domain() -> None:
    assert normalize_domain("Example.COM.") == "example.com"
    assert normalize_domain("*.example.com") == "example.com"
    assert normalize_domain("bücher.example") == "xn--bcher-kva.example"
    assert normalize_domain("example") is None
    assert normalize_domain("exa mple.com") is None


def test_bad_files_raise_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(IndicatorError, match=r"empty\.txt: holds no domain"):
        IndicatorSet().load_file(empty)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(IndicatorError, match=r"junk\.json: not valid JSON"):
        IndicatorSet().load_file(junk)
    other = tmp_path / "other.json"
    other.write_text('{"type": "report"}')
    with pytest.raises(IndicatorError, match="STIX 2 bundle"):
        IndicatorSet().load_file(other)


def test_from_paths_reads_directories_and_skips_missing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a.example\n")
    (tmp_path / "b.json").write_text(
        stix_bundle([indicator("1", "[domain-name:value = 'b.test']")])
    )
    (tmp_path / "notes.md").write_text("# not a list\n")
    (tmp_path / ".hidden.txt").write_text("hidden.example\n")
    indicators = IndicatorSet.from_paths([tmp_path, tmp_path / "missing"])
    assert indicators.match_name("a.example") == "a"
    assert indicators.match_name("b.test") == "b"
    assert indicators.match_name("hidden.example") is None
    assert len(indicators) == 2


def test_import_copies_into_the_directory(tmp_path: Path) -> None:
    source = tmp_path / "src" / "stalkerware.stix2"
    source.parent.mkdir()
    source.write_text(stix_bundle(SPY_OBJECTS))
    target = tmp_path / "indicators.d"
    assert import_indicators(source, target) == ("stalkerware", 7)
    assert (target / "stalkerware.stix2").read_text() == source.read_text()
    assert [p.name for p in target.iterdir()] == ["stalkerware.stix2"]
    loaded = IndicatorSet.from_paths([target])
    assert loaded.match_name("spyphone.example") == "SpyPhone"
    bad = tmp_path / "src" / "bad.txt"
    bad.write_text("nothing here\n")
    with pytest.raises(IndicatorError):
        import_indicators(bad, target)
    assert not (target / "bad.txt").exists()
