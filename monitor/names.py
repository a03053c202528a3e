"""Names for addresses: passive DNS (with CNAME chains), TLS/QUIC SNI and HTTP Host.

Guarantees: :class:`NameTable` keeps, for each server address, the names that led to it and
when each was last confirmed; a DNS name stays usable for its TTL plus a grace period (devices
keep connecting long after a short TTL), an SNI or Host name for the grace period after it was
last seen. The table is bounded (least recently confirmed addresses dropped first). The best name
for an address prefers what the device itself asked for: the SNI or Host of the flow, else the
name the device queried (the head of the CNAME chain), else any name that resolved to it.
"""

from __future__ import annotations

from collections import OrderedDict

from monitor.events import ClientHelloObserved, DnsObserved, FlowStart, HttpRequestObserved
from monitor.protocols.dns import resolve_chain

# Preference of a name's origin when choosing the best name (higher wins).
_RANK = {"sni": 3, "http": 3, "query": 2, "chain": 1}


class NameTable:
    """IP address -> {name: (expires_at, rank)}; see the module docstring."""

    def __init__(self, max_addresses: int = 100_000, grace_s: float = 6 * 3600) -> None:
        self.max_addresses = max_addresses
        self.grace_s = grace_s
        self._by_ip: OrderedDict[str, dict[str, tuple[float, int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_ip)

    def add(self, ip: str, name: str, ts: float, ttl: float = 0.0, origin: str = "chain") -> None:
        name = name.lower().rstrip(".")
        if not name:
            return
        entry = self._by_ip.get(ip)
        if entry is None:
            if len(self._by_ip) >= self.max_addresses:
                self._by_ip.popitem(last=False)
            entry = self._by_ip[ip] = {}
        else:
            self._by_ip.move_to_end(ip)
        expires = ts + max(ttl, 0.0) + self.grace_s
        rank = _RANK.get(origin, 1)
        old = entry.get(name)
        if old is not None:
            expires = max(expires, old[0])
            rank = max(rank, old[1])
        entry[name] = (expires, rank)

    def names(self, ip: str, ts: float) -> list[str]:
        """Current names of ``ip``, best first."""
        entry = self._by_ip.get(ip)
        if not entry:
            return []
        live = [(rank, expires, name) for name, (expires, rank) in entry.items() if expires >= ts]
        live.sort(key=lambda item: (-item[0], -item[1], item[2]))
        return [name for _rank, _expires, name in live]

    def best(self, ip: str, ts: float) -> str | None:
        names = self.names(ip, ts)
        return names[0] if names else None


class NamesHandler:
    """Fills the name table from DNS, SNI and Host, and names each flow's server.

    Runs before the device inventory, so a flow is named by the time devices and detection see
    it: at :class:`FlowStart` from passive DNS, then from its own ClientHello or Host header.
    """

    def __init__(self, table: NameTable) -> None:
        self.table = table

    def on_dns_observed(self, event: DnsObserved) -> None:
        message = event.message
        if not message.is_response or not message.answers:
            return
        asked = {q.name for q in message.questions}
        for ip, (names, ttl) in resolve_chain(message).items():
            for name in names:
                origin = "query" if name in asked else "chain"
                self.table.add(ip, name, event.ts, ttl, origin)

    def on_flow_start(self, event: FlowStart) -> None:
        flow = event.flow
        if flow.local_resp and flow.device_is_orig:
            return
        flow.server_name = self.table.best(flow.remote_ip, flow.first_ts)

    def on_client_hello_observed(self, event: ClientHelloObserved) -> None:
        sni = event.hello.sni
        if sni:
            event.flow.server_name = sni
            self.table.add(event.flow.remote_ip, sni, event.ts, origin="sni")

    def on_http_request_observed(self, event: HttpRequestObserved) -> None:
        host = event.request.host
        if host and not _is_ip_literal(host):
            if event.flow.server_name is None or event.flow.service == "http":
                event.flow.server_name = host
            self.table.add(event.flow.remote_ip, host, event.ts, origin="http")


def _is_ip_literal(host: str) -> bool:
    return host.replace(".", "").isdigit() or ":" in host
