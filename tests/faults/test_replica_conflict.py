"""A change must not be lost after a ``write_conflict`` (issue 10, finding 8).

Two replicas share a store; each remembers what it last saw of each side of a link
(``syncd.snapshots``), valid while the link's base revision is unchanged. Replica A
reconciles the issue (an engineer's comment and a status change) and Zendesk refuses
its safe update with 409: nothing of the plan is written, the desk item is queued.
On main the issue's own queue row was then completed (deleted) and the base revision
stayed as it was, so replica B, reconciling the desk item with its remembered (now
stale) issue, saw nothing to do: the comment and the status never reached the ticket,
with an empty queue. A reconcile that could not finish must leave its item dirty, and
what every replica remembers of the link must stop counting.

The two replicas are driven step by step (claim, reconcile, settle) through the real
worker code, on SQLite and Postgres.
"""

from __future__ import annotations

import dataclasses

from syncd.testing import Observer
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sim.core import Fault
from syncd.worker import WorkerPool

from .conftest import notes_with


def _replica(world, name: str) -> App:
    settings = world.settings()
    return App.build(dataclasses.replace(settings, core=dataclasses.replace(settings.core, instance=name)))


def _work_one(app: App, owner: str) -> object | None:
    """One claim of ``app``'s, processed by its real worker code; the claim's ref or None."""
    pool: WorkerPool = app.workers
    claims = app.store.claim(owner, 1, 30)
    for claim in claims:
        pool.process(claim)
    return claims[0].ref if claims else None


def _drain(apps: list[App], limit: int = 40) -> list[object]:
    done = []
    for n in range(limit):
        app = apps[n % len(apps)]
        ref = _work_one(app, f"{app.owner}/w")
        if ref is None and app.store.queue_depth() == 0:
            return done
        done.append(ref)
    raise AssertionError(f"queue never drained: {done}")


def test_replica_write_conflict_leaves_the_change_to_do(make_world):
    world = make_world()
    for sim in (world.zendesk, world.jira):
        sim.knobs.webhooks.drop = 1.0   # no daemon listens: the test queues items itself
    a, b = _replica(world, "a"), _replica(world, "b")
    try:
        ticket = world.zendesk.create_ticket("Checkout fails", "Paying by card fails.")
        world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
        desk = ItemRef("zendesk", str(ticket))
        a.store.mark_dirty([desk], "test")
        _drain([a])
        (link,) = a.store.links_for_desk(desk)
        issue = ItemRef("jira", link.issue_id)
        # Both replicas have seen the link settled (and remember both sides at its revision).
        for app in (a, b):
            app.store.mark_dirty([desk, issue], "test")
            _drain([app])

        world.jira.engineer_comment(link.issue_key, "Found the cause (conflict-comment).")
        world.jira.engineer_transition(link.issue_key, "In Progress")
        world.zendesk.inject(Fault("status", operation="UpdateTicket", status=409, count=1))
        a.store.mark_dirty([issue], "webhook:jira")
        assert _work_one(a, "a/w") == issue   # A: Zendesk refuses the safe update (write_conflict)
        _drain([b, a])                          # whatever is left, B first (it remembers the issue)

        assert notes_with(world, ticket, "conflict-comment") == 1, "the engineer's comment was lost"
        shown = Observer(world).ticket(ticket).fields.get(f"custom:{world.field_id(9002)}")
        assert shown == "In Progress", f"the ticket shows Jira status {shown!r} while the issue is In Progress"
    finally:
        for app in (a, b):
            app.store.close()
