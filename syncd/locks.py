"""One writer per link at a time, and never an unbounded wait for it.

A link can be reached from two dirty items at once (its desk item and its
issue), claimed by two workers. Both would read the same state and post the
same comment, so the work on one link is serialised. Inside one process a lock
per link id does it; across replicas on Postgres the store adds an advisory
lock (see ``Store.link_lock``) and this class takes both.

Both are taken with a bounded wait: a worker that cannot get a link in
``wait`` seconds raises :class:`LinkBusy`, and the worker requeues its item
shortly and moves on. A replica frozen while holding a link (its connection
and so its advisory lock stay open) then delays that link only, never the
workers of the other replicas.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterator

from .errors import SyncdError

LOCAL_WAIT = 5.0    # seconds a worker waits for another thread of its process to leave the link
SHARED_WAIT = 1.0   # seconds it tries for the cross-replica lock before requeueing


class LinkBusy(SyncdError):
    """Another worker holds the link: requeue the item shortly, do not wait."""

    def __init__(self, link_id: int, holder: str):
        super().__init__(f"link {link_id} is held by {holder}")
        self.link_id = link_id


class LinkLocks:
    def __init__(self, shared: Callable[[int], ContextManager[object]] | None = None,
                 local_wait: float = LOCAL_WAIT):
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}
        self._users: dict[int, int] = defaultdict(int)
        self._shared = shared
        self._local_wait = local_wait

    @contextmanager
    def hold(self, link_id: int) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(link_id, threading.Lock())
            self._users[link_id] += 1
        try:
            if not lock.acquire(timeout=self._local_wait):
                raise LinkBusy(link_id, "another worker of this process")
            try:
                with self._shared(link_id) if self._shared else nullcontext():
                    yield
            finally:
                lock.release()
        finally:
            with self._guard:
                self._users[link_id] -= 1
                if self._users[link_id] == 0:
                    del self._users[link_id]
                    self._locks.pop(link_id, None)
