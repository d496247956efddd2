"""Status between Jira and Intercom (issue 4, point 4): Jira status, resolution
and fix version → attributes and notes; Done → every linked conversation
reopened and told, the ticket resolved; a closed conversation → a Jira label."""

from __future__ import annotations

import time

from syncd.testing import Observer, Teammate, quiet, wait_for
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World


def escalated(world: World, look: Observer, teammate: Teammate, title: str) -> tuple[ItemRef, str]:
    """A customer's conversation a teammate escalated by its tag, and its issue's key."""
    ic = world.intercom
    ref = ItemRef("intercom:conversation", ic.create_conversation(ic.first_contact_id(), title))
    teammate.tag(ref.id, "jira_escalate")
    key = wait_for(lambda: look.intercom_key(ref))
    assert isinstance(key, str)
    return ref, key


def test_jira_status_fans_out_to_every_linked_item(world: World, daemon: App, look: Observer) -> None:
    ic, j = world.intercom, world.jira
    teammate = Teammate(world)
    first, key = escalated(world, look, teammate, "Webhooks arrive twice")
    contact = ic.first_contact_id()
    second = ItemRef("intercom:conversation", ic.create_conversation(contact, "Duplicate webhook calls"))
    ticket = ItemRef("intercom:ticket", ic.create_ticket(contact, "Doubled events", "Each event twice"))
    for ref in (second, ticket):
        daemon.engine.link(ref, key)
        daemon.store.mark_dirty([ref], "test")
    assert wait_for(lambda: look.intercom_ticket(ticket.id).fields.get("ticket_state") == "submitted")

    j.engineer_transition(key, "In Progress")
    assert wait_for(lambda: all(look.intercom_item(r).fields.get("attr:jira_status") == "In Progress"
                                for r in (first, second, ticket)))
    # the note follows the field write
    assert wait_for(lambda: look.intercom_has(first, "Jira jira_status changed: To Do → In Progress", public=False))
    assert wait_for(lambda: look.intercom_ticket(ticket.id).fields.get("ticket_state") == "in_progress")

    # The customer is helped for now: the conversation is closed → "Desk status" in Jira.
    ic.close(first.id, teammate.admin_id)
    assert wait_for(lambda: (look.issue(key) or _NO).fields.get("customfield_10055") == "closed")

    j.engineer_edit(key, {"fixVersions": [{"name": "1.0"}]})
    j.engineer_transition(key, "Done")
    for ref in (first, second):
        assert wait_for(lambda r=ref: look.intercom_item(r).fields.get("attr:jira_status") == "Done"
                        and look.intercom_item(r).status == "open"
                        and look.intercom_has(r, f"Jira {key} is Done (fix version 1.0).", public=False))
        fields = look.intercom_item(ref).fields
        assert fields["attr:jira_resolution"] == "Done" and fields["attr:jira_fix_versions"] == "1.0"
    assert wait_for(lambda: look.intercom_ticket(ticket.id).fields.get("ticket_state") == "resolved")



class _No:
    fields: dict = {}


_NO = _No()


def test_a_jira_move_is_written_to_a_remembered_conversation_without_reading_it_first(
        world: World, daemon: App, look: Observer) -> None:
    """Intercom has no conditional write, but the Jira status attribute is fed by Jira
    alone: no value the conversation holds could change what is written, so the
    remembered conversation is enough to plan it from. The read, if any, comes after
    (the attribute change's delivery names no author, so it is reconciled as news)."""
    ic, j = world.intercom, world.jira
    ref, key = escalated(world, look, Teammate(world), "Exports hang")
    j.engineer_transition(key, "In Progress")
    assert wait_for(lambda: look.intercom_item(ref).fields.get("attr:jira_status") == "In Progress")
    quiet(world, daemon)

    since = time.time()
    j.engineer_transition(key, "To Do")
    assert wait_for(lambda: jira_status_held(world, ref.id) == "To Do")   # the simulator's state: no call
    quiet(world, daemon)
    calls = [r.operation for r in ic.records() if r.at >= since and not r.operation.startswith("_sim")]
    before_write = calls[:calls.index("updateConversation")]
    assert "retrieveConversation" not in before_write, "the conversation was read before a write Jira alone decides"


def jira_status_held(world: World, conversation_id: str) -> object:
    with world.intercom.lock:
        return world.intercom.world.conversations[conversation_id].custom_attributes.get("jira_status")


def test_a_conversation_closed_just_before_back_to_back_moves_is_reopened_by_done(
        world: World, daemon: App, look: Observer) -> None:
    """What `syncd demo` found: a teammate closes the conversation, then In Progress and
    Done follow at once. The copy syncd remembers may not show the close yet; fan-out
    must not decide from it (Intercom has no conditional write): the conversation is
    read, reopened and told."""
    ic, j = world.intercom, world.jira
    teammate = Teammate(world)
    ref, key = escalated(world, look, teammate, "Payouts late")
    quiet(world, daemon)
    ic.knobs.webhooks.paused = True     # the close's delivery is still on its way
    ic.close(ref.id, teammate.admin_id)
    j.engineer_transition(key, "In Progress")
    j.engineer_transition(key, "Done")
    assert wait_for(lambda: look.intercom_has(ref, f"Jira {key} is Done", public=False))
    assert look.intercom_item(ref).status == "open", "fan-out decided from a copy that missed the close"
    ic.knobs.webhooks.paused = False
