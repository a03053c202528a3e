"""``micwatch rules``, ``micwatch indicators`` and ``micwatch alerts``: the CLI side of the rules.

``rules check [PATH...]`` validates rule files (exit 1 and one ``file:line: field: problem`` line
per error); ``rules list`` shows every rule and its state; ``rules test RULE CAPTURE...`` runs the
pipeline on captures with that one rule and prints what it would raise; ``rules allow`` writes
an allow rule into the user's rules directory (the daemon picks it up on its next reload).
``indicators import FILE`` checks and installs an indicator list (STIX2 bundle or host list).
``alerts`` lists stored alerts; ``alerts ack ID`` and ``alerts mute RULE`` record the user's word.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config import Config, parse_duration
from monitor.errors import MicwatchError
from monitor.output import print_json
from rules.indicators import IndicatorError, import_indicators
from rules.loader import add_allow_rule, check_rules, rule_files, rule_paths, state_rules_dir

ConfigFrom = Callable[[argparse.Namespace], Config]


def add_commands(sub: Any, add_option_flags: Callable[..., None]) -> None:
    """Register the subcommands on the top-level subparsers."""
    rules = sub.add_parser("rules", help="check, list, test and allow-list rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_sub.add_parser("check", help="validate rule files")
    check.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    listing = rules_sub.add_parser("list", help="every rule with its state")
    add_option_flags(listing, ("rules",))
    test = rules_sub.add_parser("test", help="what one rule would raise on captures")
    test.add_argument("rule", help="a rule file or a rule id")
    test.add_argument("captures", nargs="+", metavar="CAPTURE")
    add_option_flags(test, ("enrich", "detect", "rules", "network"))
    allow = rules_sub.add_parser("allow", help="allow a device (and destination) to upload")
    allow.add_argument("--device", required=True, metavar="MAC")
    allow.add_argument("--org", help="destination organisation, e.g. amazon.com")
    allow.add_argument("--country", help="destination country code, e.g. IE")
    allow.add_argument("--name", help="destination name, e.g. avs-alexa-4-na.amazon.com")
    allow.add_argument("--comment", default="", help="why (kept in the rule file)")

    indicators = sub.add_parser("indicators", help="install indicator lists")
    ind_sub = indicators.add_subparsers(dest="indicators_command", required=True, metavar="ACTION")
    imp = ind_sub.add_parser("import", help="a STIX2 bundle or a host list")
    imp.add_argument("file")

    alerts = sub.add_parser("alerts", help="stored alerts; ack and mute")
    alerts.add_argument("--since", default="7d", help="how far back (default 7d)")
    alerts.add_argument("--level", choices=("info", "low", "medium", "high"))
    alerts.add_argument("--device", metavar="MAC")
    alerts.add_argument("--rule")
    alerts.add_argument("--format", choices=("text", "json"), default="text")
    add_option_flags(alerts, ("store",))
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION")
    ack = alerts_sub.add_parser("ack", help="acknowledge an alert")
    ack.add_argument("id", type=int)
    add_option_flags(ack, ("store",))
    mute = alerts_sub.add_parser("mute", help="mute a rule for a device")
    mute.add_argument("rule")
    mute.add_argument("--device", dest="mute_device", required=True, metavar="MAC")
    mute.add_argument("--for", dest="period", default="30d", help="how long (default 30d)")
    add_option_flags(mute, ("store",))


def cmd_rules(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    if args.rules_command == "check":
        paths = [Path(p) for p in args.paths] or None
        errors = check_rules(paths)
        for error in errors:
            print(error)
        count = len(rule_files(paths or rule_paths(config_from(args))))
        print(f"{count} rule files, {len(errors)} errors")
        return 1 if errors else 0
    if args.rules_command == "list":
        from rules.engine import RuleEngine

        config = config_from(args)
        engine = RuleEngine(
            rule_paths(config), timezone=config["rules.timezone"], night=config["rules.night"]
        )
        for status in engine.rules:
            print(f"{status.id:28} {status.status:10} {status.level or '':7} {status.title or ''}")
            if status.error:
                print(f"    {status.error}")
        return 0
    if args.rules_command == "test":
        return _rules_test(args, config_from(args))
    path = add_allow_rule(
        state_rules_dir(config_from(args)),
        args.device,
        dest_org=args.org,
        dest_country=args.country,
        dest_name=args.name,
        comment=args.comment,
    )
    print(
        f"wrote {path}; a running daemon applies it on its next reload (systemctl reload "
        "micwatch, or within a few seconds)"
    )
    return 0


def _rules_test(args: argparse.Namespace, config: Config) -> int:
    """Run the captures through the pipeline with only the named rule loaded."""
    from monitor.analyze import analyze_files

    rule = Path(args.rule)
    if not rule.is_file():
        matches = [p for _, p in rule_files(rule_paths(config)) if p.stem == args.rule]
        if not matches:
            raise MicwatchError(f"no rule file or rule id {args.rule!r}; see micwatch rules list")
        rule = matches[-1]
    errors = check_rules([rule])
    if errors:
        for error in errors:
            print(error)
        return 1
    out = io.StringIO()
    analyze_files(config, args.captures, fmt="jsonl", out=out, only_rules=[rule])
    alerts = [json.loads(line) for line in out.getvalue().splitlines() if '"kind":"alert"' in line]
    for alert in alerts:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(alert["ts"]))
        print(f"{stamp} [{alert['level']}] {alert['message']}")
    print(f"{rule.stem}: {len(alerts)} alerts")
    return 0


def cmd_indicators(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    try:
        name, count = import_indicators(Path(args.file))
    except IndicatorError as exc:
        raise MicwatchError(str(exc)) from None
    print(f"imported list {name!r} with {count} indicators")
    return 0


def cmd_alerts(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.store import open_store

    store = open_store(config_from(args), writer=False)
    try:
        if args.alerts_command == "ack":
            if not store.acknowledge_alert(args.id):
                raise MicwatchError(f"there is no alert {args.id}; see micwatch alerts")
            print(f"alert {args.id} acknowledged")
            return 0
        if args.alerts_command == "mute":
            until = time.time() + parse_duration(args.period)
            store.mute(args.rule, args.mute_device.lower(), until)
            print(
                f"rule {args.rule} muted for {args.mute_device} until "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(until))}"
            )
            return 0
        since = time.time() - parse_duration(args.since)
        rows = store.alerts(since=since, level=args.level, device=args.device, rule=args.rule)
    finally:
        store.close()
    if args.format == "json":
        print_json(rows, sys.stdout)
        return 0
    for row in rows:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["ts"]))
        flags = " (acknowledged)" if row.get("acknowledged") else ""
        flags += " (muted)" if row.get("muted") else ""
        print(f"{row['id']:6} {stamp} [{row['level']}] {row['message']}{flags}")
    return 0


#: Subcommand name -> handler, for :mod:`monitor.cli`.
COMMANDS = {"rules": cmd_rules, "indicators": cmd_indicators, "alerts": cmd_alerts}
