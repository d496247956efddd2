"""Pollers: the safety net under webhooks, which may never arrive.

One thread per source. Before each poll it takes (or renews) the source's
leader lease; the fencing token it gets is checked again when the cursor is
advanced, so a poller that stalled and lost its lease cannot move the cursor.
The cursor advances and the items are marked dirty in one transaction.

``accounted`` (see :mod:`syncd.poll_stamps`) tells the items a poll found that
syncd has already carried across at the ``updated`` the poll saw: they are left
out, so a poll that only finds those costs no reconcile and no vendor read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import structlog

from .connectors.base import PollPage
from .domain import DeskItem, ItemRef
from .failpoints import failpoint
from .metrics import METRICS
from .store_ports import CursorStore

log = structlog.get_logger("syncd.poller")


@dataclass(frozen=True)
class PollSource:
    name: str                                    # e.g. "zendesk", "jira", "intercom:conversations"
    poll: Callable[[str | None], PollPage]
    interval: float


class Poller:
    def __init__(self, store: CursorStore, source: PollSource, owner: str, on_items: Callable[[], None] | None = None,
                 lease_ttl: float | None = None, accounted: Callable[[ItemRef, datetime, int | None, DeskItem | None], bool] | None = None):
        self.store, self.source, self.owner, self.on_items = store, source, owner, on_items
        self.accounted = accounted
        # How long a silent leader keeps the source: a replica takes over after this.
        self.lease_ttl = lease_ttl if lease_ttl is not None else max(30.0, source.interval * 3)
        self.leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_exception: BaseException | None = None   # with its time: /readyz tells when it cleared
        self.last_error_at: float | None = None
        self.last_success: float | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"poll-{self.source.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.leader:
            try:   # hand the source over now rather than after the ttl
                self.store.release_lease(self._lease_name, self.owner)
            except Exception as e:
                log.warning("lease_release_failed", source=self.source.name, error=str(e))
            self.leader = False

    @property
    def _lease_name(self) -> str:
        return f"poll:{self.source.name}"

    def poll_once(self) -> int | None:
        """One round; returns how many items it marked dirty (``None``: not the leader)."""
        import time
        fence = self.store.acquire_lease(self._lease_name, self.owner, ttl=self.lease_ttl)
        if (fence is not None) != self.leader:
            log.info("poll_leader" if fence is not None else "poll_follower", source=self.source.name,
                     owner=self.owner, fence=fence)
        self.leader = fence is not None
        if fence is None:
            return None
        marked = 0
        while True:
            cursor = self.store.get_cursor(self.source.name)
            page = self.source.poll(cursor)
            failpoint("mid_poll_page", bool(page.items), self.source.name)
            items = self._unaccounted(page)
            self.store.advance_cursor(self.source.name, page.cursor, items, fence)
            marked += len(items)
            if not page.more or self._stop.is_set():
                break
        self.last_success = time.time()
        if marked and self.on_items is not None:
            self.on_items()
        if marked:
            log.info("poll_marked_dirty", source=self.source.name, items=marked)
        return marked

    def _unaccounted(self, page: PollPage) -> tuple[ItemRef, ...]:
        """The page's items less those still at the stamp syncd last reconciled them at."""
        if self.accounted is None:
            return page.items
        accounted = self.accounted
        items = tuple(ref for ref in page.items
                      if (stamp := page.stamps.get(ref)) is None
                      or not accounted(ref, stamp, page.comment_counts.get(ref), page.views.get(ref)))
        if len(items) < len(page.items):
            log.debug("poll_skipped_reconciled", source=self.source.name, items=len(page.items) - len(items))
        return items

    def _loop(self) -> None:
        delay = self.source.interval
        while not self._stop.is_set():
            try:
                self.poll_once()
                self.last_error, self.last_exception, self.last_error_at = None, None, None
                delay = self.source.interval
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                self.last_exception, self.last_error_at = e, time.time()
                log.error("poll_failed", source=self.source.name, error=self.last_error)
                METRICS.poll_failed(self.source.name)
                delay = min(delay * 2, 300.0)
            self._stop.wait(delay)
