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
from syncd.sandbox import World

from .conftest import SQLITE_ONLY, notes_with, wait_for

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


@SQLITE_ONLY
def test_replica_two_workers_of_one_process_never_work_one_item(make_world, logs):
    """A lease that runs out mid-reconcile inside one process (no heartbeat here: the
    claims are taken by hand with a 1 s lease): a second worker of the process that
    claims the item must not work on it beside the first. It gives the item back; the
    first one, whose claim was taken, stops before writing; one issue in the end."""
    import dataclasses
    import threading

    from syncd.runtime import App

    world = make_world()
    for sim in (world.zendesk, world.jira):
        sim.knobs.webhooks.drop = 1.0   # nobody listens: the test queues the item itself
    settings = world.settings()
    app = App.build(dataclasses.replace(settings, core=dataclasses.replace(settings.core, instance="one")))
    try:
        ticket = world.zendesk.create_ticket("Checkout fails", "Paying by card fails.")
        world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
        ref = ItemRef("zendesk", str(ticket))
        world.zendesk.inject(Fault("timeout", operation="ShowTicket", stall=3.0, count=1))
        app.store.mark_dirty([ref], "test")
        (first,) = app.store.claim("one/worker-0", 1, 1.0)
        worker = threading.Thread(target=app.workers.process, args=(first,))
        worker.start()
        assert wait_for(lambda: app.store.clock() > first.lease_expires + 0.2, timeout=5)
        (second,) = app.store.claim("one/worker-1", 1, 30.0)   # the lease ran out: claimable again
        app.workers.process(second)
        reads_meanwhile = world.zendesk.count("ShowTicket")
        worker.join(30)
        assert reads_meanwhile == 0, "a second worker of the process read the item while the first still worked on it"
        for _ in range(10):   # whatever is left, by one worker
            claims = app.store.claim("one/worker-1", 1, 30.0)
            for claim in claims:
                app.workers.process(claim)
            if app.store.queue_depth() == 0:
                break
            time.sleep(1.1)
        assert len(issues_for_origin(world, str(ref))) == 1
        assert notes_with(world, ticket, "Escalated to Jira:") == 1
    finally:
        app.store.close()
