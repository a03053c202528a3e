"""``micwatch setup ap``: the configuration of a separate Wi-Fi network for smart devices, served
by the Pi and NATed to the home network, so every packet of those devices passes the Pi.

Files written by :func:`write_files` (and installed by :func:`install`):

* ``hostapd.conf``: a WPA2-PSK (CCMP) access point on the Wi-Fi interface;
* ``dnsmasq.conf``: DHCP and DNS for the IoT network, on the Wi-Fi interface only;
* ``micwatch-ap.nft``: nftables rules in their own table: masquerade from the IoT subnet out of
  the uplink; IoT devices may reach the internet but not the home LAN (private ranges) nor
  open connections there; nothing outside may open a connection into the IoT network; only
  DHCP, DNS and ping reach the Pi itself from it; IPv6 from it is dropped (the network is
  IPv4 only, so nothing bypasses the Pi);
* ``10-micwatch-ap.network``: systemd-networkd's static address for the Wi-Fi interface;
* ``90-micwatch-ap.conf``: the sysctl that turns on IPv4 forwarding;
* ``micwatch-ap-firewall.service``: loads the nftables rules at boot;
* ``README.txt``: the next steps in plain words.

Guarantee: :func:`ap_settings` refuses (ConfigError) an SSID, passphrase, subnet, country or
interface name that would give a broken or unsafe configuration, so what is written is valid
for hostapd, dnsmasq (``dnsmasq --test``) and nft (``nft -c``).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError, MicwatchError

PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
)
_IFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True)
class ApSettings:
    """A checked access-point configuration (see :func:`ap_settings`)."""

    wifi_interface: str
    uplink: str
    ssid: str
    passphrase: str
    subnet: ipaddress.IPv4Network
    country: str
    channel: int

    @property
    def address(self) -> ipaddress.IPv4Address:
        """The Pi's address on the IoT network (the subnet's first host)."""
        return next(self.subnet.hosts())

    @property
    def dhcp_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """Addresses handed out: from the 10th host to the last one."""
        hosts = list(self.subnet.hosts())
        return hosts[min(9, len(hosts) - 2)], hosts[-1]


def ap_settings(
    wifi_interface: str,
    uplink: str,
    ssid: str,
    passphrase: str,
    subnet: str,
    country: str,
    channel: int = 6,
) -> ApSettings:
    """Checked settings, or ConfigError saying what is wrong and what is accepted."""
    for what, name in (("--wifi-interface", wifi_interface), ("--uplink", uplink)):
        if not _IFACE.fullmatch(name):
            raise ConfigError(f"{what} {name!r} is not an interface name (e.g. wlan0, eth0)")
    if wifi_interface == uplink:
        raise ConfigError("--wifi-interface and --uplink must be two different interfaces")
    if not 1 <= len(ssid.encode()) <= 32 or not ssid.isprintable():
        raise ConfigError("--ssid must be 1 to 32 bytes of printable text")
    if not 8 <= len(passphrase) <= 63 or not all(" " <= c <= "~" for c in passphrase):
        raise ConfigError("--passphrase must be 8 to 63 printable ASCII characters (WPA2)")
    try:
        network = ipaddress.IPv4Network(subnet)
    except ValueError:
        raise ConfigError(
            f"--subnet {subnet!r} is not an IPv4 network such as 10.42.0.0/24"
        ) from None
    if not network.is_private or not 16 <= network.prefixlen <= 28:
        raise ConfigError("--subnet must be a private IPv4 network from /16 to /28")
    country = country.upper()
    if not _COUNTRY.fullmatch(country):
        raise ConfigError(
            "the Wi-Fi country is needed (radio rules differ): give --country with a two-letter "
            "code such as FR, or set enrich.home to your country"
        )
    if not 1 <= channel <= 13:
        raise ConfigError("--channel must be a 2.4 GHz channel from 1 to 13")
    return ApSettings(wifi_interface, uplink, ssid, passphrase, network, country, channel)


def hostapd_conf(s: ApSettings) -> str:
    """hostapd configuration: WPA2-PSK with CCMP on 2.4 GHz (what every smart device joins)."""
    plain = s.ssid.isascii() and s.ssid == s.ssid.strip()
    ssid = f"ssid={s.ssid}" if plain else f"ssid2={s.ssid.encode().hex()}\nutf8_ssid=1"
    return f"""# micwatch IoT access point (written by micwatch setup ap)
interface={s.wifi_interface}
driver=nl80211
{ssid}
country_code={s.country}
ieee80211d=1
hw_mode=g
channel={s.channel}
ieee80211n=1
wmm_enabled=1
auth_algs=1
ignore_broadcast_ssid=0
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase={s.passphrase}
"""


def dnsmasq_conf(s: ApSettings) -> str:
    """dnsmasq: DHCP and DNS for the IoT network only (never on the uplink)."""
    first, last = s.dhcp_range
    return f"""# micwatch IoT access point (written by micwatch setup ap)
interface={s.wifi_interface}
bind-interfaces
listen-address={s.address}
dhcp-range={first},{last},{s.subnet.netmask},12h
dhcp-option=option:router,{s.address}
dhcp-option=option:dns-server,{s.address}
dhcp-authoritative
domain-needed
bogus-priv
"""


def nftables_rules(s: ApSettings) -> str:
    """nftables: NAT out of the uplink, no way into the IoT network nor from it to the LAN."""
    wifi, uplink = s.wifi_interface, s.uplink
    private = ", ".join(PRIVATE_RANGES)
    return f"""#!/usr/sbin/nft -f
# micwatch IoT access point (written by micwatch setup ap): its own table, reloadable.
table inet micwatch_ap
delete table inet micwatch_ap
table inet micwatch_ap {{
    set home_lan {{
        type ipv4_addr
        flags interval
        elements = {{ {private} }}
    }}

    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{wifi}" ct state established,related accept
        iifname "{wifi}" udp dport {{ 53, 67 }} accept
        iifname "{wifi}" tcp dport 53 accept
        iifname "{wifi}" icmp type echo-request accept
        iifname "{wifi}" drop
    }}

    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{wifi}" meta nfproto ipv6 drop
        oifname "{wifi}" ct state established,related accept
        oifname "{wifi}" drop
        iifname "{wifi}" ct state established,related accept
        iifname "{wifi}" oifname != "{uplink}" drop
        iifname "{wifi}" ip daddr @home_lan drop
        iifname "{wifi}" accept
    }}

    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {s.subnet} oifname "{uplink}" masquerade
    }}
}}
"""


def networkd_file(s: ApSettings) -> str:
    """systemd-networkd: the Pi's static address on the Wi-Fi interface."""
    return f"""# micwatch IoT access point (written by micwatch setup ap)
[Match]
Name={s.wifi_interface}

[Network]
Address={s.address}/{s.subnet.prefixlen}
ConfigureWithoutCarrier=yes
"""


SYSCTL = "# micwatch IoT access point: forward the IoT network's packets\nnet.ipv4.ip_forward=1\n"

FIREWALL_SERVICE = """[Unit]
Description=micwatch IoT access point firewall and NAT
Wants=network-pre.target
Before=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f /etc/micwatch/micwatch-ap.nft
ExecStop=/usr/sbin/nft delete table inet micwatch_ap

[Install]
WantedBy=multi-user.target
"""


def readme(s: ApSettings) -> str:
    """Next steps in plain words."""
    return f"""micwatch IoT access point: next steps
======================================

These files make the Pi a separate Wi-Fi network, "{s.ssid}", for your smart devices.
They reach the internet through the Pi (and your home router) but cannot see your computers
and phones, and nothing at home can reach them. Every packet passes the Pi, so micwatch sees
it all. The network is IPv4 only.

1. Install the programs:           sudo apt install hostapd dnsmasq nftables
2. Install these files (or run micwatch setup ap ... --install, which does steps 2 and 3):
     hostapd.conf                  -> /etc/hostapd/hostapd.conf
     dnsmasq.conf                  -> /etc/dnsmasq.d/micwatch-ap.conf
     micwatch-ap.nft               -> /etc/micwatch/micwatch-ap.nft
     micwatch-ap-firewall.service  -> /etc/systemd/system/
     10-micwatch-ap.network        -> /etc/systemd/network/
     90-micwatch-ap.conf           -> /etc/sysctl.d/
   If NetworkManager manages {s.wifi_interface}, tell it to leave it alone first:
     sudo nmcli device set {s.wifi_interface} managed no
3. Start everything:
     sudo sysctl --system
     sudo systemctl unmask hostapd
     sudo systemctl enable --now systemd-networkd micwatch-ap-firewall hostapd dnsmasq
4. Check:                          micwatch doctor --mode ap -i {s.wifi_interface}
5. Move each smart device to "{s.ssid}" (its app usually has a "change Wi-Fi" step).
6. Capture on the Wi-Fi side:      micwatch capture -i {s.wifi_interface}

To undo: sudo systemctl disable --now hostapd dnsmasq micwatch-ap-firewall, then remove the
files above.
"""


#: File name -> (generator, where --install puts it).
FILES = {
    "hostapd.conf": (hostapd_conf, "/etc/hostapd/hostapd.conf"),
    "dnsmasq.conf": (dnsmasq_conf, "/etc/dnsmasq.d/micwatch-ap.conf"),
    "micwatch-ap.nft": (nftables_rules, "/etc/micwatch/micwatch-ap.nft"),
    "10-micwatch-ap.network": (networkd_file, "/etc/systemd/network/10-micwatch-ap.network"),
    "90-micwatch-ap.conf": (lambda _s: SYSCTL, "/etc/sysctl.d/90-micwatch-ap.conf"),
    "micwatch-ap-firewall.service": (
        lambda _s: FIREWALL_SERVICE,
        "/etc/systemd/system/micwatch-ap-firewall.service",
    ),
    "README.txt": (readme, None),
}


def write_files(settings: ApSettings, directory: Path) -> list[Path]:
    """Write every file into ``directory`` (created); the passphrase file is private (0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (generate, _target) in FILES.items():
        path = directory / name
        path.write_text(generate(settings))
        path.chmod(0o600 if name == "hostapd.conf" else 0o644)
        written.append(path)
    return written


INSTALL_COMMANDS = (
    ("sysctl", "--system"),
    ("systemctl", "daemon-reload"),
    ("systemctl", "unmask", "hostapd"),
    ("systemctl", "enable", "--now", "systemd-networkd", "micwatch-ap-firewall"),
    ("systemctl", "enable", "--now", "hostapd", "dnsmasq"),
)


def install(directory: Path) -> None:
    """Copy the files written in ``directory`` to /etc and enable the services (needs root);
    a failing step raises MicwatchError naming it."""
    for name, (_generate, target) in FILES.items():
        if target is not None:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(directory / name, target)
    for argv in INSTALL_COMMANDS:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode:
            raise MicwatchError(f"'{' '.join(argv)}' failed: {result.stderr.strip()}")
