"""Rule conditions: every modifier both ways, any-of lists, AND, |not, CIDR, time of day."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from test_rules_support import at, burst, destination, device, named

from monitor.events import Event
from rules.conditions import parse_hours, parse_timezone
from rules.fields import flatten
from rules.indicators import IndicatorSet
from rules.loader import make_context
from rules.schema import Rule, parse_rule


def compile_rule(
    body: str,
    *,
    event: str = "upload_burst",
    tz: str = "Europe/Paris",
    indicators: IndicatorSet | None = None,
    night: str = "22:00-07:00",
) -> Rule:
    text = f"id: t\ntitle: t\nlevel: low\nevent: {event}\nmessage: m\n" + textwrap.dedent(body)
    rule, errors = parse_rule(
        text, Path("t.yaml"), make_context(indicators, parse_timezone(tz), night)
    )
    assert not errors, [str(e) for e in errors]
    assert rule is not None
    return rule


def matches(body: str, event: Event | None = None, **options) -> bool:
    rule = compile_rule(body, **options)
    return rule.matches(flatten(event if event is not None else burst()))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("dest.country: IE", True),
        ("dest.country: ie", True),  # text compares case-insensitively
        ("dest.country: FR", False),
        ("device.category: [toy, speaker]", True),
        ("device.category: [toy, camera]", False),
        ("bytes_up|gte: 96000", True),
        ("bytes_up|gte: 96001", False),
        ("bytes_up|lte: 96000", True),
        ("bytes_up|lte: 95999", False),
        ("bytes_up|gt: 95999", True),
        ("bytes_up|gt: 96000", False),
        ("bytes_up|lt: 96001", True),
        ("bytes_up|lt: 96000", False),
        ("mean_kbps|gte: 23.5", True),
        ("mean_kbps|gte: 24.5", False),
        ("dest.country|in: [FR, IE]", True),
        ("dest.country|in: [FR, DE]", False),
        ("dest.ip|cidr: 52.94.0.0/16", True),
        ("dest.ip|cidr: [10.0.0.0/8, 52.94.233.0/24]", True),
        ("dest.ip|cidr: 10.0.0.0/8", False),
        ("dest.ip|cidr: '2001:db8::/32'", False),
        ("dest.name|endswith: .amazon.com", True),
        ("dest.name|endswith: .AMAZON.com", True),
        ("dest.name|endswith: .google.com", False),
        ("dest.name|startswith: avs-", True),
        ("dest.name|startswith: api-", False),
        ("dest.name|contains: alexa", True),
        ("dest.name|contains: siri", False),
        (r"dest.name|re: '^avs-[a-z-]+\.amazon\.com$'", True),
        ("dest.name|re: '^api'", False),
        ("dest.name|re: 'AVS'", False),  # regular expressions are case-sensitive
        ("dest.name|re: '(?i)AVS'", True),
        ("dest.foreign: true", True),
        ("dest.foreign: false", False),
        ("dest.local: false", True),
        ("services: TLS", True),  # a list field matches when any element does
        ("services: http", False),
        ("transports|in: [udp, tcp]", True),
        ("dest.country|not: FR", True),
        ("dest.country|not: IE", False),
        ("dest.country|not|in: [FR, DE]", True),
        ("dest.country|not|in: [FR, IE]", False),
        ("dest.country|in|not: [FR, IE]", False),  # |not may come anywhere in the chain
        ("dest.name|not|endswith: .google.com", True),
        ("dest.name|not|endswith: .amazon.com", False),
        ("dest.ip|not|cidr: 10.0.0.0/8", True),
        ("dest.ip|not|cidr: 52.0.0.0/8", False),
        ("services|not|in: [http, dns]", True),
        ("services|not: tls", False),
        ("bytes_up|not|gte: 100000", True),
        ("bytes_up|not|gte: 1000", False),
        ("dest.org: null", False),
        ("dest.org|not: null", True),
    ],
)
def test_modifiers(condition: str, expected: bool) -> None:
    assert matches(f"match:\n  {condition}\n") is expected


def test_and_across_keys() -> None:
    assert matches("match:\n  shape: audio\n  dest.country: IE\n  bytes_up|gte: 1000\n")
    assert not matches("match:\n  shape: audio\n  dest.country: IE\n  bytes_up|gte: 1000000\n")
    assert not matches("match:\n  shape: video\n  dest.country: IE\n")


def test_missing_field_is_never_evidence() -> None:
    unknown = burst(dest=destination(country=None, org=None))
    assert not matches("match:\n  dest.country|not|in: [FR]\n", unknown)
    assert not matches("match:\n  dest.country|not: FR\n", unknown)
    assert not matches("match:\n  dest.org|endswith: .com\n", unknown)
    assert matches("match:\n  dest.country: null\n", unknown)
    assert matches("match:\n  dest.country: [FR, null]\n", unknown)
    assert not matches("match:\n  dest.country|not: null\n", unknown)


def test_cidr_ipv6() -> None:
    v6 = burst(dest=destination(ip="2a05:d018:0:0::1"))
    assert matches("match:\n  dest.ip|cidr: '2a05:d018::/32'\n", v6)
    assert not matches("match:\n  dest.ip|cidr: '2a05:d019::/32'\n", v6)
    assert not matches("match:\n  dest.ip|cidr: 52.0.0.0/8\n", v6)


def test_text_values_are_read_as_written() -> None:
    """YAML 1.1 would read NO as false and 00:11:22:33:44:55 as a base-60 number."""
    norway = burst(dest=destination(country="NO"), dev=device(mac="00:11:22:33:44:55"))
    assert matches("match:\n  dest.country: NO\n  device.mac: 00:11:22:33:44:55\n", norway)
    assert not matches("match:\n  dest.country: NO\n", burst())


def test_indicator_modifier_and_list_name() -> None:
    indicators = IndicatorSet()
    indicators.add("example.com", ("stalkerware",))
    indicators.add("198.51.100.0/24", ("trackers",))
    rule = compile_rule(
        "match:\n  name|indicator: any\n", event="name_contacted", indicators=indicators
    )
    record = flatten(named("Evil.Example.com."))
    assert rule.matches(record)
    assert record["name.indicator"] == "stalkerware"
    assert not rule.matches(flatten(named("notexample.com")))
    named_list = compile_rule(
        "match:\n  name|indicator: [trackers]\n", event="name_contacted", indicators=indicators
    )
    assert not named_list.matches(flatten(named("evil.example.com")))
    by_ip = compile_rule(
        "match:\n  dest.ip|indicator: trackers\n", event="name_contacted", indicators=indicators
    )
    assert by_ip.matches(flatten(named("x.test", dest_ip="198.51.100.7")))
    assert not by_ip.matches(flatten(named("x.test", dest_ip="198.51.101.7")))
    negated = compile_rule(
        "match:\n  name|not|indicator: any\n", event="name_contacted", indicators=indicators
    )
    assert negated.matches(flatten(named("example.org")))
    assert not negated.matches(flatten(named("a.example.com")))


@pytest.mark.parametrize(
    ("local_time", "expected"),
    [
        ("2024-03-05 23:30", True),
        ("2024-03-05 22:00", True),
        ("2024-03-06 00:10", True),
        ("2024-03-06 06:59", True),
        ("2024-03-06 07:00", False),
        ("2024-03-05 14:00", False),
        ("2024-03-05 21:59", False),
    ],
)
def test_hours_wrap_midnight_on_event_time(local_time: str, expected: bool) -> None:
    event = burst(ts=at(local_time))
    assert matches('when:\n  hours: "22:00-07:00"\n', event) is expected
    assert matches("when:\n  hours: night\n", event) is expected


def test_hours_use_the_configured_timezone() -> None:
    late_in_paris = burst(ts=at("2024-03-05 23:30"))  # 17:30 in New York
    assert matches('when:\n  hours: "22:00-07:00"\n', late_in_paris, tz="Europe/Paris")
    assert not matches('when:\n  hours: "22:00-07:00"\n', late_in_paris, tz="America/New_York")


def test_night_keyword_follows_the_option() -> None:
    event = burst(ts=at("2024-03-05 21:30"))
    assert not matches("when:\n  hours: night\n", event)
    assert matches("when:\n  hours: night\n", event, night="21:00-06:00")


def test_days_and_hours_together() -> None:
    saturday_night = burst(ts=at("2024-03-09 23:00"))
    tuesday_night = burst(ts=at("2024-03-05 23:00"))
    saturday_noon = burst(ts=at("2024-03-09 12:00"))
    body = 'when:\n  hours: "22:00-07:00"\n  days: [sat, sunday]\n'
    assert matches(body, saturday_night)
    assert not matches(body, tuesday_night)
    assert not matches(body, saturday_noon)


def test_parse_hours_rejects_nonsense() -> None:
    assert parse_hours("22:00-07:00") == (1320, 420)
    assert parse_hours("00:00-24:00") == (0, 1440)
    for bad in ("22-07", "25:00-07:00", "10:00-10:00", "07:60-08:00"):
        with pytest.raises(ValueError):
            parse_hours(bad)
