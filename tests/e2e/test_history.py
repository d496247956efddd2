"""Per-link history end to end (issue 15, part 4): the real daemon escalates a ticket, copies a
priority and mirrors an engineer's comment; ``syncd links history`` shows each write with the
link, the side, old → new, the comment ids on both sides, why and what triggered it, on
SQLite and Postgres. ``syncd resync`` records its writes too."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.runtime import App
from syncd.sandbox import World
from syncd.testing import Observer, quiet, wait_for


def syncd(world: World, *args: str) -> Result:
    return CliRunner(env=world.env).invoke(main, [*args, "--config", str(world.config_path)])


def history_of(world: World, item: str) -> dict:
    shown = syncd(world, "links", "history", item, "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


def test_history_shows_every_write_with_why_and_trigger(world: World, daemon: App, look: Observer) -> None:
    z, j = world.zendesk, world.jira
    ticket = z.create_ticket("Export is empty", "The CSV export has no rows.")
    z.agent_set(ticket, add_tags=["jira_escalate"])
    key_field = f"custom:{world.field_id(9001)}"
    key = wait_for(lambda: look.ticket(ticket).fields.get(key_field))
    assert key, "escalation did not happen"
    quiet(world, daemon)
    z.agent_set(ticket, priority="high")
    assert wait_for(lambda: look.issue(key).fields.get("priority") == "High")
    comment_id = j.engineer_comment(key, "Reproduced with an empty filter.")
    assert wait_for(lambda: any("Reproduced with an empty filter." in str(c.get("body"))
                                for c in z.tickets[ticket].comments))
    quiet(world, daemon)

    doc = history_of(world, f"zendesk:{ticket}")
    (link,) = doc["links"]
    entries = doc["history"]
    assert entries == sorted(entries, key=lambda e: -e["id"])            # newest first
    assert all(e["link"] == link["id"] and e["issue_key"] == key for e in entries)

    (create,) = [e for e in entries if e["what"] == "create"]
    assert (create["side"], create["target"]) == ("tracker", key)
    assert create["new"] == f"created for zendesk:{ticket}: Export is empty"
    assert create["why"].startswith("escalation:") and create["trigger"] == f"zendesk:{ticket} (webhook:zendesk)"

    priority = [e for e in entries if e["what"] == "field:priority" and e["side"] == "tracker" and e["new"] == "High"]
    assert len(priority) == 1, entries
    assert priority[0]["old"] == "Medium" and priority[0]["why"].startswith("rule priority (copied): desk → tracker")

    (mirrored,) = [e for e in entries if e["what"] == "comment" and e["source_id"] == comment_id]
    assert mirrored["side"] == "desk" and mirrored["trigger"] == f"jira:{link['issue_id']} (webhook:jira)"
    on_ticket = {str(c["id"]): str(c.get("body")) for c in z.tickets[ticket].comments}
    assert "Reproduced with an empty filter." in on_ticket[mirrored["mirrored_id"]]
    assert mirrored["why"] == f"comment {comment_id} of the tracker mirrored (internal)"

    (note,) = [e for e in entries if e["what"] == "note"]
    assert note["why"] == "escalation: the issue was created for this item" and note["mirrored_id"] in on_ticket

    # The same history by issue key and by issue id; the text form says the same.
    assert history_of(world, key)["history"] == entries
    assert history_of(world, f"jira:{link['issue_id']}")["history"] == entries
    text = syncd(world, "links", "history", key)
    assert text.exit_code == 0, text.output
    assert f"field:priority Medium → High" in text.stdout and f"comment {comment_id} → {mirrored['mirrored_id']}" \
        in text.stdout and f"{len(entries)} entries" in text.stdout


def test_resync_records_its_writes_and_unknown_items_are_errors(world: World, daemon: App, look: Observer) -> None:
    z = world.zendesk
    ticket = z.create_ticket("Login loops", "After SSO the login page reloads.")
    z.agent_set(ticket, add_tags=["jira_escalate"])
    key = wait_for(lambda: look.ticket(ticket).fields.get(f"custom:{world.field_id(9001)}"))
    assert key
    quiet(world, daemon)
    z.knobs.webhooks.paused = True            # the daemon does not hear of it: the operator resyncs
    z.agent_set(ticket, priority="urgent")
    resynced = syncd(world, "resync", f"zendesk:{ticket}")
    assert resynced.exit_code == 0, resynced.output
    entries = history_of(world, f"zendesk:{ticket}")["history"]
    assert entries[0]["what"] == "field:priority" and entries[0]["new"] == "Highest"
    assert entries[0]["trigger"] == f"zendesk:{ticket} (syncd resync)"

    missing = syncd(world, "links", "history", "zendesk:999999")
    assert missing.exit_code == 1 and "zendesk:999999 has no links and no history" in missing.output
    bad = syncd(world, "links", "history", "zendesk:abc")
    assert bad.exit_code == 2 and "bad item id" in bad.output
