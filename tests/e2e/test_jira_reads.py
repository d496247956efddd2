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
import sqlalchemy as sa

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


def poller(app: App, source: str):  # type: ignore[no-untyped-def]
    return next(p for p in app.pollers if p.source.name == source)


def resend(world: World, deliveries: list[Delivery], again: str = "") -> None:
    """Send held deliveries on (``again``: as Jira resends one, under a new delivery id)."""
    for d in deliveries:
        first = d.headers["X-Atlassian-Webhook-Identifier"]
        ident = first + again
        world.jira.delivery_secrets[ident] = world.jira.delivery_secrets[first]   # the webhook signs it
        world.jira.webhooks.send(d.url, d.body, {**d.headers, "X-Atlassian-Webhook-Identifier": ident})


# A Cloud comment_created delivery carries a partial issue (no updated, six fields): it
# cannot stand in for the read; jira:issue_updated carries every field and the comment.
@pytest.mark.parametrize("first, reads", [("jira:issue_updated", 0), ("comment_created", 1)])
def test_a_jira_comment_costs_at_most_one_read_of_the_issue(
        world: World, daemon: App, look: Observer, first: str, reads: int) -> None:
    j = world.jira
    ticket, key = escalated(world, daemon, look, f"Reports blank ({first})")
    deliveries = held_deliveries(world, lambda: j.engineer_comment(key, "Cache was stale, purged."))
    assert sorted(event(d) for d in deliveries) == ["comment_created", "jira:issue_updated"]
    deliveries.sort(key=lambda d: event(d) != first)
    before, notes = j.count("getIssue"), world.zendesk.count("UpdateTicket")

    # One after the other, each reconciled before the next arrives (the case that cost
    # two reads: arriving together, the two marks already made one reconcile).
    for d in deliveries:
        resend(world, [d])
        quiet(world, daemon)

    assert look.ticket_has(ticket, "Cache was stale, purged.", public=False)
    assert j.count("getIssue") == before + reads
    assert world.zendesk.count("UpdateTicket") == notes + 1


def test_a_delivery_older_than_what_syncd_holds_does_not_stand_in(
        world: World, daemon: App, look: Observer) -> None:
    """Jira resends late: a delivery showing the issue as it was before a later change
    must not take the place of the newer state (the ticket's status would go back)."""
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Exports fail")
    status = f"custom:{world.field_id(9002)}"   # the ticket's Jira status field
    old = held_deliveries(world, lambda: j.engineer_edit(key, {"labels": ["exports"]}))   # still To Do
    resend(world, old)
    quiet(world, daemon)
    j.engineer_transition(key, "In Progress")
    assert wait_for(lambda: look.ticket(ticket).fields.get(status) == "In Progress")
    quiet(world, daemon)
    reads = j.count("getIssue")

    resend(world, old, again="-again")
    quiet(world, daemon)
    assert world.jira.webhooks.results[-1].status == 200
    assert look.ticket(ticket).fields.get(status) == "In Progress"
    assert j.count("getIssue") == reads   # the newer delivery syncd holds stands in


def test_a_comment_whose_deliveries_were_lost_is_polled_though_a_later_delivery_stood_in(
        world: World, daemon: App, look: Observer) -> None:
    """A delivery's stand-in has the comments of an older read: one made in between, its
    deliveries lost, is missing there. The poll's answer counts the issue's comments, so
    the issue is queued and read (trusting the stand-in's stamp alone would lose it)."""
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Search slow")
    poller(daemon, "jira").poll_once()
    quiet(world, daemon)
    j.knobs.webhooks.drop = 1.0
    j.engineer_comment(key, "Index rebuilt overnight.")
    j.knobs.webhooks.drop = 0.0
    reads = j.count("getIssue")
    j.engineer_edit(key, {"labels": ["search"]})
    quiet(world, daemon)
    assert j.count("getIssue") == reads, "the edit's delivery was meant to stand in for the read"
    assert not look.ticket_has(ticket, "Index rebuilt overnight.", public=False)

    assert poller(daemon, "jira").poll_once() == 1
    assert wait_for(lambda: look.ticket_has(ticket, "Index rebuilt overnight.", public=False))


def test_a_mark_that_says_nothing_of_when_makes_the_issue_read(world: World, daemon: App, look: Observer) -> None:
    """A released version changes no issue's ``updated``: its reconcile must read the issue
    even though a stamped delivery for the same issue is queued with it."""
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Billing totals off")
    issue = ItemRef("jira", str(j.issue(key).id))
    resend(world, held_deliveries(world, lambda: j.engineer_comment(key, "Repro found.")))
    quiet(world, daemon)
    reads = j.count("getIssue")
    from syncd import queue
    with daemon.store.transaction() as conn:   # an old delivery's mark, and one without a stamp
        queue.mark_dirty(conn, [issue], "webhook:jira", 0.0, daemon.store.clock(), stamp=0.0)
        queue.mark_dirty(conn, [issue], "version_released", 0.0, daemon.store.clock())
    quiet(world, daemon)
    assert j.count("getIssue") == reads + 1


def test_the_echo_of_a_jira_write_is_not_read_again_when_its_delivery_shows_what_syncd_wrote(
        world: World, daemon: App, look: Observer) -> None:
    """syncd's write to the issue comes back as a delivery naming syncd (not queued). It
    shows the issue's fields right after the write: equal to the read syncd planned from
    plus what it wrote, so nobody changed a field in between, and the poll that finds
    the echo queues nothing. An engineer's edit made in between is read by the poll."""
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, daemon, look, "Logins slow")
    poller(daemon, "jira").poll_once()
    quiet(world, daemon)

    z.agent_set(ticket, priority="high")
    assert wait_for(lambda: (look.issue(key) or issue_none()).fields.get("priority") == "High")
    quiet(world, daemon)
    reads = j.count("getIssue")
    assert poller(daemon, "jira").poll_once() == 0
    quiet(world, daemon)
    assert j.count("getIssue") == reads

    # An echo showing a field syncd did not hold (an engineer's edit between syncd's read
    # and its write, whose own delivery was lost) proves nothing: the poll reads the issue.
    edits = j.count("editIssue")

    def write_priority() -> None:
        z.agent_set(ticket, priority="urgent")
        assert wait_for(lambda: j.count("editIssue") > edits)

    echo = held_deliveries(world, write_priority)
    assert echo, "syncd's write was meant to come back as a delivery"
    assert wait_for(lambda: (look.issue(key) or issue_none()).fields.get("priority") == "Highest")
    quiet(world, daemon)
    for d in echo:
        doc = json.loads(d.body)
        doc["issue"]["fields"]["labels"] = ["slow"]
        world.jira.webhooks.send(d.url, json.dumps(doc).encode(), d.headers)
    quiet(world, daemon)
    assert poller(daemon, "jira").poll_once() == 1
    quiet(world, daemon)


def issue_none():  # type: ignore[no-untyped-def]
    raise AssertionError("the issue is gone")


def test_a_delivered_comment_is_kept_until_a_reconcile_that_used_it_finishes(
        world: World, daemon: App, look: Observer) -> None:
    """The delivery that carried an engineer's comment stands in for the read; the first
    reconcile from it fails on the database (a Postgres restart, seen in
    tests/faults/test_fault_postgres_restart.py) before anything was written. Its retry
    must still see the comment: the delivery's comment was let go as soon as the stand-in
    was built, and the retry's stand-in (the older read's comments) had lost it for good
    (no poll here: pollers are off)."""
    j = world.jira
    ticket, key = escalated(world, daemon, look, "Uploads stall")
    deliveries = held_deliveries(world, lambda: j.engineer_comment(key, "Proxy buffer raised."))
    reads = j.count("getIssue")
    failed = fail_once(daemon, "FROM intents")

    resend(world, [d for d in deliveries if event(d) == "jira:issue_updated"])
    quiet(world, daemon)

    assert failed, "the database fault was meant to hit the reconcile"
    assert wait_for(lambda: look.ticket_has(ticket, "Proxy buffer raised.", public=False))
    assert j.count("getIssue") <= reads + 1


def fail_once(app: App, table: str) -> list[str]:
    """The daemon's next SELECT naming ``table`` fails as a restarting server fails it
    (the driver's own OperationalError); returns the statements it failed."""
    engine = app.store._engine   # the daemon's own engine: its connections are the ones to fail
    failed: list[str] = []
    dbapi = engine.dialect.loaded_dbapi

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not failed and statement.lstrip().upper().startswith("SELECT") and table in statement:
            failed.append(statement)
            raise dbapi.OperationalError("server closed the connection unexpectedly")

    sa.event.listen(engine, "before_cursor_execute", before)
    return failed
