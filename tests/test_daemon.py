"""The daemon's reloads: SIGHUP re-reads the configuration and the rules; a bad configuration
keeps the running one."""

from __future__ import annotations

from monitor.config import load
from monitor.daemon import Reloader
from monitor.errors import ConfigError
from monitor.events import Tick
from monitor.runtime import build


def test_reload_applies_the_home_set_and_thresholds_and_survives_a_bad_file() -> None:
    runtime = build(load(env={}, cli={"enrich.home": ["FR"]}))
    assert runtime.enricher.destination("110.43.68.240").foreign
    configs = iter(
        [
            load(env={}, cli={"enrich.home": ["CN"], "detect.floor_kBps": 5}),
        ]
    )

    def reload_config():
        try:
            return next(configs)
        except StopIteration:
            raise ConfigError("micwatch.toml: option detect.gap = 'soon' is not valid") from None

    reloader = Reloader(runtime, reload_config)
    reloader.requested = True
    reloader.on_tick(Tick(10.0, 9))
    assert runtime.home_set == frozenset({"CN"})
    assert not runtime.enricher.destination("110.43.68.240").foreign
    assert runtime.detector.settings.floor_bps == 5000
    reloader.requested = True
    reloader.on_tick(Tick(11.0, 10))  # the file is now broken: nothing changes
    assert runtime.home_set == frozenset({"CN"}) and runtime.detector.settings.floor_bps == 5000
    assert not reloader.requested


def test_rules_switched_off_on_the_dashboard_stay_off_and_come_back_on_reload() -> None:
    config = load(env={}, cli={"enrich.home": ["FR"], "dashboard.disabled_rules": ["new-device"]})
    runtime = build(config)
    states = {status.id: status.enabled for status in runtime.rules.rules}
    assert states["new-device"] is False and states["audio-upload-foreign"] is True
    runtime.reconfigure(load(env={}, cli={"enrich.home": ["FR"]}))
    assert all(status.enabled for status in runtime.rules.rules)
