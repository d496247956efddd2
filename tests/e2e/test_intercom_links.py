"""Linking Intercom items to an existing Jira issue (issue 4, point 2): a key
typed into the ``jira_issue`` attribute, ``syncd link`` for a conversation and
for an Intercom ticket, and many items on one issue."""

from __future__ import annotations

from click.testing import CliRunner

from syncd.cli import main
from syncd.testing import Observer, Teammate, wait_for
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World


def poll_intercom(app: App) -> None:
    next(p for p in app.pollers if p.source.name == "intercom").poll_once()


def test_attribute_and_cli_link_three_items_to_one_issue(world: World, daemon: App, look: Observer) -> None:
    ic, contact = world.intercom, world.intercom.first_contact_id()
    assert wait_for(lambda: daemon.store.get_cursor("intercom") is not None)   # the poll's cursor starts at its first poll
    key = world.jira.engineer_create("SUP", "Login loops back to the start page")
    typed = ItemRef("intercom:conversation", ic.create_conversation(contact, "I cannot log in"))
    by_cli = ItemRef("intercom:conversation", ic.create_conversation(contact, "Login is broken for me too"))
    ticket = ItemRef("intercom:ticket", ic.create_ticket(contact, "Login loop", "Since this morning"))

    # A teammate types the key; no webhook tells of attribute edits: the poll finds it.
    Teammate(world).set_attributes(typed.id, jira_issue=key.lower())
    poll_intercom(daemon)
    assert wait_for(lambda: "jira_linked" in look.conversation(typed.id).tags)
    assert look.conversation(typed.id).fields["attr:jira_issue"] == key   # normalised

    runner = CliRunner(env=world.env)
    for ref in (by_cli, ticket):
        result = runner.invoke(main, ["link", str(ref), key, "--config", str(world.config_path)])
        assert result.exit_code == 0, result.output
        assert f"linked {ref} to {key}" in result.output
    assert look.conversation(by_cli.id).fields["attr:jira_issue"] == key
    assert look.intercom_ticket(ticket.id).fields["attr:jira_issue"] == key

    assert wait_for(lambda: (look.issue(key) or _NO).fields.get("customfield_10051") == "3")
    assert sorted(look.remote_links(key)) == sorted(look.intercom.agent_url(r) for r in (typed, by_cli, ticket))
    assert world.jira.count("createIssue") == 0


def test_unknown_typed_key_is_refused_with_a_note(world: World, daemon: App, look: Observer) -> None:
    ic = world.intercom
    conv = ItemRef("intercom:conversation", ic.create_conversation(ic.first_contact_id(), "Search is slow"))
    Teammate(world).set_attributes(conv.id, jira_issue="SUP-999")
    poll_intercom(daemon)
    assert wait_for(lambda: look.intercom_has(conv, "SUP-999 does not exist", public=False))
    assert "jira_linked" not in look.conversation(conv.id).tags


class _No:
    fields: dict = {}


_NO = _No()
