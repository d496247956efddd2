"""Comments between Intercom and Jira (issue 4, point 3): customer replies →
Jira comments with author and time; Jira comments → admin notes by syncd's
admin; ``#public`` → a reply the customer sees. No echo, no duplicates."""

from __future__ import annotations

import re

from syncd.testing import Observer, Teammate, quiet, wait_for
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World


def escalated(world: World, look: Observer, body: str) -> tuple[ItemRef, str]:
    ic = world.intercom
    ref = ItemRef("intercom:conversation", ic.create_conversation(ic.first_contact_id(), body))
    Teammate(world).tag(ref.id, "jira_escalate")
    key = wait_for(lambda: look.intercom_key(ref))
    assert isinstance(key, str)
    return ref, key


def test_comments_flow_both_ways_once_without_echo(world: World, daemon: App, look: Observer) -> None:
    ic, j = world.intercom, world.jira
    ref, key = escalated(world, look, "The dashboard shows yesterday's numbers")
    teammate = Teammate(world)

    ic.customer_reply(ref.id, "Still wrong after a refresh.")
    assert wait_for(lambda: look.issue_has(key, "Still wrong after a refresh."))
    mirrored = next(c for c in look.issue(key).comments if "Still wrong" in c.body)   # type: ignore[union-attr]
    assert re.match(rf"Carol Customer wrote on {ref} at \d{{4}}-\d\d-\d\dT\d\d:\d\dZ:\n", mirrored.body)

    ic.admin_note(ref.id, teammate.admin_id, "Internal: customer is on the Pro plan")   # stays in Intercom
    j.engineer_comment(key, "Cache invalidation is broken; fixing.")
    assert wait_for(lambda: look.intercom_has(ref, "Cache invalidation is broken; fixing.", public=False))
    note = look.intercom_parts(ref, "Cache invalidation")[0]
    assert note.by_integration and note.body.startswith(f"Erin Engineer commented on {key} at ")

    j.engineer_comment(key, "#public The fix ships tomorrow.")
    assert wait_for(lambda: look.intercom_has(ref, "The fix ships tomorrow.", public=True))
    reply = look.intercom_parts(ref, "The fix ships tomorrow.")[0]
    assert reply.by_integration and "#public" not in reply.body

    quiet(world, daemon, settle=0.5)
    issue = look.issue(key)
    assert issue is not None and len(issue.comments) == 3       # the reply + two engineer comments
    assert not any("Pro plan" in c.body or "Escalated to Jira" in c.body for c in issue.comments)
    conv = look.conversation(ref.id)
    assert sum(1 for c in conv.comments if c.by_integration) == 3   # escalation note, note, reply
    assert j.count("addComment") == 1


def test_ticket_comments_flow_both_ways(world: World, daemon: App, look: Observer) -> None:
    ic, j = world.intercom, world.jira
    key = j.engineer_create("SUP", "PDF export cut off")
    ref = ItemRef("intercom:ticket", ic.create_ticket(ic.first_contact_id(), "PDF cut off", "Page 2 missing"))
    daemon.engine.link(ref, key)
    daemon.store.mark_dirty([ref], "test")
    ic.ticket_customer_reply(ref.id, "Page 3 too.")
    assert wait_for(lambda: look.issue_has(key, "Page 3 too."))
    j.engineer_comment(key, "#public Found it, a margin bug.")
    assert wait_for(lambda: look.intercom_has(ref, "Found it, a margin bug.", public=True))
    quiet(world, daemon, settle=0.5)
    assert len(look.issue(key).comments) == 2   # type: ignore[union-attr]
