"""Retention (issue 10, finding 6): housekeeping forgets settled intents' bodies, the
create intents the links now prove, processed inbox bodies and old delivery ids --
and a vendor redelivering every webhook afterwards doubles nothing (SQLite and Postgres)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from syncd.config import RetentionSettings
from syncd.retention import Housekeeper
from syncd.schema import inbox
from syncd.sandbox import World

from .conftest import comments_with, escalate, notes_with, wait_for


def _record_deliveries(world: World) -> list[tuple[Any, ...]]:
    """Every webhook the simulators send, so the test can send them all again later."""
    sent: list[tuple[Any, ...]] = []
    for sim in (world.zendesk, world.jira):
        original = sim.webhooks.send

        def send(url: str, body: bytes, headers: dict[str, str], _original=original, _sim=sim) -> None:
            sent.append((_sim, url, body, dict(headers)))
            _original(url, body, headers)
        sim.webhooks.send = send  # type: ignore[method-assign]
    return sent


def _ticket_comments(world: World, ticket: int) -> int:
    with world.zendesk.lock:
        return len(world.zendesk.tickets[ticket].comments)


def test_fault_pruning_then_redelivery_mirrors_nothing_twice(make_world, start_daemon, look_at):
    world = make_world()
    sent = _record_deliveries(world)
    daemon = start_daemon(world)
    look = look_at(world)
    ticket, key = escalate(world, look)
    world.zendesk.customer_reply(ticket, "Customer says it again.")
    world.jira.engineer_comment(key, "Engineer found the cause.")
    assert wait_for(lambda: comments_with(world, key, "Customer says it again.") == 1
                    and notes_with(world, ticket, "Engineer found the cause.") == 1, timeout=30)
    assert wait_for(lambda: daemon.store.queue_depth() == 0 and daemon.workers.busy == 0, timeout=20)
    store = daemon.store
    with store.transaction() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(inbox)) > 0
    on_ticket, on_issue = _ticket_comments(world, ticket), len(world.jira.issue(key).comments)

    # Everything settled is pruned at once: no body kept, no delivery id kept.
    keeper = Housekeeper(store, RetentionSettings(inbox_body_seconds=0, inbox_ids_hours=0, audit_days=0,
                                                  dead_letter_days=0), settle_seconds=0)
    time.sleep(0.05)
    pruned = keeper.run()
    assert pruned.inbox_ids > 0 and pruned.intents_deleted >= 1 and pruned.intents_slimmed >= 2, pruned
    assert store.get_intent(f"create:zendesk:{ticket}") is None, "the link proves the create: its intent goes"
    link = store.links_for_desk(__import__("syncd.domain", fromlist=["ItemRef"]).ItemRef("zendesk", str(ticket)))[0]
    kept = store.intents_for_link(link.id)
    assert kept and all("body" not in (i.payload or {}) and "claim" not in (i.payload or {}) for i in kept)
    assert all(i.state == "done" for i in kept)
    with store.transaction() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(inbox)) == 0

    # Every webhook of the test arrives again (the ids are forgotten: all are accepted).
    for sim, url, body, headers in list(sent):
        sim.webhooks.send(url, body, headers)
    for sim in (world.zendesk, world.jira):
        assert sim.webhooks.flush(20)
    assert wait_for(lambda: daemon.store.queue_depth() == 0 and daemon.workers.busy == 0, timeout=30)
    time.sleep(1.0)
    with store.transaction() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(inbox)) > 0, "no redelivery was accepted"
    assert _ticket_comments(world, ticket) == on_ticket, "a redelivery after pruning wrote to the ticket again"
    assert len(world.jira.issue(key).comments) == on_issue, "a redelivery after pruning wrote to the issue again"
    with world.jira.lock:
        assert len([i for i in world.jira.issues.values() if f"syncd-zendesk-{ticket}" in i.labels]) == 1

    # And the link keeps working after the prune: a new reply goes across once.
    world.zendesk.customer_reply(ticket, "One more after the prune.")
    assert wait_for(lambda: comments_with(world, key, "One more after the prune.") == 1, timeout=20)
    time.sleep(0.5)
    assert comments_with(world, key, "One more after the prune.") == 1


def test_fault_housekeeping_empties_only_processed_bodies(make_world, start_daemon, look_at):
    world = make_world()
    daemon = start_daemon(world)
    look = look_at(world)
    ticket, _ = escalate(world, look)
    assert wait_for(lambda: daemon.store.queue_depth() == 0 and daemon.workers.busy == 0, timeout=20)
    store = daemon.store
    # A delivery whose item is still waiting keeps its body, whatever its age.
    from syncd.domain import ItemRef
    store.accept_delivery("zendesk", "still-waiting", json.dumps({"x": 1}).encode(),
                          [ItemRef("zendesk", "999999")], delay=3600)
    time.sleep(0.05)
    Housekeeper(store, RetentionSettings(inbox_body_seconds=0), settle_seconds=0).run()
    with store.transaction() as conn:
        rows = {r.delivery_id: bytes(r.body) for r in conn.execute(sa.select(inbox.c.delivery_id, inbox.c.body))}
    assert rows["still-waiting"] != b""
    assert [d for d, b in rows.items() if d != "still-waiting" and b != b""] == [], "processed bodies kept"
