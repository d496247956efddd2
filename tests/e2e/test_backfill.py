"""``syncd backfill --since DATE`` against the simulators, on SQLite and Postgres (issue 15,
part 2): items tagged, given a project or a typed key before the daemon started (older
than its first poll window, their webhooks never delivered) are found through the desk's
export or search and queued for the running daemon, which escalates or links each once.
A second backfill queues nothing (already linked), and nothing is escalated twice."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World
from syncd.store import Store
from syncd.testing import Observer, Teammate, quiet, wait_for

HOURS_AGO = 3


def syncd(world: World, *args: str) -> Result:
    return CliRunner(env=world.env).invoke(main, [*args, "--config", str(world.config_path)])


def backfilled(world: World, *args: str) -> dict[str, Any]:
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    result = syncd(world, "backfill", "--since", yesterday, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _by_item(report: dict[str, Any]) -> dict[str, str]:
    return {i["item"]: i["outcome"] for i in report["items"]}


def _started(world: World) -> Iterator[App]:
    app = App.build(world.settings())
    app.start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def late_daemon(world: World) -> Iterator[App]:
    """The daemon, started only when the test asks for it (after the old items exist)."""
    yield from _started(world)


def test_zendesk_items_from_before_the_daemon_are_escalated_once(world: World, look: Observer,
                                                                 request: pytest.FixtureRequest) -> None:
    z, j = world.zendesk, world.jira
    key_field = world.field_id(9001)
    existing = j.engineer_create("ENG", "Known bug")
    # Before syncd was installed: its webhooks were not set up, and all this happened hours
    # before the daemon's first poll window.
    z.knobs.webhooks.drop = 1.0
    z.clock.advance(-HOURS_AGO * 3600)
    tagged = z.create_ticket("Reports time out", "Since Monday the monthly report times out.")
    z.agent_set(tagged, add_tags=["jira_escalate"])
    keyed = z.create_ticket("Same as the known bug", "body")
    z.agent_set(keyed, custom_fields={key_field: existing})
    plain = z.create_ticket("A question", "How do I export?")
    z.clock.advance(HOURS_AGO * 3600)
    z.knobs.webhooks.drop = 0.0

    daemon = request.getfixturevalue("late_daemon")
    quiet(world, daemon)
    assert look.ticket(tagged).fields.get(f"custom:{key_field}") is None, "the daemon cannot have seen it"
    assert daemon.store.count_links() == 0

    dry = backfilled(world, "--dry-run")
    assert _by_item(dry) == {f"zendesk:{tagged}": "would queue", f"zendesk:{keyed}": "would queue"}
    assert dry["read"] >= 3 and dry["found"] == 2 and dry["dry_run"]
    assert daemon.store.queue_depth() == 0, "a dry run queues nothing"

    report = backfilled(world, "--desk", "zendesk")
    assert _by_item(report) == {f"zendesk:{tagged}": "queued", f"zendesk:{keyed}": "queued"}
    assert (report["found"], report["queued"], report["already_linked"]) == (2, 2, 0)
    why = {i["item"]: i["why"] for i in report["items"]}
    assert why[f"zendesk:{tagged}"] == "tag jira_escalate" and why[f"zendesk:{keyed}"] == f"key field names {existing}"

    made = wait_for(lambda: look.ticket(tagged).fields.get(f"custom:{key_field}"), timeout=30)
    assert made and made.startswith("SUP-")
    assert wait_for(lambda: [l.issue_key for l in daemon.store.links_for_desk(ItemRef("zendesk", str(keyed)))]
                    == [existing], timeout=30)
    quiet(world, daemon)

    again = backfilled(world)
    assert _by_item(again) == {f"zendesk:{tagged}": "already linked", f"zendesk:{keyed}": "already linked"}
    assert again["queued"] == 0
    quiet(world, daemon, settle=0.5)
    assert [i.key for i in j.issues.values() if i.summary == "Reports time out"] == [made], "escalated once"
    notes = [c for c in z.tickets[tagged].comments if "Escalated to Jira" in str(c.get("body"))]
    assert len(notes) == 1
    assert daemon.store.links_for_desk(ItemRef("zendesk", str(plain))) == []


def test_backfill_run_twice_before_the_daemon_escalates_once(world: World, look: Observer,
                                                             request: pytest.FixtureRequest) -> None:
    z = world.zendesk
    z.knobs.webhooks.drop = 1.0
    z.clock.advance(-HOURS_AGO * 3600)
    tagged = z.create_ticket("Password reset mail never arrives", "body")
    z.agent_set(tagged, add_tags=["jira_escalate"])
    z.clock.advance(HOURS_AGO * 3600)
    z.knobs.webhooks.drop = 0.0
    upgraded = syncd(world, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    # Twice while no daemon runs: the item is queued once (marking dirty coalesces).
    assert _by_item(backfilled(world)) == {f"zendesk:{tagged}": "queued"}
    assert _by_item(backfilled(world)) == {f"zendesk:{tagged}": "queued"}

    daemon = request.getfixturevalue("late_daemon")
    key = wait_for(lambda: look.ticket(tagged).fields.get(f"custom:{world.field_id(9001)}"), timeout=30)
    assert key
    quiet(world, daemon, settle=0.5)
    assert world.jira.count("createIssue") == 1
    assert _by_item(backfilled(world)) == {f"zendesk:{tagged}": "already linked"}


def test_intercom_conversation_tagged_before_the_daemon(world: World, look: Observer,
                                                       request: pytest.FixtureRequest) -> None:
    ic = world.intercom
    ic.knobs.webhooks.drop = 1.0
    ic.clock.advance(-HOURS_AGO * 3600)
    conv = ic.create_conversation(ic.first_contact_id(), "Sync with Salesforce stopped")
    Teammate(world).tag(conv, "jira_escalate")
    ic.create_conversation(ic.first_contact_id(), "Just saying hi")
    ic.clock.advance(HOURS_AGO * 3600)
    ic.knobs.webhooks.drop = 0.0
    ref = ItemRef("intercom:conversation", conv)

    daemon = request.getfixturevalue("late_daemon")
    quiet(world, daemon)
    assert look.intercom_key(ref) is None
    report = backfilled(world, "--desk", "intercom")
    assert _by_item(report) == {str(ref): "queued"} and report["read"] >= 2
    key = wait_for(lambda: look.intercom_key(ref), timeout=30)
    assert isinstance(key, str) and key.startswith("SUP-")
    quiet(world, daemon, settle=0.5)
    assert _by_item(backfilled(world, "--desk", "intercom")) == {str(ref): "already linked"}
    assert world.jira.count("createIssue") == 1


def test_bad_since_names_the_expectation(world: World) -> None:
    for bad in ("2026-13-45", "yesterday", "12/01/2026", "2026-11-30T25:00"):
        result = syncd(world, "backfill", "--since", bad)
        assert result.exit_code == 2, result.output
        assert "is not a date (2026-11-30) or a UTC time (2026-11-30T08:00:00Z)" in result.output, result.output
    future = (datetime.now(timezone.utc) + timedelta(days=2)).date().isoformat()
    result = syncd(world, "backfill", "--since", future)
    assert result.exit_code == 2 and "is in the future" in result.output, result.output


def test_text_report(world: World, look: Observer) -> None:
    z = world.zendesk
    z.knobs.webhooks.drop = 1.0
    tagged = z.create_ticket("Old escalation", "body")
    z.agent_set(tagged, add_tags=["jira_escalate"])
    closed = z.create_ticket("Long closed", "body")
    z.agent_set(closed, add_tags=["jira_escalate"], status="closed")   # Zendesk refuses updates to it
    upgraded = syncd(world, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    result = syncd(world, "backfill", "--since", "2020-01-01", "--desk", "zendesk", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"would queue    zendesk:{tagged} (tag jira_escalate)" in result.stdout
    assert f"closed         zendesk:{closed} (tag jira_escalate)" in result.stdout
    assert ("2 want escalation or a link: 1 would be queued (dry run), 0 already linked, 1 closed (not queued)"
            in result.stdout)
    result = syncd(world, "backfill", "--since", "2020-01-01", "--desk", "zendesk")
    assert result.exit_code == 0, result.output
    store = Store.open(world.settings().core.database_url)
    try:
        assert store.queue_depth() == 1, "the closed ticket is not queued"
    finally:
        store.close()
