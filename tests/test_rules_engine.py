"""The engine: suppression, allow rules, muting, reloads that keep good rules, the handler."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_rules_support import MAC, at, burst, contacted, destination, device, seen, write_rule

from monitor.errors import ConfigError
from monitor.events import AlertRaised, FlowEnd, HandlerChain, UploadBurst
from monitor.model import Alert
from rules.engine import RuleEngine, RulesHandler

AUDIO = """
id: audio
title: Audio abroad
level: high
event: upload_burst
match:
  shape: audio
  dest.foreign: true
suppress:
  key: [device.mac, dest.org]
  period: 30m
message: "{device.name} sent {audio_seconds} s of audio to {dest.org}"
"""

VIDEO = """
id: video
title: Video abroad
level: medium
event: upload_burst
match:
  shape: video
message: "{device.name} sent video"
"""

T0 = at("2024-03-05 14:00")


def engine_with(tmp_path: Path, *texts: str, **options) -> RuleEngine:
    for number, text in enumerate(texts):
        write_rule(tmp_path, f"r{number}.yaml", text)
    return RuleEngine([tmp_path], timezone="Europe/Paris", **options)


def rules_of(alerts: list[Alert]) -> list[str]:
    return [a.rule for a in alerts]


def test_alert_fields(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO)
    [alert] = engine.evaluate(burst(ts=T0))
    assert alert.rule == "audio"
    assert alert.level == "high"
    assert alert.title == "Audio abroad"
    assert alert.ts == T0
    assert alert.message == "Echo Dot sent 12 s of audio to amazon.com"
    assert alert.device_mac == MAC
    assert alert.dest == "avs-alexa-eu.amazon.com"
    assert alert.suppression_key == f"device.mac={MAC};dest.org=amazon.com"
    assert alert.suppressed_until == T0 + 1800
    assert alert.event["dest.country"] == "IE"
    assert json.loads(json.dumps(alert.event)) == alert.event


def test_alert_dest_falls_back_to_the_address(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO)
    [alert] = engine.evaluate(burst(dest=destination(names=set())))
    assert alert.dest == "52.94.233.10"


def test_suppression_window_on_event_time(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO)
    assert rules_of(engine.evaluate(burst(ts=T0))) == ["audio"]
    assert engine.evaluate(burst(ts=T0 + 600)) == []
    assert engine.evaluate(burst(ts=T0 + 1799)) == []
    # another organisation is another key
    other = destination(org="baidu.com", country="CN", ip="110.43.68.240")
    assert rules_of(engine.evaluate(burst(ts=T0 + 700, dest=other))) == ["audio"]
    # suppressed repeats do not extend the window
    assert rules_of(engine.evaluate(burst(ts=T0 + 1800))) == ["audio"]
    [status] = engine.rules
    assert (status.alerts, status.suppressed) == (3, 2)


def test_suppression_state_is_bounded(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO, max_suppressions=2)
    orgs = [destination(org=f"org{i}.example") for i in range(3)]
    for dest in orgs:
        assert engine.evaluate(burst(ts=T0, dest=dest))
    # org0 was the least recently used entry and was dropped: it may alert again
    assert engine.evaluate(burst(ts=T0 + 60, dest=orgs[0]))
    assert engine.evaluate(burst(ts=T0 + 60, dest=orgs[2])) == []


def test_a_renewed_quiet_period_counts_as_recent_use(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO, max_suppressions=2)
    a, b, c = (destination(org=f"{name}.example") for name in "abc")
    assert engine.evaluate(burst(ts=T0, dest=a))
    assert engine.evaluate(burst(ts=T0 + 1, dest=b))
    assert engine.evaluate(burst(ts=T0 + 1800, dest=a))  # a's period expired: a new one starts
    assert engine.evaluate(burst(ts=T0 + 1801, dest=c))  # evicts b, the least recently used
    assert engine.evaluate(burst(ts=T0 + 1802, dest=a)) == []
    assert engine.evaluate(burst(ts=T0 + 1802, dest=b))


def test_rule_without_suppress_alerts_every_time(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, VIDEO)
    for _ in range(3):
        assert rules_of(engine.evaluate(burst(shape="video"))) == ["video"]


ALLOW_ECHO_IE = f"""
id: allow-echo-ie
title: My Echo may talk to Amazon in Ireland
action: allow
event: upload_burst
match:
  device.mac: "{MAC}"
  dest.org: amazon.com
  dest.country: IE
"""


def test_allow_rule_suppresses_every_rule(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO, VIDEO, ALLOW_ECHO_IE)
    assert engine.evaluate(burst()) == []
    assert engine.evaluate(burst(shape="video")) == []
    # another device, or Amazon elsewhere, is not allowed
    assert rules_of(engine.evaluate(burst(dev=device(mac="aa:aa:aa:aa:aa:aa")))) == ["audio"]
    us = destination(country="US")
    assert rules_of(engine.evaluate(burst(dest=us))) == ["audio"]


def test_allowed_matches_do_not_start_suppression(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO, ALLOW_ECHO_IE)
    assert engine.evaluate(burst(ts=T0)) == []
    engine.set_enabled("allow-echo-ie", False)
    assert rules_of(engine.evaluate(burst(ts=T0 + 60))) == ["audio"]


def test_allow_rule_applies_to_listed_rules_only(tmp_path: Path) -> None:
    scoped = ALLOW_ECHO_IE + "applies_to: [video]\n"
    engine = engine_with(tmp_path, AUDIO, VIDEO, scoped)
    assert rules_of(engine.evaluate(burst())) == ["audio"]
    assert engine.evaluate(burst(shape="video")) == []


def test_allow_rule_on_another_event_does_not_apply(tmp_path: Path) -> None:
    other_event = ALLOW_ECHO_IE.replace("event: upload_burst", "event: destination_contacted")
    engine = engine_with(tmp_path, AUDIO, other_event)
    assert rules_of(engine.evaluate(burst())) == ["audio"]


def test_muted_alerts_are_dropped(tmp_path: Path) -> None:
    calls = []

    def muted(rule_id: str, mac: str | None) -> bool:
        calls.append((rule_id, mac))
        return mac == MAC

    engine = engine_with(tmp_path, AUDIO, muted=muted)
    assert engine.evaluate(burst()) == []
    assert calls == [("audio", MAC)]
    assert rules_of(engine.evaluate(burst(dev=device(mac="aa:aa:aa:aa:aa:aa")))) == ["audio"]


def test_when_uses_event_time_in_the_configured_zone(tmp_path: Path) -> None:
    night = AUDIO + 'when:\n  hours: "22:00-07:00"\n'
    engine = engine_with(tmp_path, night)
    assert engine.evaluate(burst(ts=at("2024-03-05 14:00"))) == []
    assert rules_of(engine.evaluate(burst(ts=at("2024-03-05 23:00")))) == ["audio"]
    elsewhere = RuleEngine([tmp_path], timezone="Asia/Tokyo")  # 23:00 Paris is 07:00 Tokyo
    assert elsewhere.evaluate(burst(ts=at("2024-03-05 23:00"))) == []


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rules\.timezone"):
        RuleEngine([tmp_path], timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"rules\.night"):
        RuleEngine([tmp_path], night="late")


def test_reload_keeps_old_rule_of_a_broken_file_and_picks_up_the_fix(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "audio.yaml", AUDIO)
    write_rule(tmp_path, "video.yaml", VIDEO)
    engine = RuleEngine([tmp_path])
    assert not engine.changed()
    broken = AUDIO.replace("shape: audio", "shape|gte: audio").replace("Audio abroad", "New")
    write_rule(tmp_path, "audio.yaml", broken)
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert engine.changed()
    errors = engine.reload()
    assert [str(e) for e in errors] == [
        f"{path}:6: match.shape|gte: |gte compares numbers but shape is str"
    ]
    assert not engine.changed()
    statuses = {s.id: s for s in engine.rules}
    assert statuses["audio"].status == "stale"
    assert statuses["audio"].title == "Audio abroad"
    assert statuses["audio"].error.startswith(f"{path}:6:")
    assert rules_of(engine.evaluate(burst(ts=T0))) == ["audio"]  # the old version still runs
    write_rule(tmp_path, "audio.yaml", AUDIO.replace("level: high", "level: low"))
    assert engine.changed()
    assert engine.reload() == []
    assert {s.id: s.status for s in engine.rules} == {"audio": "active", "video": "active"}
    # the suppression state outlives the reload
    assert engine.evaluate(burst(ts=T0 + 60)) == []
    [alert] = engine.evaluate(burst(ts=T0 + 3600))
    assert alert.level == "low"


def test_broken_new_file_and_deleted_file(tmp_path: Path) -> None:
    write_rule(tmp_path, "audio.yaml", AUDIO)
    engine = RuleEngine([tmp_path])
    bad = write_rule(tmp_path, "bad.yaml", "id: x\n")
    (tmp_path / "audio.yaml").unlink()
    assert engine.changed()
    errors = engine.reload()
    assert {str(e) for e in errors} == {
        f"{bad}:1: title: is required",
        f"{bad}:1: event: is required",
        f"{bad}:1: level: is required",
        f"{bad}:1: message: is required",
    }
    [status] = engine.rules
    assert (status.id, status.status, status.path) == (None, "error", bad)
    assert "(and 3 more)" in status.error
    assert engine.evaluate(burst()) == []
    assert engine.errors == errors


def test_duplicate_ids_and_overrides(tmp_path: Path) -> None:
    builtin, user = tmp_path / "builtin", tmp_path / "user"
    write_rule(builtin, "audio.yaml", AUDIO)
    write_rule(builtin, "copy.yaml", AUDIO.replace("level: high", "level: low"))
    write_rule(user, "mine.yaml", AUDIO.replace("level: high", "level: medium"))
    engine = RuleEngine([builtin, user])
    statuses = [(s.path.name, s.status) for s in engine.rules]
    assert statuses == [
        ("audio.yaml", "overridden"),
        ("copy.yaml", "duplicate"),
        ("mine.yaml", "active"),
    ]
    [error] = engine.errors
    assert (
        str(error) == f"{builtin / 'copy.yaml'}:1: id: 'audio' is already the id of "
        f"{builtin / 'audio.yaml'}"
    )
    [alert] = engine.evaluate(burst())
    assert alert.level == "medium"


def test_set_enabled_survives_reload(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO, VIDEO)
    engine.set_enabled("audio", False)
    assert engine.evaluate(burst()) == []
    engine.reload()
    assert engine.evaluate(burst()) == []
    assert {s.id: (s.status, s.enabled) for s in engine.rules}["audio"] == ("disabled", False)
    engine.set_enabled("audio", True)
    assert rules_of(engine.evaluate(burst())) == ["audio"]
    with pytest.raises(KeyError):
        engine.set_enabled("nope", True)


def test_disabled_in_file(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO + "enabled: false\n")
    assert engine.evaluate(burst()) == []
    assert engine.events() == frozenset()
    engine.set_enabled("audio", True)
    assert rules_of(engine.evaluate(burst())) == ["audio"]


def test_a_failing_rule_is_contained(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = engine_with(tmp_path, AUDIO, VIDEO.replace("shape: video", "shape: audio"))

    def boom(record: dict) -> bool:
        raise RuntimeError("bug")

    engine._active["audio"].conditions = (boom,)
    assert rules_of(engine.evaluate(burst())) == ["video"]
    assert rules_of(engine.evaluate(burst())) == ["video"]
    assert {s.id: s.failures for s in engine.rules}["audio"] == 2
    assert caplog.text.count("rule audio failed") == 1


def test_handler_subscribes_to_listened_events_and_emits_alerts(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, AUDIO)
    received: list[AlertRaised] = []

    class Sink:
        def on_alert_raised(self, event: AlertRaised) -> None:
            received.append(event)

    chain = HandlerChain()
    chain.add(RulesHandler(engine, chain.emit))
    chain.add(Sink())
    assert chain.wants(UploadBurst)
    assert not chain.wants(FlowEnd)
    chain.emit(burst())
    chain.emit(seen())
    assert [e.alert.rule for e in received] == ["audio"]
    assert chain.errors == {}


def test_multi_event_rule(tmp_path: Path) -> None:
    both = """
    id: amazon
    title: Amazon
    level: info
    event: [upload_burst, destination_contacted]
    match:
      dest.org: amazon.com
    message: "{device.name} and {dest.org}"
    """
    engine = engine_with(tmp_path, both)
    assert rules_of(engine.evaluate(burst())) == ["amazon"]
    assert rules_of(engine.evaluate(contacted())) == ["amazon"]
    assert engine.evaluate(contacted(org="google.com")) == []
