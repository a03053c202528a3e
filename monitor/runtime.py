"""Assembles one run: configuration -> handlers in their order -> pipeline.

The handler order is the data flow of DESIGN.md: names, the device inventory, classification,
burst detection, rules, then the store and whatever prints the run. :func:`build` is the one
place that knows it, shared by ``analyze``, ``capture`` and the demo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.classify import Classifier, ClassifyHandler
from monitor.config import Config
from monitor.detect import BurstDetector, DetectSettings
from monitor.devices import DeviceInventory
from monitor.enrich import Enricher
from monitor.errors import ConfigError
from monitor.events import HandlerChain
from monitor.flows import HomeNetworks
from monitor.homeset import resolve_home
from monitor.names import NamesHandler, NameTable
from monitor.pipeline import Pipeline
from monitor.vendors import VendorTable
from rules.engine import RuleEngine, RulesHandler
from rules.indicators import IndicatorSet
from rules.loader import indicator_paths, rule_paths

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one run holds: the pipeline, its chain and the named parts."""

    config: Config
    chain: HandlerChain
    pipeline: Pipeline
    inventory: DeviceInventory
    names: NameTable
    enricher: Enricher
    home_set: frozenset[str]
    rules: RuleEngine
    detector: BurstDetector
    store: Any = None

    def reconfigure(self, config: Config) -> None:
        """Apply a reloaded configuration to what can change while capture runs: the home set
        (destinations are enriched afresh), the detector's thresholds and the rule switches of
        the dashboard. Rule files reload on their own; capture, store and notification
        settings need a restart."""
        self.config = config
        self.home_set = resolve_home(list(config["enrich.home"]))
        self.enricher.set_home(self.home_set)
        self.detector.settings = DetectSettings.from_config(config)
        disabled = set(config["dashboard.disabled_rules"])
        for status in self.rules.rules:
            self.rules.set_enabled(status.id, status.id not in disabled)
        self.chain.refresh()


def build(
    config: Config,
    *,
    lan: list[str] | None = None,
    store: Any = None,
    sinks: tuple[Any, ...] = (),
    only_rules: list[Path] | None = None,
) -> Runtime:
    """Build the handler chain and pipeline for ``config``.

    ``lan`` overrides ``network.lan`` (the live daemon passes the interface's networks);
    ``store`` is an open :class:`monitor.store.Store` or None; ``sinks`` are extra handlers that
    run last (printers, collectors); ``only_rules`` replaces the configured rule files (for
    ``micwatch rules test``).
    """
    home_networks = HomeNetworks(list(config["network.lan"]) or lan or None)
    home_set = resolve_home(list(config["enrich.home"]))
    enricher = Enricher(
        home_set,
        lan_networks=list(home_networks.networks) if (config["network.lan"] or lan) else None,
        maxmind_db=config["enrich.maxmind_db"],
    )
    vendors = VendorTable(config["enrich.oui_file"])
    names = NameTable()
    chain = HandlerChain()
    known = {row["mac"]: row for row in store.devices()} if store is not None else {}
    inventory = DeviceInventory(
        vendors=vendors,
        enricher=enricher,
        names=names,
        home=home_networks,
        emit=chain.emit,
        known=known,
        known_orgs=_orgs_of(store) if store is not None else None,
        max_devices=config["flows.max_devices"],
    )
    chain.add(NamesHandler(names))
    chain.add(inventory)
    handlers, engine, detector = _feature_handlers(
        config, chain, inventory, store, only_rules or rule_paths(config)
    )
    for handler in handlers:
        chain.add(handler)
    if store is not None:
        chain.add(store)
    for sink in sinks:
        chain.add(sink)
    pipeline = Pipeline(
        chain,
        home=home_networks,
        idle_timeout_tcp=config["flows.idle_timeout_tcp"],
        idle_timeout_udp=config["flows.idle_timeout_udp"],
        active_timeout=config["flows.active_timeout"],
        max_flows=config["flows.max_flows"],
        bin_seconds=config["flows.bin_seconds"],
    )
    return Runtime(
        config, chain, pipeline, inventory, names, enricher, home_set, engine, detector, store
    )


def headless_handlers(
    config: Config, chain: HandlerChain, store: Any = None, rules: RuleEngine | None = None
) -> list[Any]:
    """The daemon's handlers that run after the store: health reports and alerts, then the
    notifiers (apprise targets, Home Assistant over MQTT) when configured. Run them after the
    store so an alert is journaled before anyone is told; call each one's ``close`` (when it has
    one) after the pipeline finished. The notifiers write in ``notify.language`` with the rule
    translations of ``rules`` (the run's engine, so edited rule files count; when None and a
    notifier needs translations, one is read from the configuration). Raises ConfigError for a
    bad notification setting."""
    from monitor.alert_i18n import notify_language, rule_engine
    from monitor.health import HealthMonitor
    from monitor.notify import Notifier
    from monitor.paths import state_dir

    handlers: list[Any] = [
        HealthMonitor(
            chain.emit,
            stall_after=config["health.stall_after"],
            loss_threshold=config["health.loss_threshold"],
            store=store,
            disk_path=state_dir(config["store.state_dir"]),
            disk_min_free=config["health.disk_min_free"],
        )
    ]
    language = notify_language(config)
    notifying = config["notify.targets"] or config["notify.mqtt"]
    if rules is None and notifying and language != "en":
        rules = rule_engine(config)
    try:
        if config["notify.targets"]:
            handlers.append(Notifier.from_config(config, rules))
        if config["notify.mqtt"]:
            from monitor.notify_mqtt import HomeAssistantMqtt

            sensor = getattr(store, "sensor", None) or config["store.sensor"] or _hostname()
            handlers.append(
                HomeAssistantMqtt(
                    config["notify.mqtt"],
                    sensor=sensor,
                    discovery_prefix=config["notify.mqtt_discovery_prefix"],
                    language=language,
                    engine=rules,
                )
            )
    except ValueError as exc:
        raise ConfigError(f"notify: {exc}") from None
    return handlers


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _feature_handlers(
    config: Config,
    chain: HandlerChain,
    inventory: DeviceInventory,
    store: Any,
    rule_files: list[Path],
) -> tuple[list, RuleEngine, BurstDetector]:
    """Classification, detection and rules, in that order; also the rule engine and detector."""
    classifier = ClassifyHandler(Classifier.from_config(config))
    detector = BurstDetector(
        DetectSettings.from_config(config),
        device_of=inventory.devices.get,
        destination_of=inventory.destination,
        emit=chain.emit,
    )
    engine = RuleEngine(
        rule_files,
        IndicatorSet.from_paths(indicator_paths(config)),
        timezone=config["rules.timezone"],
        muted=_muted_by(store) if store is not None else None,
        night=config["rules.night"],
    )
    for error in engine.errors:
        log.error("rule not loaded: %s", error)
    apply_rule_switches(engine, config)
    if store is not None:
        # Alerts of earlier runs still in their quiet period stay quiet after a restart.
        for row in store.alerts(since=time.time() - _LONGEST_QUIET_S, limit=10_000):
            if row.get("suppression_key") and row["suppressed_until"] > time.time():
                engine.resume_quiet(row["rule"], row["suppression_key"], row["suppressed_until"])
    return [classifier, detector, RulesHandler(engine, chain.emit)], engine, detector


#: How far back stored alerts are read for quiet periods that outlive a restart.
_LONGEST_QUIET_S = 7 * 86400


def apply_rule_switches(engine: RuleEngine, config: Config) -> None:
    """Switch off the rules the user switched off on the dashboard (``dashboard.disabled_rules``,
    kept in the settings file); an unknown id is logged and ignored."""
    for rule_id in config["dashboard.disabled_rules"]:
        try:
            engine.set_enabled(rule_id, False)
        except KeyError:
            log.warning("rule %s is switched off but does not exist", rule_id)


def _orgs_of(store: Any) -> Callable[[str], set[str]]:
    """The organisations (or addresses, without one) a stored device talked to before; none
    when the store cannot be read (the capture goes on; the failure is logged)."""
    from sqlalchemy.exc import SQLAlchemyError  # only with a store: analyze never loads it

    def orgs(mac: str) -> set[str]:
        try:
            return {row.get("org") or row["ip"] for row in store.destinations(mac)}
        except SQLAlchemyError as exc:
            log.warning("cannot read %s's earlier destinations from the store: %s", mac, exc)
            return set()

    return orgs


def _muted_by(store: Any) -> Callable[[str, str | None], bool]:
    """A predicate over the user's mutes in the store, re-read at most every 10 seconds; while
    the store cannot be read, the mutes read last stay in force."""
    from sqlalchemy.exc import SQLAlchemyError  # only with a store: analyze never loads it

    cache: dict[str, Any] = {"at": -1.0, "mutes": set()}

    def muted(rule: str, mac: str | None) -> bool:
        now = time.time()
        if now - cache["at"] > 10:
            cache["at"] = now
            try:
                cache["mutes"] = {(m["rule"], m["device_mac"]) for m in store.mutes(now)}
            except SQLAlchemyError as exc:
                log.warning("cannot read the mutes from the store (%s); keeping the last", exc)
        return (rule, mac) in cache["mutes"] or (rule, None) in cache["mutes"]

    return muted
