"""The simulators' webhook sender: deliveries at least once, retried with
backoff on a non-2xx answer or a connection error, with knobs to drop,
duplicate, delay, reorder or pause them. Signing is the simulator's own
(:meth:`WebhookSource.sign_webhook`), called for every attempt.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol


@dataclass
class WebhookKnobs:
    drop: float = 0.0         # fraction of deliveries never sent (no retry either)
    duplicate: float = 0.0    # fraction sent twice
    delay: float = 0.0        # seconds every delivery waits before its first attempt
    reorder: bool = False     # hold deliveries in a batch and send it shuffled
    reorder_window: float = 0.3
    paused: bool = False      # hold everything until unpaused


class _HasWebhookKnobs(Protocol):
    webhooks: WebhookKnobs


class WebhookSource(Protocol):
    """What the sender needs of its simulator (a :class:`syncd.sim.core.SimServer`)."""

    vendor: str
    knobs: _HasWebhookKnobs

    def sign_webhook(self, body: bytes, headers: dict[str, str]) -> dict[str, str]: ...


@dataclass
class Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    due: float
    attempt: int = 0


@dataclass(frozen=True)
class DeliveryResult:
    url: str
    status: int | None   # None: connection failed
    attempt: int
    headers: dict[str, str]
    body: bytes


class WebhookSender:
    """Delivers webhooks on a background thread, at least once, like the vendors:
    a non-2xx answer or a connection error is retried with backoff up to
    ``max_attempts``. The knobs can drop, duplicate, delay and reorder deliveries.
    ``sign`` is called for every attempt (so Zendesk's timestamp is fresh)."""

    def __init__(self, sim: WebhookSource, rng: random.Random, max_attempts: int = 5, backoff: float = 0.2,
                 timeout: float = 10.0):
        self.sim = sim
        self.rng = rng
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout = timeout
        self.results: list[DeliveryResult] = []
        self._queue: list[Delivery] = []
        self._cv = threading.Condition()
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._inflight = 0

    def start(self, threads: int = 1) -> None:
        """``threads`` > 1 delivers in parallel, as the vendors do under load (a load
        benchmark would otherwise measure this one sender); one keeps the send order."""
        self._stop = False
        self._threads = [threading.Thread(target=self._run, name=f"webhooks-{self.sim.vendor}-{n}", daemon=True)
                         for n in range(threads)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Queue one delivery (applies drop/duplicate/delay knobs)."""
        wk = self.sim.knobs.webhooks
        rng = self.rng
        if wk.drop and rng.random() < wk.drop:
            return
        copies = 2 if (wk.duplicate and rng.random() < wk.duplicate) else 1
        due = time.monotonic() + wk.delay + (wk.reorder_window if wk.reorder else 0.0)
        with self._cv:
            for _ in range(copies):
                self._queue.append(Delivery(url, body, dict(headers), due))
            if wk.reorder:
                # Hold the whole batch until the window after the newest send,
                # then release it shuffled: a burst really does arrive out of order.
                for d in self._queue:
                    if d.attempt == 0:
                        d.due = max(d.due, due)
                rng.shuffle(self._queue)
            self._cv.notify_all()

    def take_held(self) -> list[Delivery]:
        """Remove and return every delivery not attempted yet (while ``paused``: a test
        then sends them on one at a time, in the order it wants)."""
        with self._cv:
            held = [d for d in self._queue if d.attempt == 0]
            self._queue = [d for d in self._queue if d.attempt != 0]
            return held

    def pending(self) -> int:
        with self._cv:
            return len(self._queue) + self._inflight

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery has been attempted to completion."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.01)
        return False

    def _next(self) -> Delivery | None:
        with self._cv:
            while not self._stop:
                now = time.monotonic()
                wk = self.sim.knobs.webhooks
                ready = [d for d in self._queue if d.due <= now] if not wk.paused else []
                if ready:
                    d = ready[0]
                    self._queue.remove(d)
                    self._inflight += 1
                    return d
                wait = min((d.due - now for d in self._queue), default=0.5)
                self._cv.wait(timeout=max(0.005, min(wait, 0.5)))
        return None

    def _run(self) -> None:
        while True:
            d = self._next()
            if d is None:
                return
            try:
                self._attempt(d)
            finally:
                with self._cv:
                    self._inflight -= 1

    def _attempt(self, d: Delivery) -> None:
        d.attempt += 1
        headers = {"Content-Type": "application/json", "User-Agent": f"syncd-sim-{self.sim.vendor}"}
        headers.update(self.sim.sign_webhook(d.body, d.headers))
        req = urllib.request.Request(d.url, data=d.body, headers=headers, method="POST")
        status: int | None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status = resp.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError):
            status = None
        self.results.append(DeliveryResult(d.url, status, d.attempt, headers, d.body))
        if status is not None and 200 <= status < 300:
            return
        if d.attempt >= self.max_attempts:
            return
        d.due = time.monotonic() + self.backoff * (2 ** (d.attempt - 1))
        with self._cv:
            self._queue.append(d)
            self._cv.notify_all()
