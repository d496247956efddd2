"""One account budget shared by everything that calls the account: every daemon
replica and every command (``links import``, ``reconcile --dry-run``, ``plan``…).

A :class:`~syncd.budget.Budget` paces one process. Two processes pacing
themselves each at the account's rate together make twice the rate, and the
vendor answers 429 (Zendesk's limit is a sliding minute per account). So every
holder takes its calls from a ledger in the database it already shares with
the others: ``budget_claims`` rows of (account, holder, time, calls). A holder
claims a *block* of a few calls at a time, in one transaction that sums the
calls claimed in the last ``span`` seconds and grants only what keeps that sum
within the account's ``requests_per_minute``. When a block ends (used up, or
older than ``block_seconds``), its row is lowered to the calls actually made,
so an idle holder does not keep budget it never used.

Why a ledger rather than registering holders and dividing the rate by their
number (``rpm / holders``, as ``[syncd] replicas`` did): the calls are shared by
use, not by head count. An import next to an idle daemon runs at the whole
account rate instead of half of it; a daemon that works while an import runs
gets its calls as soon as it needs them. And it is exact at every moment: a
holder joining or leaving changes nothing anyone must notice first, whereas
with division the old holders keep their larger share until their next
heartbeat, and the calls they made at that share stay in the vendor's sliding
minute for a minute after they lowered it.

Why the span is ``window + slack + block_seconds``: a block claimed at ``c`` has
its calls sent in ``[c, c + block_seconds]`` and they reach the vendor up to
``slack`` later. For any minute the vendor counts, every block whose calls fall
in it was claimed within ``span`` before the latest of them, and that claim saw
them all: so no vendor minute holds more than ``requests_per_minute`` calls.

Fairness: while the account's minute is less than ``crowded`` full, anyone
takes what it needs; above that, only a holder that used less than an equal
share of the holders active in the window may claim, so a bulk command cannot
starve the daemon (or the other way round) -- both progress.

Time is wall-clock time (``time.time``): the holders may be processes on
several hosts, whose clocks must agree (NTP), as the leases already require.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa
import structlog

from .budget import Budget, Permit, WaitTooLong, current_wait_limit
from .schema import budget_claims
from .store import Store
from .store_ports import StoreUnavailable

log = structlog.get_logger(__name__)

CLAIM_LOCK_SPACE = 0x62756467   # "budg": Postgres advisory lock space, one key per account


@dataclass(frozen=True)
class Grant:
    """What the ledger answered: ``calls`` granted in row ``row`` (0: none, try
    again at ``retry_at``)."""

    calls: int
    row: int | None
    retry_at: float


@dataclass(frozen=True)
class Ledger:
    """The ``budget_claims`` table of one account."""

    store: Store
    account: str
    limit: int            # calls in any ``span`` seconds, all holders together
    span: float
    crowded: float = 0.9

    def claim(self, holder: str, want: int, now: float) -> Grant:
        c = budget_claims.c
        with self.store.transaction() as conn:
            if conn.dialect.name == "postgresql":   # SQLite: the write transaction is BEGIN IMMEDIATE already
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:space, :key)"),
                             {"space": CLAIM_LOCK_SPACE, "key": zlib.crc32(self.account.encode()) & 0x7FFFFFFF})
            conn.execute(sa.delete(budget_claims).where(c.account == self.account, c.at < now - 2 * self.span))
            rows = conn.execute(sa.select(c.holder, c.at, c.calls)
                                .where(c.account == self.account, c.at > now - self.span)
                                .order_by(c.at)).all()
            granted, retry_at = self.decide(holder, want, now, [(r.holder, r.at, r.calls) for r in rows])
            if granted == 0:
                return Grant(0, None, retry_at)
            row = conn.execute(sa.insert(budget_claims).values(account=self.account, holder=holder, at=now,
                                                                calls=granted).returning(c.id)).scalar_one()
            return Grant(granted, row, now)

    def decide(self, holder: str, want: int, now: float,
               rows: list[tuple[str, float, int]]) -> tuple[int, float]:
        """Pure: how many of ``want`` calls ``holder`` gets now, given the window's
        claims (holder, time, calls; oldest first), and else when to ask again."""
        total = sum(calls for _, _, calls in rows)
        room = self.limit - total
        if room > 0:
            own = sum(calls for h, _, calls in rows if h == holder)
            active = len({h for h, _, _ in rows} | {holder})
            if total < self.crowded * self.limit or own < self.limit / active:
                return min(want, room), now
            return 0, now + 0.2   # crowded, and this holder had its share: the others first
        need, freed = 1 - room, 0   # calls that must age out of the window before one fits
        for _, at, calls in rows:
            freed += calls
            if freed >= need:
                return 0, at + self.span
        return 0, now + 0.2

    def settle(self, row: int, used: int) -> None:
        """The block in ``row`` ended with ``used`` calls made: the rest goes back."""
        with self.store.transaction() as conn:
            conn.execute(sa.update(budget_claims).where(budget_claims.c.id == row).values(calls=used))


@dataclass
class SharedBudget(Budget):
    """A :class:`Budget` (the process's own pacing, 429 gates and holds) whose every
    call also takes a slot of the account's :class:`Ledger`."""

    ledger: Ledger | None = None
    holder: str = ""
    block_seconds: float = 1.0
    wall: Callable[[], float] = field(default=time.time, repr=False)
    _block_row: int | None = field(default=None, init=False)
    _block_left: int = field(default=0, init=False)
    _block_used: int = field(default=0, init=False)
    _block_at: float = field(default=0.0, init=False)
    _ledger_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    ledger_waited: float = field(default=0.0, init=False)
    # While the database cannot be reached: this process's equal share, paced alone.
    fallback: Budget | None = None

    @property
    def block_size(self) -> int:
        # Half of what the account allows in a block's lifetime: few transactions at a high
        # rate, and little claimed ahead of need at a low one.
        return max(1, math.floor(self.per_minute / 60.0 * self.block_seconds / 2))

    def acquire(self, target: str | None = None, max_wait: float | None = None) -> Permit:
        permit = super().acquire(target, max_wait)
        try:
            self._take(max_wait if max_wait is not None else current_wait_limit())
        except BaseException:
            self.done(permit)
            raise
        return permit

    def _take(self, max_wait: float | None) -> None:
        assert self.ledger is not None
        try:
            self._take_from_ledger(max_wait)
        except StoreUnavailable as e:
            # The calls go on (an outage must not stop the vendor writes already decided)
            # at the share the replicas setting gives this process.
            log.warning("budget_ledger_unavailable", account=self.ledger.account, error=str(e))
            if self.fallback is not None:
                self.fallback.acquire(None, max_wait)

    def _take_from_ledger(self, max_wait: float | None) -> None:
        assert self.ledger is not None
        started = self.wall()
        with self._ledger_lock:
            while True:
                now = self.wall()
                if self._block_left > 0 and now - self._block_at <= self.block_seconds:
                    self._block_left -= 1
                    self._block_used += 1
                    return
                self._end_block()
                grant = self.ledger.claim(self.holder, self.block_size, now)
                if grant.calls:
                    self._block_row, self._block_left, self._block_used, self._block_at = \
                        grant.row, grant.calls, 0, now
                    continue
                wait = max(0.01, grant.retry_at - self.wall())
                if max_wait is not None and self.wall() + wait - started > max_wait:
                    raise WaitTooLong(self.wall() + wait - started, "account")
                self.ledger_waited += wait
                time.sleep(min(wait, 1.0))   # others may settle unused calls meanwhile

    def _end_block(self) -> None:
        row, left, used = self._block_row, self._block_left, self._block_used
        self._block_row, self._block_left, self._block_used = None, 0, 0
        if row is not None and left > 0:
            self.ledger.settle(row, used)   # type: ignore[union-attr]

    def close(self) -> None:
        """Give back what the current block did not use (a command ending)."""
        with self._ledger_lock:
            try:
                self._end_block()
            except StoreUnavailable:
                pass   # the block ages out of the window by itself


def shared_budget(store: Store, account: str, per_minute: float, holder: str, replicas: int = 1) -> SharedBudget:
    """The budget of ``account`` at its whole ``per_minute``, shared through ``store``
    with every other holder (``per_minute / replicas`` alone while the database is down)."""
    b = SharedBudget(per_minute, fallback=Budget(per_minute / replicas))
    b.ledger = Ledger(store, account, max(1, math.floor(per_minute)), b.window + b.slack + b.block_seconds)
    b.holder = holder
    return b
