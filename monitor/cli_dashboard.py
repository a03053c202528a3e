"""``micwatch dashboard``, ``replay``, ``report`` and ``demo``: seeing it and showing it.

``dashboard`` serves the dashboard (waitress) over the configured store; ``--set-password`` and
``--new-token`` manage its credentials. ``replay FILE...`` plays captures into the store as if
they happened now (``--dashboard`` also serves the dashboard). ``report`` writes the printable
HTML report. ``demo`` is the workshop mode: a fresh temporary database, the sample captures
replayed at ``--speed`` and the dashboard, with the URL and a generated password printed;
``demo --text`` prints the plain-text analysis of the samples instead. Ctrl-C stops cleanly.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.config import Config, parse_duration
from monitor.errors import MicwatchError

ConfigFrom = Callable[[argparse.Namespace], Config]
_SECTIONS = ("store", "dashboard", "rules", "enrich")
_RUN_SECTIONS = ("flows", "network", "enrich", "store", "classify", "detect", "rules", "dashboard")


def add_commands(sub: Any, add_option_flags: Callable[..., None]) -> None:
    """Register ``dashboard``, ``replay``, ``report`` and ``demo``."""
    dashboard = sub.add_parser("dashboard", help="serve the web dashboard (default port 8080)")
    dashboard.add_argument(
        "--set-password", action="store_true", help="set the dashboard password and exit"
    )
    dashboard.add_argument(
        "--new-token", action="store_true", help="create an API token, print it once and exit"
    )
    add_option_flags(dashboard, _SECTIONS)

    replay = sub.add_parser("replay", help="replay capture files into the store as if live")
    replay.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng files")
    replay.add_argument("--speed", type=float, default=1.0, help="times real speed (0: at once)")
    replay.add_argument("--dashboard", action="store_true", help="also serve the dashboard")
    add_option_flags(replay, _RUN_SECTIONS)

    report = sub.add_parser("report", help="write the printable HTML report")
    report.add_argument("--since", default="7d", help="period covered, e.g. 24h, 7d (default 7d)")
    report.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    report.add_argument("--language", choices=("en", "fr"), help="default: dashboard.language")
    add_option_flags(report, _SECTIONS)

    demo = sub.add_parser("demo", help="workshop mode: replay the sample captures live")
    demo.add_argument("--speed", type=float, default=1.0, help="times real speed (default 1)")
    demo.add_argument("--text", action="store_true", help="print the analysis as text instead")
    demo.add_argument("--format", choices=("text", "json", "jsonl"), default="text",
                      help="with --text: the output format")  # fmt: skip
    add_option_flags(demo, ("enrich", "dashboard"))


def sample_captures() -> list[Path]:
    """The capture files shipped with the package for the demo, sorted by name."""
    folder = resources.files("monitor") / "samples"
    return sorted(
        Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith((".pcap", ".pcapng"))
    )


def _credentials(config: Config) -> Any:
    from dashboard.credentials import Credentials
    from monitor.paths import state_dir

    return Credentials(state_dir(config["store.state_dir"]))


def _read_new_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New dashboard password: ")
    if first != getpass.getpass("Again: "):
        raise MicwatchError("the two passwords differ")
    return first


def _serve(app: Any, bind: str, banner: list[str]) -> None:
    """Serve ``app`` until Ctrl-C, after printing ``banner`` and the URL."""
    from dashboard.serve import make_server

    try:
        server = make_server(app, bind)
    except (OSError, ValueError) as exc:
        raise MicwatchError(f"cannot listen on {bind or 'the default address'}: {exc}") from None
    for line in banner:
        print(line)
    print(f"Dashboard: {server.url}  (Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _password_banner(config: Config) -> list[str]:
    """Generate a password when none exists; the lines that show it (once)."""
    credentials = _credentials(config)
    if credentials.has_password():
        return []
    password = credentials.generate_password()
    return [f"Dashboard password (shown once; change it on the Settings page): {password}"]


def cmd_dashboard(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    config = config_from(args)
    credentials = _credentials(config)
    if args.set_password:
        try:
            credentials.set_password(_read_new_password())
        except ValueError as exc:
            raise MicwatchError(str(exc)) from None
        print("dashboard password set")
        return 0
    if args.new_token:
        print(credentials.new_token())
        return 0
    from dashboard import create_app

    banner = _password_banner(config)
    _serve(create_app({"MICWATCH_CONFIG": config}), config["dashboard.bind"], banner)
    return 0


def _run_replay(config: Config, files: list[str], speed: float, serve: bool,
                banner: list[str]) -> None:  # fmt: skip
    """Replay ``files`` into the configured store; serve the dashboard meanwhile if asked."""
    from monitor.replay import Replay
    from monitor.store import open_store

    if speed < 0:
        raise MicwatchError("--speed must be 0 (as fast as possible) or more")
    store = open_store(config, writer=True)
    replay = Replay(config, files, store, speed).start()
    try:
        if serve:
            from dashboard import create_app

            _serve(create_app({"MICWATCH_CONFIG": config, "STORE": store}),
                   config["dashboard.bind"], banner)  # fmt: skip
        else:
            while not replay.done.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        replay.stop()
        store.close()
    print(f"replayed {replay.source.stats()['packets']} packets", file=sys.stderr)


def cmd_replay(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    config = config_from(args)
    banner = _password_banner(config) if args.dashboard else []
    _run_replay(config, args.files, args.speed, args.dashboard, banner)
    return 0


def cmd_report(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    from monitor.report import write_report
    from monitor.store import open_store

    config = config_from(args)
    try:
        since = time.time() - parse_duration(args.since)
    except ValueError as exc:
        raise MicwatchError(f"--since {args.since!r}: {exc}") from None
    store = open_store(config, writer=False)
    try:
        language = args.language or config["dashboard.language"] or "en"
        path = write_report(config, store, since, Path(args.out), language)
    finally:
        store.close()
    print(f"report written to {path}")
    return 0


def cmd_demo(args: argparse.Namespace, config_from: ConfigFrom) -> int:
    config = config_from(args)
    if config.sources.get("enrich.home") == "default":
        config = config.replace(enrich__home=["FR"])
    files = [str(p) for p in sample_captures()]
    if args.text:
        return _demo_text(config, files, args.format)
    workdir = tempfile.mkdtemp(prefix="micwatch-demo-")
    try:
        config = config.replace(
            store__db=f"sqlite:///{Path(workdir) / 'demo.db'}",
            store__state_dir=workdir,
            store__sensor="demo",
            store__retention="3650d",
        )
        banner = [
            "micwatch demo: replaying the sample captures shipped with micwatch at "
            f"{args.speed:g}x (home set: {', '.join(config['enrich.home'])})",
            *(f"  {Path(path).name}" for path in files),
            "Licences and provenance: the dashboard's footer links to them.",
            *_password_banner(config),
        ]
        _run_replay(config, files, args.speed, True, banner)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _demo_text(config: Config, files: list[str], fmt: str) -> int:
    from monitor.analyze import analyze_files

    if fmt == "text":
        print(
            "micwatch demo: analysing the sample captures shipped with micwatch "
            "(home set: " + ", ".join(config["enrich.home"]) + ")"
        )
        for path in files:
            print(f"  {Path(path).name}")
        print("Licences and provenance: see NOTICE in the samples folder.\n")
    analyze_files(config, files, fmt=fmt, flows=False, progress=sys.stderr.isatty(), out=sys.stdout)
    return 0


#: Subcommand name -> handler, for :mod:`monitor.cli`.
COMMANDS = {
    "dashboard": cmd_dashboard,
    "replay": cmd_replay,
    "report": cmd_report,
    "demo": cmd_demo,
}
