"""Property tests of the rules engine: random events never make it raise, and suppression holds.

Device and destination strings are attacker-controlled (DHCP hostnames, mDNS names, SNI), and
numbers come from traffic: any text, ``None``, NaN and huge values must be evaluated without an
exception, by the built-in rules and by a rule with a message template and a suppression key.
Suppression invariant: fed in event-time order, two alerts of one rule with one suppression key
are at least the rule's period apart, and every match is counted once as alerted or suppressed.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rules_support import burst, destination, device, write_rule

from rules.engine import RuleEngine

BUILTIN = Path(__file__).resolve().parent.parent / "rules" / "builtin"
PERIOD = 1800.0
RULE = """
id: any-upload
title: Any upload
level: low
event: upload_burst
match:
  bytes_up|gte: 0
suppress:
  key: [device.mac, dest.org]
  period: 30m
message: >
  {device.name} ({device.hostname}) sent {bytes_up:size} in {duration_s:duration}
  at {ts:time} to {dest.org|dest.name|dest.ip}
"""

text = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["<script>", "{x}", "%s", ""]))
number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70))
macs = st.sampled_from(["f0:27:2d:11:22:33", "00:11:22:33:44:55", "de:ad:be:ef:00:01"])
orgs = st.sampled_from(["amazon.com", "baidu.com", None, ""])

events = st.builds(
    lambda mac, name, host, org, country, foreign, up, kbps, shape, ts: burst(
        ts=ts,
        dev=device(mac=mac, name=name, hostname=host),
        dest=destination(org=org, country=country, foreign=foreign),
        bytes_up=up,
        mean_kbps=kbps,
        shape=shape,
    ),
    macs,
    text,
    text,
    orgs,
    st.one_of(st.none(), st.sampled_from(["IE", "CN", "FR", "ZZ"])),
    st.one_of(st.none(), st.booleans()),
    st.integers(0, 2**40),
    number,
    st.sampled_from(["audio", "video", "bulk", "", "?"]),
    st.floats(0, 4e9),
)


def _engine(tmp_path: Path) -> RuleEngine:
    rules = tmp_path / "rules"
    if not rules.exists():
        write_rule(rules, "any.yaml", RULE)
        for path in BUILTIN.glob("*.yaml"):
            write_rule(rules, path.name, path.read_text())
    return RuleEngine([rules], timezone="Europe/Paris")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(events, max_size=30))
def test_random_events_never_raise_and_suppression_holds(tmp_path: Path, batch: list) -> None:
    engine = _engine(tmp_path)
    assert not engine.errors
    last: dict[str, float] = {}
    matched = 0
    for event in sorted(batch, key=lambda e: e.ts_end):
        for alert in engine.evaluate(event):
            assert isinstance(alert.message, str)
            if alert.rule != "any-upload":
                continue
            previous = last.get(alert.suppression_key)
            assert previous is None or alert.ts - previous >= PERIOD, alert
            assert alert.suppressed_until == alert.ts + PERIOD
            last[alert.suppression_key] = alert.ts
        matched += 1
    [status] = [s for s in engine.rules if s.id == "any-upload"]
    assert status.alerts + status.suppressed == matched
    assert status.alerts >= len(last)
