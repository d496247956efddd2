"""Issue 3, behaviours 1 and 2 end to end: escalation and linking existing issues.

Every test drives the simulators' actors as agents and engineers would, lets
the real daemon (webhooks → store → workers → zenpy/jira over HTTP) do its
work, and looks at both sides through HTTP. Each runs on SQLite and Postgres.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request


from syncd.testing import Observer, quiet, ticket_key as key_on, ticket_notes as notes, wait_for
from syncd.runtime import App
from syncd.sandbox import World

CUSTOMER = "Cleo Customer"


def post_zendesk(world: World, daemon: App, body: bytes, invocation: str) -> tuple[int, dict]:
    """Deliver ``body`` to the daemon as Zendesk would: signed, with an invocation id."""
    hook_id = next(iter(world.zendesk.webhook_secrets))
    headers = world.zendesk.sign_webhook(body, {"X-Zendesk-Webhook-Id": hook_id,
                                                "X-Zendesk-Webhook-Invocation-Id": invocation,
                                                "X-Zendesk-Account-Id": "9000001",
                                                "Content-Type": "application/json"})
    req = urllib.request.Request(f"http://127.0.0.1:{daemon.http_port}/webhooks/zendesk", data=body,
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def inbox_rows(daemon: App, source: str) -> int:
    return daemon.store.inbox_count(source)


# -- 1. escalate --------------------------------------------------------------

def test_escalation_by_tag_creates_one_complete_issue_even_under_redelivery(world, daemon, look):
    z, j = world.zendesk, world.jira
    ticket = z.create_ticket("Checkout fails with a 500", "Paying by card shows an error page.")
    z.webhooks.flush()
    captured = z.webhooks.results[-1]          # the real delivery for this ticket
    assert json.loads(captured.body)["ticket_id"] == str(ticket)

    # The sim's own delivery of the tag change is lost; we deliver that change
    # ourselves, the same delivery three times at once, then once more later.
    z.knobs.webhooks.drop = 1.0
    z.agent_set(ticket, add_tags=["jira_escalate"])
    answers: list[tuple[int, dict]] = []
    threads = [threading.Thread(target=lambda: answers.append(post_zendesk(world, daemon, captured.body, "inv-tag")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a[0] for a in answers) == [200, 200, 200]
    assert sorted(a[1]["status"] for a in answers) == ["duplicate", "duplicate", "stored"]

    key = wait_for(lambda: key_on(look, world, ticket))
    assert key, "the ticket never showed a Jira key"
    quiet(world, daemon)
    assert post_zendesk(world, daemon, captured.body, "inv-tag") == (200, {"status": "duplicate"})
    # A fresh delivery (new invocation) of the same ticket: reconciled again, nothing new created.
    assert post_zendesk(world, daemon, captured.body, "inv-later")[1]["status"] == "stored"
    quiet(world, daemon)
    assert j.count("createIssue") == 1

    issue = look.issue(str(key))
    assert issue is not None and issue.key.startswith("SUP-")
    assert issue.summary == "Checkout fails with a 500"
    raw = look.jira.client.issue(issue.key, fields="description,labels,priority,issuetype").raw["fields"]
    description = raw["description"]
    # The customer belongs to the simulator's "Acme Inc": its name, not its id, side-loaded.
    for expected in ("Paying by card shows an error page.", f"Requester: {CUSTOMER}", "Organization: Acme Inc",
                     f"/agent/tickets/{ticket}"):
        assert expected in description
    assert z.count("ShowOrganization") == 0
    assert {"from-support", f"syncd-zendesk-{ticket}"} <= set(raw["labels"])
    assert raw["issuetype"]["name"] == "Bug"
    remote = look.jira.client.remote_links(issue.key)
    assert [r.raw["object"]["url"] for r in remote] == [f"{z.base_url}/agent/tickets/{ticket}"]

    after = look.ticket(ticket)
    assert "jira_linked" in after.tags
    escalated = [n for n in notes(look, ticket) if n.startswith("Escalated to Jira:")]
    assert escalated == [f"Escalated to Jira: {issue.key} {issue.url}"]


def test_escalation_by_project_dropdown(world, daemon, look):
    z, j = world.zendesk, world.jira
    project_field = world.field_id(9005)
    sup = z.create_ticket("Invoices are empty", "The PDF has no lines.")
    eng = z.create_ticket("Login loops", "After SSO the page reloads forever.")
    z.agent_set(sup, custom_fields={project_field: "jira_project_sup"})
    z.agent_set(eng, custom_fields={project_field: "jira_project_eng"})
    sup_key = wait_for(lambda: key_on(look, world, sup))
    eng_key = wait_for(lambda: key_on(look, world, eng))
    assert str(sup_key).startswith("SUP-")
    assert str(eng_key).startswith("ENG-")
    quiet(world, daemon)
    assert j.count("createIssue") == 2
    assert all("jira_linked" in look.ticket(t).tags for t in (sup, eng))


# -- 2. link existing -------------------------------------------------------

def test_typed_keys_link_many_to_many_and_bad_keys_are_refused(world, daemon, look):
    z, j = world.zendesk, world.jira
    key_field = world.field_id(9001)
    first = j.engineer_create("ENG", "Search is slow")
    second = j.engineer_create("ENG", "Search index is stale")
    a = z.create_ticket("Search takes a minute", "Every search is slow.")
    b = z.create_ticket("Search never finishes", "Same as my colleague.")

    z.agent_set(a, custom_fields={key_field: f"{first} {second.lower()}"})   # two keys, one typed in lower case
    z.agent_set(b, custom_fields={key_field: first})
    assert wait_for(lambda: look.ticket(a).fields.get(f"custom:{key_field}") == f"{first}, {second}")
    assert wait_for(lambda: (look.issue(first) or _NONE).fields.get("customfield_10051") == "2")
    assert wait_for(lambda: (look.issue(second) or _NONE).fields.get("customfield_10051") == "1")
    assert {r.raw["object"]["url"].rsplit("/", 1)[1] for r in look.jira.client.remote_links(first)} == {str(a), str(b)}
    assert all("jira_linked" in look.ticket(t).tags for t in (a, b))

    bad = z.create_ticket("Reports broken", "Nothing renders.")
    z.agent_set(bad, custom_fields={key_field: "ENG-999"})
    assert wait_for(lambda: any("ENG-999 does not exist" in n for n in notes(look, bad)))
    quiet(world, daemon)
    assert daemon.store.links_for_desk(_ref(bad)) == []
    assert "jira_linked" not in look.ticket(bad).tags
    assert sum("ENG-999" in n for n in notes(look, bad)) == 1     # said once, not on every pass
    assert j.count("createIssue") == 0


def test_moved_issue_stays_linked_and_the_shown_key_follows(world, daemon, look):
    z, j = world.zendesk, world.jira
    key_field = world.field_id(9001)
    ticket = z.create_ticket("Exports time out", "CSV export never ends.")
    z.agent_set(ticket, add_tags=["jira_escalate"])
    old_key = wait_for(lambda: key_on(look, world, ticket))
    assert str(old_key).startswith("SUP-")
    [link] = daemon.store.links_for_desk(_ref(ticket))

    new_key = j.move_issue(str(old_key), "ENG")
    assert new_key.startswith("ENG-")
    assert wait_for(lambda: look.ticket(ticket).fields.get(f"custom:{key_field}") == new_key)
    [moved] = daemon.store.links_for_desk(_ref(ticket))
    assert (moved.id, moved.issue_id, moved.issue_key) == (link.id, link.issue_id, new_key)
    quiet(world, daemon)
    assert j.count("createIssue") == 1


def _ref(ticket: int):
    from syncd.domain import ItemRef
    return ItemRef("zendesk", str(ticket))


class _None:
    fields: dict = {}


_NONE = _None()


def test_reply_written_before_the_daemon_escalates_still_reaches_jira(world: World, look: Observer):
    """The agent tags the ticket and the customer answers while syncd is down: the
    reply is not "history" of the escalated link and arrives as a Jira comment,
    once; the first message is the description, not a comment."""
    z = world.zendesk
    world.zendesk.knobs.webhooks.drop = 1.0          # the daemon is down: deliveries are lost
    z.clock.advance(-30)                             # ... and has been for half a minute
    ticket = z.create_ticket("Export hangs", "The CSV export never finishes.")
    z.agent_set(ticket, add_tags=["jira_escalate"])
    z.customer_reply(ticket, "It hangs at 99% every time.")
    z.clock.advance(30)
    world.zendesk.knobs.webhooks.drop = 0.0
    app = App.build(world.settings())
    app.start()
    try:
        # The safety net finds the ticket. Two rounds: a fresh poller's first round only
        # sets its starting point, and the poller's own thread may be taking that one now.
        for _ in range(2):
            for poller in app.pollers:
                poller.poll_once()
        key = wait_for(lambda: key_on(look, world, ticket))
        assert key
        assert wait_for(lambda: any("It hangs at 99%" in c.body for c in look.issue(key).comments))
        quiet(world, app)
        bodies = [c.body for c in look.issue(key).comments]
        assert sum("It hangs at 99%" in b for b in bodies) == 1
        assert not any("The CSV export never finishes." in b for b in bodies)
    finally:
        app.stop()
