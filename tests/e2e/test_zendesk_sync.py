"""Issue 3, behaviours 3–6 end to end: status, fields, comments, many tickets on one issue.

Agents, customers and engineers act through the simulators' actors; the real
daemon carries the changes; both sides are read back over HTTP. Each test runs
on SQLite and on Postgres.
"""

from __future__ import annotations

import io
import re
import time
from typing import Iterator

import pytest

from syncd.testing import Observer, captured_logs, log_events, quiet, ticket_notes as notes, wait_for
from syncd.domain import TrackerIssue
from syncd.runtime import App
from syncd.sandbox import World

ENGINEER = "Erin Engineer"
CUSTOMER = "Cleo Customer"


@pytest.fixture
def look(world: World) -> Observer:
    return Observer(world)   # its Jira connector reads every field the world's mappings name


def key_on(look: Observer, world: World, ticket: int) -> str | None:
    key = look.ticket(ticket).fields.get(f"custom:{world.field_id(9001)}")
    return key if isinstance(key, str) and look.issue(key) is not None else None


def field(look: Observer, world: World, ticket: int, placeholder: int) -> object:
    return look.ticket(ticket).fields.get(f"custom:{world.field_id(placeholder)}")


def issue(look: Observer, key: str) -> TrackerIssue:
    found = look.issue(key)
    assert found is not None
    return found


def escalate(world: World, look: Observer, subject: str, body: str) -> tuple[int, str]:
    ticket = world.zendesk.create_ticket(subject, body)
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
    key = wait_for(lambda: key_on(look, world, ticket))
    assert key, "escalation did not happen"
    return ticket, str(key)




@pytest.fixture
def logbuf() -> Iterator[io.StringIO]:
    """Everything syncd logs during the test, as JSON lines."""
    with captured_logs("info") as buf:
        yield buf


# -- 3 + 6. status, resolution, fix versions, fan-out -------------------------------

def test_status_resolution_versions_and_fanout_to_every_linked_ticket(world, daemon, look):
    z, j = world.zendesk, world.jira
    first, key = escalate(world, look, "Payments fail", "Card payments fail at checkout.")
    second = z.create_ticket("Cannot pay", "My card is refused.")
    z.agent_set(second, custom_fields={world.field_id(9001): key})
    assert wait_for(lambda: issue(look, key).fields.get("customfield_10051") == "2")   # 6. linked count
    assert wait_for(lambda: issue(look, key).fields.get("customfield_10054") == "1")   # one organization

    z.agent_set(first, status="solved")                                                  # desk status → Jira
    assert wait_for(lambda: issue(look, key).fields.get("customfield_10055") == "solved")

    j.engineer_transition(key, "In Progress")
    j.engineer_edit(key, {"fixVersions": [{"name": "1.0"}]})
    for t in (first, second):
        assert wait_for(lambda: field(look, world, t, 9002) == "In Progress")
        assert wait_for(lambda: field(look, world, t, 9004) == "1.0")
        assert wait_for(lambda: "Jira jira_status changed: To Do → In Progress" in notes(look, t))

    j.engineer_transition(key, "Done")
    for t in (first, second):
        assert wait_for(lambda: field(look, world, t, 9002) == "Done" and field(look, world, t, 9003) == "Done")
        assert wait_for(lambda: look.ticket(t).status == "open")          # reopened so the agent tells the customer
        assert wait_for(lambda: any(n.startswith(f"Jira {key} is Done") for n in notes(look, t)))

    quiet(world, daemon)
    for t in (first, second):
        mine = notes(look, t)
        assert sum(n.startswith(f"Jira {key} is Done") for n in mine) == 1
        assert sum("changed: To Do → In Progress" in n for n in mine) == 1
        assert sum("changed: In Progress → Done" in n for n in mine) == 1
    assert j.count("createIssue") == 1


def test_release_of_a_fix_version_tells_every_linked_ticket(world, daemon, look):
    # A release changes no issue: syncd hears jira:version_released and queues
    # every linked issue that has the version, whose reconcile posts the note.
    z, j = world.zendesk, world.jira
    first, key = escalate(world, look, "PDF export broken", "Export gives an empty PDF.")
    second = z.create_ticket("Empty PDF", "Same here.")
    z.agent_set(second, custom_fields={world.field_id(9001): key})
    j.engineer_edit(key, {"fixVersions": [{"name": "1.0"}]})
    assert wait_for(lambda: all(field(look, world, t, 9004) == "1.0" for t in (first, second)))
    quiet(world, daemon)
    j.release_version("SUP", "1.0")
    released = f"Fix version 1.0 of {key} has been released."
    assert wait_for(lambda: all(released in notes(look, t) for t in (first, second)))
    quiet(world, daemon)
    assert all(notes(look, t).count(released) == 1 for t in (first, second))


# -- 4. fields ----------------------------------------------------------------------

def test_priority_both_ways_and_conflicts_decided_by_rule_and_logged(world, daemon, look, logbuf):
    z, j = world.zendesk, world.jira
    ticket, key = escalate(world, look, "Slow dashboard", "The dashboard takes 30 s.")
    # Escalation sets Medium on the issue; the blank ticket takes it over.
    assert wait_for(lambda: look.ticket(ticket).fields.get("priority") == "normal")

    z.agent_set(ticket, priority="high")
    assert wait_for(lambda: issue(look, key).fields.get("priority") == "High")
    j.engineer_edit(key, {"priority": {"name": "Lowest"}})                  # five Jira priorities, four Zendesk
    assert wait_for(lambda: look.ticket(ticket).fields.get("priority") == "low")
    quiet(world, daemon)

    # Both sides edit while no webhook gets through, then the daemon hears of it.
    impact = world.field_id(9006)
    for sim in (z, j):
        sim.knobs.webhooks.paused = True
    z.agent_set(ticket, priority="normal", custom_fields={impact: "All EU customers"})
    time.sleep(1.1)                      # Zendesk stamps whole seconds: Jira's edit is clearly newer
    j.engineer_edit(key, {"priority": {"name": "Highest"}, "customfield_10050": "One customer"})
    for sim in (z, j):
        sim.knobs.webhooks.paused = False

    # priority: newest wins (Jira); customer impact: the desk wins by rule although older.
    assert wait_for(lambda: look.ticket(ticket).fields.get("priority") == "urgent")
    assert wait_for(lambda: issue(look, key).fields.get("customfield_10050") == "All EU customers")
    quiet(world, daemon)
    assert issue(look, key).fields.get("priority") == "Highest"
    assert field(look, world, ticket, 9006) == "All EU customers"
    conflicts = {e["field"]: e["detail"] for e in log_events(logbuf, "field_conflict")}
    assert "tracker wins by rule newest" in conflicts["priority"]
    assert "desk wins by rule desk" in conflicts["customer_impact"]

    # Nothing ping-pongs: with both sides quiet, no more writes.
    writes = (z.count("UpdateTicket"), j.count("editIssue"))
    quiet(world, daemon)
    assert (z.count("UpdateTicket"), j.count("editIssue")) == writes


def test_unmapped_value_is_reported_and_the_other_fields_still_sync(world, look, logbuf):
    # An admin's mapping that does not know Jira's fifth priority.
    path = world.directory / "zendesk-jira.toml"
    text = path.read_text()
    assert 'Lowest = "low"\n' in text
    path.write_text(text.replace('Lowest = "low"\n', ""))
    daemon = App.build(world.settings())
    daemon.start()
    try:
        j = world.jira
        ticket, key = escalate(world, look, "Typos in invoice", "Minor typo.")
        assert wait_for(lambda: look.ticket(ticket).fields.get("priority") == "normal")
        j.engineer_edit(key, {"priority": {"name": "Lowest"}, "customfield_10050": "Cosmetic only"})
        j.engineer_transition(key, "In Progress")
        assert wait_for(lambda: field(look, world, ticket, 9006) == "Cosmetic only")
        assert wait_for(lambda: field(look, world, ticket, 9002) == "In Progress")
        assert wait_for(lambda: log_events(logbuf, "field_unmapped"))
        quiet(world, daemon)
        assert look.ticket(ticket).fields.get("priority") == "normal"     # left alone, not guessed
        [unmapped] = {e["detail"] for e in log_events(logbuf, "field_unmapped") if e["field"] == "priority"}
        assert "'Lowest'" in unmapped
    finally:
        daemon.stop()


# -- 5. comments --------------------------------------------------------------------

STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z"


def test_comments_mirror_once_in_order_with_headers_and_never_echo(world, daemon, look):
    z, j = world.zendesk, world.jira
    ticket, key = escalate(world, look, "Emails bounce", "Our invoices bounce.")

    z.customer_reply(ticket, "It happens for every recipient.")
    z.agent_reply(ticket, "Internal: probably the SPF record.", public=False)
    assert wait_for(lambda: look.issue_has(key, "It happens for every recipient."))
    [mirrored] = [c for c in issue(look, key).comments if "every recipient" in c.body]
    assert re.match(rf"^{CUSTOMER} wrote on zendesk:{ticket} at {STAMP}:\n", mirrored.body)

    j.engineer_comment(key, "Looking at the mail relay logs.")
    j.engineer_comment(key, "#public We found the cause and are fixing it.")
    assert wait_for(lambda: look.ticket_has(ticket, "Looking at the mail relay logs.", public=False))
    assert wait_for(lambda: look.ticket_has(ticket, "We found the cause and are fixing it.", public=True))
    bodies = {c.body: c.public for c in look.ticket(ticket).comments}
    note = next(b for b in bodies if "mail relay" in b)
    assert re.match(rf"^{ENGINEER} commented on {key} at {STAMP}:\n", note)
    public = next(b for b in bodies if "found the cause" in b)
    assert "#public" not in public and bodies[public] is True

    burst = [f"Customer update {n}" for n in range(5)]
    for text in burst:
        z.customer_reply(ticket, text)
    answers = [f"Engineer update {n}" for n in range(5)]
    for text in answers:
        j.engineer_comment(key, text)
    assert wait_for(lambda: all(look.issue_has(key, t) for t in burst))
    assert wait_for(lambda: all(look.ticket_has(ticket, t, public=False) for t in answers))

    quiet(world, daemon)
    counts = (j.count("addComment"), z.count("UpdateTicket"))
    quiet(world, daemon, settle=1.0)
    assert (j.count("addComment"), z.count("UpdateTicket")) == counts          # no echo, no late repeats

    jira_bodies = [c.body for c in issue(look, key).comments]
    desk_bodies = [c.body for c in look.ticket(ticket).comments]
    assert not any("Internal: probably the SPF record." in b for b in jira_bodies)   # notes stay on the desk
    for text in ["It happens for every recipient.", *burst]:
        assert sum(text in b for b in jira_bodies) == 1
    for text in ["Looking at the mail relay logs.", "We found the cause and are fixing it.", *answers]:
        assert sum(text in b for b in desk_bodies) == 1
    # Nothing mirrored back to where it came from.
    assert not any("commented on" in b for b in jira_bodies)
    assert not any("wrote on zendesk" in b for b in desk_bodies)
    # Order kept on both sides.
    assert [b.rsplit("\n", 1)[1] for b in jira_bodies if "Customer update" in b] == burst
    assert [b.rsplit("\n", 1)[1] for b in desk_bodies if "Engineer update" in b] == answers
