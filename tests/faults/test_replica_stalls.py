"""A reconcile that stalls longer than its lease (issue 10, finding 1).

A 429 for one Zendesk call with a ``Retry-After`` longer than the lease pauses the
process's whole Zendesk budget (what main did with a per-ticket limit); the worker
escalating another ticket then waits on that budget while holding its claim. Its
lease must not run out under it (the heartbeat renews it), and should another
worker get the item anyway, only the holder of the current claim may create the
issue: exactly one issue, one link, one escalation note. On SQLite and Postgres.
"""

from __future__ import annotations

import time

from syncd.connectors.jira import origin_label
from syncd.domain import ItemRef
from syncd.sim.core import Fault
from syncd.sim.world import World

from .conftest import notes_with, wait_for

def issues_for_origin(world: World, origin: str) -> list[int]:
    """Jira issues carrying the origin's label, as a person searching Jira would see them."""
    label = origin_label(origin)
    with world.jira.lock:
        return sorted(i.id for i in world.jira.issues.values() if label in i.labels)


LEASE = 5
PAUSE = 17.0   # > 3 leases: on main three more workers claimed the waiting ticket


def test_replica_long_stall_on_the_budget_makes_one_issue(make_world, start_daemon, logs):
    world = make_world(lease_seconds=LEASE, workers=6, rpm={"zendesk": 60000})
    app = start_daemon(world)
    other = world.zendesk.create_ticket("Unrelated", "Someone else's question.")
    ticket = world.zendesk.create_ticket("Checkout fails", "Paying by card fails.")

    # One fetch answered 429 with a Retry-After of several leases: the budget pauses.
    world.zendesk.inject(Fault("429", operation="ShowTicket", retry_after=PAUSE, count=1))
    app.store.mark_dirty([ItemRef("zendesk", str(other))], "test")
    assert wait_for(lambda: any(r.status == 429 for r in world.zendesk.records()), timeout=10)
    paused_at = time.monotonic()
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])   # its worker now waits on the budget

    origin = f"zendesk:{ticket}"
    assert wait_for(lambda: issues_for_origin(world, origin) and app.store.links_for_desk(ItemRef.parse(origin))
                    and notes_with(world, ticket, "Escalated to Jira:") >= 1, timeout=PAUSE + 40)
    # Past the pause and a few leases more: whatever a second holder would do, it has done.
    time.sleep(max(0.0, paused_at + PAUSE + 2 * LEASE - time.monotonic()))
    assert wait_for(lambda: app.store.queue_depth() == 0, timeout=30)
    issues = issues_for_origin(world, origin)
    links = app.store.links_for_desk(ItemRef.parse(origin))
    assert len(issues) == 1, f"{len(issues)} Jira issues for one ticket: {issues}"
    assert [l.issue_id for l in links] == [str(issues[0])]
    assert notes_with(world, ticket, "Escalated to Jira:") == 1
