"""Enrichment: country, local/foreign, org, jurisdiction, names, cache, MaxMind reader path."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from iptocc import country_code

from monitor.enrich import MAX_NAMES, Enricher, jurisdictions, org_of
from monitor.errors import ConfigError
from monitor.homeset import is_country, resolve_home

FR = frozenset({"FR"})

# A block iptocc (the RIR data) places in France: Orange's 90.0.0.0/9.
FRENCH_IP = "90.0.0.1"


# -- country, local, foreign -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "country"),
    [("8.8.8.8", "US"), ("60.29.153.35", "CN"), ("110.43.68.240", "CN"), (FRENCH_IP, "FR")],
)
def test_known_countries(ip: str, country: str) -> None:
    dest = Enricher(FR).destination(ip)
    assert dest.country == country
    assert not dest.local


def test_the_french_address_is_french_per_iptocc_itself() -> None:
    assert country_code(FRENCH_IP) == "FR"


def test_foreign_is_outside_the_home_set() -> None:
    enricher = Enricher(FR)
    assert enricher.destination("60.29.153.35").foreign
    assert enricher.destination("8.8.8.8").foreign
    assert not enricher.destination(FRENCH_IP).foreign
    eu = Enricher(resolve_home(["EU"]))
    assert not eu.destination(FRENCH_IP).foreign
    assert eu.destination("110.43.68.240").foreign


def test_lan_address_is_local_and_never_foreign() -> None:
    dest = Enricher(FR).destination("192.168.1.165")
    assert dest.local
    assert not dest.foreign
    assert dest.country is None


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",
        "172.16.0.1",
        "127.0.0.1",
        "169.254.10.1",
        "224.0.0.251",
        "239.255.255.250",
        "255.255.255.255",
        "0.0.0.0",
        "::",
        "::1",
        "fe80::1",
        "fd12:3456::1",
        "ff02::fb",
    ],
)
def test_local_ranges(ip: str) -> None:
    dest = Enricher(FR).destination(ip)
    assert dest.local
    assert not dest.foreign
    assert dest.country is None


def test_shared_address_space_is_not_local_and_not_foreign() -> None:
    dest = Enricher(FR).destination("100.64.12.34")
    assert not dest.local
    assert dest.country is None
    assert not dest.foreign


def test_configured_lan_networks_are_local() -> None:
    ip = "2a01:e0a:1:2::10"  # a French public IPv6 address, a home's global prefix
    assert not Enricher(frozenset({"US"})).destination(ip).local
    enricher = Enricher(frozenset({"US"}), lan_networks=["2a01:e0a:1:2::/64"])
    dest = enricher.destination(ip)
    assert dest.local
    assert not dest.foreign
    as_network = Enricher(FR, lan_networks=[ipaddress.ip_network("8.8.8.0/24")])
    assert as_network.destination("8.8.8.8").local


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4() -> None:
    dest = Enricher(FR).destination("::ffff:60.29.153.35")
    assert dest.country == "CN"
    assert dest.foreign
    assert Enricher(FR).destination("::ffff:192.168.1.1").local


def test_registry_region_eu_is_foreign_only_to_a_home_outside_europe() -> None:
    ip = "139.191.0.1"  # the European Commission's block, registered as "EU"
    assert country_code(ip) == "EU"
    assert Enricher(frozenset({"US"})).destination(ip).foreign
    in_europe = Enricher(FR).destination(ip)
    assert in_europe.country == "EU"
    assert not in_europe.foreign


def test_not_an_address_raises_value_error() -> None:
    with pytest.raises(ValueError):
        Enricher(FR).destination("not-an-ip")


# -- org, names, jurisdiction ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "org"),
    [
        ("avs-alexa-4-na.amazon.com", "amazon.com"),
        ("business.smartcamera.api.io.mi.com", "mi.com"),
        ("foo.bar.co.uk", "bar.co.uk"),
        ("Device-Metrics-US.Amazon.COM.", "amazon.com"),
        ("mybucket.s3.amazonaws.com", "amazonaws.com"),  # ICANN suffixes only, not private
        ("ec2-1-2-3-4.compute-1.amazonaws.com", "amazonaws.com"),
        ("dueros.baidu.com", "baidu.com"),
        ("amazon.com", "amazon.com"),
        ("printer.local", None),
        ("nas.lan", None),
        ("co.uk", None),
        ("8.8.8.8", None),
        ("2001:db8::1", None),
        ("", None),
    ],
)
def test_org_of(name: str, org: str | None) -> None:
    assert org_of(name) == org


def test_ip_only_destination_has_no_org_without_maxmind() -> None:
    dest = Enricher(FR).destination("60.29.153.35")
    assert dest.org is None
    assert dest.jurisdiction is None
    assert dest.names == set()


def test_names_set_org_and_jurisdiction_best_first() -> None:
    enricher = Enricher(FR)
    dest = enricher.destination("52.94.233.1")
    assert dest.org is None
    again = enricher.destination("52.94.233.1", ["AVS-Alexa-4-NA.amazon.com.", "x.cloudfront.net"])
    assert again is dest  # one object per address, updated in place
    assert dest.names == {"avs-alexa-4-na.amazon.com", "x.cloudfront.net"}
    assert dest.org == "amazon.com"
    assert dest.jurisdiction == "US"
    enricher.destination("52.94.233.1", ["business.smartcamera.api.io.mi.com"])
    assert dest.org == "mi.com"
    assert dest.jurisdiction == "CN"


def test_names_without_a_registrable_domain_keep_the_org() -> None:
    enricher = Enricher(FR)
    dest = enricher.destination("52.94.233.1", ["a.amazon.com"])
    enricher.destination("52.94.233.1", ["10.0.0.1", "router.local", ""])
    assert dest.org == "amazon.com"
    assert dest.names == {"a.amazon.com", "router.local"}


def test_names_per_destination_are_bounded() -> None:
    enricher = Enricher(FR)
    dest = enricher.destination("104.16.0.1", [f"site{i}.example.com" for i in range(200)])
    assert len(dest.names) == MAX_NAMES
    assert dest.org == "example.com"


def test_cache_is_a_bounded_lru() -> None:
    enricher = Enricher(FR, cache_size=2)
    first = enricher.destination("8.8.8.8")
    second = enricher.destination("1.1.1.1")
    assert enricher.destination("8.8.8.8") is first  # refreshes 8.8.8.8
    enricher.destination("9.9.9.9")  # evicts the least recently used: 1.1.1.1
    assert enricher.destination("8.8.8.8") is first
    assert enricher.destination("1.1.1.1") is not second


def test_jurisdiction_table_is_well_formed() -> None:
    """Keys are what org_of yields (a registrable domain) or AS<number>; values ISO codes."""
    table = jurisdictions()
    assert len(table) > 40
    for key, country in table.items():
        assert is_country(country), key
        if key.startswith("AS"):
            assert key[2:].isdigit(), key
        else:
            assert org_of(key) == key, key
    assert table["meethue.com"] == "NL"
    assert table["tuyaeu.com"] == "CN"


def test_suffix_list_stays_offline_and_writes_nothing(tmp_path: Path) -> None:
    """In a fresh interpreter with sockets disabled and HOME in a scratch folder, org_of works
    from the bundled suffix list and leaves the folder empty."""
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network use')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from monitor.enrich import org_of\n"
        "print(org_of('a.b.example.co.uk'), org_of('x.s3.amazonaws.com'))\n"
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["example.co.uk", "amazonaws.com"]
    assert list(home.iterdir()) == []


# -- MaxMind-format database -------------------------------------------------------------------


UINT16, UINT32, UINT64 = 5, 6, 9


def _mmdb_value(value: Any) -> bytes:
    """One value in the MaxMind DB data-section encoding: maps, arrays, strings, unsigned ints
    (uint32 unless given as ``(type, int)``, as metadata needs uint16 and uint64)."""

    def control(type_number: int, size: int) -> bytes:
        if size < 29:
            head, extra = size, b""
        elif size < 285:
            head, extra = 29, bytes([size - 29])
        else:
            head, extra = 30, (size - 285).to_bytes(2, "big")
        if type_number <= 7:
            return bytes([type_number << 5 | head]) + extra
        return bytes([head, type_number - 7]) + extra

    if isinstance(value, dict):
        body = b"".join(_mmdb_value(k) + _mmdb_value(v) for k, v in value.items())
        return control(7, len(value)) + body
    if isinstance(value, list):
        return control(11, len(value)) + b"".join(_mmdb_value(v) for v in value)
    if isinstance(value, str):
        raw = value.encode()
        return control(2, len(raw)) + raw
    if isinstance(value, tuple):
        type_number, number = value
        raw = number.to_bytes(8, "big").lstrip(b"\0")
        return control(type_number, len(raw)) + raw
    if isinstance(value, int):
        return _mmdb_value((UINT32, value))
    raise TypeError(value)


def write_mmdb(path: Path, records: dict[str, dict[str, Any]], database_type: str) -> None:
    """A minimal IPv4 MaxMind DB (record size 24) mapping networks to records."""
    data = b""
    offsets = []
    for record in records.values():
        offsets.append(len(data))
        data += _mmdb_value(record)
    nodes: list[list[Any]] = [[None, None]]
    for network, offset in zip(records, offsets, strict=True):
        net = ipaddress.ip_network(network)
        bits = int(net.network_address)
        node = 0
        for depth in range(net.prefixlen):
            bit = bits >> (31 - depth) & 1
            if depth == net.prefixlen - 1:
                nodes[node][bit] = ("data", offset)
            else:
                if nodes[node][bit] is None:
                    nodes.append([None, None])
                    nodes[node][bit] = ("node", len(nodes) - 1)
                node = nodes[node][bit][1]
    count = len(nodes)

    def record_value(entry: Any) -> int:
        if entry is None:
            return count
        kind, number = entry
        return number if kind == "node" else count + 16 + number

    tree = b"".join(
        record_value(left).to_bytes(3, "big") + record_value(right).to_bytes(3, "big")
        for left, right in nodes
    )
    metadata = {
        "binary_format_major_version": (UINT16, 2),
        "binary_format_minor_version": (UINT16, 0),
        "build_epoch": (UINT64, 1_700_000_000),
        "database_type": database_type,
        "description": {"en": "micwatch test database"},
        "ip_version": (UINT16, 4),
        "languages": ["en"],
        "node_count": (UINT32, count),
        "record_size": (UINT16, 24),
    }
    path.write_bytes(tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + _mmdb_value(metadata))


def test_handcrafted_mmdb_is_readable_by_maxminddb(tmp_path: Path) -> None:
    import maxminddb

    path = tmp_path / "asn.mmdb"
    write_mmdb(path, {"8.8.8.0/24": {"autonomous_system_number": 15169}}, "GeoLite2-ASN")
    with maxminddb.open_database(str(path)) as reader:
        assert reader.get("8.8.8.8") == {"autonomous_system_number": 15169}
        assert reader.get("8.8.9.8") is None


def test_asn_database_gives_org_and_jurisdiction_to_ip_only_destinations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "asn.mmdb"
    write_mmdb(
        path,
        {
            "8.8.8.0/24": {
                "autonomous_system_number": 15169,
                "autonomous_system_organization": "GOOGLE",
            },
            "60.29.0.0/16": {
                "autonomous_system_number": 4837,
                "autonomous_system_organization": "CHINA UNICOM China169 Backbone",
            },
        },
        "GeoLite2-ASN",
    )
    enricher = Enricher(FR, maxmind_db=str(path))
    google = enricher.destination("8.8.8.8")
    assert (google.asn, google.asn_org, google.org) == (15169, "GOOGLE", "GOOGLE")
    assert google.jurisdiction == "US"
    assert google.country == "US"  # an ASN database has no country: iptocc's stays
    unicom = enricher.destination("60.29.153.35")
    assert unicom.jurisdiction == "CN"
    enricher.destination("8.8.8.8", ["dns.google.com"])
    assert google.org == "google.com"  # a name beats the ASN organisation
    unknown = enricher.destination("1.1.1.1")
    assert unknown.asn is None and unknown.org is None
    assert enricher.destination("2001:4860:4860::8888").country == "US"  # v6 in a v4-only DB


def test_city_database_country_takes_precedence_over_iptocc(tmp_path: Path) -> None:
    path = tmp_path / "city.mmdb"
    # Fictitious: pretend the database locates this Chinese-registered block in Japan.
    write_mmdb(
        path,
        {"60.29.0.0/16": {"country": {"iso_code": "JP", "names": {"en": "Japan"}}}},
        "GeoLite2-City",
    )
    enricher = Enricher(frozenset({"JP"}), maxmind_db=str(path))
    dest = enricher.destination("60.29.153.35")
    assert dest.country == "JP"
    assert not dest.foreign
    assert enricher.destination("110.43.68.240").country == "CN"  # not in the DB: iptocc


def test_missing_or_bad_database_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"enrich\.maxmind_db") as caught:
        Enricher(FR, maxmind_db=str(tmp_path / "absent.mmdb"))
    assert "absent.mmdb" in str(caught.value)
    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a database" * 10)
    with pytest.raises(ConfigError, match=r"enrich\.maxmind_db"):
        Enricher(FR, maxmind_db=str(garbage))
