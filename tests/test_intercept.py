"""ARP interception without a network: choosing targets, refusing large networks, the state
file, and the source that un-does the interception's MAC rewriting."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from monitor import intercept
from monitor.errors import CaptureError, ConfigError
from monitor.intercept import InterceptedSource, _targets, _true_macs, start_interception
from monitor.intercept_arp import Binding, LocalLink
from monitor.intercept_state import InterceptState, load, save, state_path
from monitor.pcapfile import LINKTYPE_ETHERNET

LINK = LocalLink("eth0", "02:00:00:00:00:03", "192.168.1.3", ipaddress.ip_network("192.168.1.0/24"))


def test_all_asks_every_other_host_of_the_subnet() -> None:
    ask, keys = _targets(LINK, ["all"], "192.168.1.1")
    assert len(ask) == 254 - 2 and "192.168.1.3" not in ask and "192.168.1.1" not in ask
    assert keys == set()


def test_addresses_are_asked_alone_and_macs_need_the_subnet() -> None:
    assert _targets(LINK, ["192.168.1.20"], "192.168.1.1") == (["192.168.1.20"], {"192.168.1.20"})
    ask, keys = _targets(LINK, ["02:AA:BB:CC:DD:EE", "192.168.1.20"], "192.168.1.1")
    assert len(ask) == 252 and keys == {"02:aa:bb:cc:dd:ee", "192.168.1.20"}


@pytest.mark.parametrize("bad", ["10.0.0.5", "speaker", "fe80::1", "02:aa:bb:cc:dd"])
def test_a_target_not_on_the_network_or_not_an_address_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"capture\.intercept"):
        _targets(LINK, [bad], "192.168.1.1")


def test_networks_larger_than_a_22_are_refused_unless_allowed(monkeypatch, tmp_path) -> None:
    big = LocalLink("eth0", LINK.mac, "10.0.0.3", ipaddress.ip_network("10.0.0.0/21"))
    monkeypatch.setattr(intercept, "local_link", lambda _iface: big)
    monkeypatch.setattr(intercept, "default_gateway", lambda _iface: None)
    with pytest.raises(ConfigError, match="larger than a /22"):
        start_interception("eth0", ["all"], tmp_path)
    with pytest.raises(ConfigError, match=r"capture\.gateway"):  # allowed: goes on to the gateway
        start_interception("eth0", ["all"], tmp_path, allow_large=True)


def test_state_round_trips_and_an_unreadable_file_is_ignored(tmp_path: Path) -> None:
    state = InterceptState(
        "eth0",
        Binding("192.168.1.1", "02:00:00:00:00:01"),
        [Binding("192.168.1.20", "02:00:00:00:00:20")],
        {"/proc/sys/x": "0"},
    )
    save(state, tmp_path / "sub")
    assert load(tmp_path / "sub") == state
    assert load(tmp_path / "missing") is None
    state_path(tmp_path).write_text("{not json")
    assert load(tmp_path) is None


class _Interception:
    link = LINK
    gateway = Binding("192.168.1.1", "02:00:00:00:00:01")
    devices = [Binding("192.168.1.20", "02:00:00:00:00:20")]
    true_macs = _true_macs(devices)
    restored = False

    def restore(self) -> None:
        self.restored = True


class _Live:
    name = "eth0"
    closed = False

    def __init__(self, frames: list) -> None:
        self.frames = frames

    def __iter__(self):
        return iter(self.frames)

    def stats(self) -> dict[str, int]:
        return {"packets": len(self.frames)}

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _frame(dst_mac: str, src_mac: str, dst_ip: str) -> bytes:
    ip_header = b"\x45" + bytes(15) + socket.inet_aton(dst_ip)
    return (
        bytes.fromhex(dst_mac.replace(":", "") + src_mac.replace(":", "")) + b"\x08\x00" + ip_header
    )


def test_frames_sent_to_us_because_of_the_interception_get_their_true_destination() -> None:
    pi, device, gateway = LINK.mac, "02:00:00:00:00:20", "02:00:00:00:00:01"
    frames = [
        (1.0, LINKTYPE_ETHERNET, _frame(pi, device, "198.18.0.10")),  # device -> internet
        (2.0, LINKTYPE_ETHERNET, _frame(pi, gateway, "192.168.1.20")),  # internet -> device
        (3.0, LINKTYPE_ETHERNET, _frame(pi, gateway, LINK.ip)),  # really for us
        None,
    ]
    interception = _Interception()
    live = _Live(frames)
    source = InterceptedSource(live, interception)  # type: ignore[arg-type]
    out = list(source)
    assert out[0][2] == _frame(gateway, device, "198.18.0.10")
    assert out[1][2] == _frame(device, gateway, "192.168.1.20")
    assert out[2] == frames[2] and out[3] is None
    assert source.stats() == {"packets": 4, "intercepted_devices": 1}
    source.close()
    assert live.closed and interception.restored


def test_lacking_permission_is_said_in_plain_words(monkeypatch, tmp_path) -> None:
    def no_raw_socket(_iface: str, _addresses: list[str]) -> list[Binding]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(intercept, "local_link", lambda _iface: LINK)
    monkeypatch.setattr(intercept, "arp_resolve", no_raw_socket)
    with pytest.raises(CaptureError, match="needs root"):
        start_interception("eth0", ["all"], tmp_path, gateway="192.168.1.1")


class _Sender:
    def __init__(self, _link: LocalLink) -> None:
        self.claims: list[tuple[str, str, str]] = []

    def claim(self, to: Binding, ip: str, mac: str) -> None:
        self.claims.append((to.ip, ip, mac))

    def close(self) -> None:
        pass


def test_a_sysctl_that_cannot_be_set_undoes_everything_and_says_how(monkeypatch, tmp_path) -> None:
    changed, already, locked = tmp_path / "forwarding", tmp_path / "redirects", "/proc/version"
    changed.write_text("0\n")
    already.write_text("0\n")
    wanted = {str(changed): "1", str(already): "0", locked: "1"}
    monkeypatch.setattr(intercept, "_sysctls", lambda _iface: wanted)
    monkeypatch.setattr(intercept, "ArpSender", _Sender)
    monkeypatch.setattr("monitor.intercept_state.RESTORE_SPACING_S", 0)
    gateway = Binding("192.168.1.1", "02:00:00:00:00:01")
    device = Binding("192.168.1.20", "02:00:00:00:00:20")
    interception = intercept.Interception(LINK, gateway, [device], tmp_path / "state", 2.0)
    with pytest.raises(CaptureError, match=r"sysctl\.d"):
        interception.start()
    assert changed.read_text() == "0"  # put back
    assert not state_path(tmp_path / "state").exists()
    sent = interception._sender.claims
    assert sent and all(mac != LINK.mac for _to, _ip, mac in sent)  # only true bindings


def test_a_leftover_on_an_interface_that_has_gone_does_not_block_the_next_start(
    tmp_path, caplog
) -> None:
    from monitor.intercept_state import restore_leftover

    sysctl = tmp_path / "forwarding"
    sysctl.write_text("1")
    gone = InterceptState(
        "mwgone0",
        Binding("192.168.1.1", "02:00:00:00:00:01"),
        [Binding("192.168.1.20", "02:00:00:00:00:20")],
        {str(sysctl): "0"},
    )
    save(gone, tmp_path)
    assert restore_leftover(tmp_path)
    assert "heal by themselves" in caplog.text
    assert sysctl.read_text() == "0" and load(tmp_path) is None
    assert not restore_leftover(tmp_path)
