"""Intercom → Jira escalation, end to end (issue 4, point 1): a conversation
tagged ``jira_escalate``, or an Intercom ticket given a project, becomes
exactly one Jira issue carrying the first message, the contact, the company and
a link back; the item gets an admin note with the issue link and the key in
its ``jira_issue`` attribute."""

from __future__ import annotations


from syncd.testing import Observer, Teammate, quiet, wait_for
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World


def test_tagged_conversation_escalates_exactly_once_under_duplicate_webhooks(
        world: World, daemon: App, look: Observer) -> None:
    ic = world.intercom
    ic.knobs.webhooks.duplicate = 1.0   # every delivery arrives twice
    Teammate(world).attach_company(ic.first_contact_id(), "Acme Corp")
    conv = ic.create_conversation(ic.first_contact_id(), "Exports to CSV hang forever")
    ref = ItemRef("intercom:conversation", conv)
    Teammate(world).tag(conv, "jira_escalate")
    key = wait_for(lambda: look.intercom_key(ref))
    assert isinstance(key, str) and key.startswith("SUP-")
    description = look.issue_description(key)
    for expected in ("Exports to CSV hang forever", "Carol Customer", "Acme Corp", look.intercom.agent_url(ref)):
        assert expected in description
    assert look.remote_links(key) == [look.intercom.agent_url(ref)]
    issue = look.issue(key)
    assert issue is not None and issue.summary == "Exports to CSV hang forever"
    assert "from-support" in (issue.fields.get("labels") or ())
    assert wait_for(lambda: look.intercom_has(ref, f"Escalated to Jira: {key} {issue.url}", public=False))
    assert "jira_linked" in look.conversation(conv).tags
    quiet(world, daemon, settle=0.5)
    assert world.jira.count("createIssue") == 1
    notes = look.intercom_parts(ref, "Escalated to Jira")
    assert len(notes) == 1 and notes[0].by_integration


def test_intercom_ticket_escalates_by_its_project_attribute(world: World, daemon: App, look: Observer) -> None:
    ic = world.intercom
    ticket = ic.create_ticket(ic.first_contact_id(), "Invoices show the wrong VAT", "Every invoice since May")
    ref = ItemRef("intercom:ticket", ticket)
    Teammate(world).set_ticket_attributes(ticket, jira_project="Support")
    key = wait_for(lambda: look.intercom_key(ref), timeout=10)
    assert isinstance(key, str) and key.startswith("SUP-")
    issue = look.issue(key)
    assert issue is not None and issue.summary == "Invoices show the wrong VAT"
    assert "Every invoice since May" in look.issue_description(key)
    assert wait_for(lambda: look.intercom_has(ref, f"Escalated to Jira: {key}", public=False))
    quiet(world, daemon, settle=0.5)
    assert world.jira.count("createIssue") == 1
