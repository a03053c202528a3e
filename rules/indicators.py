"""Indicator lists: domains and addresses known to belong to stalkerware, spyware or trackers.

Two file formats are read:

* STIX 2 bundles (JSON), the format MVT and Amnesty Tech publish (e.g. stalkerware-indicators):
  objects of type ``indicator`` whose ``pattern`` compares ``domain-name:value``,
  ``ipv4-addr:value``, ``ipv6-addr:value`` or ``url:value`` (the URL's host is taken), possibly
  several joined by ``OR``. Patterns using anything else (``AND``, ``FOLLOWEDBY``, ``LIKE``,
  other object types) are skipped and counted, never guessed at. An indicator linked by a
  ``relationship`` to a ``malware`` object is named after that malware; the others after the
  bundle's only ``malware`` object or, failing that, its ``name`` or the file name.
* Plain lists: one domain, IP address or CIDR per line, ``#`` comments, hosts-file lines
  (``0.0.0.0 example.com``) and URLs accepted; lines that are none of these are skipped and
  counted. The list is named after the file (``stalkerware.txt`` -> ``stalkerware``).

Matching guarantees: a domain entry matches itself and every subdomain (``example.com`` matches
``evil.example.com``, not ``notexample.com``), case-insensitively and ignoring a trailing dot, in
O(labels of the name) dict look-ups whatever the list size; an address matches by set, a CIDR by
one look-up per distinct prefix length. Every entry remembers its list names: the most specific
first (the malware), then the file's list name, so a rule can ask for either.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import MicwatchError

#: File suffixes read when a directory is given (besides files without a suffix).
INDICATOR_SUFFIXES = frozenset({".json", ".stix", ".stix2", ".txt", ".hosts", ".list"})

_COMPARISON = re.compile(
    r"(domain-name|ipv4-addr|ipv6-addr|url):value\s*=\s*'((?:[^'\\]|\\.)*)'", re.IGNORECASE
)
_REST_OK = re.compile(r"^[\s\[\]()]*(?:OR[\s\[\]()]*)*$", re.IGNORECASE)
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_SINK_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "255.255.255.255"})


class IndicatorError(MicwatchError):
    """An indicator file cannot be read or holds no indicator; the message names the file."""


@dataclass
class LoadReport:
    """What one file gave: its list name, entries added and entries skipped as unreadable."""

    name: str
    count: int
    skipped: int
    lists: set[str] = field(default_factory=set)


def normalize_domain(text: str) -> str | None:
    """The lower-case ASCII form of a domain name, or None when ``text`` is not one.

    A leading ``*.`` or ``.`` and a trailing dot are dropped; an internationalised name is
    converted to its IDNA (punycode) form; a name needs at least two labels.
    """
    name = text.strip().lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    name = name.lstrip(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    return name


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


class IndicatorSet:
    """Indicator lists loaded in memory, matched by name or address (see module guarantees)."""

    def __init__(self) -> None:
        self._names: dict[str, tuple[str, ...]] = {}
        self._ips: dict[str, tuple[str, ...]] = {}
        # (version, prefix length) -> {network address as int: list names}
        self._nets: dict[tuple[int, int], dict[int, tuple[str, ...]]] = {}
        #: The names of the lists loaded (files' list names and the malware names in bundles).
        self.lists: set[str] = set()

    def __len__(self) -> int:
        return len(self._names) + len(self._ips) + sum(len(n) for n in self._nets.values())

    @classmethod
    def from_paths(cls, paths: Iterable[Path]) -> IndicatorSet:
        """A set loaded from files and directories (see :data:`INDICATOR_SUFFIXES`).

        A missing path is skipped (the user's indicator directory may not exist yet); a file that
        cannot be read or holds no indicator raises :class:`IndicatorError`.
        """
        indicators = cls()
        for path in paths:
            path = Path(path)
            if path.is_dir():
                for child in sorted(path.iterdir()):
                    if child.is_file() and _is_indicator_file(child):
                        indicators.load_file(child)
            elif path.is_file():
                indicators.load_file(path)
        return indicators

    def add(self, value: str, names: tuple[str, ...]) -> bool:
        """Add one domain, address or CIDR under the list names; False when it is none of those."""
        net = _network(value) if "/" in value else None
        if net is not None:
            key = (net.version, net.prefixlen)
            table = self._nets.setdefault(key, {})
            start = int(net.network_address)
            table[start] = _merge(table.get(start), names)
            return True
        address = _address(value)
        if address is not None:
            text = str(address)
            self._ips[text] = _merge(self._ips.get(text), names)
            return True
        domain = normalize_domain(value)
        if domain is None:
            return False
        self._names[domain] = _merge(self._names.get(domain), names)
        return True

    def match_name(self, name: str, lists: frozenset[str] | None = None) -> str | None:
        """The list name matching ``name`` or one of its parent domains, else None.

        With ``lists``, only those list names count. The most specific entry wins.
        """
        if not self._names or not name:
            return None
        name = name.lower().rstrip(".")
        start = 0
        while True:
            found = self._names.get(name[start:])
            if found is not None:
                hit = _pick(found, lists)
                if hit is not None:
                    return hit
            dot = name.find(".", start)
            if dot < 0:
                return None
            start = dot + 1

    def match_ip(self, ip: str, lists: frozenset[str] | None = None) -> str | None:
        """The list name holding the address ``ip`` or a network containing it, else None."""
        found = self._ips.get(ip)
        if found is not None and (hit := _pick(found, lists)) is not None:
            return hit
        if not self._nets and ":" not in ip:
            return None
        address = _address(ip)
        if address is None:
            return None
        text = str(address)
        if text != ip and (found := self._ips.get(text)) is not None:
            hit = _pick(found, lists)
            if hit is not None:
                return hit
        value = int(address)
        bits = address.max_prefixlen
        for (version, prefix), table in self._nets.items():
            if version != address.version:
                continue
            found = table.get(value >> (bits - prefix) << (bits - prefix))
            if found is not None and (hit := _pick(found, lists)) is not None:
                return hit
        return None

    def load_file(self, path: Path) -> LoadReport:
        """Load one STIX2 bundle or plain list; raises IndicatorError naming the file."""
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise IndicatorError(f"{path}: cannot be read: {exc}") from None
        if text.lstrip().startswith("{"):
            report = self._load_stix(path, text)
        else:
            report = self._load_plain(path, text)
        if report.count == 0:
            raise IndicatorError(
                f"{path}: holds no domain, address or URL indicator "
                f"({report.skipped} entries skipped)"
            )
        self.lists |= report.lists
        return report

    def _load_plain(self, path: Path, text: str) -> LoadReport:
        name = path.stem
        report = LoadReport(name, 0, 0, {name})
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            tokens = line.split()
            if len(tokens) > 1 and _address(tokens[0]) is not None:
                values = [t for t in tokens[1:] if t.lower() not in ("localhost", "broadcasthost")]
                if not values:
                    continue
            elif len(tokens) == 1:
                values = tokens
            else:
                report.skipped += 1
                continue
            for value in values:
                if "://" in value:
                    value = urlsplit(value).hostname or ""
                if value in _SINK_ADDRESSES:
                    continue
                if self.add(value, (name,)):
                    report.count += 1
                else:
                    report.skipped += 1
        return report

    def _load_stix(self, path: Path, text: str) -> LoadReport:
        try:
            bundle = json.loads(text)
        except ValueError as exc:
            raise IndicatorError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
            raise IndicatorError(f'{path}: a JSON file must be a STIX 2 bundle ("type": "bundle")')
        objects = [o for o in bundle.get("objects") or [] if isinstance(o, dict)]
        malware = {
            o.get("id"): str(o["name"])
            for o in objects
            if o.get("type") == "malware" and o.get("name")
        }
        if len(malware) == 1:
            list_name = next(iter(malware.values()))
        else:
            list_name = str(bundle.get("name") or path.stem)
        indicates: dict[Any, str] = {}
        for o in objects:
            if (
                o.get("type") == "relationship"
                and o.get("relationship_type") == "indicates"
                and o.get("target_ref") in malware
            ):
                indicates.setdefault(o.get("source_ref"), malware[o["target_ref"]])
        report = LoadReport(list_name, 0, 0, {list_name})
        for o in objects:
            if o.get("type") != "indicator":
                continue
            specific = indicates.get(o.get("id"), list_name)
            names = (specific, list_name) if specific != list_name else (list_name,)
            values = _pattern_values(str(o.get("pattern") or ""))
            if not values:
                report.skipped += 1
                continue
            for value in values:
                if self.add(value, names):
                    report.count += 1
                    report.lists.add(specific)
                else:
                    report.skipped += 1
        return report


def _pattern_values(pattern: str) -> list[str]:
    """The values of a STIX pattern made only of supported comparisons joined by OR."""
    found = list(_COMPARISON.finditer(pattern))
    if not found or not _REST_OK.match(_COMPARISON.sub(" ", pattern)):
        return []
    values = []
    for match in found:
        kind = match.group(1).lower()
        value = re.sub(r"\\(.)", r"\1", match.group(2))
        if kind == "url":
            value = urlsplit(value if "://" in value else "http://" + value).hostname or ""
        if value:
            values.append(value)
    return values


def _merge(old: tuple[str, ...] | None, names: tuple[str, ...]) -> tuple[str, ...]:
    if old is None:
        return names
    return old + tuple(n for n in names if n not in old)


def _pick(found: tuple[str, ...], lists: frozenset[str] | None) -> str | None:
    if lists is None:
        return found[0]
    for name in found:
        if name in lists:
            return name
    return None


def _is_indicator_file(path: Path) -> bool:
    return not path.name.startswith(".") and (
        path.suffix.lower() in INDICATOR_SUFFIXES or not path.suffix
    )


def user_indicators_dir() -> Path:
    """Where imported lists live: /etc/micwatch/indicators.d as root, else the user's config."""
    if os.geteuid() == 0:
        return Path("/etc/micwatch/indicators.d")
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(home) / "micwatch" / "indicators.d"


def import_indicators(path: Path, directory: Path | None = None) -> tuple[str, int]:
    """Check an indicator file and copy it into ``directory`` (default: the user's indicator dir).

    Returns the file's list name and its number of entries. The copy keeps the file name (so
    importing a newer version replaces the older one) and is written atomically. Raises
    IndicatorError when the file is unreadable or holds no indicator; nothing is copied then.
    """
    path = Path(path)
    report = IndicatorSet().load_file(path)
    directory = Path(directory) if directory is not None else user_indicators_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / (path.name if _is_indicator_file(path) else path.name + ".txt")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".import-")
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return report.name, report.count
