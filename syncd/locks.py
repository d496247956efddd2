"""One writer per link at a time.

A link can be reached from two dirty items at once (its desk item and its
issue), claimed by two workers. Both would read the same state and post the
same comment, so the work on one link is serialised. Inside one process a lock
per link id does it; across replicas on Postgres the store adds an advisory
lock (see ``Store.link_lock``) and this class takes both.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterator


class LinkLocks:
    def __init__(self, shared: Callable[[int], ContextManager[object]] | None = None):
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}
        self._users: dict[int, int] = defaultdict(int)
        self._shared = shared

    @contextmanager
    def hold(self, link_id: int) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(link_id, threading.Lock())
            self._users[link_id] += 1
        try:
            with lock, (self._shared(link_id) if self._shared else nullcontext()):
                yield
        finally:
            with self._guard:
                self._users[link_id] -= 1
                if self._users[link_id] == 0:
                    del self._users[link_id]
                    self._locks.pop(link_id, None)
