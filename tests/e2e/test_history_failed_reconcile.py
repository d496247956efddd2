"""The history of a reconcile that failed half-way (issue 15, part 4): the writes that
landed before the failure are in ``syncd links history``, with a trigger that says the
reconcile failed and why. The next attempt finds them done (the issue exists, its intent
is done) and does not write them again, so the failure is the only moment they can be
recorded: on the old code the create was missing from the history for good."""

from __future__ import annotations

import json

from click.testing import CliRunner

from syncd.cli import main
from syncd.runtime import App
from syncd.sandbox import World
from syncd.sim.core import Fault
from syncd.testing import Observer, quiet, wait_for


def history_of(world: World, item: str) -> list[dict]:
    shown = CliRunner(env=world.env).invoke(main, ["links", "history", item, "--json",
                                                   "--config", str(world.config_path)])
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)["history"]


def test_writes_before_a_failure_are_in_the_history(world: World, daemon: App, look: Observer) -> None:
    z = world.zendesk
    # The escalation's first write (the Jira issue) lands; its next step, the remote link
    # back to the ticket, is refused once: the reconcile fails after the create.
    world.jira.inject(Fault("status", operation="createOrUpdateRemoteIssueLink", status=400, count=1))
    ticket = z.create_ticket("Invoices are doubled", "Each invoice is sent twice.")
    z.agent_set(ticket, add_tags=["jira_escalate"])
    key = wait_for(lambda: look.ticket(ticket).fields.get(f"custom:{world.field_id(9001)}"), timeout=30)
    assert key, "the retried reconcile did not finish the escalation"
    quiet(world, daemon)

    entries = history_of(world, f"zendesk:{ticket}")
    creates = [e for e in entries if e["what"] == "create"]
    assert len(creates) == 1, entries
    (create,) = creates
    assert (create["side"], create["target"], create["issue_key"]) == ("tracker", key, key)
    assert create["new"] == f"created for zendesk:{ticket}: Invoices are doubled"
    assert create["trigger"].startswith(f"zendesk:{ticket} (")
    assert "the reconcile failed after these writes" in create["trigger"], create
    assert "400" in create["trigger"] or "Refused" in create["trigger"], create
    # The retry's own writes (the key field, the escalation note) are recorded as a success.
    later = [e for e in entries if e["id"] > create["id"]]
    assert any(e["what"] == "note" for e in later) and all("failed" not in (e["trigger"] or "") for e in later)
    assert [i.key for i in world.jira.issues.values() if i.summary == "Invoices are doubled"] == [key], \
        "one issue, created once"
