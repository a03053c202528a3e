"""The OUI vendor table: which company a MAC address block was assigned to by the IEEE.

Sources, loaded lazily on the first lookup into one dict per block size (MA-L 24 bits, MA-M
28 bits, MA-S/IAB 36 bits), most specific block first:

1. ``enrich.oui_file`` (optional): a newer IEEE ``oui.csv``/``mam.csv``/``oas.csv`` (or their
   ``.txt`` forms, ``iab.csv``/``iab.txt`` too) or a Wireshark ``manuf`` file. Its entries are
   layered over the base table (added, or replacing the base's name), so a user can refresh
   only MA-L with ``oui.csv`` and keep the base's MA-M/MA-S blocks.
2. The base table: the Wireshark ``manuf`` file of the system when present
   (:data:`SYSTEM_MANUF`; Debian and Ubuntu ship it in wireshark-common up to Wireshark 4.0;
   the distribution refreshes it with its security updates), else the copy of Wireshark's
   ``manuf`` that scapy bundles (read from scapy's package file without importing scapy, which
   would hold a second 2.7 MB copy of the text).

Comparison measured when this was written (Python 3.11, x86-64; each in a fresh process):

=================  ======  =====  ======  =============  =====  =======  ==========
source             MA-L    MA-M   MA-S    IEEE data of   load   RSS      lookups/s
=================  ======  =====  ======  =============  =====  =======  ==========
Debian manuf 4.0   36231   5479   10707   2024-08-25     0.2 s  +5.6 MB  1.9 M
scapy 2.8 bundled  35127   5220   10478   about 2024-01  0.3 s  +8.5 MB  1.9 M
netaddr 1.3        35084   none   4575 *  about 2024-01  lazy   +15 MB   56 k
=================  ======  =====  ======  =============  =====  =======  ==========

The first two rows are this module's loader (the RSS includes decoding scapy's blob); netaddr
is its own ``EUI(mac).oui.registration().org``. (*) netaddr knows only the retired 36-bit IAB
registry, not MA-M/MA-S, so a small maker's MA-M block resolves to "IEEE Registration
Authority". scapy's own ``conf.manufdb`` holds the same data as its bundled copy but costs
about 32 MB RSS (with the scapy import) and matches only the first three octets. The Debian
file holds every real assignment of the other two, plus 1104 newer MA-L blocks; scapy's copy
holds 475 MA-L blocks netaddr lacks. mac-vendor-lookup 0.1.15 ships IEEE MA-L data of
November 2025 (38440 blocks) but no MA-M/MA-S and pulls aiohttp in; not used. Fresher data:
point ``enrich.oui_file`` at the IEEE's current CSV files.

Guarantees: a vendor is given only for a universally administered unicast address (a
randomised or multicast MAC has no maker); "IEEE Registration Authority" and "Private" entries
count as unknown; the table is loaded once, on first use, and never twice.
"""

from __future__ import annotations

import base64
import csv
import gzip
import importlib.util
import io
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from monitor.errors import ConfigError

log = logging.getLogger(__name__)

#: Where Debian/Ubuntu's wireshark-common (Wireshark < 4.2) puts its vendor table.
SYSTEM_MANUF = Path("/usr/share/wireshark/manuf")

#: Block sizes the IEEE assigns: MA-S (and the older IAB), MA-M, MA-L; most specific first.
BLOCK_BITS = (36, 28, 24)

_UNKNOWN = {"", "ieee registration authority", "private"}
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]+")
_MANUF_KEY = re.compile(r"^([0-9A-Fa-f]{2}(?:[:.\-]?[0-9A-Fa-f]{1,2}){2,5})(?:/(\d+))?$")
_TXT_LINE = re.compile(r"^\s*([0-9A-Fa-f]{6})(?:-([0-9A-Fa-f]{6}))?\s+\(base 16\)\s*(.*)$")
_HEX_LINE = re.compile(r"^\s*([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})\s+\(hex\)")
# Trailing words :func:`short_name` drops: legal forms, then generic business words.
# fmt: off
_LEGAL = frozenset({
    "ab", "ag", "as", "a/s", "bhd", "bv", "co", "company", "corp", "corporate", "corporation",
    "cv", "gmbh", "inc", "incorporated", "ind", "kg", "kk", "limited", "llc", "llp", "lp", "ltd",
    "ltda", "mbh", "nv", "oy", "plc", "pte", "pty", "pvt", "sa", "sarl", "sas", "se", "spa", "srl",
})
_GENERIC = frozenset({
    "communications", "electronic", "electronics", "group", "holdings", "industrial",
    "industries", "international", "systems", "tech", "technologies", "technology",
})
# fmt: on


def mac_value(mac: str) -> int | None:
    """The 48-bit integer of a MAC in any usual notation (``:``, ``-``, ``.`` or none)."""
    digits = mac.replace(":", "").replace("-", "").replace(".", "")
    if len(digits) != 12:
        return None
    try:
        return int(digits, 16)
    except ValueError:
        return None


def is_randomized(mac: str) -> bool:
    """True for a locally administered address (second hex digit 2, 6, A or E), as phones and
    laptops use for private, rotating MACs."""
    value = mac_value(mac)
    return value is not None and bool(value >> 41 & 1)


def is_multicast(mac: str) -> bool:
    """True for a group (multicast or broadcast) address: the first octet's lowest bit set."""
    value = mac_value(mac)
    return value is not None and bool(value >> 40 & 1)


def short_name(org: str) -> str:
    """A short readable vendor name: the registered name without trailing legal forms and
    generic words (``Tp-Link Technologies Co.,Ltd.`` -> ``Tp-Link``); never empty."""
    words = org.replace(",", " ").split()
    while len(words) > 1:
        last = words[-1].lower().strip(".()")
        if last in _LEGAL or last in _GENERIC or words[-1].startswith("("):
            words.pop()
        else:
            break
    return " ".join(words).rstrip(".,") or org


class VendorTable:
    """MAC -> registered vendor name, from the base table plus an optional newer file.

    ``extra_file`` is checked when the table loads (first lookup); a missing or unreadable file
    raises ConfigError naming ``enrich.oui_file``. Not thread-safe while loading.
    """

    def __init__(self, extra_file: str = "") -> None:
        self.extra_file = extra_file
        self.source = ""
        self._tables: dict[int, dict[int, str]] | None = None

    def lookup(self, mac: str) -> str | None:
        """The registered organisation of ``mac``'s block, or None when unknown, randomised,
        multicast or not a MAC."""
        value = mac_value(mac)
        if value is None or value >> 40 & 3:
            return None
        tables = self._tables if self._tables is not None else self._load()
        for bits in BLOCK_BITS:
            found = tables[bits].get(value >> (48 - bits))
            if found is not None:
                return found
        return None

    def short(self, mac: str) -> str | None:
        """:func:`short_name` of :meth:`lookup`."""
        org = self.lookup(mac)
        return short_name(org) if org is not None else None

    def __len__(self) -> int:
        tables = self._tables if self._tables is not None else self._load()
        return sum(len(t) for t in tables.values())

    def _load(self) -> dict[int, dict[int, str]]:
        tables: dict[int, dict[int, str]] = {bits: {} for bits in BLOCK_BITS}
        names: dict[str, str] = {}
        sources = []
        try:
            base_name, base_text = _base_text()
            _fill(tables, names, manuf_entries(base_text))
        except (OSError, LookupError, ValueError, EOFError, zlib.error) as exc:
            log.warning("no base vendor table (%s); set enrich.oui_file for vendor names", exc)
        else:
            sources.append(base_name)
        if self.extra_file:
            try:
                with open(self.extra_file, encoding="utf-8", errors="replace") as lines:
                    _fill(tables, names, parse_lines(lines))
            except OSError as exc:
                raise ConfigError(
                    f"option enrich.oui_file = {self.extra_file!r} cannot be read "
                    f"({exc.strerror}); it accepts an IEEE oui.csv/oui.txt/mam.csv/oas.csv or a "
                    "Wireshark manuf file, or empty"
                ) from None
            sources.append(self.extra_file)
        self.source = " + ".join(sources)
        self._tables = tables
        log.info("vendor table: %d blocks from %s", sum(map(len, tables.values())), self.source)
        return tables


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """``(bits, prefix, organisation)`` for each block in an IEEE CSV, IEEE text or Wireshark
    manuf file, detected from the content. Lines that fit no format are skipped."""
    it = iter(lines)
    first = next(it, "")
    if first.lstrip("\ufeff").startswith("Registry,"):
        yield from _parse_csv(it)
        return
    base = ""
    for line in _chain(first, it):
        if "(hex)" in line:
            match = _HEX_LINE.match(line)
            base = "".join(match.groups()) if match else ""
        elif "(base 16)" in line:
            yield from _parse_txt(line, base)
        else:
            yield from _parse_manuf(line)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _parse_csv(rows: Iterator[str]) -> Iterator[tuple[int, int, str]]:
    for row in csv.reader(rows):
        if len(row) < 3 or row[0] == "CID":
            continue
        assignment = row[1].strip()
        if len(assignment) in (6, 7, 9) and _HEX_DIGITS.fullmatch(assignment):
            yield len(assignment) * 4, int(assignment, 16), row[2].strip()


def _parse_txt(line: str, base: str) -> Iterator[tuple[int, int, str]]:
    match = _TXT_LINE.match(line)
    if not match:
        return
    start, end, org = match.groups()
    if end is None:
        yield 24, int(start, 16), org.strip()
        return
    size = int(end, 16) - int(start, 16) + 1
    bits = {1 << 20: 28, 1 << 12: 36}.get(size)
    if bits is not None and base:
        yield bits, int(base + start, 16) >> (48 - bits), org.strip()


def _parse_manuf(line: str) -> Iterator[tuple[int, int, str]]:
    line = line.strip()
    if not line or line[0] == "#":
        return
    fields = line.split("\t") if "\t" in line else line.split(None, 2)
    match = _MANUF_KEY.match(fields[0].strip())
    if not match or len(fields) < 2:
        return
    digits = re.sub(r"[:.\-]", "", match.group(1))
    bits = int(match.group(2) or 24)
    if (
        bits not in BLOCK_BITS
        or len(digits) * 4 < bits
        or (not match.group(2) and len(digits) != 6)
    ):
        return  # a well-known address or a mask that is no IEEE block
    org = fields[-1].strip().lstrip("#").strip()
    yield bits, int(digits[: bits // 4], 16), org


def _fill(
    tables: dict[int, dict[int, str]],
    names: dict[str, str],
    entries: Iterable[tuple[int, int, str]],
) -> None:
    for bits, prefix, org in entries:
        if org.lower() in _UNKNOWN:
            continue
        tables[bits][prefix] = names.setdefault(org, org)


# The key may be padded with spaces before its tab (scapy's copy aligns its columns).
_MANUF_MA_L = re.compile(r"^([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2}) *\t([^\n]*)$", re.M)
# A masked key is written in full (00:55:DA:10:00:00/28) or cut after the mask (00:55:DA:10/28).
_MANUF_MASKED = re.compile(r"^([0-9A-Fa-f:]{11,17})/(28|36) *\t([^\n]*)$", re.M)


def manuf_entries(text: str) -> Iterator[tuple[int, int, str]]:
    """``(bits, prefix, organisation)`` of every IEEE block in the text of a Wireshark manuf
    file, found by two regular expressions over the whole text (several times faster than a
    line-by-line parse of its 50,000 lines). Other lines are skipped."""
    for match in _MANUF_MA_L.finditer(text):
        a, b, c, rest = match.groups()
        yield 24, int(a + b + c, 16), rest.rsplit("\t", 1)[-1].strip().lstrip("#").strip()
    for match in _MANUF_MASKED.finditer(text):
        key, bits, rest = match.groups()
        size = int(bits)
        digits = key.replace(":", "")
        if len(digits) * 4 >= size:
            org = rest.rsplit("\t", 1)[-1].strip().lstrip("#").strip()
            yield size, int(digits[: size // 4], 16), org


def _base_text() -> tuple[str, str]:
    """The name and text of the base table: the system manuf, else scapy's bundled copy."""
    if SYSTEM_MANUF.is_file():
        return str(SYSTEM_MANUF), SYSTEM_MANUF.read_text(encoding="utf-8", errors="replace")
    return "scapy's bundled manuf", "".join(scapy_manuf_lines())


def scapy_manuf_lines() -> Iterator[str]:
    """The lines of the Wireshark ``manuf`` copy in scapy's ``scapy/libs/manuf.py``, where it is
    stored as base85 of gzip (scapy >= 2.5); raises LookupError when scapy or the blob is not
    found, ValueError when it does not decode."""
    spec = importlib.util.find_spec("scapy")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError("scapy is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "libs" / "manuf.py"
    source = path.read_text(encoding="utf-8")
    start = source.find('_d("""')
    end = source.find('""")', start)
    if start < 0 or end < 0:
        raise LookupError(f"{path} holds no manuf blob this version of micwatch can read")
    packed = base64.b85decode("".join(source[start + 6 : end].split()))
    del source
    with gzip.GzipFile(fileobj=io.BytesIO(packed)) as raw:
        yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
