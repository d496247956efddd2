"""Several replicas on one Postgres schema: they share the work, never write one
link at the same time, keep one active poller per source (a stalled former
leader is fenced off), and finish a dead replica's claims once its lease ends."""

from __future__ import annotations

import time

import pytest

from syncd.domain import ItemRef
from syncd.sim.core import Fault
from syncd.store import Store

from .conftest import comments_with, notes_with, wait_for
from .test_fault_budget import _escalate_many

pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                     indirect=True)


def test_replica_three_share_a_burst_without_duplicate_writes(make_world, start_daemon):
    world = make_world(workers=3)
    replicas = [start_daemon(world, instance="r1"), start_daemon(world, instance="r2", serve_http=False),
                start_daemon(world, instance="r3", serve_http=False)]
    pairs = _escalate_many(world, 3)
    (hot_ticket, hot_key) = pairs[0]

    # A burst on both sides of one link (its ticket and its issue get claimed by different
    # replicas: the link lock must serialise them), plus traffic on the other links.
    for i in range(6):
        world.zendesk.customer_reply(hot_ticket, f"Customer {i}.")
        world.jira.engineer_comment(hot_key, f"Engineer {i}.")
    for t, k in pairs[1:]:
        world.zendesk.customer_reply(t, f"Other {t}.")

    assert wait_for(lambda: all(comments_with(world, hot_key, f"Customer {i}.") == 1 for i in range(6))
                    and all(notes_with(world, hot_ticket, f"Engineer {i}.") == 1 for i in range(6)), timeout=30)
    assert wait_for(lambda: all(comments_with(world, k, f"Other {t}.") == 1 for t, k in pairs[1:]))
    assert wait_for(lambda: replicas[0].store.queue_depth() == 0, timeout=15)
    time.sleep(0.5)
    for i in range(6):
        assert comments_with(world, hot_key, f"Customer {i}.") == 1
        assert notes_with(world, hot_ticket, f"Engineer {i}.") == 1
    assert sum(1 for r in replicas if r.workers.processed > 0) >= 2, [r.workers.processed for r in replicas]
    leaders = {p.source.name: [r.owner for r in replicas for q in r.pollers if q.source.name == p.source.name
                               and q.leader] for p in replicas[0].pollers}
    assert all(len(owners) == 1 for owners in leaders.values()), leaders


def test_replica_stalled_poll_leader_is_replaced_and_fenced(make_world, start_daemon, logs):
    world = make_world(jira_poll=1, lease_seconds=5)      # poll lease: max(lease, 3 polls) = 5 s
    a = start_daemon(world, instance="a")
    assert wait_for(lambda: a.pollers[0].leader, timeout=5)
    b = start_daemon(world, instance="b", serve_http=False)
    time.sleep(1.5)
    assert not b.pollers[0].leader, "two jira pollers active at once"

    # The leader's next poll stalls for longer than its lease.
    for op in ("searchAndReconsileIssuesUsingJql", "searchAndReconsileIssuesUsingJqlPost"):
        world.jira.inject(Fault("timeout", operation=op, stall=7.0, count=1))
    assert wait_for(lambda: b.pollers[0].leader, timeout=10), "nobody took over the stalled leader's source"
    fenced = wait_for(lambda: [e for e in logs.named("poll_failed") if "Fenced" in e["error"]], timeout=10)
    assert fenced and fenced[0]["source"] == "jira", "the stalled leader advanced the cursor after losing its lease"
    assert a.pollers[0].last_error and "Fenced" in a.pollers[0].last_error

    # Work still flows through the new leader: an engineer comment (its webhook dropped) arrives by poll.
    (ticket, key), = _escalate_many(world, 1)
    world.jira.knobs.webhooks.drop = 1.0
    world.jira.engineer_comment(key, "Only the poller saw this.")
    assert wait_for(lambda: notes_with(world, ticket, "Only the poller saw this.") == 1, timeout=15)


def test_replica_killed_with_claims_is_taken_over_within_the_lease(make_world, start_daemon, db_url):
    lease = 5   # the shortest the config allows
    world = make_world(lease_seconds=lease)
    first = start_daemon(world, instance="r1")
    pairs = _escalate_many(world, 3)
    world.jira.webhooks.flush()
    world.zendesk.webhooks.flush()
    assert wait_for(lambda: first.store.queue_depth() == 0, timeout=10)
    first.stop()

    # Replica r0 claims the three items, then dies (kill -9: nothing settled, nothing released).
    refs = [ItemRef("zendesk", str(t)) for t, _ in pairs]
    for t, _ in pairs:
        world.zendesk.customer_reply(t, f"Claimed by the dead replica {t}.")
    dead = Store.open(db_url)
    try:
        dead.mark_dirty(refs, "webhook:zendesk")
        claimed = dead.claim("r0/worker-0", 10, lease)
        died_at = time.monotonic()
        assert {c.ref for c in claimed} == set(refs)
    finally:
        dead.close()

    survivors = [start_daemon(world, instance="r2"), start_daemon(world, instance="r3", serve_http=False)]
    # Before the lease ends nobody may take the claims. Starting two daemons can itself take
    # most of the lease on a busy machine: look while at least a second of it is left.
    # (The full suite at load ~20 once looked after the lease had run out.)
    left = died_at + lease - 1.0 - time.monotonic()
    if left > 0:
        time.sleep(min(left, lease / 2))
        owners = _owners(survivors[0].store, refs)
        if time.monotonic() < died_at + lease:
            assert owners == {"r0/worker-0"}, "a live replica took a claim before its lease ended"
    assert wait_for(lambda: not _owners(survivors[0].store, refs), timeout=lease + 5)
    took = time.monotonic() - died_at
    assert took <= lease + 4, f"took {took:.1f}s with a {lease}s lease"
    assert wait_for(lambda: all(comments_with(world, k, f"Claimed by the dead replica {t}.") == 1 for t, k in pairs),
                    timeout=10)
    assert wait_for(lambda: survivors[0].store.queue_depth() == 0, timeout=10)
    for t, k in pairs:
        assert comments_with(world, k, f"Claimed by the dead replica {t}.") == 1


def _owners(store: Store, refs: list[ItemRef]) -> set[str | None]:
    """Lease owners of the queue rows of ``refs`` still present."""
    return set(store.lease_owners(refs).values())
