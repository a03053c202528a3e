"""Enrichment: where a destination address is, who runs it, and whether it is foreign.

Everything is offline; micwatch never looks anything up on the network.

- ``country``: from a MaxMind-format City/Country database's ``country.iso_code`` (where the
  address is located) when ``enrich.maxmind_db`` gives one that knows the address, else from
  :mod:`iptocc` (the country the Regional Internet Registry assigned the block to; bundled data,
  about 60 ns a lookup, so it is not cached separately). RIPE's ``EU`` code (a block registered
  for use across Europe) is kept as the country and counts as foreign only when the home set
  holds no EEA country, Switzerland or the United Kingdom. Other codes that are no ISO 3166
  country become None.
- ``org``: the registrable domain (public suffix plus one label) of the best name seen for the
  address, computed by publicsuffixlist from the Public Suffix List it bundles (refreshed with
  each release), with no network and no cache folder. Only ICANN suffixes count, not the
  list's private section, so
  ``bucket.s3.amazonaws.com`` and ``ec2-1-2-3-4.compute-1.amazonaws.com`` give
  ``amazonaws.com``: the org is who runs the infrastructure, the full names stay in ``names``.
  Without a name, the ASN organisation of a GeoLite2-ASN-style database, else None.
- ``jurisdiction``: the operator's home country from the curated table
  ``monitor/data/jurisdictions.tab``, looked up by org, then by AS number.
- ``local``: loopback, private (RFC 1918), link-local, multicast, broadcast, reserved,
  unspecified and unique-local or site-local IPv6 addresses, and any address in the configured
  LAN networks. Shared address space (100.64.0.0/10, carrier-grade NAT or a VPN overlay) is not
  local: traffic there leaves the home; it has no country, so it is never foreign.
- ``foreign``: not local, country known and outside the home set.

Guarantee: :meth:`Enricher.destination` returns one :class:`~monitor.model.Destination` per
address while it stays in the bounded LRU cache, updated in place as names arrive.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from iptocc import country_code
from publicsuffixlist import PublicSuffixList

from monitor.errors import ConfigError
from monitor.flows import IPNetwork, address_ranges, in_ranges
from monitor.homeset import EEA, is_country
from monitor.model import Destination

if TYPE_CHECKING:
    import maxminddb


#: Region codes registries use instead of a country, and the countries they may stand for.
REGIONS: dict[str, frozenset[str]] = {"EU": EEA | {"CH", "GB"}}

#: Names kept per destination; a shared CDN address can collect thousands over a day.
MAX_NAMES = 64

_LOCAL_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including 255.255.255.255 broadcast
        "::/128",
        "::1/128",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)


@cache
def _suffixes() -> PublicSuffixList:
    """The bundled list, ICANN section only (an unknown top-level domain is no public suffix),
    loaded on first use."""
    return PublicSuffixList(only_icann=True, accept_unknown=False)


@lru_cache(maxsize=16384)
def org_of(name: str) -> str | None:
    """The registrable domain of a host name (``avs-alexa-4-na.amazon.com`` -> ``amazon.com``,
    ``foo.bar.co.uk`` -> ``bar.co.uk``), lower case; None for an address, a bare suffix or a
    name under no public suffix (``printer.local``, ``nas.lan``)."""
    name = name.strip().lower().rstrip(".")
    if not name or _is_address(name):
        return None
    return _suffixes().privatesuffix(name)


@cache
def jurisdictions() -> dict[str, str]:
    """The curated table: registrable domain or ``AS<number>`` -> operator's home country."""
    text = resources.files("monitor").joinpath("data", "jurisdictions.tab").read_text("utf-8")
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return {cols[0]: cols[1] for cols in rows}


class Enricher:
    """Turns a destination address and its names into a :class:`Destination`.

    ``home`` is the resolved home set (:func:`monitor.homeset.resolve_home`); ``lan_networks``
    are extra prefixes that count as local (network objects or text); ``maxmind_db`` is an
    optional GeoLite2-ASN/City/Country ``.mmdb`` file. ``cache_size`` bounds the LRU cache of
    destinations (one costs about 450 bytes; an evicted address is simply enriched again).
    Not thread-safe: one per pipeline.
    """

    def __init__(
        self,
        home: frozenset[str],
        lan_networks: Iterable[IPNetwork | str] | None = None,
        maxmind_db: str = "",
        cache_size: int = 8192,
    ) -> None:
        self.home = frozenset(home)
        self.lan_networks = tuple(ipaddress.ip_network(n, strict=False) for n in lan_networks or ())
        self._local_ranges = address_ranges((*_LOCAL_NETWORKS, *self.lan_networks))
        self._reader = _open_database(maxmind_db) if maxmind_db else None
        self._cache: OrderedDict[str, Destination] = OrderedDict()
        self._cache_size = cache_size

    def destination(self, ip: str, names: Iterable[str] = ()) -> Destination:
        """The enriched destination for ``ip`` (raises ValueError if it is no address).

        ``names`` (best first) are added to the destination's names (at most
        :data:`MAX_NAMES`), and the first of them with a registrable domain sets ``org`` and
        ``jurisdiction``.
        """
        dest = self._cache.get(ip)
        if dest is None:
            dest = self._enrich(ip)
            self._cache[ip] = dest
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(ip)
        if names:
            self._add_names(dest, names)
        return dest

    def set_home(self, home: frozenset[str]) -> None:
        """A new home set (configuration reloaded): cached destinations are enriched afresh."""
        self.home = frozenset(home)
        self._cache.clear()

    def is_foreign(self, country: str | None) -> bool:
        """Whether a (known) country lies outside the home set; False when unknown."""
        if country is None:
            return False
        region = REGIONS.get(country)
        if region is not None:
            return self.home.isdisjoint(region)
        return country not in self.home

    def _enrich(self, ip: str) -> Destination:
        address = ipaddress.ip_address(ip)
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        dest = Destination(ip=ip)
        if self._is_local(address):
            dest.local = True
            return dest
        text = str(address)
        country = None
        if self._reader is not None:
            country = _read_database(self._reader, dest, text)
        if country is None:
            country = country_code(text)
        if country is not None and not (is_country(country) or country in REGIONS):
            country = None
        dest.country = country
        dest.foreign = self.is_foreign(country)
        dest.org = dest.asn_org
        dest.jurisdiction = self._jurisdiction(dest)
        return dest

    def _is_local(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return in_ranges(address.packed, self._local_ranges)

    def _add_names(self, dest: Destination, names: Iterable[str]) -> None:
        best: str | None = None
        first = True
        for raw in names:
            name = raw.strip().lower().rstrip(".")
            if name not in dest.names:
                if not name or _is_address(name):
                    continue
                if len(dest.names) < MAX_NAMES:
                    dest.names.add(name)
            if first:
                dest.best_name = name
                first = False
            if best is None:
                best = org_of(name)
        if best is not None and best != dest.org:
            dest.org = best
            dest.jurisdiction = self._jurisdiction(dest)

    @staticmethod
    def _jurisdiction(dest: Destination) -> str | None:
        table = jurisdictions()
        found = table.get(dest.org) if dest.org else None
        if found is None and dest.asn is not None:
            found = table.get(f"AS{dest.asn}")
        return found


def _open_database(path: str) -> maxminddb.Reader:
    import maxminddb  # only when configured: the module costs about 4 MB

    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(
            f"option enrich.maxmind_db = {path!r} cannot be opened ({exc}); it accepts the path "
            "of a MaxMind-format .mmdb file (GeoLite2 ASN, City or Country), or empty"
        ) from None


def _read_database(reader: maxminddb.Reader, dest: Destination, text: str) -> str | None:
    """Fill ``asn``/``asn_org`` from a MaxMind record; return its located country, if any."""
    try:
        record: Any = reader.get(text)
    except ValueError:  # an IPv6 address asked of an IPv4-only database
        return None
    if not isinstance(record, dict):
        return None
    number = record.get("autonomous_system_number")
    if isinstance(number, int):
        dest.asn = number
    organisation = record.get("autonomous_system_organization")
    if isinstance(organisation, str) and organisation:
        dest.asn_org = organisation
    located = record.get("country")
    code = located.get("iso_code") if isinstance(located, dict) else None
    return code.upper() if isinstance(code, str) else None


def _is_address(text: str) -> bool:
    if ":" not in text and not text[-1:].isdigit():
        return False  # the quick answer for host names
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
