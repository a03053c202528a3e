"""The ``micwatch`` command line.

Subcommands: ``analyze`` (offline analysis of capture files), ``capture`` (the live daemon),
``devices`` and ``destinations`` (read the store), ``config`` (print the default file, check a
file), and the feature modules' commands (``rules``, ``dashboard``, ``replay``, ``report``,
``demo``...). Every configuration option is also a
flag (``--section-name``), generated from the option registry. Errors the user can fix are
printed in one plain sentence on standard error with exit status 2; nothing but results goes to
standard output.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Sequence

from monitor import __version__, cli_dashboard, cli_devices, cli_headless, cli_modes, cli_rules
from monitor.config import OPTIONS, Config, defaults_toml, load
from monitor.errors import MicwatchError

log = logging.getLogger("micwatch")


def _add_option_flags(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    group = parser.add_argument_group("configuration (also MICWATCH_* variables or the TOML file)")
    for option in OPTIONS:
        if option.section not in sections:
            continue
        flags = [option.flag]
        if option.alias and option.alias != option.flag:
            flags.insert(0, option.alias)
        group.add_argument(
            *flags,
            dest="opt__" + option.key.replace(".", "__"),
            default=None,
            metavar=option.kind.upper(),
            help=f"{option.help} ({option.accepts()}; default {option.default!r})",
        )


def _config_from(args: argparse.Namespace) -> Config:
    cli = {
        key[5:].replace("__", "."): value
        for key, value in vars(args).items()
        if key.startswith("opt__") and value is not None
    }
    return load(getattr(args, "config", None), cli=cli)


#: Modules that add subcommands: each has ``add_commands(subparsers, add_option_flags)`` and
#: ``COMMANDS`` mapping a subcommand to ``handler(args, config_from) -> exit status``.
FEATURE_COMMANDS = (cli_devices, cli_rules, cli_modes, cli_headless, cli_dashboard)

_RUN_SECTIONS = (
    "capture",
    "flows",
    "network",
    "enrich",
    "store",
    "classify",
    "detect",
    "rules",
    "notify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micwatch",
        description="Tells a household when a connected device is listening and sending what it "
        "hears away.",
    )
    parser.add_argument("--version", action="version", version=f"micwatch {__version__}")
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = sub.add_parser("analyze", help="analyse capture files (pcap, pcapng, gzip, -)")
    analyze.add_argument("files", nargs="+", metavar="FILE", help="capture files; - for stdin")
    analyze.add_argument("--format", choices=("text", "json", "jsonl"), default="text")
    analyze.add_argument("--flows", action="store_true", help="also print every flow (json/jsonl)")
    analyze.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    _add_option_flags(analyze, _RUN_SECTIONS)

    capture = sub.add_parser("capture", help="run the capture daemon (live interface or -r)")
    capture.add_argument(
        "-r",
        "--read",
        nargs="+",
        metavar="FILE",
        help="read capture files or - (a router's tcpdump piped in)",
    )
    capture.add_argument(
        "--format", choices=("text", "jsonl"), default="text", help="what to print as events happen"
    )
    capture.add_argument("--no-store", action="store_true", help="do not write the database")
    capture.add_argument("--flows", action="store_true", help="also print every flow (jsonl)")
    _add_option_flags(capture, (*_RUN_SECTIONS, "health"))

    config = sub.add_parser("config", help="print the default configuration or check one")
    config.add_argument("--defaults", action="store_true", help="print the commented defaults")
    config.add_argument("--check", action="store_true", help="validate the configuration")

    for module in FEATURE_COMMANDS:
        module.add_commands(sub, _add_option_flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s micwatch %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return _COMMANDS[args.command](args)
    except MicwatchError as exc:
        print(f"micwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


# -- commands ---------------------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace) -> int:
    from monitor.analyze import analyze_files

    config = _config_from(args)
    progress = not args.no_progress and sys.stderr.isatty()
    store = None
    if config.sources.get("store.db") == "command line":
        from monitor.store import open_store

        store = open_store(config, writer=True)
    try:
        analyze_files(
            config,
            args.files,
            fmt=args.format,
            flows=args.flows,
            progress=progress,
            out=sys.stdout,
            store=store,
        )
    finally:
        if store is not None:
            store.close()
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    from monitor.daemon import run_daemon

    config = _config_from(args)
    return run_daemon(
        config,
        read=args.read,
        fmt=args.format,
        use_store=not args.no_store,
        flows=args.flows,
        reload_config=lambda: _config_from(args),
    )


def cmd_config(args: argparse.Namespace) -> int:
    if args.defaults or not args.check:
        sys.stdout.write(defaults_toml())
        return 0
    config = load(args.config)
    print(f"configuration is valid ({len(config)} options)")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "analyze": cmd_analyze,
    "capture": cmd_capture,
    "config": cmd_config,
}
for _module in FEATURE_COMMANDS:
    for _name, _handler in _module.COMMANDS.items():
        _COMMANDS[_name] = functools.partial(_handler, config_from=_config_from)


if __name__ == "__main__":
    raise SystemExit(main())
