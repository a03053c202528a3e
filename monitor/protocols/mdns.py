"""Multicast DNS / DNS-SD announcements (RFC 6762/6763), built on :func:`parse_dns`.

Guarantees of :func:`parse_mdns`: same contract as :func:`~monitor.protocols.dns.parse_dns`
(``None`` for non-DNS bytes, :class:`~monitor.errors.Malformed` for broken ones, nothing else).
Only a response describes its sender: for a query every field but ``queries`` is empty, because
a query's known-answer records describe other hosts. TXT keys are kept only when they are in
:data:`TXT_KEYS` (model and vendor strings), so identifiers such as ``id``, ``deviceid`` or
serial numbers never leave this module. A record cut by the end of the payload ends parsing;
what came before it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.protocols.dns import AAAA, PTR, SRV, TXT, A, parse_dns

TXT_KEYS = frozenset(
    {"md", "fn", "model", "manufacturer", "ty", "usb_mfg", "usb_mdl", "am", "ve", "product"}
)
"""TXT keys that name a model, vendor or product (Chromecast md/fn/ve, AirPlay am/model, IPP
ty/product/usb_*); everything else is dropped."""
MAX_TXT_VALUE = 128
"""TXT values are cut to this many characters."""
_META_SERVICE = "_dns-sd._udp"  # "_services._dns-sd._udp.local" enumerates service types


@dataclass(frozen=True, slots=True)
class MdnsAnnouncement:
    """What one mDNS packet says about its sender.

    ``hostnames`` are the ``.local`` owner names of A/AAAA records and ``addresses`` their
    (hostname, ip) pairs; ``services`` are DNS-SD service types such as ``_googlecast._tcp``;
    ``instances`` the instance labels in front of a service type (``google-nest-mini-0a1b...``);
    ``txt`` the whitelisted TXT keys (lowercase) with their first value; ``queries`` the names
    asked in the question section. Tuples keep first-seen order without duplicates; names are
    lowercase.
    """

    is_response: bool
    hostnames: tuple[str, ...]
    addresses: tuple[tuple[str, str], ...]
    services: tuple[str, ...]
    instances: tuple[str, ...]
    txt: dict[str, str] = field(hash=False)
    queries: tuple[str, ...]


def parse_mdns(payload: bytes) -> MdnsAnnouncement | None:
    """Parse an mDNS packet (UDP port 5353) into the names and services it announces."""
    message = parse_dns(payload)
    if message is None:
        return None
    queries = tuple(dict.fromkeys(question.name for question in message.questions))
    if not message.is_response:
        return MdnsAnnouncement(False, (), (), (), (), {}, queries)
    hostnames: dict[str, None] = {}
    addresses: dict[tuple[str, str], None] = {}
    services: dict[str, None] = {}
    instances: dict[str, None] = {}
    txt: dict[str, str] = {}
    for record in message.answers + message.additionals:
        value = record.value
        if record.rtype in (A, AAAA) and record.name.endswith(".local") and isinstance(value, str):
            hostnames[record.name] = None
            addresses[(record.name, value)] = None
        elif record.rtype == PTR and isinstance(value, str):
            _note_service(record.name, services, instances, owner=True)
            _note_service(value, services, instances, owner=False)
        elif record.rtype in (SRV, TXT):
            _note_service(record.name, services, instances, owner=False)
            if record.rtype == TXT and isinstance(value, tuple):
                _note_txt(value, txt)
    return MdnsAnnouncement(
        is_response=True,
        hostnames=tuple(hostnames),
        addresses=tuple(addresses),
        services=tuple(services),
        instances=tuple(instances),
        txt=txt,
        queries=queries,
    )


def _split_service(name: str) -> tuple[str, str] | None:
    """``(instance, service type)`` of a DNS-SD name ending in ``._<svc>._tcp|_udp.local``.

    The instance is ``""`` for a bare service type; ``None`` when the name is not DNS-SD.
    """
    labels = name.split(".")
    if len(labels) < 3 or labels[-1] != "local" or labels[-2] not in ("_tcp", "_udp"):
        return None
    if not labels[-3].startswith("_") or len(labels[-3]) < 2:
        return None
    return ".".join(labels[:-3]), f"{labels[-3]}.{labels[-2]}"


def _note_service(
    name: str, services: dict[str, None], instances: dict[str, None], *, owner: bool
) -> None:
    """Record the service type of ``name`` and, unless it is a PTR owner, its instance."""
    split = _split_service(name)
    if split is None or split[1] == _META_SERVICE:
        return
    instance, service = split
    services[service] = None
    if instance and not owner and not instance.endswith("._sub") and instance != "_sub":
        instances[instance] = None


def _note_txt(strings: tuple[str, ...], txt: dict[str, str]) -> None:
    """Keep whitelisted ``key=value`` strings; a key's first value wins (RFC 6763 6.4)."""
    for string in strings:
        key, _, value = string.partition("=")
        key = key.lower()
        if key in TXT_KEYS and key not in txt:
            txt[key] = value[:MAX_TXT_VALUE]
