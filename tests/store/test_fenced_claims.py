"""Fenced claims (issue 10, findings 1-2 and 8): every claim carries a fencing token unique
for its item, a holder can prove its claim still stands, a heartbeat renews it, and an
intent belongs to the claim that recorded it. On SQLite and Postgres."""

from __future__ import annotations

from syncd.domain import ItemRef
from syncd.sim.core import Clock
from syncd.store import Store

Z1 = ItemRef("zendesk", "1")


def test_fence_grows_with_every_claim_and_outlives_the_queue_row(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook")
    (first,) = store.claim("w1", 1, 30)
    store.complete(first)
    assert store.queue_depth() == 0
    store.mark_dirty([Z1], "webhook")   # the row is made again: its token must not start over
    (second,) = store.claim("w1", 1, 30)
    assert second.fence > first.fence
    assert not store.claim_current(first) and store.claim_current(second)
    store.complete(first)               # a stale holder's completion deletes nothing
    assert store.queue_depth() == 1
    store.complete(second)
    assert store.queue_depth() == 0


def test_a_claim_taken_over_is_no_longer_current_and_cannot_be_renewed(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook")
    (old,) = store.claim("w1", 1, 30)
    assert store.claim_current(old)
    clock.advance(20)
    assert store.renew(old, 30) is not None       # the heartbeat: still 30 s from now
    clock.advance(20)
    assert store.claim_current(old) and store.claim("w2", 1, 30) == []
    clock.advance(31)
    assert not store.claim_current(old)           # run out: no write may rely on it
    (new,) = store.claim("w2", 1, 30)
    assert new.fence > old.fence
    assert store.renew(old, 30) is None           # taken: the old holder learns it lost the item
    store.defer(old, 0.0, "late")                 # and cannot give it back either
    assert store.claim_current(new)
    store.mark_dirty([Z1], "webhook")             # new dirt while the new holder works
    store.complete(old)
    store.complete(new)
    assert store.queue_depth() == 1, "completion deleted dirt that arrived after the claim"


def test_an_intent_belongs_to_the_claim_that_recorded_it(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook")
    (a,) = store.claim("w1", 1, 5)
    begun = store.begin_intent("create:zendesk:1", "create", None, {"origin": "zendesk:1"}, claim=a)
    assert begun.owned and begun.intent.owned_by(a)
    clock.advance(6)
    (b,) = store.claim("w2", 1, 5)
    again = store.begin_intent("create:zendesk:1", "create", None, {"origin": "zendesk:1"}, claim=b)
    assert not again.owned, "a second claim was told it owns an intent another claim recorded"
    assert store.take_intent(again.intent, b)                   # b takes it over (a's write not found)
    assert not store.take_intent(again.intent, a), "two takers both won the intent"
    assert not store.drop_intent("create:zendesk:1", a)         # a no longer owns it
    taken = store.get_intent("create:zendesk:1")
    assert taken is not None and taken.owned_by(b) and taken.state == "pending"
    assert store.drop_intent("create:zendesk:1", b)


def test_takeover_at_start_frees_the_dead_process_claims_and_poll_leases(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook")
    (dead,) = store.claim("old:1/worker-0", 1, 60)
    assert store.acquire_lease("poll:jira", "old:1", 90) is not None
    assert store.claim("new:2/worker-0", 1, 60) == []
    assert store.take_over_dead_process() == (1, 1)
    (mine,) = store.claim("new:2/worker-0", 1, 60)
    assert mine.fence > dead.fence and not store.claim_current(dead)
    assert store.acquire_lease("poll:jira", "new:2", 90) is not None


def test_housekeeping_forgets_idle_counters_and_the_next_token_is_still_larger(store: Store, clock: Clock) -> None:
    # Issue 10, retention: claim_fences kept a row for every item ever claimed (every
    # ticket that ever got a webhook). A week-idle, clean item's counter is forgotten;
    # the token's time floor keeps the next claim's token above every earlier one.
    from syncd.config import RetentionSettings
    from syncd.queue import FENCE_KEEP_SECONDS
    from syncd.retention import Housekeeper

    z2, z3 = ItemRef("zendesk", "2"), ItemRef("zendesk", "3")
    store.mark_dirty([Z1, z2, z3], "webhook")
    claims = {c.ref: c for c in store.claim("w1", 3, 30)}
    for ref in (Z1, z2):
        store.complete(claims[ref])
    begun = store.begin_intent("note:zendesk:3", "note", None, {"side": "desk", "body": "x"}, claim=claims[z3])
    assert begun.owned
    store.complete(claims[z3])                      # its pending intent keeps its counter
    store.mark_dirty([z2], "webhook")               # dirty again: its counter is kept too
    clock.advance(FENCE_KEEP_SECONDS + 60)
    keeper = Housekeeper(store, RetentionSettings(), settle_seconds=60)
    assert keeper.run().fences == 1
    assert keeper.run().fences == 0
    store.mark_dirty([Z1], "webhook")
    (again,) = [c for c in store.claim("w1", 3, 30) if c.ref == Z1]
    assert again.fence > claims[Z1].fence
    assert not store.claim_current(claims[Z1])


def test_the_heartbeat_marks_a_taken_claim_lost_but_not_one_its_worker_is_settling(store: Store, clock: Clock) -> None:
    """A heartbeat that took its list of claims just before a worker completed one found
    that claim gone and warned "claim_lost" (every few seconds on a busy daemon)."""
    from structlog.testing import capture_logs

    from syncd.fencing import Fence
    from syncd.worker import WorkerPool, WorkerSettings

    pool = WorkerPool(store, None, "t", WorkerSettings(lease_seconds=30))   # type: ignore[arg-type]
    store.mark_dirty([Z1], "webhook")
    (done,) = store.claim("t/worker-0", 1, 30)
    settled = Fence(done, store.claim_current)
    pool._in_hand[str(Z1)] = settled
    settled.settling.set()   # the reconcile is over: the worker settles the claim now
    store.complete(done)
    with capture_logs() as logs:
        pool.renew_in_hand()
    assert not settled.lost.is_set() and not [e for e in logs if e["event"] == "claim_lost"], logs

    store.mark_dirty([Z1], "webhook")
    (taken,) = store.claim("t/worker-0", 1, 30)
    working = Fence(taken, store.claim_current)
    pool._in_hand[str(Z1)] = working
    clock.advance(31)
    store.claim("other/worker-0", 1, 30)   # its lease ran out: another holder took the item
    with capture_logs() as logs:
        pool.renew_in_hand()
    assert working.lost.is_set()
    assert [e["item"] for e in logs if e["event"] == "claim_lost"] == [str(Z1)]
