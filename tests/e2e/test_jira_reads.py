"""Jira reads (issue 16): an event older than what syncd already read of the issue costs
no second read, and one that is newer (or says nothing of when) always does.

A Jira comment fires two deliveries, ``jira:issue_updated`` (``issue_commented``) and
``comment_created``; each says when the change was made (the issue's ``updated``, the
comment's ``updated``). The queue keeps the newest such stamp of an item's marks
(NULL once a mark says nothing: a poll, a released version, syncd's own queueing), and
the engine skips the read when it already holds a read of the issue that new.
Counted at the simulator; real daemon, real jira/zenpy over HTTP, SQLite and Postgres.
"""

from __future__ import annotations

import json

import pytest

from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World
from syncd.sim.webhook_sender import Delivery
from syncd.testing import Observer, quiet, ticket_key, wait_for


def escalated(world: World, daemon: App, look: Observer, subject: str) -> tuple[int, str]:
    ticket = world.zendesk.create_ticket(subject, "Something is broken.", tags=["jira_escalate"])
    key = wait_for(lambda: ticket_key(look, world, ticket))
    assert isinstance(key, str)
    quiet(world, daemon)
    # syncd's own writes (the escalation's) leave no read of the issue it may trust:
    # one reconcile from a read, as a poll would cause.
    daemon.store.mark_dirty([ItemRef("jira", str(world.jira.issue(key).id))], "test")
    quiet(world, daemon)
    return ticket, key


def held_deliveries(world: World, act) -> list[Delivery]:  # type: ignore[no-untyped-def]
    """What Jira sends for ``act()``, held back so the test sends it on itself."""
    sender = world.jira.webhooks
    world.jira.knobs.webhooks.paused = True
    act()
    held = sender.take_held()
    world.jira.knobs.webhooks.paused = False
    return held


def event(d: Delivery) -> str:
    return str(json.loads(d.body)["webhookEvent"])


@pytest.mark.parametrize("first", ["jira:issue_updated", "comment_created"])
def test_a_jira_comment_costs_one_read_of_the_issue_whichever_delivery_comes_first(
        world: World, daemon: App, look: Observer, first: str) -> None:
    j = world.jira
    ticket, key = escalated(world, daemon, look, f"Reports blank ({first})")
    deliveries = held_deliveries(world, lambda: j.engineer_comment(key, "Cache was stale, purged."))
    assert sorted(event(d) for d in deliveries) == ["comment_created", "jira:issue_updated"]
    deliveries.sort(key=lambda d: event(d) != first)
    reads, notes = j.count("getIssue"), world.zendesk.count("UpdateTicket")

    # One after the other, each reconciled before the next arrives (the case that cost
    # two reads: arriving together, the two marks already made one reconcile).
    for d in deliveries:
        j.webhooks.send(d.url, d.body, d.headers)
        quiet(world, daemon)

    assert look.ticket_has(ticket, "Cache was stale, purged.", public=False)
    assert j.count("getIssue") == reads + 1, "the second delivery of one Jira comment read the issue again"
    assert world.zendesk.count("UpdateTicket") == notes + 1


def test_a_change_newer_than_the_read_syncd_holds_is_read(world: World, daemon: App, look: Observer) -> None:
    """Trusting the delivery blindly (skipping the read because syncd holds *a* read of the
    issue) would miss the change; its stamp is newer than that read, so it is read."""
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Exports fail")
    reads = j.count("getIssue")
    j.engineer_transition(key, "In Progress")
    status = f"custom:{world.field_id(9002)}"   # the ticket's Jira status field
    assert wait_for(lambda: look.ticket(ticket).fields.get(status) == "In Progress")
    quiet(world, daemon)
    assert j.count("getIssue") == reads + 1

    # A delivery that repeats an old change (stamp older than the read now held) reads nothing.
    old = held_deliveries(world, lambda: j.engineer_comment(key, "Looking into it."))
    for d in old:
        j.webhooks.send(d.url, d.body, d.headers)
    quiet(world, daemon)
    reads = j.count("getIssue")
    for d in old:   # Jira resends (a new delivery id: not a duplicate to the inbox)
        j.webhooks.send(d.url, d.body, {**d.headers, "X-Atlassian-Webhook-Identifier": d.headers[
            "X-Atlassian-Webhook-Identifier"] + "-again"})
    quiet(world, daemon)
    assert j.count("getIssue") == reads


def test_a_mark_that_says_nothing_of_when_makes_the_issue_read(world: World, daemon: App, look: Observer) -> None:
    """A released version changes no issue's ``updated``: its reconcile must read the issue
    even though a stamped delivery for the same issue is queued with it."""
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Billing totals off")
    issue = ItemRef("jira", str(j.issue(key).id))
    deliveries = held_deliveries(world, lambda: j.engineer_comment(key, "Repro found."))
    for d in deliveries:
        j.webhooks.send(d.url, d.body, d.headers)
    quiet(world, daemon)
    reads = j.count("getIssue")
    # The same (already carried) deliveries again, and a mark without a stamp with them.
    with daemon.store.transaction() as conn:
        from syncd import queue
        queue.mark_dirty(conn, [issue], "webhook:jira", 0.0, daemon.store.clock(), stamp=0.0)
        queue.mark_dirty(conn, [issue], "version_released", 0.0, daemon.store.clock())
    quiet(world, daemon)
    assert j.count("getIssue") == reads + 1
