"""One write per side per reconcile, and no write of what the target already holds (issue 16).

A Jira transition used to write each linked ticket twice (the status field, then the
"jira_status changed" note) and a fan-out three times (field, status note, fan-out
note); every linked ticket's reconcile then wrote the same desk-status value to the
issue again. Counted here at the simulators, whose observers see every request the
real daemon makes (zenpy and jira over HTTP). Each test runs on SQLite and Postgres.
"""

from __future__ import annotations

import json
from typing import Any

from syncd.domain import TrackerIssue
from syncd.sandbox import World
from syncd.sim.core import Request, Response, SimServer
from syncd.testing import Observer, quiet, ticket_key, ticket_notes as notes, wait_for


class Bodies:
    """The JSON bodies of one operation's requests to a simulator, as they arrived."""

    def __init__(self, sim: SimServer, operation: str):
        self.operation = operation
        self.seen: list[dict[str, Any]] = []
        sim.observers.append(self._observe)

    def _observe(self, sim: SimServer, request: Request, response: Response) -> None:
        if request.operation == self.operation and response.status < 300:
            self.seen.append(json.loads(request.body or b"{}"))

    def since(self, mark: int) -> list[dict[str, Any]]:
        return self.seen[mark:]


def issue(look: Observer, key: str) -> TrackerIssue:
    found = look.issue(key)
    assert found is not None
    return found


def field(look: Observer, world: World, ticket: int, placeholder: int) -> object:
    return look.ticket(ticket).fields.get(f"custom:{world.field_id(placeholder)}")


def escalated(world: World, look: Observer, subject: str) -> tuple[int, str]:
    ticket = world.zendesk.create_ticket(subject, "Something is broken.")
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
    key = wait_for(lambda: ticket_key(look, world, ticket))
    assert key, "escalation did not happen"
    return ticket, str(key)


def test_a_jira_transition_is_one_ticket_update_carrying_field_and_note(world, daemon, look):
    z, j = world.zendesk, world.jira
    updates = Bodies(z, "UpdateTicket")
    ticket, key = escalated(world, look, "Search is slow")
    quiet(world, daemon)
    mark = len(updates.seen)

    j.engineer_transition(key, "In Progress")
    assert wait_for(lambda: "Jira jira_status changed: To Do → In Progress" in notes(look, ticket))
    quiet(world, daemon)

    made = updates.since(mark)
    assert len(made) == 1, f"{len(made)} ticket updates for one transition: {made}"
    sent = made[0]["ticket"]
    assert sent["comment"]["body"] == "Jira jira_status changed: To Do → In Progress"
    assert sent["comment"]["public"] is False
    assert {"id": world.field_id(9002), "value": "In Progress"} in sent["custom_fields"]
    assert sent.get("safe_update") is True, "the field part lost its safe update"
    assert field(look, world, ticket, 9002) == "In Progress"
    assert sum("changed: To Do → In Progress" in n for n in notes(look, ticket)) == 1


def test_fanout_writes_each_ticket_once_and_the_issue_field_once(world, daemon, look):
    z, j = world.zendesk, world.jira
    updates, edits = Bodies(z, "UpdateTicket"), Bodies(j, "editIssue")
    first, key = escalated(world, look, "Payments fail")
    tickets = [first]
    for subject in ("Cannot pay", "Card refused"):
        t = z.create_ticket(subject, "My card is refused.")
        z.agent_set(t, custom_fields={world.field_id(9001): key})
        tickets.append(t)
    assert wait_for(lambda: issue(look, key).fields.get("customfield_10051") == "3")
    for t in tickets:   # solved, so that the fan-out reopens each (and shows "open" on the issue)
        z.agent_set(t, status="solved")
    assert wait_for(lambda: issue(look, key).fields.get("customfield_10055") == "solved")
    j.engineer_transition(key, "In Progress")
    assert wait_for(lambda: all(field(look, world, t, 9002) == "In Progress" for t in tickets))
    quiet(world, daemon)
    mark_z, mark_j = len(updates.seen), len(edits.seen)

    j.engineer_transition(key, "Done")
    for t in tickets:
        assert wait_for(lambda: look.ticket(t).status == "open"
                        and any(n.startswith(f"Jira {key} is Done") for n in notes(look, t)))
    quiet(world, daemon)

    made = updates.since(mark_z)
    assert len(made) == len(tickets), f"{len(made)} ticket updates for {len(tickets)} tickets: {made}"
    for body in made:   # field, status note and fan-out note in one request
        sent = body["ticket"]
        assert sent["status"] == "open"
        assert sent["comment"]["body"].startswith(f"Jira {key} is Done")
        assert "Jira jira_status changed: In Progress → Done" in sent["comment"]["body"]
    desk_status = [b for b in edits.since(mark_j) if "customfield_10055" in (b.get("fields") or {})]
    assert len(desk_status) == 1, f"the issue's desk-status field written {len(desk_status)} times: {desk_status}"
    assert issue(look, key).fields.get("customfield_10055") == "open"
    for t in tickets:
        mine = notes(look, t)
        assert sum(n.startswith(f"Jira {key} is Done") for n in mine) == 1
        assert sum("changed: In Progress → Done" in n for n in mine) == 1



def test_an_escalation_writes_the_ticket_once_and_the_issue_once(world, daemon, look):
    """The key field, the linked tag, the escalation note and the first sync's desk fields
    (the issue's status and priority shown on the ticket) in one UpdateTicket; the issue
    created with the first sync's and the aggregates' values (no editIssue after), and not
    searched for again by its label on the happy path (issue 16)."""
    z, j = world.zendesk, world.jira
    updates, creates = Bodies(z, "UpdateTicket"), Bodies(j, "createIssue")
    ticket, key = escalated(world, look, "Refunds stuck")
    assert wait_for(lambda: any(n.startswith(f"Escalated to Jira: {key}") for n in notes(look, ticket)))
    quiet(world, daemon)

    assert len(updates.seen) == 1, f"{len(updates.seen)} ticket updates for one escalation: {updates.seen}"
    sent = updates.seen[0]["ticket"]
    assert sent["comment"]["body"].startswith(f"Escalated to Jira: {key}") and sent["comment"]["public"] is False
    assert {"id": world.field_id(9001), "value": key} in sent["custom_fields"]
    assert {"id": world.field_id(9002), "value": "To Do"} in sent["custom_fields"]
    assert "jira_linked" in sent["additional_tags"]
    assert "jira_linked" in look.ticket(ticket).tags
    assert field(look, world, ticket, 9002) == "To Do"
    assert sum(n.startswith("Escalated to Jira") for n in notes(look, ticket)) == 1
    assert j.count("searchAndReconsileIssuesUsingJqlPost") + j.count("searchAndReconsileIssuesUsingJql") == 0
    assert j.count("createIssue") == 1
    # The create carries what the first sync and the aggregates would write right after it.
    (created,) = creates.seen
    assert created["fields"]["customfield_10055"] == "new"            # the ticket's status
    assert created["fields"]["customfield_10051"] in (1, 1.0, "1")    # linked tickets
    assert j.count("editIssue") == 0, "the new issue was edited right after its creation"
    assert issue(look, key).fields.get("customfield_10055") == "new"


def test_a_create_refused_with_the_values_carried_in_it_is_made_without_them(world, daemon, look):
    """Jira refuses a create naming a field not on its create screen (400, nothing made):
    the issue is created without the carried values, which the first sync then writes."""
    from syncd.sim.core import Fault
    j = world.jira
    j.inject(Fault("status", operation="createIssue", status=400, count=1))
    ticket, key = escalated(world, look, "Coupons ignored")
    assert wait_for(lambda: issue(look, key).fields.get("customfield_10055") == "new")
    quiet(world, daemon)
    assert [r.status for r in j.records() if r.operation == "createIssue"] == [400, 201]
    assert j.count("editIssue") >= 1
    assert sum(n.startswith(f"Escalated to Jira: {key}") for n in notes(look, ticket)) == 1
