"""The OUI vendor table: base sources, MA-L/MA-M/MA-S, the file formats a user may give."""

from __future__ import annotations

import csv
import importlib.util
import logging
from pathlib import Path

import pytest

from monitor import vendors
from monitor.errors import ConfigError
from monitor.vendors import (
    VendorTable,
    is_multicast,
    is_randomized,
    mac_value,
    parse_lines,
    short_name,
)
from tests.conftest import require

# Device folder prefix in the IoT Sentinel captures -> a word of its maker's registered name.
MAKERS = {
    "Aria": "Delta Electronics",  # the Fitbit Aria's Wi-Fi module
    "D-Link": "D-Link",
    "Edimax": "Edimax",
    "EdnetCam": "ASSMANN",  # Ednet is an ASSMANN Electronic brand
    "EdnetGateway": "Hi-flying",
    "HomeMatic": "eQ-3",
    "MAXGateway": "eQ-3",
    "HueBridge": "Philips",
    "SmarterCoffee": "Espressif",
    "TP-Link": "TP-Link",
    "WeMo": "Belkin",
}


@pytest.fixture(params=["system manuf", "scapy bundled"])
def base(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Each base source in turn: the system's Wireshark manuf, then scapy's bundled copy."""
    if request.param == "system manuf":
        require(vendors.SYSTEM_MANUF.is_file(), f"{vendors.SYSTEM_MANUF} (wireshark-common)")
    else:
        require(importlib.util.find_spec("scapy") is not None, "scapy is not installed")
        monkeypatch.setattr(vendors, "SYSTEM_MANUF", tmp_path / "absent-manuf")
    return request.param


def iotsentinel_macs(data_dir: Path) -> list[tuple[str, str]]:
    path = data_dir / "labels" / "iotsentinel_device_macs.tsv"
    with path.open() as handle:
        return [(row["device_dir"], row["mac"]) for row in csv.DictReader(handle, delimiter="\t")]


def test_iotsentinel_macs_resolve_to_their_makers(base: str, data_dir: Path) -> None:
    table = VendorTable()
    rows = iotsentinel_macs(data_dir)
    assert len(rows) == 21
    for device, mac in rows:
        maker = next(word for prefix, word in MAKERS.items() if device.startswith(prefix))
        vendor = table.lookup(mac)
        assert vendor is not None, (device, mac)
        assert maker.lower() in vendor.lower(), (device, mac, vendor)
    assert table.lookup("00:17:88:24:76:ff") == "Philips Lighting BV"
    assert table.short("94:10:3e:42:80:69") == "Belkin"


def test_base_table_knows_ma_m_and_ma_s_blocks(base: str) -> None:
    table = VendorTable()
    assert len(table) > 50000
    # 00:1B:C5 is an IEEE Registration Authority MA-L split into 36-bit blocks (MA-S/IAB).
    assert table.lookup("00:1b:c5:00:00:01") == "Converging Systems Inc."
    # 00:55:DA is split into 28-bit MA-M blocks.
    assert table.lookup("00:55:da:00:00:01") == "Shinko Technos co.,ltd."
    # The parent registration itself is no maker.
    for mac in ("00:1b:c5:ff:ff:f1", "70:b3:d5:ff:ff:f1", "00:55:da:ff:ff:f1"):
        assert table.lookup(mac) != "IEEE Registration Authority"


def test_table_loads_lazily_once(base: str) -> None:
    table = VendorTable()
    assert table.source == ""
    table.lookup("00:17:88:24:76:ff")
    source = table.source
    assert source
    table.lookup("5c:cf:7f:07:ae:fb")
    assert table.source is source


def test_scapy_copy_decodes_without_importing_scapy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    require(importlib.util.find_spec("scapy") is not None, "scapy is not installed")
    monkeypatch.setattr(vendors, "SYSTEM_MANUF", tmp_path / "absent-manuf")
    monkeypatch.delitem(sys.modules, "scapy.libs.manuf", raising=False)
    table = VendorTable()
    assert table.lookup("5c:cf:7f:07:ae:fb") == "Espressif Inc."
    assert table.source == "scapy's bundled manuf"
    assert "scapy.libs.manuf" not in sys.modules


@pytest.mark.parametrize(
    "mac", ["00:17:88:24:76:ff", "00-17-88-24-76-FF", "0017.8824.76ff", "0017882476FF"]
)
def test_mac_notations(mac: str) -> None:
    assert mac_value(mac) == 0x0017882476FF


@pytest.mark.parametrize("mac", ["", "nonsense", "00:17:88", "00:17:88:24:76:ff:01", "zz" * 6])
def test_not_a_mac(mac: str) -> None:
    assert mac_value(mac) is None
    assert not is_randomized(mac)
    assert not is_multicast(mac)
    assert VendorTable(extra_file="").lookup(mac) is None


@pytest.mark.parametrize(
    ("mac", "randomized"),
    [
        ("02:00:00:00:00:01", True),
        ("da:a1:19:12:34:56", True),  # second hex digit A
        ("a6:b1:19:12:34:56", True),
        ("fe:ed:fa:ce:00:01", True),
        ("00:17:88:24:76:ff", False),
        ("5c:cf:7f:07:ae:fb", False),
        ("01:00:5e:00:00:fb", False),
    ],
)
def test_is_randomized(mac: str, randomized: bool) -> None:
    assert is_randomized(mac) is randomized


@pytest.mark.parametrize(
    ("mac", "multicast"),
    [
        ("01:00:5e:00:00:fb", True),
        ("33:33:00:00:00:01", True),
        ("ff:ff:ff:ff:ff:ff", True),
        ("00:17:88:24:76:ff", False),
        ("02:00:00:00:00:01", False),
    ],
)
def test_is_multicast(mac: str, multicast: bool) -> None:
    assert is_multicast(mac) is multicast


def test_randomized_and_multicast_macs_have_no_vendor() -> None:
    table = VendorTable()
    assert table.lookup("00:17:88:24:76:ff") is not None
    assert table.lookup("02:17:88:24:76:ff") is None  # same block, locally administered
    assert table.lookup("01:17:88:24:76:ff") is None  # same block, group address


# -- files a user may give in enrich.oui_file --------------------------------------------------

OUI_CSV = """Registry,Assignment,Organization Name,Organization Address
MA-L,001788,Signify Netherlands B.V.,"High Tech Campus 48 Eindhoven  NL 5656 AE "
MA-L,5CCF7F,"Espressif, Test Name Inc.",Shanghai CN
CID,0A1B2C,A Company ID Owner,Nowhere
"""
MAM_CSV = """Registry,Assignment,Organization Name,Organization Address
MA-M,0055DA1,Test MA-M Maker,Somewhere
"""
OAS_CSV = """\ufeffRegistry,Assignment,Organization Name,Organization Address
MA-S,70B3D5FFF,Test MA-S Maker,Somewhere
IAB,0050C2FFE,Test IAB Maker,Somewhere
"""
OUI_TXT = """OUI/MA-L                                                    Organization
company_id                                                  Organization
                                                            Address

00-17-88   (hex)\t\tSignify Netherlands B.V.
001788     (base 16)\t\tSignify Netherlands B.V.
\t\t\t\tHigh Tech Campus 48
\t\t\t\tEindhoven    5656 AE
\t\t\t\tNL

00-55-DA   (hex)\t\tTest MA-M Maker (text)
200000-2FFFFF     (base 16)\t\tTest MA-M Maker (text)
\t\t\t\tSomewhere

70-B3-D5   (hex)\t\tTest MA-S Maker (text)
FFE000-FFEFFF     (base 16)\t\tTest MA-S Maker (text)
"""
MANUF = """# A Wireshark manuf file
00:17:88\tPhilipsL\tTest Hue Maker
00:55:DA:30:00:00/28\tTestMaM\tTest manuf MA-M
70:B3:D5:FF:D0:00/36\tTestMaS\tTest manuf MA-S
00:00:01\tXerox\t# XEROX CORPORATION
08:00:2B\tDEC
01:00:0C:CC:CC:CC\tCDP/VTP
00:00:0C:07:AC/40\tHSRP
FC:FF:AA\tIEEERegi\tIEEE Registration Authority
garbage line
"""


def _table(tmp_path: Path, name: str, text: str) -> VendorTable:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return VendorTable(extra_file=str(path))


def test_ieee_oui_csv_overrides_the_base(tmp_path: Path) -> None:
    table = _table(tmp_path, "oui.csv", OUI_CSV)
    assert table.lookup("00:17:88:24:76:ff") == "Signify Netherlands B.V."
    assert table.lookup("5c:cf:7f:07:ae:fb") == "Espressif, Test Name Inc."
    assert table.lookup("0a:1b:2c:00:00:01") is None  # CID rows are no MAC vendors
    # The base's MA-M/MA-S blocks remain.
    assert table.lookup("00:1b:c5:00:00:01") == "Converging Systems Inc."


def test_ieee_mam_and_oas_csv(tmp_path: Path) -> None:
    mam = _table(tmp_path, "mam.csv", MAM_CSV)
    assert mam.lookup("00:55:da:1a:bc:de") == "Test MA-M Maker"
    assert mam.lookup("00:55:da:00:00:01") == "Shinko Technos co.,ltd."  # base MA-M
    oas = _table(tmp_path, "oas.csv", OAS_CSV)
    assert oas.lookup("70:b3:d5:ff:f1:23") == "Test MA-S Maker"
    assert oas.lookup("00:50:c2:ff:e1:23") == "Test IAB Maker"


def test_ieee_text_format(tmp_path: Path) -> None:
    table = _table(tmp_path, "oui.txt", OUI_TXT)
    assert table.lookup("00:17:88:24:76:ff") == "Signify Netherlands B.V."
    assert table.lookup("00:55:da:2f:ff:ff") == "Test MA-M Maker (text)"
    assert table.lookup("70:b3:d5:ff:e0:01") == "Test MA-S Maker (text)"


def test_wireshark_manuf_format(tmp_path: Path) -> None:
    table = _table(tmp_path, "manuf", MANUF)
    assert table.lookup("00:17:88:24:76:ff") == "Test Hue Maker"
    assert table.lookup("00:55:da:3f:00:01") == "Test manuf MA-M"
    assert table.lookup("70:b3:d5:ff:d1:23") == "Test manuf MA-S"
    assert table.lookup("00:00:01:00:00:01") == "XEROX CORPORATION"  # old "# long name" form
    assert table.lookup("08:00:2b:00:00:01") == "DEC"  # short name only


def test_parse_lines_skips_well_known_addresses_and_other_masks() -> None:
    entries = list(parse_lines(MANUF.splitlines(keepends=True)))
    assert (24, 0x01000C, "CDP/VTP") not in entries
    assert all(bits in (24, 28, 36) for bits, _, _ in entries)
    assert not any(org == "HSRP" for _, _, org in entries)
    assert len(entries) == 6  # 5 blocks plus the IEEE Registration Authority line


def test_registration_authority_entries_count_as_unknown(tmp_path: Path) -> None:
    table = _table(tmp_path, "manuf", MANUF)
    assert table.lookup("fc:ff:aa:00:00:01") != "IEEE Registration Authority"


def test_missing_extra_file_is_a_config_error(tmp_path: Path) -> None:
    table = VendorTable(extra_file=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match=r"enrich\.oui_file") as caught:
        table.lookup("00:17:88:24:76:ff")
    assert "nope.csv" in str(caught.value)


def test_binary_garbage_in_extra_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(bytes(range(256)) * 40)
    table = VendorTable(extra_file=str(path))
    assert table.lookup("5c:cf:7f:07:ae:fb") == "Espressif Inc."


def test_without_a_base_table_the_extra_file_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def no_base() -> tuple[str, str]:
        raise LookupError("scapy is not installed")

    monkeypatch.setattr(vendors, "_base_text", no_base)
    caplog.set_level(logging.WARNING, logger="monitor.vendors")
    table = _table(tmp_path, "oui.csv", OUI_CSV)
    assert table.lookup("00:17:88:24:76:ff") == "Signify Netherlands B.V."
    assert table.lookup("94:10:3e:42:80:69") is None
    assert len(table) == 2
    assert "enrich.oui_file" in caplog.text


@pytest.mark.parametrize(
    ("org", "short"),
    [
        ("Amazon Technologies Inc.", "Amazon"),
        ("Tp-Link Technologies Co.,Ltd.", "Tp-Link"),
        ("TP-LINK TECHNOLOGIES CO.,LTD.", "TP-LINK"),
        ("Apple, Inc.", "Apple"),
        ("Philips Lighting BV", "Philips Lighting"),
        ("eQ-3 Entwicklung GmbH", "eQ-3 Entwicklung"),
        ("Cyklop Fastjet Technologies (Shanghai) Inc.", "Cyklop Fastjet"),
        ("Texas Instruments", "Texas Instruments"),
        ("Technologies Inc.", "Technologies"),
        ("Sonos, Inc.", "Sonos"),
    ],
)
def test_short_name(org: str, short: str) -> None:
    assert short_name(org) == short
