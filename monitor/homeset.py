"""The home set: the countries a destination must lie in not to count as *foreign*.

``enrich.home`` lists ISO 3166-1 alpha-2 codes and presets, case-insensitive, united:

``EU``
    The 27 member states, plus the parts of the Union that ISO codes separately: Åland (AX) and
    the French outermost regions French Guiana (GF), Guadeloupe (GP), Martinique (MQ), Réunion
    (RE), Mayotte (YT) and Saint-Martin (MF). The GDPR applies there as in the rest of the EU.
``EEA``
    EU plus Iceland, Liechtenstein and Norway.
``GDPR-adequate``
    EEA plus every country or territory with an EU adequacy decision (GDPR art. 45), see
    :data:`ADEQUATE`.
``auto``
    The country of the system time zone (``TZ``, ``/etc/timezone``, then the ``/etc/localtime``
    link), mapped with the tz database's zone.tab shipped in ``monitor/data/tz_country.tab``, so
    it works where ``/usr/share/zoneinfo`` is missing.

``UK`` and ``EL`` (the EU's own codes for the United Kingdom and Greece) are accepted for GB and
GR. Guarantee: :func:`resolve_home` returns a non-empty set of valid ISO codes or raises
:class:`~monitor.errors.ConfigError` naming ``enrich.home``, the bad value and what it accepts.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

from monitor.errors import ConfigError

OPTION = "enrich.home"

# fmt: off
EU: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
        # Parts of the Union with their own ISO code: Åland and the French outermost regions.
        "AX", "GF", "GP", "MF", "MQ", "RE", "YT",
    }
)
# fmt: on

EEA: frozenset[str] = EU | {"IS", "LI", "NO"}

#: Countries and territories with an EU adequacy decision, as of early 2026. Notes:
#: - US: the EU-US Data Privacy Framework (decision of 10 July 2023) covers only organisations
#:   certified under it, not every US recipient; micwatch cannot tell them apart by address.
#: - CA: covers commercial organisations subject to PIPEDA. JP: the private sector (APPI).
#: - GB: the 2021 decisions were extended to 27 December 2025 and a renewal to 2031 was
#:   proposed in July 2025; assumed renewed.
#: - BR: the Commission published a draft adequacy decision for Brazil in September 2025; it was
#:   not known to be adopted when this list was written, so BR is NOT included. Add it here once
#:   adopted, or list BR in enrich.home.
ADEQUATE: frozenset[str] = frozenset(
    {
        "AD",  # Andorra
        "AR",  # Argentina
        "CA",  # Canada (PIPEDA)
        "CH",  # Switzerland
        "FO",  # Faroe Islands
        "GB",  # United Kingdom
        "GG",  # Guernsey
        "IL",  # Israel
        "IM",  # Isle of Man
        "JE",  # Jersey
        "JP",  # Japan
        "KR",  # Republic of Korea
        "NZ",  # New Zealand
        "US",  # United States: DPF-certified organisations only
        "UY",  # Uruguay
    }
)

GDPR_ADEQUATE: frozenset[str] = EEA | ADEQUATE

PRESETS: dict[str, frozenset[str]] = {"EU": EU, "EEA": EEA, "GDPR-ADEQUATE": GDPR_ADEQUATE}

_ALIASES = {"UK": "GB", "EL": "GR"}


def _data_lines(name: str) -> list[list[str]]:
    text = resources.files("monitor").joinpath("data", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@cache
def country_names() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> usual English name (from the tz database's iso3166.tab)."""
    return {cols[0]: cols[1] for cols in _data_lines("iso3166.tab")}


@cache
def zone_countries() -> dict[str, str]:
    """IANA time zone name (including backward links such as US/Eastern) -> country code."""
    return {cols[0]: cols[1] for cols in _data_lines("tz_country.tab")}


def country_name(code: str) -> str | None:
    """The English name of an ISO 3166-1 alpha-2 code (any case), or None if it is not one."""
    return country_names().get(code.upper())


def is_country(code: str) -> bool:
    """True for an assigned ISO 3166-1 alpha-2 code (upper case)."""
    return code in country_names()


def resolve_home(values: list[str], tz_name: str | None = None) -> frozenset[str]:
    """The union of the countries named by ``values`` (codes, presets, ``auto``).

    ``tz_name`` is the time zone ``auto`` uses; None reads the system's (see the module doc).
    Raises ConfigError for an unknown value, an empty list or an ``auto`` that cannot be
    resolved.
    """
    accepts = (
        "it accepts ISO 3166-1 alpha-2 country codes (FR, DE, US...), the presets "
        + ", ".join(("EU", "EEA", "GDPR-adequate"))
        + " and auto"
    )
    home: set[str] = set()
    for raw in values:
        value = str(raw).strip().upper()
        value = _ALIASES.get(value, value)
        if value in PRESETS:
            home |= PRESETS[value]
        elif value == "AUTO":
            home.add(_auto_country(tz_name))
        elif len(value) == 2 and is_country(value):
            home.add(value)
        else:
            raise ConfigError(f"option {OPTION}: {raw!r} is not valid; {accepts}")
    if not home:
        raise ConfigError(f"option {OPTION} is empty; {accepts}")
    return frozenset(home)


def system_time_zone(
    timezone_file: str = "/etc/timezone", localtime: str = "/etc/localtime"
) -> str | None:
    """The system's IANA zone name: ``TZ``, else the ``timezone_file`` text, else the zone the
    ``localtime`` symlink points to; None when none of them names one."""
    tz = os.environ.get("TZ", "").strip().lstrip(":")
    if tz:
        return tz
    try:
        text = Path(timezone_file).read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    if text:
        return text
    try:
        return zone_from_path(os.readlink(localtime))
    except OSError:
        return None


def zone_from_path(path: str) -> str | None:
    """The zone name in a zoneinfo path (``../usr/share/zoneinfo/[posix/]Europe/Paris``), or
    None when the path is not inside a ``zoneinfo`` folder."""
    _, marker, zone = path.partition("zoneinfo/")
    if not marker:
        return None
    for variant in ("posix/", "right/"):
        zone = zone.removeprefix(variant)
    return zone or None


def _auto_country(tz_name: str | None) -> str:
    zone = tz_name if tz_name is not None else system_time_zone()
    if zone and zone.startswith("/"):
        zone = zone_from_path(zone)
    country = zone_countries().get(zone or "")
    if country is None:
        found = f"the time zone {zone!r} names no country" if zone else "no time zone is set"
        raise ConfigError(
            f"option {OPTION} = auto cannot be resolved: {found}; set {OPTION} to your "
            "country code (e.g. FR) or a preset (EU, EEA, GDPR-adequate)"
        )
    return country
