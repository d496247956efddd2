"""Worker threads: claim a dirty item, reconcile it, settle the claim.

How a failure settles the claim (the retry rules read in HTTP terms):

* rate limited → *defer* that item by ``Retry-After`` without counting an
  attempt (a per-issue limit delays that issue only);
* a vendor call that would have to wait longer than ``max_wait_fraction`` of the
  lease (budget, a 429's gate or hold) raises :class:`~syncd.errors.Throttled`
  instead of sleeping with the claim held → give the item back due at its
  ``not_before`` (see :func:`syncd.budget.wait_limit`);
* an escalation waiting for Jira search to catch up → defer briefly;
* anything else → *fail*: attempts + 1 and exponential backoff; after
  ``max_attempts`` the item goes to the dead-letter table and everything else
  keeps flowing.

While a reconcile runs, a heartbeat thread renews its claim's lease (every
third of the lease), so a slow vendor or a long budget wait does not hand the
item to a second worker. A renewal that finds the claim taken marks it lost,
and the reconcile stops at its next vendor write (:mod:`syncd.fencing`). Two
workers of one process never work on one item: a worker that claims an item
another thread of the process still has in hand (its lease ran out under it)
gives it back for a moment instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import structlog

from .budget import wait_limit
from .engine import Engine, EscalationPending, Outcome
from .errors import RateLimited, Throttled
from .fencing import ClaimLost, Fence, holding
from .history import record_failed as record_failed_history, rows as history_rows
from .locks import LinkBusy
from .metrics import METRICS
from .store_ports import Claim, ClaimStore, StoreUnavailable

log = structlog.get_logger("syncd.worker")
LINK_BUSY_DELAY = 1.0   # seconds before a worker tries a link another worker held again


@dataclass(frozen=True)
class WorkerSettings:
    threads: int = 4
    lease_seconds: float = 60.0
    max_attempts: int = 10
    backoff_base: float = 2.0
    backoff_max: float = 900.0
    idle_wait: float = 0.5
    max_wait_fraction: float = 0.2   # of the lease: the longest a reconcile sleeps on a budget/429


def backoff(settings: WorkerSettings) -> Callable[[int], float]:
    def delay(attempts: int) -> float:
        return min(settings.backoff_max, settings.backoff_base * (2 ** max(0, attempts - 1)))
    return delay


class WorkerPool:
    def __init__(self, store: ClaimStore, engine: Engine, owner: str, settings: WorkerSettings):
        self.store, self.engine, self.owner, self.settings = store, engine, owner, settings
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.busy = 0
        self.processed = 0                      # claims settled by this pool (replica tests, status)
        self._busy_lock = threading.Lock()
        self.claim_error: str | None = None     # the database refused the last claim (None once it works again)
        # Items whose last attempt here failed, with why (oldest first): the status shows the
        # newest; an item's entry goes as soon as that item succeeds (the problem no longer holds).
        self._failing: dict[str, str] = {}
        self._in_hand: dict[str, Fence] = {}    # item ref → the claim a thread of this process works under
        self._hand_lock = threading.Lock()
        self._heartbeats: dict[str, float] = {}  # thread name -> monotonic time of its last loop turn

    def start(self) -> None:
        for n in range(self.settings.threads):
            t = threading.Thread(target=self._loop, name=f"worker-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        heartbeat = threading.Thread(target=self._heartbeat, name="claim-heartbeat", daemon=True)
        heartbeat.start()
        self._threads.append(heartbeat)

    @property
    def last_error(self) -> str | None:
        """The newest failure of an item that has not succeeded since (None: none)."""
        with self._hand_lock:
            return next(reversed(self._failing.values()), None)

    def _failed(self, claim: Claim, error: str) -> None:
        with self._hand_lock:
            self._failing.pop(str(claim.ref), None)
            self._failing[str(claim.ref)] = f"{claim.ref}: {error}"
            while len(self._failing) > 1000:   # bounded: the oldest go first
                self._failing.pop(next(iter(self._failing)))

    def _succeeded(self, claim: Claim) -> None:
        with self._hand_lock:
            earlier = self._failing.pop(str(claim.ref), None)
        if earlier is not None or claim.last_error or claim.attempts:
            log.info("item_recovered", item=str(claim.ref), attempts=claim.attempts,
                     error=claim.last_error or (earlier or "").partition(": ")[2])

    def _heartbeat(self) -> None:
        """Renew every claim in hand each third of the lease."""
        every = max(0.2, self.settings.lease_seconds / 3)
        while not self._stopping.wait(every):
            self.renew_in_hand()

    def renew_in_hand(self) -> None:
        """One heartbeat: renew every claim in hand; a claim found taken is marked lost. A claim
        found gone while its worker settles it is not: the heartbeat took its list before the
        worker completed it (a "claim_lost" warning every few seconds of a busy daemon said so)."""
        with self._hand_lock:
            fences = list(self._in_hand.values())
        for fence in fences:
            if fence.lost.is_set() or fence.settling.is_set():
                continue
            try:
                renewed = self.store.renew(fence.claim, self.settings.lease_seconds)
            except Exception as e:   # the database is down: the lease may run out; the writes check again
                log.warning("claim_renew_failed", item=str(fence.claim.ref), error=str(e))
                continue
            if renewed is None and not fence.settling.is_set():
                fence.lost.set()
                log.warning("claim_lost", item=str(fence.claim.ref), token=fence.claim.fence, action="renew")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; let every reconcile under way finish (its intents are recorded)."""
        self._stopping.set()
        self.wake.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def stalled_for(self) -> float:
        """Seconds since the slowest worker thread last went round its loop (0 before start):
        what feeds systemd's watchdog (a thread stuck in one item for long starves it)."""
        beats = list(self._heartbeats.values())
        return max(0.0, time.monotonic() - min(beats)) if beats else 0.0

    def _loop(self) -> None:
        owner = f"{self.owner}/{threading.current_thread().name}"
        found_work = False   # the last claim found some: the queue is likely not empty
        while not self._stopping.is_set():
            self._heartbeats[threading.current_thread().name] = time.monotonic()
            try:
                claims = self.store.claim(owner, 1, self.settings.lease_seconds, look_first=not found_work)
                found_work = bool(claims)
            except Exception as e:   # the database is down: say so, wait, try again
                self.claim_error = f"claim failed: {e}"
                log.error("claim_failed", error=str(e))
                self._stopping.wait(1.0)
                continue
            if self.claim_error is not None:
                log.info("claim_recovered")
                self.claim_error = None
            if not claims:
                self.wake.wait(self.settings.idle_wait)
                self.wake.clear()
                continue
            for claim in claims:
                try:
                    self.process(claim)
                except Exception as e:
                    # The claim could not even be settled (database gone mid-way): the thread
                    # must survive, and gives the item back as soon as the database answers.
                    self.claim_error = f"settle failed: {e}"
                    log.error("settle_failed", item=str(claim.ref), error=f"{type(e).__name__}: {e}")
                    self._give_back(claim, f"settle failed: {type(e).__name__}")

    def _give_back(self, claim: Claim, error: str) -> None:
        """Release the claim (due now) once the database is back, rather than leaving the
        item leased to nobody until its lease runs out. The release is fenced by the claim's
        token, so it is safe however late it comes: a claim taken over meanwhile is left to
        its new holder. (It used to stop trying once the lease it was *claimed* with had run
        out, but the heartbeat may have renewed the lease since: the item then sat leased to
        nobody for up to a lease after a database outage.)"""
        while not self._stopping.is_set():
            self._stopping.wait(1.0)
            try:
                self.store.defer(claim, 0.0, error)
                return
            except Exception:
                continue

    def process(self, claim: Claim) -> None:
        fence = Fence(claim, self.store.claim_current)
        with self._hand_lock:
            earlier = self._in_hand.get(str(claim.ref))
            if earlier is None:
                self._in_hand[str(claim.ref)] = fence
        if earlier is not None:
            # Another thread of this process still works on the item under a claim that ran out
            # (this claim took it over, so that one can no longer write): let it stop first.
            earlier.lost.set()
            log.warning("item_in_hand", item=str(claim.ref), token=claim.fence, earlier=earlier.claim.fence)
            self.store.defer(claim, 1.0, None)
            return
        try:
            with holding(fence):
                self._process(claim, fence)
        finally:
            with self._hand_lock:
                if self._in_hand.get(str(claim.ref)) is fence:
                    del self._in_hand[str(claim.ref)]

    def _process(self, claim: Claim, fence: Fence) -> None:
        with self._busy_lock:
            self.busy += 1
        started = time.monotonic()
        trigger = f"{claim.ref} ({claim.reason or 'dirty'})"
        outcome = Outcome(claim.ref)
        try:
            try:
                try:
                    with wait_limit(self.settings.lease_seconds * self.settings.max_wait_fraction):
                        self.engine.reconcile(claim.ref, outcome=outcome, reported=claim.stamp)
                finally:
                    fence.settling.set()   # whatever happened, the claim is settled next
            except Exception as e:
                # Writes that landed before the failure are done for good: the next attempt
                # finds them done and does not write (or record) them again.
                record_failed_history(self.store, outcome.writes, claim.ref, trigger, e, outcome.links)
                raise
            # The writes' history goes in with the completion: one commit.
            self.store.complete(claim, history_rows(self.store, outcome.writes, claim.ref, trigger, outcome.links))
            self._succeeded(claim)
            if outcome.writes and claim.dirty_since is not None:
                METRICS.lag(max(0.0, self.store.clock() - claim.dirty_since))
            if outcome.writes:
                log.info("item_reconciled", item=str(claim.ref), writes=len(outcome.writes),
                         seconds=round(time.monotonic() - started, 3))
        except Throttled as e:
            # Not sent: the wait was too long to sleep through holding the claim.
            self.store.defer(claim, max(0.0, e.not_before - time.time()), str(e))
            log.info("item_deferred", item=str(claim.ref), reason="throttled", retry_after=round(e.retry_after, 3),
                     scope=e.scope)
        except RateLimited as e:
            if not e.per_item:   # one busy ticket / issue is not the account's problem
                self._failed(claim, str(e))
            self.store.defer(claim, max(e.retry_after, 0.5), str(e))
            log.warning("item_deferred", item=str(claim.ref), reason="rate_limited", retry_after=e.retry_after,
                        scope=e.scope)
        except EscalationPending as e:
            self.store.defer(claim, 2.0, str(e))
        except ClaimLost as e:
            # Stopped before writing: the item stays dirty for whoever holds it now (if nobody
            # took it, its token is still on the row and it is given back due at once).
            log.warning("claim_lost", item=str(claim.ref), token=claim.fence, error=str(e))
            self.store.defer(claim, 0.0, None)
        except LinkBusy as e:
            # Another worker (maybe a stalled replica) holds the link: try again shortly, and
            # meanwhile work on something else.
            log.info("item_deferred", item=str(claim.ref), reason="link_busy", link=e.link_id)
            self.store.defer(claim, LINK_BUSY_DELAY, None)
        except StoreUnavailable as e:
            # The database, not the item, failed: no attempt counts towards the dead letters.
            self._failed(claim, str(e))
            self.store.defer(claim, backoff(self.settings)(1), f"{type(e).__name__}: {e}")
            log.warning("item_deferred", item=str(claim.ref), reason=e.reason)
        except Exception as e:
            self._failed(claim, str(e))
            dead = self.store.fail(claim, f"{type(e).__name__}: {e}", self.settings.max_attempts,
                                   backoff(self.settings))
            METRICS.inc("dead_letters" if dead else "item_failures")
            log.error("item_dead_lettered" if dead else "item_failed", item=str(claim.ref),
                      attempts=claim.attempts + 1, error=f"{type(e).__name__}: {e}")
        finally:
            with self._busy_lock:
                self.busy -= 1
                self.processed += 1
