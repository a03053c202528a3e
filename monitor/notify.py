"""Notifications: alerts to the household's phone through apprise, without blocking capture.

:class:`Notifier` is an event handler. ``on_alert_raised`` appends the alert to an in-memory
inbox under a lock and returns: it never touches the network. One worker thread runs the
:class:`~monitor.notify_policy.Policy` (routing, grouping, quiet hours, digest) and the
:class:`~monitor.notify_send.Dispatcher` (per-target queues, retry with backoff). The owner
calls :meth:`Notifier.close` after the capture's last event (after
:class:`~monitor.events.Shutdown`, whose handlers may still raise alerts): the open group is
released and the worker gets up to ``shutdown_s`` seconds to deliver; what is still undelivered
then is logged. Alerts held for
the digest or by quiet hours when the process stops are not notified (they are in the store and
the dashboard).

:func:`send_test` sends one test message (:func:`notify_test_message`) to each configured target and
reports which worked (``micwatch notify test``). Messages are in ``notify.language`` (see
:mod:`monitor.notify_policy`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitor.alert_i18n import catalogue
from monitor.notify_policy import Message, Policy, PolicySettings
from monitor.notify_send import Dispatcher, apprise_sender, target_name

if TYPE_CHECKING:
    from monitor.events import AlertRaised
    from monitor.model import Alert
    from rules.engine import RuleEngine

log = logging.getLogger(__name__)

#: The worker re-checks its timers at least this often (seconds).
POLL_S = 1.0


class Notifier:
    """The notification handler; see the module docstring for its guarantees."""

    def __init__(
        self,
        policy: Policy,
        dispatcher: Dispatcher,
        *,
        shutdown_s: float = 10.0,
        poll_s: float = POLL_S,
    ) -> None:
        self.policy = policy
        self.dispatcher = dispatcher
        self.shutdown_s = shutdown_s
        self._poll_s = poll_s
        self._inbox: deque[Alert] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._flush_requested = False
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, config: Any, engine: RuleEngine | None = None) -> Notifier:
        """A notifier for ``notify.targets`` writing in ``notify.language`` with the rules'
        translations in ``engine``; ValueError names a URL apprise rejects."""
        dispatcher = Dispatcher.from_urls(
            list(config["notify.targets"]), config["notify.max_queue"]
        )
        return cls(Policy(PolicySettings.from_config(config), engine=engine), dispatcher)

    # --- handlers (capture thread): enqueue only ---

    def on_alert_raised(self, event: AlertRaised) -> None:
        with self._lock:
            self._inbox.append(event.alert)
        self._wake.set()

    # --- control ---

    def close(self) -> bool:
        """Release the open group, deliver for up to ``shutdown_s`` seconds and stop the worker;
        True when nothing was left undelivered. Idempotent."""
        if self._thread.is_alive():
            with self._lock:
                self._flush_requested = True
                self._stop = True
            self._wake.set()
            self._thread.join(self.shutdown_s + 5.0)
        left = self.dispatcher.pending()
        if left:
            log.error("notifications: %d message(s) undelivered at shutdown", left)
        return left == 0

    # --- the worker ---

    def _run(self) -> None:
        deadline: float | None = None
        while True:
            self._wake.wait(self._poll_s)
            self._wake.clear()
            with self._lock:
                alerts, self._inbox = self._inbox, deque()
                flush, self._flush_requested = self._flush_requested, False
                stopping = self._stop
            try:
                for alert in alerts:
                    self.policy.add(alert)
                for message in self.policy.due():
                    self.dispatcher.submit(message)
                if flush:
                    for message in self.policy.flush():
                        self.dispatcher.submit(message)
                self.dispatcher.attempt()
            except Exception:  # a bug: contained, the worker keeps going
                log.exception("notification worker cycle failed")
            if stopping:
                deadline = deadline or time.monotonic() + self.shutdown_s
                if not self.dispatcher.pending() or time.monotonic() >= deadline:
                    return


def notify_test_message(language: str = "en", clock: Callable[[], float] = time.time) -> Message:
    """The message ``micwatch notify test`` sends, in ``language``, stamped with the local
    time."""
    words = catalogue(language)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(clock()))
    body = words.gettext("This is a test message from micwatch (%(when)s).") % {"when": when}
    return Message(words.gettext("micwatch test"), body, "info", 0)


def send_test(
    urls: list[str], language: str = "en", clock: Callable[[], float] = time.time
) -> list[tuple[str, bool]]:
    """Send the test message in ``language`` to each URL at once; ``[(target name,
    delivered)]`` in order. A URL apprise rejects counts as not delivered."""
    message = notify_test_message(language, clock)
    results = []
    for index, url in enumerate(urls):
        try:
            ok = apprise_sender(url)(message)
        except ValueError:
            ok = False
        results.append((target_name(index, url), ok))
    return results
