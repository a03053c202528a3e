"""Events: small dataclasses that carry what the pipeline observed to the handlers.

The packet loop never calls a handler per packet: only parsed observations (a DNS answer, a DHCP
request, a TLS ClientHello...), flow ends, clock ticks and the events that handlers raise
themselves travel through the chain. Each event's docstring states when it fires and what is
guaranteed. A handler is any object with ``on_<event_name>`` methods (``on_flow_end`` for
:class:`FlowEnd`); :class:`HandlerChain` calls them in the handlers' order and contains a faulty
handler (mitmproxy's ``safecall``): the exception is logged and counted, the others still run.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from monitor.model import Alert, Destination, Device, Flow
    from monitor.protocols.dhcp import DhcpMessage
    from monitor.protocols.dns import DnsMessage
    from monitor.protocols.http import HttpRequest
    from monitor.protocols.mdns import MdnsAnnouncement
    from monitor.protocols.ssdp import SsdpMessage
    from monitor.protocols.tls import ClientHello

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Event:
    """Base class; ``event_name`` is the snake_case handler suffix (``on_<event_name>``)."""

    event_name: ClassVar[str] = "event"


def _event(cls: type) -> type:
    cls.event_name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    return cls


@_event
@dataclass(slots=True)
class FlowStart(Event):
    """A packet opened a flow that was not in the table. Fires once per flow, before any
    observation that carries it."""

    flow: Flow


@_event
@dataclass(slots=True)
class FlowEnd(Event):
    """A flow left the table: idle or active timeout, eviction under the size cap, or the end of
    capture. Every flow that had a :class:`FlowStart` gets exactly one ``FlowEnd``;
    ``flow.end_reason`` says which (``idle``, ``active``, ``evicted``, ``shutdown``)."""

    flow: Flow


@_event
@dataclass(slots=True)
class DnsObserved(Event):
    """A unicast DNS message (UDP port 53, query or response) was parsed. ``client_mac`` and
    ``client_ip`` are the side that asked; a response's answers are in ``message``."""

    ts: float
    client_mac: str | None
    client_ip: str
    server_ip: str
    message: DnsMessage


@_event
@dataclass(slots=True)
class DhcpObserved(Event):
    """A DHCPv4 message was parsed (client or server side). ``message.client_mac`` comes from
    chaddr."""

    ts: float
    src_mac: str | None
    message: DhcpMessage


@_event
@dataclass(slots=True)
class MdnsObserved(Event):
    """A multicast DNS packet (port 5353) was parsed into announced names and services."""

    ts: float
    src_mac: str | None
    src_ip: str
    announcement: MdnsAnnouncement


@_event
@dataclass(slots=True)
class SsdpObserved(Event):
    """An SSDP (UPnP discovery, UDP 1900) message was parsed."""

    ts: float
    src_mac: str | None
    src_ip: str
    message: SsdpMessage


@_event
@dataclass(slots=True)
class HttpRequestObserved(Event):
    """The head of a plain-HTTP request was parsed: Host and User-Agent. One per request head
    seen at the start of a TCP segment."""

    ts: float
    flow: Flow
    request: HttpRequest


@_event
@dataclass(slots=True)
class ClientHelloObserved(Event):
    """A complete TLS ClientHello was reassembled, over TCP (``transport == "tls"``) or from
    QUIC Initial packets (``transport == "quic"``). At most one per flow."""

    ts: float
    flow: Flow
    transport: str
    hello: ClientHello


@_event
@dataclass(slots=True)
class AddressObserved(Event):
    """A MAC/IP binding was seen in ARP, NDP or DHCP (``source`` says which)."""

    ts: float
    mac: str
    ip: str
    source: str


@_event
@dataclass(slots=True)
class Tick(Event):
    """Capture time passed a whole second. Fires once per second of capture time, in order,
    driven by packet timestamps (so a replay behaves like live capture) and, live, by the wall
    clock when no packet arrives. ``active`` lists the flows that carried payload during the
    second that just closed; each has that second as its newest closed bin."""

    ts: float
    second: int
    active: list[Flow] = field(default_factory=list)


@_event
@dataclass(slots=True)
class DeviceSeen(Event):
    """A device (MAC) appeared for the first time in this run's inventory. ``first_ever`` is
    false when the store already knew it from an earlier run (so "new device" alerts fire once
    per device, not once per restart)."""

    ts: float
    device: Device
    first_ever: bool = True


@_event
@dataclass(slots=True)
class DeviceUpdated(Event):
    """A device's identifying facts changed (hostname, DHCP fingerprint, mDNS, SSDP, user agent,
    domain...). ``changed`` names the fields. Classification listens to this, not to packets."""

    ts: float
    device: Device
    changed: frozenset[str]


@_event
@dataclass(slots=True)
class DestinationContacted(Event):
    """A device exchanged traffic with a destination for the first time in this run.
    ``destination`` is enriched (country, org, local, foreign) before this fires; ``new_org`` is
    true when no earlier destination of this device had the same organisation (or, without an
    organisation, the same address)."""

    ts: float
    device: Device
    destination: Destination
    new_org: bool = False


@_event
@dataclass(slots=True)
class NameContacted(Event):
    """A device looked up or connected to a server name for the first time in this run:
    ``source`` is ``dns`` (query), ``sni`` (TLS/QUIC) or ``http`` (Host header). ``dest_ip`` is
    the server address when known (SNI, Host), else None."""

    ts: float
    device: Device
    name: str
    source: str
    dest_ip: str | None = None


@_event
@dataclass(slots=True)
class CaptureStats(Event):
    """Counters from the capture source and the decoder, at SIGUSR1, periodically live, and once
    at the end of a run."""

    ts: float
    stats: dict[str, Any]


@_event
@dataclass(slots=True)
class UploadBurst(Event):
    """A device sent a burst of upstream traffic to one destination organisation, clearly above
    its idle baseline; fires once per burst, a few seconds (the quiet gap) after it ends, while
    capture runs. ``destination`` is the burst's main destination (most bytes); ``dest_ips``
    lists every address of that organisation the burst used. Rates are in kilobytes per second
    (1 kB = 1000 bytes). ``shape`` is ``audio``, ``video`` or ``bulk``; ``audio_seconds`` is the
    speech time ``bytes_up`` could carry at the configured voice bitrate."""

    device: Device
    destination: Destination
    ts_start: float
    ts_end: float
    bytes_up: int
    bytes_down: int
    packets_up: int
    duration_s: float
    mean_kbps: float
    peak_kbps: float
    shape: str
    audio_seconds: float
    dest_ips: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    transports: list[str] = field(default_factory=list)


@_event
@dataclass(slots=True)
class AlertRaised(Event):
    """A rule matched an event and was not suppressed. Fires once per alert, after the rule's
    suppression check; the store and notifiers listen to it."""

    alert: Alert


@_event
@dataclass(slots=True)
class Shutdown(Event):
    """The capture ended (end of the files, SIGTERM, or stop). Fires once, after the last
    :class:`FlowEnd` and :class:`Tick`; handlers flush what they still hold (open bursts,
    pending contacts, queued writes)."""

    ts: float


Handler = Any


class HandlerChain:
    """Dispatches events to an ordered list of handlers, containing failures.

    Guarantees: handlers receive an event in the order they were added; an exception in one
    handler is logged once per (handler, event) pair, counted in :attr:`errors`, and does not
    stop the event from reaching the remaining handlers. Events emitted while dispatching are
    queued and delivered after the current one, so every handler sees events in the same order.
    """

    def __init__(self, handlers: Iterable[Handler] = ()) -> None:
        self.handlers: list[Handler] = []
        self.errors: Counter[str] = Counter()
        self._routes: dict[str, list[tuple[str, Callable[[Event], None]]]] = {}
        self._queue: deque[Event] = deque()
        self._dispatching = False
        for handler in handlers:
            self.add(handler)

    def add(self, handler: Handler) -> None:
        self.handlers.append(handler)
        self._routes.clear()

    def refresh(self) -> None:
        """Forget the cached routes: call after a handler changed which events it answers
        (rules reloaded or switched)."""
        self._routes.clear()

    def _route(self, name: str) -> list[tuple[str, Callable[[Event], None]]]:
        route = self._routes.get(name)
        if route is None:
            route = []
            for handler in self.handlers:
                method = getattr(handler, "on_" + name, None)
                if method is not None:
                    route.append((type(handler).__name__, method))
            self._routes[name] = route
        return route

    def wants(self, event_type: type[Event]) -> bool:
        """True when at least one handler listens to this event type."""
        return bool(self._route(event_type.event_name))

    def emit(self, event: Event) -> None:
        self._queue.append(event)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._queue:
                current = self._queue.popleft()
                for handler_name, method in self._route(current.event_name):
                    try:
                        method(current)
                    except Exception:
                        key = f"{handler_name}.on_{current.event_name}"
                        if not self.errors[key]:
                            log.exception("handler %s failed; it is contained", key)
                        self.errors[key] += 1
        finally:
            self._dispatching = False
