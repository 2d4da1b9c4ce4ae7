"""Periodic heartbeat on its own thread: failures back off and never touch recording.

The first heartbeat goes out at start; then one every ``interval`` seconds.
After a failure the next try comes sooner, backing off exponentially (with
jitter, so a fleet that lost its server does not come back in lockstep) up to
the regular interval.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

FIRST_RETRY = 10.0


def backoff_delay(failures: int, interval: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0: success, the regular interval)."""
    if failures <= 0:
        return interval
    base = min(interval, FIRST_RETRY * 2 ** (failures - 1))
    return base * (0.75 + 0.5 * rng()) if base < interval else interval


class Heartbeat:
    """Calls ``send(payload())`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        payload: Callable[[], dict[str, Any]],
        interval: float,
    ) -> None:
        self._send = send
        self._payload = payload
        self.interval = interval
        self._stop = threading.Event()
        self.failures = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> bool:
        """Send one heartbeat now; False (logged) when it failed."""
        try:
            self._send(self._payload())
        except Exception as exc:
            self.failures += 1
            level = logging.WARNING if self.failures in (1, 2) or self.failures % 10 == 0 else logging.DEBUG
            log.log(level, "heartbeat failed (%d in a row): %s", self.failures, exc)
            return False
        if self.failures:
            log.info("heartbeat delivered again after %d failures", self.failures)
        self.failures = 0
        self.sent += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            if self._stop.wait(backoff_delay(self.failures, self.interval)):
                return

    def stop(self, timeout: float = 1.0) -> None:
        """Stop; does not wait for a request in flight beyond ``timeout`` (the thread is a daemon)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
