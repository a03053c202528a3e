"""Where rules live and how files become rules: discovery, checking and writing allow rules.

Rules are read, in order, from the built-in directory, the user's rules directory and the
directories (or files) of the ``rules.paths`` option. Inside a directory, every ``*.yaml`` and
``*.yml`` file not starting with a dot is a rule, in name order. Two files of one directory may not
share an id; a rule in a later directory replaces one of an earlier directory with the same id
(so a user changes a built-in rule by copying it into their rules directory).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from rules.conditions import Context, parse_hours
from rules.fields import DESTINATION_CONTACTED, DEVICE_SEEN, NAME_CONTACTED, UPLOAD_BURST
from rules.indicators import IndicatorSet, user_indicators_dir
from rules.schema import Rule, RuleError, parse_rule

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
RULE_SUFFIXES = (".yaml", ".yml")
DEFAULT_NIGHT = "22:00-07:00"

#: A file's identity for change detection: (mtime in ns, size).
Stamp = tuple[int, int]

_MAC = re.compile(r"^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$|^ip:\S+$")


def user_rules_dir() -> Path:
    """The user's rule directory: /etc/micwatch/rules.d as root, else ~/.config/micwatch/rules.d."""
    if os.geteuid() == 0:
        return Path("/etc/micwatch/rules.d")
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(home) / "micwatch" / "rules.d"


def state_rules_dir(config: Mapping[str, Any]) -> Path:
    """Where micwatch itself writes the rules the user adds (``micwatch rules allow``, the
    dashboard's "allow"): ``rules.d`` in the state directory, which the daemon and the
    dashboard share whoever runs them (the service user cannot write to /etc)."""
    from monitor.paths import state_dir

    return state_dir(config["store.state_dir"]) / "rules.d"


def rule_paths(config: Mapping[str, Any]) -> list[Path]:
    """The rule directories in override order: built-in, the user's hand-written ones, the ones
    micwatch wrote for the user, then ``rules.paths``."""
    return [
        BUILTIN_DIR,
        user_rules_dir(),
        state_rules_dir(config),
        *(Path(p).expanduser() for p in config["rules.paths"]),
    ]


def indicator_paths(config: Mapping[str, Any]) -> list[Path]:
    """The indicator files and directories: the user's imported lists, then ``rules.indicators``."""
    return [user_indicators_dir(), *(Path(p).expanduser() for p in config["rules.indicators"])]


def rule_files(paths: Iterable[Path]) -> list[tuple[int, Path]]:
    """(index of the path it came from, file) for every rule file, in override order.

    A directory gives its rule files in name order; a file is taken as it is; a missing path gives
    nothing.
    """
    out: list[tuple[int, Path]] = []
    for index, path in enumerate(paths):
        path = Path(path)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if (
                    child.suffix in RULE_SUFFIXES
                    and not child.name.startswith(".")
                    and child.is_file()
                ):
                    out.append((index, child))
        elif path.is_file():
            out.append((index, path))
    return out


def stamp(path: Path) -> Stamp | None:
    """The file's (mtime_ns, size), None when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def snapshot(paths: Iterable[Path]) -> dict[Path, Stamp | None]:
    """The stamp of every rule file under ``paths``: equal snapshots mean nothing changed."""
    return {path: stamp(path) for _, path in rule_files(paths)}


def make_context(
    indicators: IndicatorSet | None = None, tz: Any = None, night: str = DEFAULT_NIGHT
) -> Context:
    """A compile context; the defaults (no indicators, local time, 22:00-07:00) suit checking."""
    return Context(indicators if indicators is not None else IndicatorSet(), tz, parse_hours(night))


def load_rule_file(path: Path, ctx: Context) -> tuple[Rule | None, list[RuleError]]:
    """Read, validate and compile one rule file: (rule, []) or (None, errors)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [RuleError(path, None, "(file)", f"cannot be read: {exc}")]
    return parse_rule(text, path, ctx)


def duplicate_error(rule: Rule, first: Path) -> RuleError:
    """The error for a rule whose id an earlier file of the same directory already uses."""
    return RuleError(
        rule.path, rule.lines.get("id"), "id", f"{rule.id!r} is already the id of {first}"
    )


def check_rules(paths: Iterable[Path] | None = None) -> list[RuleError]:
    """Every problem in the rule files under ``paths`` (default: the built-in rules).

    For ``micwatch rules check [PATH]``: each error prints as ``file:line: field: problem``.
    Besides each file's own problems it reports a path that does not exist, two files of one
    directory sharing an id, and an allow rule's ``applies_to`` naming no known rule (the built-in
    rules count as known).
    """
    paths = [BUILTIN_DIR] if paths is None else [Path(p) for p in paths]
    ctx = make_context()
    errors = [RuleError(p, None, "(file)", "does not exist") for p in paths if not p.exists()]
    rules: list[Rule] = []
    first: dict[tuple[int, str], Path] = {}
    for index, path in rule_files(paths):
        rule, file_errors = load_rule_file(path, ctx)
        errors += file_errors
        if rule is None:
            continue
        key = (index, rule.id)
        if key in first:
            errors.append(duplicate_error(rule, first[key]))
            continue
        first[key] = path
        rules.append(rule)
    known = {r.id for r in rules}
    if BUILTIN_DIR not in paths:
        known |= {r.id for _, p in rule_files([BUILTIN_DIR]) if (r := load_rule_file(p, ctx)[0])}
    for rule in rules:
        for name in sorted((rule.applies_to or frozenset()) - known):
            errors.append(
                RuleError(
                    rule.path,
                    rule.lines.get("applies_to"),
                    "applies_to",
                    f"no rule has the id {name!r}",
                )
            )
    return errors


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def add_allow_rule(
    directory: Path,
    device_mac: str,
    dest_org: str | None = None,
    dest_country: str | None = None,
    dest_name: str | None = None,
    comment: str = "",
) -> Path:
    """Write an allow rule for a device (and optionally a destination) and return its path.

    With any of ``dest_org``, ``dest_country``, ``dest_name`` the rule allows that device's
    uploads and first contacts to the matching destinations (events ``upload_burst`` and
    ``destination_contacted``); with none, it allows everything the device does. The file is
    validated before it is written, written atomically (a daemon polling the directory never reads
    half a file) and never replaces an existing file. Raises ValueError for a malformed MAC address
    or country code.
    """
    mac = device_mac.strip().lower()
    if not _MAC.match(mac):
        raise ValueError(f"{device_mac!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
    match: dict[str, str] = {"device.mac": mac}
    if dest_org:
        match["dest.org"] = dest_org.strip().lower()
    if dest_country:
        country = dest_country.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise ValueError(f"{dest_country!r} is not a two-letter country code such as IE")
        match["dest.country"] = country
    if dest_name:
        match["dest.name"] = dest_name.strip().lower().rstrip(".")
    dest = [match[k] for k in ("dest.name", "dest.org", "dest.country") if k in match]
    if dest:
        events = [UPLOAD_BURST, DESTINATION_CONTACTED]
        title = f"{mac} may send to {' in '.join(dest[-2:]) if len(dest) > 1 else dest[0]}"
    else:
        events = [UPLOAD_BURST, DEVICE_SEEN, DESTINATION_CONTACTED, NAME_CONTACTED]
        title = f"{mac} may do anything"
    base = ("allow-" + "-".join(_slug(p) for p in (mac, *dest)))[:56].rstrip("-")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    taken = set()
    for _, path in rule_files([directory]):
        taken.add(path.stem)
        existing = load_rule_file(path, make_context())[0]
        if existing is not None:
            taken.add(existing.id)
    rule_id = base
    number = 2
    while rule_id in taken:
        rule_id = f"{base}-{number}"
        number += 1
    document = {
        "id": rule_id,
        "title": title,
        "description": " ".join(comment.split()) or "Added with micwatch rules allow.",
        "action": "allow",
        "event": events,
        "match": match,
    }
    text = "# Written by micwatch; edit or delete freely.\n" + yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, width=100
    )
    target = directory / f"{rule_id}.yaml"
    rule, errors = parse_rule(text, target, make_context())
    if rule is None:
        raise ValueError("; ".join(str(e) for e in errors))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".allow-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.link(tmp, target)
    finally:
        os.unlink(tmp)
    return target
