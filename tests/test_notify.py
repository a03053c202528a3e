"""Notifications: policy (grouping, routing, quiet hours, digest), delivery (retry, bounds),
the non-blocking handler, and a real capture replayed into a local ntfy-compatible server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file

from monitor import notify_policy
from monitor.alert_i18n import catalogue, notify_language, rule_engine
from monitor.capture import open_files
from monitor.cli import main
from monitor.config import load
from monitor.daemon import run_daemon
from monitor.errors import ConfigError
from monitor.events import AlertRaised
from monitor.model import Alert
from monitor.notify import Notifier, notify_test_message
from monitor.notify_policy import Message, Policy, PolicySettings
from monitor.notify_send import BACKOFF_MIN_S, Dispatcher, Target
from monitor.runtime import build, headless_handlers

ROOT = Path(__file__).parents[1]
CAPTURE = Path(__file__).parent / "data" / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
#: The built-in audio rule's title in French (rules/builtin/audio-upload-foreign.yaml).
AUDIO_FR = "Envoi de taille audio vers un serveur à l\u2019étranger"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _at(hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, 2, hour, minute).timestamp()


def _alert(level: str = "high", message: str = "Echo sent 300 kB to a server in CN.") -> Alert:
    return Alert("audio-upload-foreign", level, time.time(), message, "aa:bb", "1.2.3.4", {},
                 "k", 0.0, title="Audio-sized upload")  # fmt: skip


# --- policy ---


def test_ten_bursts_in_a_minute_make_one_message() -> None:
    clock = Clock(_at(12))
    policy = Policy(PolicySettings(group_window=60, min_interval=60), clock)
    for i in range(10):
        policy.add(_alert(message=f"burst {i}"))
        assert policy.due() == []
        clock.now += 5
    clock.now = _at(12, 1)
    (message,) = policy.due()
    assert message.alerts == 10 and message.level == "high"
    assert "burst 0" in message.body and "burst 9" in message.body
    assert policy.due() == []


def test_min_interval_merges_the_next_group() -> None:
    clock = Clock(_at(12))
    policy = Policy(PolicySettings(group_window=10, min_interval=300), clock)
    policy.add(_alert(message="first"))
    clock.now += 10
    assert len(policy.due()) == 1
    for i in range(3):
        clock.now += 20
        policy.add(_alert(message=f"later {i}"))
    clock.now += 20
    assert policy.due() == []  # within 300 s of the first message
    clock.now = _at(12) + 310
    (message,) = policy.due()
    assert message.alerts == 3


def test_low_levels_wait_for_the_digest() -> None:
    clock = Clock(_at(12))
    policy = Policy(PolicySettings(digest_at="08:00", group_window=0, min_interval=0), clock)
    policy.add(_alert("low", "A new device joined"))
    policy.add(_alert("medium", "night upload"))
    (now,) = policy.due()
    assert now.body == "night upload"
    clock.now = _at(23, 59)
    assert policy.due() == []
    clock.now = _at(8) + 86400
    (digest,) = policy.due()
    assert "digest" in digest.title and "A new device joined" in digest.body


def test_quiet_hours_hold_all_but_high() -> None:
    clock = Clock(_at(23))
    settings = PolicySettings(quiet_hours="22:00-07:00", group_window=0, min_interval=0)
    policy = Policy(settings, clock)
    policy.add(_alert("medium", "held"))
    assert policy.due() == [] and policy.flush() == []
    clock.now = _at(7, 1) + 86400
    assert [m.body for m in policy.due()] == ["held"]
    clock.now = _at(3) + 2 * 86400
    policy.add(_alert("high", "urgent"))
    assert [m.body for m in policy.due()] == ["urgent"]


def test_bad_quiet_hours_is_a_config_error() -> None:
    config = load(None, env={}).replace(
        notify__targets=["json://127.0.0.1:9/"], notify__quiet_hours="22h"
    )
    with pytest.raises(ConfigError, match="quiet hours"):
        headless_handlers(config, chain=type("C", (), {"emit": print})())


# --- delivery ---


def test_retry_with_backoff_then_delivery() -> None:
    results = iter([False, False, True, True])
    sent: list[str] = []

    def send(message: Message) -> bool:
        ok = next(results)
        if ok:
            sent.append(message.body)
        return ok

    clock = Clock(0.0)
    target = Target("#1 test", send)
    dispatcher = Dispatcher([target], clock)
    dispatcher.submit(Message("t", "one", "high"))
    dispatcher.submit(Message("t", "two", "low"))
    dispatcher.attempt()
    assert sent == [] and target.next_try == BACKOFF_MIN_S
    clock.now = BACKOFF_MIN_S - 0.1
    dispatcher.attempt()
    assert target.failures == 1  # not retried before the backoff
    clock.now = BACKOFF_MIN_S
    dispatcher.attempt()
    assert target.failures == 2 and target.next_try == BACKOFF_MIN_S * 3
    clock.now = BACKOFF_MIN_S * 3
    dispatcher.attempt()
    assert sent == ["one", "two"] and dispatcher.pending() == 0


def test_full_queue_drops_oldest_non_high_keeps_high() -> None:
    target = Target("#1 down", lambda _m: False, max_queue=3)
    for body, level in [("h1", "high"), ("l1", "low"), ("h2", "high"), ("m1", "medium")]:
        target.submit(Message("t", body, level))
    assert [m.body for m in target.queue] == ["h1", "h2", "m1"] and target.dropped == 1
    for i in range(5):
        target.submit(Message("t", f"hx{i}", "high"))
    assert sum(m.level == "high" for m in target.queue) == 7


def test_on_alert_raised_never_waits_for_a_target() -> None:
    release = threading.Event()
    delivered: list[str] = []

    def slow(message: Message) -> bool:
        release.wait(10)
        delivered.append(message.body)
        return True

    settings = PolicySettings(group_window=0, min_interval=0)
    notifier = Notifier(Policy(settings), Dispatcher([Target("#1 slow", slow)]), poll_s=0.05)
    try:
        notifier.on_alert_raised(AlertRaised(_alert(message="first")))
        time.sleep(0.3)  # the worker is now stuck in slow()
        started = time.perf_counter()
        for i in range(100):
            notifier.on_alert_raised(AlertRaised(_alert(message=f"m{i}")))
        assert time.perf_counter() - started < 0.05
    finally:
        release.set()
        assert notifier.close()
    assert delivered[0] == "first" and len(delivered) == 2


# --- end to end: a capture with an audio upload abroad, a local ntfy server ---


class NtfyServer:
    """ntfy's publish API: POST /<topic> (body = message, X-Title) or POST / with JSON."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/":
                    record = json.loads(body)
                else:
                    record = {
                        "topic": self.path.strip("/"),
                        "title": self.headers.get("X-Title", ""),
                        "message": body.decode(),
                    }
                outer.messages.append(record)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"id": "1", "event": "message"}).encode())

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ntfy() -> Iterator[NtfyServer]:
    server = NtfyServer()
    yield server
    server.close()


def test_replayed_audio_upload_abroad_makes_exactly_one_ntfy_message(
    ntfy: NtfyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load(None, env={}).replace(
        enrich__home=["FR"], notify__targets=[f"ntfy://127.0.0.1:{ntfy.port}/micwatch"]
    )
    assert run_daemon(config, read=[str(CAPTURE)], use_store=False) == 0
    assert "audio" in capsys.readouterr().out
    assert len(ntfy.messages) == 1
    (message,) = ntfy.messages
    assert message["topic"] == "micwatch"
    assert message["title"] == "micwatch: 2 alerts"  # English by default: the upload, at night
    assert "Imilab camera" in message["message"] and " CN" in message["message"]
    assert "joined your network" not in message["message"]  # low: left for the digest


def test_french_notification_of_the_replayed_audio_upload(ntfy: NtfyServer) -> None:
    config = load(None, env={}).replace(
        enrich__home=["FR"],
        notify__targets=[f"ntfy://127.0.0.1:{ntfy.port}/micwatch"],
        notify__language="fr",
        dashboard__disabled_rules=["audio-upload-night"],  # the upload alone: its own title
    )
    assert run_daemon(config, read=[str(CAPTURE)], use_store=False) == 0
    (message,) = ntfy.messages
    assert message["title"] == AUDIO_FR
    text = message["message"]
    assert text.startswith("Imilab camera a envoyé 373 ko en 12 s vers 110.43.68.240 (Chine)")
    assert "de parole" in text and "shaped like" not in text and " CN" not in text


def test_notify_language_falls_back_to_the_dashboard_then_english() -> None:
    config = load(None, env={})
    assert notify_language(config) == "en"
    assert notify_language(config.replace(dashboard__language="fr")) == "fr"
    assert notify_language(config.replace(dashboard__language="fr", notify__language="en")) == "en"


def _capture_alerts() -> list[Alert]:
    """The alerts the built-in rules raise on CAPTURE (a new device, a first contact abroad, the
    audio upload to China, at night in UTC)."""
    alerts: list[Alert] = []

    class Collect:
        def on_alert_raised(self, event: AlertRaised) -> None:
            alerts.append(event.alert)

    runtime = build(load(None, env={}).replace(enrich__home=["FR"]), sinks=(Collect(),))
    source = open_files([str(CAPTURE)])
    try:
        runtime.pipeline.run(source)
    finally:
        source.close()
    runtime.pipeline.finish()
    assert {a.level for a in alerts} == {"low", "medium", "high"}
    return alerts


def _policy(language: str, clock: Clock, **settings: object) -> Policy:
    config = load(None, env={})
    options = {"group_window": 0, "min_interval": 0, "language": language, **settings}
    return Policy(PolicySettings(**options), clock, engine=rule_engine(config))  # type: ignore[arg-type]


@pytest.mark.parametrize("language", ["en", "fr"])
def test_grouped_message_and_digest_in_the_chosen_language(
    language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = _capture_alerts()
    monkeypatch.setattr(notify_policy, "DIGEST_MAX_LINES", 1)
    clock = Clock(_at(12))
    policy = _policy(language, clock, now_levels=frozenset(notify_policy.LEVELS))
    for alert in alerts:
        policy.add(alert)
    (group,) = policy.due()
    policy = _policy(language, clock, now_levels=frozenset())
    for alert in alerts:
        policy.add(alert)
    clock.now = _at(8) + 86400
    (digest,) = policy.due()
    more = len(alerts) - 1
    if language == "en":
        assert group.title == f"micwatch: {len(alerts)} alerts"
        assert "A new device joined your network: Imilab camera" in group.body
        assert "to 110.43.68.240 in CN, shaped like" in group.body
        assert digest.title == f"micwatch daily digest: {len(alerts)} alerts"
        assert digest.body.endswith(f"... and {more} more: see the dashboard.")
    else:
        assert group.title == f"micwatch : {len(alerts)} alertes"
        assert "Un nouvel appareil a rejoint votre réseau : Imilab camera" in group.body
        assert "type : caméra" in group.body and "(Chine)" in group.body
        assert "(États-Unis)" in group.body and "a envoyé 373 ko" in group.body
        assert digest.title == f"micwatch, résumé du jour : {len(alerts)} alertes"
        assert digest.body.endswith(f"\u2026 et {more} de plus : voir le tableau de bord.")
    assert digest.body.startswith("- ") and digest.alerts == len(alerts)


def test_french_single_alert_and_test_message_titles() -> None:
    clock = Clock(_at(12))
    (audio,) = [a for a in _capture_alerts() if a.rule == "audio-upload-foreign"]
    policy = _policy("fr", clock)
    policy.add(audio)
    (message,) = policy.due()
    assert message.title == AUDIO_FR and "(Chine)" in message.body
    test = notify_test_message("fr", lambda: _at(9, 30))
    assert test.title == "Test de micwatch"
    assert test.body == "Ceci est un message de test de micwatch (2026-03-02 09:30)."


def test_every_notification_word_has_a_french_translation() -> None:
    """The modules that write with the catalogue are extracted (dashboard/babel.cfg) and each
    of their words has a French translation in the compiled catalogue."""
    babel_cfg = (ROOT / "dashboard" / "babel.cfg").read_text()
    french = catalogue("fr")
    users = [p for p in sorted((ROOT / "monitor").glob("*.py")) if "catalogue(" in p.read_text()]
    assert len(users) >= 4
    for path in users:
        relative = path.relative_to(ROOT).as_posix()
        assert f"[python: {relative}]" in babel_cfg, f"{relative} is not in dashboard/babel.cfg"
        keywords = {"_": None, "gettext": None, "ngettext": (1, 2)}
        for _line, message, _comments, _context in extract_from_file("python", path, keywords):
            if isinstance(message, tuple):
                assert french.ngettext(*message, 2) != message[1], (relative, message)
            else:
                assert french.gettext(message) != message, (relative, message)


def test_notify_test_command_says_which_target_worked(
    ntfy: NtfyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    good = f"ntfy://127.0.0.1:{ntfy.port}/test"
    down = "json://127.0.0.1:9/"  # the discard port: nothing listens
    status = main(["notify", "test", "--notify-targets", f"{good},{down}"])
    out = capsys.readouterr().out
    assert status == 1
    assert "#1 ntfy: delivered" in out and "#2 json: FAILED" in out
    assert len(ntfy.messages) == 1 and "test message" in ntfy.messages[0]["message"]
