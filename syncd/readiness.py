"""``/readyz`` that always answers, within a second, naming the cause.

The readiness check reads the database. When the database hangs (a silent network
partition: connections open, nothing moves) that read hangs too -- and if it ran on
the event loop's shared thread pool, beside webhook stores stuck on the same
database, the probe would queue behind them and never answer (issue 10, finding 4).

So the check runs on a thread of its own, one at a time; its last answer is cached
for ``fresh_for`` seconds; a request waits at most ``answer_within`` seconds for a
fresh one and otherwise answers 503 naming the stuck database and for how long.
When the database answers again, the next check (started by the next request)
reports ready at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any, Callable

import structlog

log = structlog.get_logger("syncd.readiness")


class ReadinessProbe:
    def __init__(self, check: Callable[[], dict[str, Any]], answer_within: float = 0.8, fresh_for: float = 0.5):
        self.check, self.answer_within, self.fresh_for = check, answer_within, fresh_for
        self._lock = threading.Lock()
        self._running: concurrent.futures.Future | None = None
        self._started = 0.0
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0

    def _run(self, future: concurrent.futures.Future) -> None:
        try:
            body = self.check()
        except Exception as e:   # the check itself broke: say so rather than answer nothing
            body = {"status": "unready", "problems": [f"readiness: {type(e).__name__}: {e}"],
                    "reason": "check_failed"}
        with self._lock:
            self._last, self._last_at = body, time.monotonic()
        future.set_result(body)

    def _future(self) -> concurrent.futures.Future:
        with self._lock:
            if self._running is not None and not self._running.done():
                return self._running          # a check is under way (maybe stuck): wait on that one
            if self._last is not None and time.monotonic() - self._last_at < self.fresh_for:
                done: concurrent.futures.Future = concurrent.futures.Future()
                done.set_result(self._last)
                return done
            self._started = time.monotonic()
            self._running = concurrent.futures.Future()
            # A thread of its own (a daemon: a check stuck on the database must not hold up
            # the process's exit), never the shared pool, never more than one in flight.
            threading.Thread(target=self._run, args=(self._running,), name="readyz", daemon=True).start()
            return self._running

    async def answer(self) -> dict[str, Any]:
        """The readiness body, within ``answer_within`` seconds whatever the database does."""
        future = self._future()
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.answer_within)
        except asyncio.TimeoutError:
            stuck = round(time.monotonic() - self._started, 1)
            log.warning("readiness_check_stuck", seconds=stuck)
            return {"status": "unready", "reason": "database_unresponsive",
                    "problems": [f"database: no answer to the readiness check for {stuck} s "
                                 "(connections open but nothing moves: a network partition or a hung server?)"]}
