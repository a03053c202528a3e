"""Per-flow ClientHello reassembly for the pipeline: which flows are waiting, and for what.

:class:`HelloTracker` owns one assembler per flow direction that began like a TLS handshake
(TCP) or a QUIC Initial (UDP), and forgets it as soon as it succeeds or gives up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import cast

from monitor.protocols.quic import QuicClientHelloAssembler, is_quic_initial_start
from monitor.protocols.tls import ClientHello, ClientHelloAssembler, is_tls_handshake_start

Assembler = ClientHelloAssembler | QuicClientHelloAssembler
Key = tuple[str, Hashable, bool]


class HelloTracker:
    """A bounded registry of pending ClientHello assemblers, keyed by (protocol, flow, direction).

    Guarantees: at most ``max_pending`` assemblers are alive (the oldest is dropped to make
    room and counted in :attr:`evicted`); a flow direction whose first payload is not a TLS
    handshake record (TCP) or a QUIC v1/v2 Initial (UDP) is settled after a test of a few
    bytes; a settled direction (hello found, given up, rejected or evicted) costs one set
    look-up per later packet for as long as it is among the last ``max_settled`` settled;
    calls never raise on any payload. Each direction yields at most one ClientHello.
    """

    def __init__(self, max_pending: int = 4096, max_settled: int = 65536) -> None:
        self.max_pending = max_pending
        self.max_settled = max_settled
        self.found = 0
        self.failed = 0
        self.evicted = 0
        self._pending: OrderedDict[Key, Assembler] = OrderedDict()
        self._settled: OrderedDict[Key, None] = OrderedDict()

    def __len__(self) -> int:
        """The number of pending assemblers."""
        return len(self._pending)

    def on_tcp(
        self, flow_key: Hashable, from_orig: bool, seq: int, payload: bytes
    ) -> ClientHello | None:
        """Feed one TCP segment; the ClientHello when this segment completes it."""
        if not payload:
            return None
        key = ("tcp", flow_key, from_orig)
        assembler = cast("ClientHelloAssembler | None", self._pending.get(key))
        if assembler is None:
            if key in self._settled:
                return None
            if not is_tls_handshake_start(payload):
                self._settle(key)
                return None
            assembler = ClientHelloAssembler()
            self._open(key, assembler)
        return self._after(key, assembler, assembler.feed(seq, payload))

    def on_udp(self, flow_key: Hashable, from_orig: bool, payload: bytes) -> ClientHello | None:
        """Feed one UDP datagram; the ClientHello when this datagram completes it."""
        key = ("udp", flow_key, from_orig)
        assembler = cast("QuicClientHelloAssembler | None", self._pending.get(key))
        if assembler is None:
            if key in self._settled:
                return None
            if not is_quic_initial_start(payload):
                self._settle(key)
                return None
            assembler = QuicClientHelloAssembler()
            self._open(key, assembler)
        return self._after(key, assembler, assembler.feed(payload))

    def forget(self, flow_key: Hashable) -> None:
        """Drop everything held for a flow (call it when the flow ends); unknown keys are fine."""
        for proto in ("tcp", "udp"):
            for from_orig in (True, False):
                key = (proto, flow_key, from_orig)
                self._pending.pop(key, None)
                self._settled.pop(key, None)

    def _open(self, key: Key, assembler: Assembler) -> None:
        if len(self._pending) >= self.max_pending:
            oldest, _ = self._pending.popitem(last=False)
            self.evicted += 1
            self._settle(oldest)
        self._pending[key] = assembler

    def _after(
        self, key: Key, assembler: Assembler, hello: ClientHello | None
    ) -> ClientHello | None:
        if assembler.done:
            del self._pending[key]
            self._settle(key)
            if hello is None:
                self.failed += 1
            else:
                self.found += 1
        return hello

    def _settle(self, key: Key) -> None:
        self._settled[key] = None
        if len(self._settled) > self.max_settled:
            self._settled.popitem(last=False)
