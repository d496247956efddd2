"""The side that did not change is not read again, and that never loses an edit.

syncd remembers what it last saw of each side of a link (syncd.snapshots). A
comment needs no read of the other side at all; a field written to Zendesk from
a remembered copy goes out as a *safe update*, which Zendesk refuses (409) when
an agent edited the ticket since — then syncd reads again and the conflict rule
decides, instead of overwriting the agent. Real daemon, real zenpy/jira over
HTTP, SQLite and Postgres.
"""

from __future__ import annotations

import io
import time
from typing import Iterator

import pytest

from syncd.domain import ItemRef, TrackerIssue
from syncd.testing import Observer, captured_logs, log_events, quiet, ticket_key, wait_for
from syncd.sandbox import World

IMPACT_PLACEHOLDER = 9006          # the ticket's "customer impact" field (desk wins by rule)
JIRA_IMPACT = "customfield_10050"


@pytest.fixture
def look(world: World) -> Observer:
    return Observer(world)   # its Jira connector reads every field the world's mappings name


@pytest.fixture
def logbuf() -> Iterator[io.StringIO]:
    with captured_logs("info") as buf:
        yield buf




def issue(look: Observer, key: str) -> TrackerIssue:
    found = look.issue(key)
    assert found is not None
    return found


def escalated(world: World, look: Observer, daemon, subject: str) -> tuple[int, str]:
    ticket = world.zendesk.create_ticket(subject, "Something is broken.")
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
    key = wait_for(lambda: ticket_key(look, world, ticket))
    assert key, "escalation did not happen"
    # A customer reply makes the daemon read the ticket once more and remember it.
    world.zendesk.customer_reply(ticket, "Still broken this morning.")
    assert wait_for(lambda: any("Still broken this morning." in c.body for c in issue(look, str(key)).comments))
    quiet(world, daemon)
    return ticket, str(key)


def test_a_customer_reply_reaches_jira_without_reading_the_issue_again(world, daemon, look):
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, look, daemon, "Login loops")
    reads, comments = j.count("getIssue"), j.count("addComment")

    z.customer_reply(ticket, "It happens on every browser.")
    # Watched through the simulator's own records, not over HTTP: only the daemon calls.
    assert wait_for(lambda: j.count("addComment") == comments + 1)
    quiet(world, daemon)

    assert j.count("addComment") == comments + 1
    assert j.count("getIssue") == reads, "the daemon read the Jira issue again for a comment-only change"
    assert any("every browser" in c.body for c in issue(look, key).comments)


def test_an_agent_edit_made_after_syncd_last_read_the_ticket_is_not_overwritten(world, daemon, look, logbuf):
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, look, daemon, "Invoices wrong")
    impact = world.field_id(IMPACT_PLACEHOLDER)
    # syncd writes from a remembered ticket only when it read it at least 2 s after the
    # ticket's last change (Zendesk stamps whole seconds): let it read a settled ticket.
    time.sleep(2.2)
    daemon.store.mark_dirty([ItemRef("zendesk", str(ticket))], "test")
    quiet(world, daemon)

    # The agent's edit does not reach syncd yet (its webhook is held back), so syncd's
    # remembered copy of the ticket is outdated when the engineer edits the same field.
    z.knobs.webhooks.paused = True
    z.agent_set(ticket, custom_fields={impact: "All EU customers"})
    j.engineer_edit(key, {JIRA_IMPACT: "One customer"})

    # Zendesk refuses the write planned from the outdated copy; syncd reads again and
    # the rule for this field (the desk wins) decides — the agent's words stay.
    assert wait_for(lambda: log_events(logbuf, "write_conflict"))
    assert wait_for(lambda: issue(look, key).fields.get(JIRA_IMPACT) == "All EU customers")
    z.knobs.webhooks.paused = False
    quiet(world, daemon)
    assert look.ticket(ticket).fields.get(f"custom:{impact}") == "All EU customers"
    assert issue(look, key).fields.get(JIRA_IMPACT) == "All EU customers"
    assert any(e["field"] == "customer_impact" for e in log_events(logbuf, "field_conflict"))


def test_an_agent_edit_in_the_same_second_as_syncds_last_read_is_not_overwritten(world, daemon, look, logbuf):
    # Zendesk's updated_at has whole seconds: a safe update cannot see an edit made in the
    # second syncd last saw. syncd then reads the ticket before writing to it.
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, look, daemon, "Exports slow")
    impact = world.field_id(IMPACT_PLACEHOLDER)
    z.knobs.webhooks.paused = True
    z.agent_set(ticket, custom_fields={impact: "Every customer"})
    j.engineer_edit(key, {JIRA_IMPACT: "Nobody"})
    assert wait_for(lambda: issue(look, key).fields.get(JIRA_IMPACT) == "Every customer")
    z.knobs.webhooks.paused = False
    quiet(world, daemon)
    assert look.ticket(ticket).fields.get(f"custom:{impact}") == "Every customer"
    assert issue(look, key).fields.get(JIRA_IMPACT) == "Every customer"


def test_a_desk_status_reaches_jira_without_reading_the_issue_again(world, daemon, look):
    """The ticket's status is shown on the issue by a rule only the desk feeds: whatever an
    engineer set in that Jira field, the plan writes the ticket's status, so the remembered
    issue is enough to plan it from (Jira has no conditional write, but nothing here
    depends on the issue's current value)."""
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, look, daemon, "Search returns nothing")
    reads, edits = j.count("getIssue"), j.count("editIssue")

    z.agent_set(ticket, status="pending")
    assert wait_for(lambda: j.count("editIssue") == edits + 1)
    quiet(world, daemon)
    assert j.count("getIssue") == reads, "the daemon read the issue before writing a field only the desk feeds"
    assert issue(look, key).fields.get("customfield_10055") == "pending"


def test_a_desk_field_the_desk_does_not_decide_alone_still_reads_the_issue(world, daemon, look):
    """Priority is synced both ways, newest wins: an engineer's edit since syncd's copy of
    the issue could be newer than the agent's, so the issue is read before writing it."""
    z, j = world.zendesk, world.jira
    ticket, key = escalated(world, look, daemon, "Dashboards slow")
    reads, edits = j.count("getIssue"), j.count("editIssue")

    z.agent_set(ticket, priority="urgent")
    assert wait_for(lambda: j.count("editIssue") == edits + 1)   # the simulator's records: no call
    quiet(world, daemon)
    assert j.count("getIssue") > reads, "a field whose conflicts the newest side wins was written unread"
    assert issue(look, key).fields.get("priority") == "Highest"
