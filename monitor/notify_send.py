"""Delivering messages to apprise targets, each with its own queue, retry and backoff.

Guarantees:

- Each target (one apprise URL) has its own FIFO queue, so a target that is down never delays
  the others. A failed send stays at the head of its queue and is retried after a backoff that
  doubles from :data:`BACKOFF_MIN_S` to :data:`BACKOFF_MAX_S`; the first failure of an outage
  and the recovery are logged once each.
- A queue holds at most ``max_queue`` messages; beyond that the oldest message that carries no
  ``high`` alert is dropped and counted. Messages with a ``high`` alert are never dropped while
  the process lives.
- URLs never appear in logs (they may hold tokens): a target is named by its scheme and index.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import apprise

from monitor.notify_policy import Message

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 5.0
BACKOFF_MAX_S = 600.0
_TYPES = {
    "high": apprise.NotifyType.FAILURE,
    "medium": apprise.NotifyType.WARNING,
    "low": apprise.NotifyType.INFO,
    "info": apprise.NotifyType.INFO,
}


def target_name(index: int, url: str) -> str:
    """A log-safe name for a target: ``#index scheme``."""
    return f"#{index + 1} {url.split(':', 1)[0]}"


def apprise_sender(url: str) -> Callable[[Message], bool]:
    """A function sending one message to ``url`` through apprise; ValueError for a URL apprise
    does not understand."""
    client = apprise.Apprise()
    if not client.add(url):
        raise ValueError(f"not a notification URL apprise understands: {url.split(':', 1)[0]}:…")

    def send(message: Message) -> bool:
        return bool(
            client.notify(body=message.body, title=message.title, notify_type=_TYPES[message.level])
        )

    return send


@dataclass
class Target:
    """One destination with its queue and backoff state."""

    name: str
    send: Callable[[Message], bool]
    max_queue: int = 100
    queue: deque[Message] = field(default_factory=deque)
    next_try: float = 0.0
    backoff: float = BACKOFF_MIN_S
    failing: bool = False
    failures: int = 0
    dropped: int = 0

    def submit(self, message: Message) -> None:
        self.queue.append(message)
        if len(self.queue) > self.max_queue:
            for queued in self.queue:
                if queued.level != "high":
                    self.queue.remove(queued)
                    self.dropped += 1
                    log.warning("notification target %s: queue full, dropped one", self.name)
                    break

    def attempt(self, now: float) -> None:
        """Send queued messages in order until one fails or the queue is empty."""
        while self.queue and now >= self.next_try:
            try:
                ok = self.send(self.queue[0])
            except Exception as exc:  # a plugin bug: treated as a failed send
                log.debug("notification target %s raised %s", self.name, exc)
                ok = False
            if ok:
                self.queue.popleft()
                if self.failing:
                    log.warning("notification target %s: delivered again", self.name)
                self.failing, self.backoff = False, BACKOFF_MIN_S
                continue
            self.failures += 1
            if not self.failing:
                log.warning("notification target %s: send failed; retrying", self.name)
            self.failing = True
            self.next_try = now + self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX_S)


class Dispatcher:
    """All targets; :meth:`submit` fans a message out, :meth:`attempt` sends what is due."""

    def __init__(self, targets: list[Target], clock: Callable[[], float] = time.monotonic):
        self.targets = targets
        self.clock = clock

    @classmethod
    def from_urls(cls, urls: list[str], max_queue: int = 100) -> Dispatcher:
        targets = [
            Target(target_name(i, url), apprise_sender(url), max_queue)
            for i, url in enumerate(urls)
        ]
        return cls(targets)

    def submit(self, message: Message) -> None:
        for target in self.targets:
            target.submit(message)

    def attempt(self) -> None:
        now = self.clock()
        for target in self.targets:
            target.attempt(now)

    def pending(self) -> int:
        return sum(len(t.queue) for t in self.targets)
