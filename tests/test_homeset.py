"""The home set: presets, codes, aliases, ``auto`` from the time zone, and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.homeset import (
    EEA,
    EU,
    GDPR_ADEQUATE,
    country_name,
    is_country,
    resolve_home,
    system_time_zone,
    zone_countries,
    zone_from_path,
)


def test_eu_preset_is_the_27_member_states_and_their_separately_coded_parts() -> None:
    eu = resolve_home(["EU"])
    assert {"FR", "DE", "IE", "GR", "HR", "CY", "MT"} <= eu
    assert not {"GB", "US", "CH", "NO", "IS"} & eu
    member_states = eu - {"AX", "GF", "GP", "MF", "MQ", "RE", "YT"}
    assert len(member_states) == 27


def test_eea_adds_iceland_liechtenstein_norway() -> None:
    assert resolve_home(["eea"]) == EU | {"IS", "LI", "NO"}


def test_gdpr_adequate_contains_adequate_countries_but_not_others() -> None:
    adequate = resolve_home(["GDPR-adequate"])
    assert {"CH", "GB", "JP", "KR", "NZ", "US", "CA", "IL", "UY", "AR", "FO", "JE"} <= adequate
    assert adequate >= EEA
    assert not {"CN", "RU", "IN", "BR"} & adequate


def test_codes_and_presets_are_case_insensitive_and_united() -> None:
    assert resolve_home([" fr ", "De"]) == {"FR", "DE"}
    assert resolve_home(["gdpr-ADEQUATE", "cn"]) == GDPR_ADEQUATE | {"CN"}


def test_eu_codes_for_united_kingdom_and_greece_are_accepted() -> None:
    assert resolve_home(["UK", "el"]) == {"GB", "GR"}


@pytest.mark.parametrize(
    ("zone", "country"),
    [
        ("Europe/Paris", "FR"),
        ("America/New_York", "US"),
        ("US/Eastern", "US"),  # backward link name
        ("Europe/Kiev", "UA"),  # renamed zone
        ("Asia/Calcutta", "IN"),
        ("Iceland", "IS"),  # link to Africa/Abidjan since 2022: corrected to its own country
        ("Europe/Busingen", "DE"),  # same clocks as Zurich, but in Germany
        ("/usr/share/zoneinfo/Europe/Madrid", "ES"),  # TZ given as a path
    ],
)
def test_auto_maps_the_time_zone_to_its_country(zone: str, country: str) -> None:
    assert resolve_home(["auto"], tz_name=zone) == {country}


def test_auto_combines_with_other_values() -> None:
    assert resolve_home(["auto", "EU"], tz_name="America/Toronto") == EU | {"CA"}


@pytest.mark.parametrize("zone", ["Etc/UTC", "UTC", "CET", "Mars/Olympus_Mons", ""])
def test_auto_without_a_country_says_to_set_enrich_home(zone: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_home(["auto"], tz_name=zone)
    message = str(caught.value)
    assert "enrich.home" in message
    assert "set enrich.home" in message


@pytest.mark.parametrize("value", ["XX", "France", "EU27", "", "F"])
def test_bad_values_name_the_option_the_value_and_what_it_accepts(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_home(["FR", value])
    message = str(caught.value)
    assert "enrich.home" in message
    assert repr(value) in message
    assert "GDPR-adequate" in message and "auto" in message


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"enrich\.home"):
        resolve_home([])


def test_system_time_zone_prefers_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":Asia/Tokyo")
    assert system_time_zone() == "Asia/Tokyo"
    assert resolve_home(["auto"]) == {"JP"}


def test_system_time_zone_reads_etc_timezone_then_the_localtime_link(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TZ", raising=False)
    timezone_file = tmp_path / "timezone"
    localtime = tmp_path / "localtime"
    localtime.symlink_to("../usr/share/zoneinfo/Europe/Rome")
    assert system_time_zone(str(timezone_file), str(localtime)) == "Europe/Rome"
    timezone_file.write_text("Europe/Vienna\n")
    assert system_time_zone(str(timezone_file), str(localtime)) == "Europe/Vienna"
    assert system_time_zone(str(tmp_path / "none"), str(tmp_path / "none")) is None
    plain_file = tmp_path / "copy"
    plain_file.write_bytes(b"TZif")
    assert system_time_zone(str(tmp_path / "none"), str(plain_file)) is None


@pytest.mark.parametrize(
    ("path", "zone"),
    [
        ("/usr/share/zoneinfo/Europe/Paris", "Europe/Paris"),
        ("../usr/share/zoneinfo/posix/Europe/Paris", "Europe/Paris"),
        ("/usr/share/zoneinfo/right/America/Argentina/Salta", "America/Argentina/Salta"),
        ("/etc/localtime-copy", None),
    ],
)
def test_zone_from_path(path: str, zone: str | None) -> None:
    assert zone_from_path(path) == zone


def test_shipped_zone_map_is_sound() -> None:
    zones = zone_countries()
    assert len(zones) > 500
    assert all(is_country(cc) for cc in zones.values())
    assert not {"UTC", "Etc/UTC", "CET", "EST", "GMT"} & zones.keys()


def test_shipped_zone_map_agrees_with_the_system_zone_tab() -> None:
    """Every zone of the system's zone.tab (when there is one) maps to the same country."""
    zone_tab = Path("/usr/share/zoneinfo/zone.tab")
    if not zone_tab.is_file():
        pytest.skip("no system zone.tab to compare with (the shipped map is used alone)")
    zones = zone_countries()
    rows = [
        line.split("\t") for line in zone_tab.read_text().splitlines() if not line.startswith("#")
    ]
    assert rows
    mismatched = {cols[2]: cols[0] for cols in rows if zones.get(cols[2]) != cols[0]}
    assert mismatched == {}


def test_country_names() -> None:
    assert country_name("fr") == "France"
    assert country_name("GB") == "Britain (UK)"
    assert country_name("XX") is None
