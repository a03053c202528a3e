"""Built-in rules on synthetic events, the documentation of fields, and throughput figures."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from test_rules_support import at, burst, contacted, destination, device, named, seen

from monitor import config
from monitor.events import Event, FlowEnd
from monitor.model import Flow
from rules.engine import RuleEngine
from rules.fields import EVENT_FIELDS, EVENTS, FIELDS, flatten
from rules.indicators import IndicatorSet
from rules.loader import BUILTIN_DIR, check_rules, load_rule_file, make_context, rule_files
from rules.schema import parse_rule
from rules.schema_reference import ALLOW_EXAMPLE, reference_markdown

REFERENCE = Path(__file__).resolve().parent.parent / "rules" / "FIELDS.md"
DAY = at("2024-03-05 14:00")
NIGHT = at("2024-03-06 02:30")
HOME = destination(
    ip="90.84.1.2",
    names={"api.freebox.fr"},
    country="FR",
    org="free.fr",
    foreign=False,
    jurisdiction="FR",
)


def builtin_engine() -> RuleEngine:
    indicators = IndicatorSet()
    indicators.add("spy.example", ("stalkerware",))
    indicators.add("203.0.113.0/24", ("stalkerware",))
    return RuleEngine([BUILTIN_DIR], indicators, timezone="Europe/Paris")


def fires(event: Event) -> list[str]:
    return sorted(a.rule for a in builtin_engine().evaluate(event))


def test_builtin_rules_are_valid_and_complete() -> None:
    assert check_rules() == []
    files = rule_files([BUILTIN_DIR])
    ctx = make_context()
    ids = set()
    for _, path in files:
        rule, errors = load_rule_file(path, ctx)
        assert rule is not None, errors
        assert rule.id == path.stem
        assert rule.action == "alert" and rule.enabled
        assert rule.description and rule.falsepositives and rule.message
        assert rule.suppress_period > 0 and "device.mac" in rule.suppress_key
        ids.add(rule.id)
    assert ids == {
        "audio-upload-foreign",
        "audio-upload-night",
        "video-upload-foreign",
        "new-foreign-org",
        "unencrypted-upload",
        "indicator-name",
        "indicator-address",
        "new-device",
    }


def test_audio_upload_foreign() -> None:
    assert fires(burst(ts=DAY)) == ["audio-upload-foreign"]
    [alert] = builtin_engine().evaluate(burst(ts=DAY))
    assert alert.level == "high"
    assert alert.message == (
        "Echo Dot sent 96 kB in 4 s to amazon.com in IE, shaped like a voice recording "
        "(enough for about 12 s of speech)."
    )
    assert fires(burst(ts=DAY, dest=HOME)) == []
    assert fires(burst(ts=DAY, shape="bulk")) == []


def test_audio_upload_night() -> None:
    toy = device(category="toy", name="Teddy")
    [alert] = builtin_engine().evaluate(burst(ts=NIGHT, dev=toy, dest=HOME))
    assert alert.rule == "audio-upload-night"
    assert alert.message == (
        "At 02:30, during the night, Teddy sent 96 kB in 4 s to free.fr, shaped like a voice "
        "recording."
    )
    assert fires(burst(ts=NIGHT)) == ["audio-upload-foreign", "audio-upload-night"]
    assert fires(burst(ts=DAY, dev=toy, dest=HOME)) == []
    assert fires(burst(ts=NIGHT, dev=device(category="phone"), dest=HOME)) == []
    assert fires(burst(ts=NIGHT, dev=toy, dest=destination(local=True, foreign=False))) == []


def test_video_upload_foreign() -> None:
    camera = device(category="camera", name="Porch camera")
    [alert] = builtin_engine().evaluate(
        burst(
            ts=DAY,
            dev=camera,
            shape="video",
            bytes_up=4_500_000,
            duration_s=95.0,
            dest=destination(org="mi.com", country="CN"),
        )
    )
    assert alert.rule == "video-upload-foreign"
    assert alert.message == (
        "Porch camera sent 4.5 MB of video-sized data in 1 min 35 s to mi.com in CN."
    )
    assert fires(burst(ts=DAY, dev=camera, shape="video", dest=HOME)) == []


def test_new_foreign_org() -> None:
    assert fires(contacted(new_org=True)) == ["new-foreign-org"]
    assert fires(contacted(new_org=False)) == []
    assert fires(contacted(new_org=True, country="FR", foreign=False)) == []


def test_unencrypted_upload() -> None:
    toy = device(category="toy", name="Teddy")
    http = burst(ts=DAY, dev=toy, dest=HOME, shape="bulk", services=["http"], transports=["tcp"])
    [alert] = builtin_engine().evaluate(http)
    assert alert.rule == "unencrypted-upload"
    assert alert.message == "Teddy sent 96 kB to free.fr without standard encryption (over http)."
    unknown_udp = burst(ts=DAY, dev=toy, dest=HOME, shape="bulk", services=[], transports=["udp"])
    assert fires(unknown_udp) == ["unencrypted-upload"]
    assert fires(burst(ts=DAY, dev=toy, dest=HOME, services=["tls"], transports=["tcp"])) == []
    quic = burst(ts=DAY, dev=toy, dest=HOME, services=["quic"], transports=["udp"])
    assert fires(quic) == []
    # no identified service over TCP only is unknown, not evidence
    assert fires(burst(ts=DAY, dev=toy, dest=HOME, services=[], transports=["tcp"])) == []
    assert fires(burst(ts=DAY, dev=device(category="plug"), dest=HOME, services=["http"])) == []
    lan = destination(ip="192.168.1.20", local=True, foreign=False, country=None, org=None)
    assert fires(burst(ts=DAY, dev=toy, dest=lan, services=["http"])) == []


def test_indicator_name() -> None:
    [alert] = builtin_engine().evaluate(named("cdn.spy.example"))
    assert alert.rule == "indicator-name"
    assert alert.message == (
        'Echo Dot contacted cdn.spy.example, which is on the indicator list "stalkerware".'
    )
    assert alert.event["name.indicator"] == "stalkerware"
    assert fires(named("spy.example.org")) == []


def test_indicator_address() -> None:
    listed = contacted(new_org=False, ip="203.0.113.50", country="FR", foreign=False)
    [alert] = builtin_engine().evaluate(listed)
    assert alert.rule == "indicator-address"
    assert '"stalkerware"' in alert.message
    assert fires(contacted(new_org=False, ip="198.51.100.1")) == []


def test_an_indicator_set_filled_after_start_is_used() -> None:
    indicators = IndicatorSet()  # empty, hence falsy: the engine must still keep this object
    engine = RuleEngine([BUILTIN_DIR], indicators)
    indicators.add("late.example", ("late",))
    assert [a.rule for a in engine.evaluate(named("x.late.example"))] == ["indicator-name"]


def test_indicator_lists_can_be_replaced_at_run_time() -> None:
    engine = builtin_engine()
    assert [a.rule for a in engine.evaluate(named("tracker.test"))] == []
    replacement = IndicatorSet()
    replacement.add("tracker.test", ("trackers",))
    engine.indicators = replacement
    [alert] = engine.evaluate(named("api.tracker.test"))
    assert alert.event["name.indicator"] == "trackers"


def test_new_device() -> None:
    [alert] = builtin_engine().evaluate(seen(first_ever=True))
    assert (alert.rule, alert.level) == ("new-device", "low")
    assert alert.message == (
        "A new device joined your network: Echo Dot (maker: Amazon Technologies Inc., kind: "
        "speaker)."
    )
    assert fires(seen(first_ever=False)) == []


# -- documentation ----------------------------------------------------------------------------


def test_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        "run: python -m rules.schema_reference > rules/FIELDS.md"
    )


def documented_fields() -> dict[str, set[str]]:
    """Event -> fields, read back from the generated reference's tables."""
    out: dict[str, set[str]] = {}
    current = None
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### `(\w+)`$", line)
        if heading:
            current = out.setdefault(heading.group(1), set())
        elif current is not None and (row := re.match(r"^\| `([\w.]+)` \| \w+ \| .+ \|$", line)):
            current.add(row.group(1))
        elif line.startswith("## "):
            current = None
    return out


def test_every_field_a_builtin_rule_uses_is_documented() -> None:
    documented = documented_fields()
    ctx = make_context()
    for _, path in rule_files([BUILTIN_DIR]):
        rule, _ = load_rule_file(path, ctx)
        assert rule is not None
        for event in rule.events:
            missing = rule.fields - documented.get(event, set())
            assert not missing, f"{path.name}: undocumented fields {sorted(missing)} for {event}"


def flow_end() -> FlowEnd:
    flow = Flow(
        "C1",
        ("k",),
        "udp",
        "192.168.1.5",
        5000,
        "8.8.8.8",
        53,
        "aa:bb:cc:dd:ee:ff",
        None,
        100.0,
        True,
        False,
    )
    flow.end_reason = "idle"
    return FlowEnd(flow)


@pytest.mark.parametrize(
    "event",
    [burst(), seen(), contacted(), named("a.example"), flow_end()],
    ids=lambda e: e.event_name,
)
def test_flattened_fields_are_exactly_the_documented_ones(event: Event) -> None:
    record = flatten(event)
    assert set(record) == set(EVENT_FIELDS[event.event_name])
    assert documented_fields()[event.event_name] == set(record)
    kinds = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list}
    for name, value in record.items():
        if value is not None:
            field = EVENT_FIELDS[event.event_name][name]
            assert isinstance(value, kinds[field.kind]), (name, value)


def test_flow_end_fields() -> None:
    record = flatten(flow_end())
    assert record["device.mac"] == "aa:bb:cc:dd:ee:ff"
    assert record["dest.ip"] == "8.8.8.8"
    assert record["flow.end_reason"] == "idle"
    assert record["ts"] == 100.0


def test_vocabulary_is_consistent() -> None:
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    assert all(set(f.events) <= set(EVENTS) and f.doc.endswith(".") for f in FIELDS)


def test_allow_example_in_the_docs_is_a_valid_disabled_allow_rule() -> None:
    rule, errors = parse_rule(ALLOW_EXAMPLE, Path("example.yaml"), make_context())
    assert errors == []
    assert rule is not None
    assert (rule.action, rule.enabled) == ("allow", False)
    assert rule.applies_to == {"audio-upload-foreign", "new-foreign-org"}


def test_rules_options_are_registered() -> None:
    values = config.load(path=None, env={})
    assert values["rules.paths"] == []
    assert values["rules.indicators"] == []
    assert values["rules.timezone"] == ""
    assert values["rules.night"] == "22:00-07:00"
    RuleEngine([BUILTIN_DIR], timezone=values["rules.timezone"], night=values["rules.night"])


# -- throughput -------------------------------------------------------------------------------


def rate(call, seconds: float = 0.5) -> float:
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            call()
        count += 200
    return count / elapsed


def test_throughput_figures(capsys: pytest.CaptureFixture[str]) -> None:
    engine = builtin_engine()
    quiet = burst(ts=DAY, dest=HOME, shape="bulk")  # matches no rule: the common case
    headline = burst(ts=DAY)  # matches the headline rule; suppressed after the first alert
    evaluate_quiet = rate(lambda: engine.evaluate(quiet))
    evaluate_headline = rate(lambda: engine.evaluate(headline))
    indicators = IndicatorSet()
    for i in range(100_000):
        indicators.add(f"host{i}.tracker{i % 997}.example", ("big",))
    names = [f"cdn.host{i}.tracker{i % 997}.example" for i in range(0, 100_000, 97)]
    names += [f"www.site{i}.example.org" for i in range(1000)]
    position = iter(range(10**9))
    lookup = rate(lambda: indicators.match_name(names[next(position) % len(names)]))
    with capsys.disabled():
        print(
            f"\nrules throughput: evaluate() {evaluate_quiet:,.0f}/s (no match), "
            f"{evaluate_headline:,.0f}/s (headline match, suppressed); "
            f"match_name with 100k indicators {lookup:,.0f}/s"
        )
    assert evaluate_quiet > 5_000
    assert evaluate_headline > 5_000
    assert lookup > 50_000


def test_quiet_periods_carry_over_a_restart() -> None:
    """The alert an earlier run stored (with its suppression key and end) keeps a restarted
    engine quiet until then; after it, the same burst alerts again."""
    [first] = builtin_engine().evaluate(burst(ts=DAY))
    restarted = builtin_engine()
    restarted.resume_quiet(first.rule, first.suppression_key, first.suppressed_until)
    assert restarted.evaluate(burst(ts=DAY + 600)) == []
    assert [a.rule for a in restarted.evaluate(burst(ts=first.suppressed_until + 1))] == [
        "audio-upload-foreign"
    ]
