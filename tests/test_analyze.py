"""``micwatch analyze`` end to end on the real captures, checked against tshark.

Every packet is read (``summary.packets`` equals tshark's count), and the names micwatch reports
per device (TLS/QUIC SNI, DNS query names, DHCP hostnames) agree with what tshark decodes.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from monitor.analyze import analyze_files
from monitor.cli import main
from monitor.config import load
from monitor.flows import HomeNetworks
from tests.conftest import DATA, require_tool

IOT_AND_PROTOCOLS = sorted((DATA / "iot").iterdir()) + sorted((DATA / "protocols").iterdir())
MALFORMED = sorted((DATA / "malformed").iterdir())


def run_jsonl(path: Path, **overrides: object) -> list[dict]:
    out = io.StringIO()
    config = load(env={}, cli={"enrich.home": ["FR"], **overrides})
    analyze_files(config, [str(path)], fmt="jsonl", out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def tshark_fields(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    tshark = require_tool("tshark")
    args = [
        tshark,
        "-r",
        str(path),
        "-n",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=\x1f",
    ]
    if display_filter:
        args += ["-Y", display_filter]
    for field in fields:
        args += ["-e", field]
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    return [line.split("\t") for line in result.stdout.splitlines()]


HOME = HomeNetworks()  # a capture file's home: the private, link-local and "this network" ranges


def is_home(ip: str) -> bool:
    return HOME.is_home_text(ip)


def device_key(mac: str, ip: str) -> str:
    """How micwatch keys a device: its MAC, or its address when the MAC is anonymised."""
    return f"ip:{ip}" if mac == "00:00:00:00:00:00" else mac


def server_name(name: str) -> bool:
    """What micwatch lists as a device's domain: a dotted name, not reverse DNS, not mDNS and
    not an address literal (some clients put an IP address in the SNI)."""
    literal = name.replace(".", "").isdigit() or ":" in name
    return (
        "." in name and not name.endswith((".arpa", ".local")) and "<" not in name and not literal
    )


@pytest.mark.parametrize("path", IOT_AND_PROTOCOLS, ids=lambda p: p.name)
def test_reads_every_packet_and_names_agree_with_tshark(path: Path) -> None:
    records = run_jsonl(path)
    summary = records[-1]
    assert summary["kind"] == "summary"
    frames = tshark_fields(path, "", "frame.number")
    assert summary["packets"] == len(frames)
    assert summary["packets"] == summary["decoded"] + summary["malformed"] + summary["skipped"]

    devices = {r["mac"]: r for r in records if r["kind"] == "device"}
    ours: dict[str, set[str]] = {mac: set(d["domains"]) for mac, d in devices.items()}

    expected: dict[str, set[str]] = defaultdict(set)
    # TLS and QUIC ClientHellos: the client is the sender.
    for mac, src4, src6, snis in tshark_fields(
        path,
        "tls.handshake.type == 1",
        "eth.src",
        "ip.src",
        "ipv6.src",
        "tls.handshake.extensions_server_name",
    ):
        client = (src4 or src6).split("\x1f")[0]
        for sni in filter(None, snis.split("\x1f")):
            if mac and is_home(client) and server_name(sni.lower()):
                expected[device_key(mac, client)].add(sni.lower())
    # DNS: the client sends queries and receives responses.
    for src_mac, dst_mac, src4, dst4, src6, dst6, response, names in tshark_fields(
        path,
        "dns && udp.port == 53",
        "eth.src",
        "eth.dst",
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "dns.flags.response",
        "dns.qry.name",
    ):
        is_response = response in ("1", "True")
        mac = dst_mac if is_response else src_mac
        client = (dst4 or dst6) if is_response else (src4 or src6)
        for name in filter(None, names.split("\x1f")):
            if mac and is_home(client) and server_name(name.lower()):
                expected[device_key(mac, client)].add(name.lower())
    for mac, names in expected.items():
        assert names <= ours.get(mac, set()), (
            f"{mac}: missing {sorted(names - ours.get(mac, set()))}"
        )

    hostnames: dict[str, set[str]] = defaultdict(set)
    for macs, names in tshark_fields(
        path, "dhcp.option.hostname", "dhcp.hw.mac_addr", "dhcp.option.hostname"
    ):
        hostnames[macs.split("\x1f")[0]].update(names.split("\x1f"))
    for mac, names in hostnames.items():
        assert devices[mac]["hostname"] in names


def test_all_three_kinds_of_names_are_exercised() -> None:
    """The agreement is not vacuous: SNIs over TCP, QUIC Initials spread over several packets
    (anonymised public addresses: named per flow) and DHCP hostnames are all found."""
    kyber = run_jsonl(DATA / "protocols" / "zeek_tls_chrome_kyber_big_clienthello.pcap")
    assert any(d.get("domains") for d in kyber if d["kind"] == "device")
    quic = DATA / "protocols" / "zeek_quic_chromium_fragmented_initial.pcap"
    out = io.StringIO()
    analyze_files(
        load(env={}, cli={"enrich.home": ["FR"]}), [str(quic)], fmt="jsonl", flows=True, out=out
    )
    named = {
        r["server_name"]
        for r in map(json.loads, out.getvalue().splitlines())
        if r["kind"] == "flow" and r["service"] == "quic"
    }
    snis = {
        row[0]
        for row in tshark_fields(
            quic, "tls.handshake.type == 1", "tls.handshake.extensions_server_name"
        )
    }
    assert named == snis and len(snis) >= 1
    setup = run_jsonl(DATA / "iot" / "lifecycle_xiaobaiY2cam_setup.pcap")
    camera = next(
        d for d in setup if d["kind"] == "device" and d["hostname"] == "chuangmi_camera_060a02"
    )
    assert "business.smartcamera.api.io.mi.com" in camera["domains"]


def test_destinations_carry_country_org_and_foreign() -> None:
    records = run_jsonl(DATA / "iot" / "lifecycle_xiaobaiY2cam_setup.pcap")
    dests = [r for r in records if r["kind"] == "destination"]
    mi = [d for d in dests if d["org"] == "mi.com"]
    assert mi and all(
        d["country"] and d["foreign"] and not d["local"] for d in mi if d["country"] != "FR"
    )
    with_cn = run_jsonl(
        DATA / "iot" / "lifecycle_xiaobaiY2cam_setup.pcap", **{"enrich.home": ["CN"]}
    )
    assert not any(
        d["foreign"] for d in with_cn if d["kind"] == "destination" and d["country"] == "CN"
    )


def test_flows_follow_zeek_conn_field_names() -> None:
    records = run_jsonl(DATA / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap")
    out = io.StringIO()
    config = load(env={}, cli={"enrich.home": ["FR"]})
    analyze_files(
        config,
        [str(DATA / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap")],
        fmt="jsonl",
        flows=True,
        out=out,
    )
    flows = [json.loads(line) for line in out.getvalue().splitlines() if '"kind":"flow"' in line]
    big = max(flows, key=lambda f: f["orig_bytes"] + f["resp_bytes"])
    assert big["resp_ip"] == "110.43.68.240" and big["proto"] == "tcp" and big["resp_port"] == 443
    assert big["orig_bytes"] > 350_000 and big["state"] in ("S1", "SF", "OTH", "RSTO", "RSTR")
    assert sum(f["orig_pkts"] + f["resp_pkts"] for f in flows) <= records[-1]["packets"]


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
def test_malformed_captures_are_analysed_to_the_end(path: Path, capsys) -> None:
    assert main(["analyze", str(path), "--format", "jsonl", "--home", "FR"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = json.loads(lines[-1])
    assert summary["kind"] == "summary" and summary["handler_errors"] == 0
    assert summary["packets"] == summary["decoded"] + summary["malformed"] + summary["skipped"]


def test_malformed_packets_are_counted() -> None:
    counts = {p.name: run_jsonl(p)[-1] for p in MALFORMED}
    assert counts["tcpdump_ipv6_frag_negative_len.pcap"]["malformed"] == 1
    assert counts["tcpdump_radiotap_heapoverflow.pcap"]["skipped"] == 1
    assert sum(c["malformed"] for c in counts.values()) >= 20
    assert sum(sum(c["malformed_payloads"].values()) for c in counts.values()) >= 50


def test_several_files_and_gzip_in_one_run(tmp_path: Path) -> None:
    import gzip

    a = DATA / "iot" / "lifecycle_xiaodu_plug_setup.pcap"
    b = tmp_path / "camera.pcap.gz"
    b.write_bytes(gzip.compress((DATA / "iot" / "lifecycle_xiaobaiY2cam_setup.pcap").read_bytes()))
    out = io.StringIO()
    analyze_files(load(env={}, cli={"enrich.home": ["FR"]}), [str(a), str(b)], fmt="jsonl", out=out)
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert summary["packets"] == 259 + 630


def test_text_report_is_readable(capsys) -> None:
    path = DATA / "iot" / "lifecycle_xiaobaiY2cam_speak_remote.pcap"
    assert main(["analyze", str(path), "--home", "FR"]) == 0
    text = capsys.readouterr().out
    assert "110.43.68.240 [CN] FOREIGN" in text and "789 packets" in text


def test_bad_option_refuses_to_start(capsys) -> None:
    path = DATA / "iot" / "lifecycle_xiaodu_plug_setup.pcap"
    assert main(["analyze", str(path), "--home", "Atlantis"]) == 2
    assert "enrich.home" in capsys.readouterr().err
