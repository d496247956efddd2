"""One account budget shared by everything that calls the account: every daemon
replica and every command (``links import``, ``reconcile --dry-run``, ``plan``…).

A :class:`~syncd.budget.Budget` paces one process. Two processes pacing
themselves each at the account's rate together make twice the rate, and the
vendor answers 429 (Zendesk's limit is a sliding minute per account). So every
holder takes its calls from a ledger in the database it already shares with
the others: ``budget_claims`` rows of (account, holder, time, calls). A holder
claims a *block* of a few calls at a time, in one transaction that sums the
calls that may still be in the vendor's window (see below) and grants only what
keeps that sum within the account's ``requests_per_minute``. When a block ends (used up, or
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

Why a block counts for ``window + slack`` after its last call, and an open block
for ``window + slack + block_seconds`` after its claim: a block claimed at ``c``
has its calls sent in ``[c, c + block_seconds]``, each reaching the vendor up to
``slack`` later. When a block ends its row is given its last call's time; until
then its calls may come up to ``block_seconds`` after the claim. Every call
inside any minute the vendor counts is thus in a row the next claim counts, so
no vendor minute holds more than ``requests_per_minute`` calls -- and a settled
block stops counting as early as the process's own sliding window
(:class:`~syncd.budget.Budget`) lets its calls go, so the ledger costs no rate.

Why the next block is claimed before the current one runs out: the claim is a
database transaction, which waits behind the holder's other writes (an import
stores a link per candidate); were every thread to wait for it with an empty
block, the calls would stop each time. The thread that takes the call leaving a
quarter of the block claims the next one while the others use that quarter.

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
from typing import Callable, Sequence

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
    """What the ledger answered: ``calls`` granted in row ``row`` at ``at`` (0: none,
    ask again at ``retry_at``)."""

    calls: int
    row: int | None
    at: float
    retry_at: float


@dataclass(frozen=True)
class Ended:
    """A block that ended: ``used`` of its calls were made, the last at ``last_at``."""

    row: int
    used: int
    last_at: float


@dataclass(frozen=True)
class Ledger:
    """The ``budget_claims`` table of one account."""

    store: Store
    account: str
    limit: int               # calls in any vendor window, all holders together
    counted: float           # seconds a settled block counts after its last call (window + slack)
    open_counted: float      # seconds an open block counts after its claim (+ block_seconds)
    crowded: float = 0.9

    def claim(self, holder: str, want: int, now: float, ended: Sequence[Ended] = ()) -> Grant:
        """Settle ``ended`` and claim up to ``want`` calls, in one transaction."""
        c = budget_claims.c
        with self.store.transaction() as conn:
            if conn.dialect.name == "postgresql":   # SQLite: the write transaction is BEGIN IMMEDIATE already
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:space, :key)"),
                             {"space": CLAIM_LOCK_SPACE, "key": zlib.crc32(self.account.encode()) & 0x7FFFFFFF})
            for e in ended:
                conn.execute(sa.update(budget_claims).where(c.id == e.row).values(calls=e.used, last_at=e.last_at))
            conn.execute(sa.delete(budget_claims).where(c.account == self.account,
                                                        c.at < now - 2 * self.open_counted))
            rows = conn.execute(sa.select(c.holder, c.at, c.calls, c.last_at).where(
                c.account == self.account,
                sa.or_(sa.and_(c.last_at.is_(None), c.at > now - self.open_counted),
                       c.last_at > now - self.counted))).all()
            counted = [(r.holder, r.at + self.open_counted if r.last_at is None else r.last_at + self.counted,
                        r.calls) for r in rows]
            granted, retry_at = self.decide(holder, want, now, counted)
            if granted == 0:
                return Grant(0, None, now, retry_at)
            row = conn.execute(sa.insert(budget_claims).values(account=self.account, holder=holder, at=now,
                                                                calls=granted).returning(c.id)).scalar_one()
            return Grant(granted, row, now, now)

    def decide(self, holder: str, want: int, now: float,
               rows: Sequence[tuple[str, float, int]]) -> tuple[int, float]:
        """Pure: how many of ``want`` calls ``holder`` gets now, given the claims that
        still count (holder, when it stops counting, calls), and else when to ask again."""
        total = sum(calls for _, _, calls in rows)
        room = self.limit - total
        if room > 0:
            own = sum(calls for h, _, calls in rows if h == holder)
            active = len({h for h, _, calls in rows if calls} | {holder})
            if total < self.crowded * self.limit or own < self.limit / active:
                return min(want, room), now
            return 0, now + 0.2   # crowded, and this holder had its share: the others first
        need, freed = 1 - room, 0   # calls that must stop counting before one fits
        for _, until, calls in sorted(rows, key=lambda r: r[1]):
            freed += calls
            if freed >= need:
                return 0, until
        return 0, now + 0.2

    def settle(self, ended: Sequence[Ended]) -> None:
        if not ended:
            return
        c = budget_claims.c
        with self.store.transaction() as conn:
            for e in ended:
                conn.execute(sa.update(budget_claims).where(c.id == e.row).values(calls=e.used, last_at=e.last_at))


@dataclass
class _Block:
    row: int
    at: float
    calls: int
    used: int = 0
    last_at: float = 0.0

    def ended(self) -> Ended:
        return Ended(self.row, self.used, self.last_at or self.at)


@dataclass
class SharedBudget(Budget):
    """A :class:`Budget` (the process's own pacing, 429 gates and holds) whose every
    call also takes a slot of the account's :class:`Ledger`."""

    ledger: Ledger | None = None
    holder: str = ""
    block_seconds: float = 2.0
    wall: Callable[[], float] = field(default=time.time, repr=False)
    # While the database cannot be reached: this process's equal share, paced alone.
    fallback: Budget | None = None
    ledger_waited: float = field(default=0.0, init=False)
    claims: int = field(default=0, init=False)
    _block: _Block | None = field(default=None, init=False)
    _next: _Block | None = field(default=None, init=False)
    _ended: list = field(default_factory=list, init=False, repr=False)
    _claiming: bool = field(default=False, init=False)
    _retry_at: float = field(default=0.0, init=False)
    _ledger_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _ledger_changed: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._ledger_changed = threading.Condition(self._ledger_lock)

    @property
    def block_size(self) -> int:
        # What the account allows in a block's lifetime: a claim every block_seconds at
        # full rate, and little claimed ahead of need at a low one (unused calls go back).
        return max(1, math.floor(self.per_minute / 60.0 * self.block_seconds))

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
            with self._ledger_lock:
                self._claiming = False
                self._ledger_changed.notify_all()
            if self.fallback is not None:
                self.fallback.acquire(None, max_wait)

    def _usable(self, b: _Block | None, now: float) -> bool:
        return b is not None and b.used < b.calls and now - b.at <= self.block_seconds

    def _take_from_ledger(self, max_wait: float | None) -> None:
        started = self.wall()
        while True:
            with self._ledger_lock:
                now = self.wall()
                if self._next is not None and not self._usable(self._next, now):
                    self._ended.append(self._next.ended())   # aged before its turn: unused, given back
                    self._next = None
                if not self._usable(self._block, now) and self._usable(self._next, now):
                    self._retire()
                    self._block, self._next = self._next, None
                b = self._block
                if self._usable(b, now):
                    assert b is not None
                    b.used += 1
                    b.last_at = now
                    # The call leaving a quarter of the block claims the next one.
                    if self._claiming or self._next is not None or b.calls - b.used > b.calls // 4:
                        return
                    self._claiming, must_wait = True, False
                elif self._claiming:
                    self._wait_for_claim(started, max_wait)
                    continue
                else:
                    wait = self._retry_at - now
                    if wait > 0:
                        if max_wait is not None and now + wait - started > max_wait:
                            raise WaitTooLong(now + wait - started, "account")
                        self.ledger_waited += min(wait, 1.0)
                        self._ledger_changed.wait(min(wait, 1.0))
                        continue
                    self._claiming, must_wait = True, True
                self._retire_if_spent()
                ended, self._ended = self._ended, []
            self._claim(ended)
            if not must_wait:
                return

    def _wait_for_claim(self, started: float, max_wait: float | None) -> None:
        if max_wait is not None and self.wall() - started > max_wait:
            raise WaitTooLong(self.wall() - started, "account")
        self._ledger_changed.wait(0.5)

    def _retire(self) -> None:
        if self._block is not None:
            self._ended.append(self._block.ended())
        self._block = None

    def _retire_if_spent(self) -> None:
        if self._block is not None and not self._usable(self._block, self.wall()):
            self._retire()

    def _claim(self, ended: list[Ended]) -> None:
        assert self.ledger is not None
        try:
            grant = self.ledger.claim(self.holder, self.block_size, self.wall(), ended)
        except BaseException:
            with self._ledger_lock:
                self._claiming = False
                self._ledger_changed.notify_all()
            raise
        with self._ledger_lock:
            self.claims += 1
            self._claiming = False
            if grant.calls:
                if self._next is not None:
                    self._ended.append(self._next.ended())
                self._next = _Block(grant.row, grant.at, grant.calls)   # type: ignore[arg-type]
                self._retry_at = 0.0
            else:
                self._retry_at = grant.retry_at
            self._ledger_changed.notify_all()

    def close(self) -> None:
        """Give back what the open blocks did not use (a command ending)."""
        with self._ledger_lock:
            for b in (self._block, self._next):
                if b is not None:
                    self._ended.append(b.ended())
            self._block = self._next = None
            ended, self._ended = self._ended, []
        try:
            self.ledger.settle(ended)   # type: ignore[union-attr]
        except StoreUnavailable:
            pass   # the blocks stop counting by themselves


def shared_budget(store: Store, account: str, per_minute: float, holder: str, replicas: int = 1) -> SharedBudget:
    """The budget of ``account`` at its whole ``per_minute``, shared through ``store``
    with every other holder (``per_minute / replicas`` alone while the database is down)."""
    b = SharedBudget(per_minute, fallback=Budget(per_minute / replicas))
    b.ledger = Ledger(store, account, max(1, math.floor(per_minute)), counted=b.window + b.slack,
                      open_counted=b.window + b.slack + b.block_seconds)
    b.holder = holder
    return b
