"""``syncd reconcile`` against the simulators, on SQLite and Postgres (issue 15,
part 3): the dry run reports each seeded drift (a field that differs, a comment
missing on either side) on its link and nothing else, writes nothing, and exits 0
only when no drift remains; without --dry-run the items are queued for the daemon
and followed until done."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.runtime import App
from syncd.sandbox import World
from syncd.testing import Observer

DRIFT_EXIT, TIMEOUT_EXIT = 3, 4


def syncd(world: World, *args: str) -> Result:
    return CliRunner(env=world.env).invoke(main, [*args, "--config", str(world.config_path)])


def ok(result: Result, code: int = 0) -> Result:
    assert result.exit_code == code, result.output
    return result


def audit(world: World, *scope: str, code: int) -> dict[str, Any]:
    return json.loads(ok(syncd(world, "reconcile", *scope, "--dry-run", "--json"), code).stdout)


def drift_by_link(report: dict[str, Any]) -> dict[str, set[tuple[str, str, str]]]:
    return {f"{l['desk']} {l['issue_key']}": {(d["kind"], d["side"], d["what"]) for d in l["drift"]}
            for issue in report["drifted"] for l in issue["links"] if l["drift"]}


@pytest.fixture
def linked(world: World) -> Iterator[list[tuple[int, str]]]:
    """Four tickets, each linked to its own issue and reconciled (issue aggregates too): in sync."""
    ok(syncd(world, "db", "upgrade"))
    pairs = []
    for n in range(4):
        key = world.jira.engineer_create("ENG", f"issue {n}")
        ticket = world.zendesk.create_ticket(f"ticket {n}", "body")
        world.zendesk.agent_set(ticket, status="open")   # an agent's reply would open a new ticket: other drift
        ok(syncd(world, "link", f"zendesk:{ticket}", key))
        ok(syncd(world, "resync", key))
        pairs.append((ticket, key))
    yield pairs


def test_dry_run_reports_each_seeded_drift_and_nothing_else(world: World, linked: list[tuple[int, str]]) -> None:
    (t_field, k_field), (t_public, k_public), (t_jira, k_jira), _ = linked
    assert audit(world, "--all", code=0)["drifted"] == [], "linked and reconciled: no drift"

    world.zendesk.agent_set(t_field, custom_fields={world.field_id(9006): "Every EU customer"})
    world.zendesk.agent_reply(t_public, "We are on it", public=True)
    world.jira.engineer_comment(k_jira, "Root cause found")

    report = audit(world, "--all", code=DRIFT_EXIT)
    assert report["errors"] == []
    assert drift_by_link(report) == {
        f"zendesk:{t_field} {k_field}": {("field", "jira", "field:customfield_10050")},
        f"zendesk:{t_public} {k_public}": {("comment", "jira", "comment")},
        f"zendesk:{t_jira} {k_jira}": {("comment", "desk", "comment")},
    }
    field = next(d for i in report["drifted"] for l in i["links"] for d in l["drift"] if d["kind"] == "field")
    assert field["detail"] == "Every EU customer"

    look = Observer(world)
    assert not look.issue_has(k_public, "We are on it"), "a dry run writes nothing"
    assert not look.ticket_has(t_jira, "Root cause found", public=False)
    assert audit(world, "--all", code=DRIFT_EXIT) == report, "and so reports the same again"

    one = audit(world, "--issue", k_jira, code=DRIFT_EXIT)
    assert set(drift_by_link(one)) == {f"zendesk:{t_jira} {k_jira}"}
    assert audit(world, "--desk", "intercom", code=0)["drifted"] == []

    text = ok(syncd(world, "reconcile", "--desk", f"zendesk:{t_jira}", "--dry-run"), DRIFT_EXIT).stdout
    assert f"zendesk:{t_jira} ↔ {k_jira}: comment missing on the desk:" in text
    assert "1 links checked: 1 drifted" in text


def test_reconcile_queues_for_the_daemon_and_follows_until_no_drift(world: World,
                                                                     linked: list[tuple[int, str]]) -> None:
    (t_public, k_public), (t_jira, k_jira) = linked[1], linked[2]
    world.zendesk.agent_reply(t_public, "We are on it", public=True)
    world.jira.engineer_comment(k_jira, "Root cause found")
    audit(world, "--all", code=DRIFT_EXIT)

    stalled = json.loads(ok(syncd(world, "reconcile", "--all", "--timeout", "1", "--json"), TIMEOUT_EXIT).stdout)
    assert len(stalled["still_queued"]) == 4, "no daemon: nothing leaves the queue"

    app = App.build(world.settings())
    app.start()
    try:
        done = json.loads(ok(syncd(world, "reconcile", "--all", "--json")).stdout)
        assert done == {"queued": 4, "done": 4, "dead": {}, "still_queued": []}
    finally:
        app.stop()
    assert audit(world, "--all", code=0)["drifted"] == []
    look = Observer(world)
    assert look.issue_has(k_public, "We are on it")
    assert look.ticket_has(t_jira, "Root cause found", public=False)


def test_a_link_whose_issue_was_deleted_is_drift(world: World, linked: list[tuple[int, str]]) -> None:
    ticket, key = linked[0]
    Observer(world).jira.delete_issue(str(world.jira.issue(key).id))
    report = audit(world, "--issue", key, code=DRIFT_EXIT)
    [issue] = report["drifted"]
    assert [d["kind"] for d in issue["issue_drift"]] == ["gone"]
    assert [l["drift"] for l in issue["links"]] == [[]]


def test_exactly_one_scope(world: World) -> None:
    ok(syncd(world, "db", "upgrade"))
    assert syncd(world, "reconcile", "--dry-run").exit_code == 2
    assert syncd(world, "reconcile", "--all", "--issue", "ENG-1", "--dry-run").exit_code == 2
    assert syncd(world, "reconcile", "--desk", "zendesk:x", "--dry-run").exit_code == 2
    assert syncd(world, "reconcile", "--desk", "freshdesk", "--dry-run").exit_code == 2
