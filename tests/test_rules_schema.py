"""Rule file validation (errors name file, line and field) and message templates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from test_rules_support import at, burst, destination, device

from rules.fields import flatten
from rules.fields_template import MAX_VALUE_CHARS, Template
from rules.loader import make_context
from rules.schema import RuleError, parse_rule

PATH = Path("rules.d/bad.yaml")


def errors_of(text: str) -> list[str]:
    rule, errors = parse_rule(textwrap.dedent(text).lstrip("\n"), PATH, make_context())
    assert (rule is None) == bool(errors)
    return [str(e) for e in errors]


GOOD = """
id: good
title: Good
level: high
event: upload_burst
match:
  shape: audio
message: "{device.name} spoke"
"""


def test_a_valid_rule_has_no_error() -> None:
    assert errors_of(GOOD) == []


def test_unknown_field_names_file_line_and_field() -> None:
    errors = errors_of("""
        id: bad
        title: Bad
        level: high
        event: upload_burst
        match:
          shape: audio
          dest.contry: IE
        message: m
        """)
    assert errors == [
        f"{PATH}:7: match.dest.contry: unknown field 'dest.contry' for event upload_burst; "
        "did you mean dest.country?"
    ]


@pytest.mark.parametrize(
    ("snippet", "line", "field", "problem"),
    [
        (
            "  dest.name|re: '(unclosed'\n",
            7,
            "match.dest.name|re",
            "not a valid regular expression",
        ),
        ("  dest.ip|cidr: 10.0.0.0/33\n", 7, "match.dest.ip|cidr", "not a network"),
        ("  dest.name|sounds: x\n", 7, "match.dest.name|sounds", "unknown modifier |sounds"),
        ("  dest.name|gte: 3\n", 7, "match.dest.name|gte", "compares numbers"),
        ("  bytes_up|endswith: '0'\n", 7, "match.bytes_up|endswith", "applies to text"),
        ("  bytes_up|gte: lots\n", 7, "match.bytes_up|gte", "expects a number"),
        ("  dest.foreign: maybe\n", 7, "match.dest.foreign", "expects true or false"),
        ("  dest.country|in: FR\n", 7, "match.dest.country|in", "|in takes a list"),
        (
            "  dest.country|in|endswith: [x]\n",
            7,
            "match.dest.country|in|endswith",
            "cannot be combined",
        ),
        ("  dest.country|not|not: FR\n", 7, "match.dest.country|not|not", "|not appears twice"),
        ("  dest.country: []\n", 7, "match.dest.country", "an empty list can never match"),
        ("  bytes_up|gte: [1, 2]\n", 7, "match.bytes_up|gte", "takes one number"),
        ("  dest.org|endswith: null\n", 7, "match.dest.org|endswith", "null can only"),
        ("  shape: {a: b}\n", 7, "match.shape", "a single scalar"),
    ],
)
def test_condition_errors_point_at_their_line(
    snippet: str, line: int, field: str, problem: str
) -> None:
    text = "id: bad\ntitle: Bad\nlevel: high\nevent: upload_burst\nmessage: m\nmatch:\n" + snippet
    errors = errors_of(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{PATH}:{line}: {field}: ")
    assert problem in errors[0]


def test_every_problem_of_a_file_is_reported_with_its_line() -> None:
    _, errors = parse_rule(
        textwrap.dedent("""\
        id: Bad Id
        title: Bad
        level: severe
        event: upload_burst
        supress:
          period: 30m
        suppress:
          key: [device.mac, dest.nome]
          period: soon
        when:
          hours: "25:00-07:00"
          days: [mon, someday]
        message: "{device.name} {nothing.here}"
        """),
        PATH,
        make_context(),
    )
    found = {(e.line, e.field) for e in errors}
    assert found == {
        (1, "id"),
        (3, "level"),
        (5, "supress"),
        (8, "suppress.key"),
        (9, "suppress.period"),
        (11, "when.hours"),
        (12, "when.days"),
        (13, "message"),
    }
    assert all(isinstance(e, RuleError) and e.path == PATH for e in errors)


def test_yaml_syntax_error_line() -> None:
    errors = errors_of("id: x\ntitle: y\nmatch:\n  a: [1, 2\nlevel: low\n")
    assert len(errors) == 1
    assert errors[0].startswith(f"{PATH}:5: yaml: not valid YAML")


def test_duplicate_key_and_missing_keys() -> None:
    errors = errors_of("id: x\ntitle: y\ntitle: z\nevent: device_seen\n")
    assert f"{PATH}:3: title: appears twice (first on line 2)" in errors
    missing = errors_of("title: y\nevent: device_seen\n")
    assert f"{PATH}:1: id: is required" in missing
    assert f"{PATH}:1: level: is required" in missing
    assert f"{PATH}:1: message: is required" in missing


def test_empty_and_non_mapping_files() -> None:
    assert errors_of("") == [f"{PATH}:1: (file): is empty; a rule file holds one mapping"]
    assert errors_of("- a\n- b\n") == [f"{PATH}:1: (file): must be a mapping of keys to values"]


def test_event_and_field_vocabulary() -> None:
    assert "unknown event 'burst'" in errors_of(GOOD.replace("upload_burst", "burst"))[0]
    # a field must exist for every event the rule listens to
    text = GOOD.replace("event: upload_burst", "event: [upload_burst, device_seen]")
    assert errors_of(text) == [
        f"{PATH}:6: match.shape: unknown field 'shape' for event device_seen"
    ]


def test_allow_rule_constraints() -> None:
    errors = errors_of("""
        id: a
        title: A
        action: allow
        event: upload_burst
        suppress: {key: [device.mac], period: 1h}
        """)
    assert f"{PATH}:5: suppress: an allow rule raises nothing to suppress" in errors
    assert f"{PATH}:1: match: an allow rule needs at least one condition" in errors
    assert errors_of(GOOD + "applies_to: [x]\n") == [
        f"{PATH}:8: applies_to: only allow rules have applies_to"
    ]


def test_message_placeholder_must_be_a_field() -> None:
    errors = errors_of(GOOD.replace("{device.name} spoke", "{device.nmae} spoke"))
    assert errors == [
        f"{PATH}:7: message: unknown field 'device.nmae' for event upload_burst; "
        "did you mean device.name?"
    ]
    assert "not a valid template" in errors_of(GOOD.replace("spoke", "spoke }"))[0]


# -- templates --------------------------------------------------------------------------------


def test_template_renders_fields_and_missing_as_unknown() -> None:
    record = flatten(burst(dest=destination(org=None, names=set())))
    template = Template(
        "{device.name} -> {dest.org|dest.name|dest.ip} in {dest.country}; {nonexistent} {{literal}}"
    )
    assert template.render(record) == ("Echo Dot -> 52.94.233.10 in IE; unknown {literal}")
    assert template.fields == {
        "device.name",
        "dest.org",
        "dest.name",
        "dest.ip",
        "dest.country",
        "nonexistent",
    }


def test_template_formats() -> None:
    record = flatten(
        burst(
            ts=at("2024-03-05 02:07"),
            bytes_up=1_234_567,
            duration_s=125.0,
            mean_kbps=7.25,
            audio_seconds=3.0,
        )
    )
    from zoneinfo import ZoneInfo

    template = Template(
        "{bytes_up:size} {duration_s:duration} {ts:time} {mean_kbps} "
        "{mean_kbps:.2f} {audio_seconds} {dest.foreign} {services} "
        "{shape:size}",
        ZoneInfo("Europe/Paris"),
    )
    assert template.render(record) == "1.2 MB 2 min 5 s 02:07 7.2 7.25 3 yes tls audio"


@pytest.mark.parametrize(
    ("name", "forbidden"),
    [
        ("Kitchen\nALERT: all clear", "\n"),
        ("\x1b[2J\x1b[31mred", "\x1b"),
        ("safe\u202eexe.txt", "\u202e"),
        ("a\rb\x00c\x7f\x85", "\r"),
    ],
)
def test_hostile_device_names_are_escaped(name: str, forbidden: str) -> None:
    record = flatten(burst(dev=device(name=name)))
    message = Template("{device.name} sent audio").render(record)
    assert forbidden not in message
    assert message.isprintable()
    assert message.endswith(" sent audio")


def test_markup_is_kept_as_plain_text_and_long_values_are_cut() -> None:
    record = flatten(burst(dev=device(name="<script>alert(1)</script>" + "x" * 500)))
    message = Template("{device.name}!").render(record)
    assert message.startswith("<script>alert(1)</script>xx")
    assert len(message) == MAX_VALUE_CHARS + 1
    assert message.endswith("…!")
