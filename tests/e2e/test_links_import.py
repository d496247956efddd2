"""``syncd links import`` against the simulators, on SQLite and Postgres (issue 15,
part 1): every candidate is checked against both vendors; a wrong hand-kept link
(deleted issue, stale key of a moved issue, a key naming another issue than the
id, a ticket that does not exist) is reported and never stored; a link syncd
already holds is skipped; an import cut short carries on where it stopped; the
imported links are reconciled by the daemon like any other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from syncd.domain import ItemRef
from syncd.sandbox import World
from syncd.store import Store
from syncd.testing import Observer, wait_for

from .import_cli import WRONG_EXIT, by_desk as _by_desk, imported, issue_id as _issue_id, store, syncd  # noqa: F401


def test_integration_links_are_checked_and_wrong_ones_reported(world: World, store: Store) -> None:
    z, j, look = world.zendesk, world.jira, Observer(world)
    good, other_key, deleted, moved, kept = (j.engineer_create("ENG", f"issue {n}") for n in range(5))
    t_good, t_mixed, t_deleted, t_moved, t_kept = (z.create_ticket(f"ticket {n}", "body") for n in range(5))
    z.integration_link(t_good, _issue_id(world, good), good)
    z.integration_link(t_mixed, _issue_id(world, kept), other_key)     # hand-kept: the key of another issue
    z.integration_link(t_deleted, _issue_id(world, deleted), deleted)
    z.integration_link(t_moved, _issue_id(world, moved), moved)
    z.integration_link(987654, _issue_id(world, good), good)           # a ticket that does not exist
    z.integration_link(t_kept, _issue_id(world, kept), kept)
    look.jira.delete_issue(_issue_id(world, deleted))
    moved_to = j.move_issue(moved, "SUP")
    store.add_link(ItemRef("zendesk", str(t_kept)), _issue_id(world, kept), kept)   # syncd holds it already

    dry = imported(world, "--from", "zendesk-integration", "--dry-run", exit_code=WRONG_EXIT)
    assert set(_by_desk(dry, "imported")) == {f"zendesk:{t_good}"}
    assert store.count_links() == 1, "a dry run stores nothing"

    report = imported(world, "--from", "zendesk-integration", "--page-size", "2", exit_code=WRONG_EXIT)
    assert report["complete"] and not report["dry_run"]
    assert set(_by_desk(report, "imported")) == {f"zendesk:{t_good}"}
    assert set(_by_desk(report, "skipped")) == {f"zendesk:{t_kept}"}
    wrong = _by_desk(report, "wrong")
    assert set(wrong) == {f"zendesk:{t}" for t in (t_mixed, t_deleted, t_moved, 987654)}
    assert f"names issue {_issue_id(world, other_key)}" in wrong[f"zendesk:{t_mixed}"]["reason"]
    assert "does not exist" in wrong[f"zendesk:{t_deleted}"]["reason"]
    assert f"is {moved_to} now" in wrong[f"zendesk:{t_moved}"]["reason"]
    assert "zendesk:987654 does not exist" in wrong["zendesk:987654"]["reason"]

    links = store.list_links()
    assert {(str(l.desk), l.issue_key) for l in links} == {(f"zendesk:{t_good}", good), (f"zendesk:{t_kept}", kept)}
    made = next(l for l in links if l.issue_key == good)
    assert [r.event for r in store.audit_log(made.id)] == ["link_added"]
    assert made.issue_id == _issue_id(world, good)


def test_text_report_names_each_wrong_link(world: World, store: Store) -> None:
    z, j = world.zendesk, world.jira
    real, other = j.engineer_create("ENG", "real"), j.engineer_create("ENG", "other")
    ticket = z.create_ticket("hand-kept", "body")
    z.integration_link(ticket, _issue_id(world, real), other)
    result = syncd(world, "links", "import", "--from", "zendesk-integration")
    assert result.exit_code == WRONG_EXIT, result.output
    assert f"WRONG     zendesk:{ticket} → {other}: key {other} names issue" in result.stdout
    assert "0 imported, 0 skipped, 1 wrong this run; source read to its end" in result.stdout
    assert store.count_links() == 0


def test_key_field_import_resumes_where_it_stopped(world: World, store: Store) -> None:
    z, j = world.zendesk, world.jira
    key_field = world.field_id(9001)
    keys = [j.engineer_create("ENG", f"issue {n}") for n in range(5)]
    tickets = [z.create_ticket(f"ticket {n}", "body") for n in range(5)]
    for ticket, key in zip(tickets, keys):
        z.agent_set(ticket, custom_fields={key_field: key.lower() if ticket == tickets[0] else key})
    unknown = z.create_ticket("typed a wrong key", "body")
    z.agent_set(unknown, custom_fields={key_field: "ENG-9999"})

    seen: list[str] = []
    first = _run_tolerating_wrong(world)
    assert not first["complete"] and first["resumed_from"] is None
    seen += [r["desk"] for r in first["imported"]]
    runs = 1
    while True:
        report = _run_tolerating_wrong(world)
        runs += 1
        assert report["resumed_from"] is not None, "each run carries on from the stored page"
        assert not set(seen) & {r["desk"] for r in report["imported"]}, "no page is imported twice"
        seen += [r["desk"] for r in report["imported"]]
        if report["complete"]:
            break
        assert runs < 20
    assert sorted(seen) == sorted(f"zendesk:{t}" for t in tickets)
    assert {(str(l.desk), l.issue_key) for l in store.list_links()} == \
        {(f"zendesk:{t}", k) for t, k in zip(tickets, keys)}
    assert report["totals"]["imported"] == len(tickets) and report["totals"]["wrong"] == 1

    again = _run_tolerating_wrong(world, "--page-size", "100")   # a finished source starts over
    assert again["resumed_from"] is None and again["complete"]
    assert sorted(r["desk"] for r in again["skipped"]) == sorted(f"zendesk:{t}" for t in tickets)
    assert [r["issue_key"] for r in again["wrong"]] == ["ENG-9999"]
    assert store.count_links() == len(tickets)


def _run_tolerating_wrong(world: World, *extra: str) -> dict[str, Any]:
    args = extra or ("--page-size", "2", "--max-pages", "1")
    result = syncd(world, "links", "import", "--json", "--from", "key-field", *args)
    assert result.exit_code in (0, WRONG_EXIT), result.output
    report = json.loads(result.stdout)
    assert (result.exit_code == WRONG_EXIT) == bool(report["wrong"])
    return report


def test_jira_remote_links_pointing_at_tickets(world: World, store: Store) -> None:
    z, j, look = world.zendesk, world.jira, Observer(world)
    zendesk_url = world.settings().zendesk.url.rstrip("/")
    issue, elsewhere = j.engineer_create("ENG", "has a ticket"), j.engineer_create("SUP", "links elsewhere")
    ticket = z.create_ticket("linked by hand in Jira", "body")
    look.jira.upsert_remote_link(_issue_id(world, issue), "hand:1", f"{zendesk_url}/agent/tickets/{ticket}", "T")
    look.jira.upsert_remote_link(_issue_id(world, issue), "hand:2", "https://example.com/agent/tickets/5", "other")
    look.jira.upsert_remote_link(_issue_id(world, elsewhere), "hand:3", f"{zendesk_url}/agent/tickets/876543", "gone")

    report = imported(world, "--from", "jira-remote-links", "--jql", "project in (ENG, SUP)", exit_code=WRONG_EXIT)
    assert [(r["desk"], r["issue_key"]) for r in report["imported"]] == [(f"zendesk:{ticket}", issue)]
    assert [(r["desk"], r["issue_key"]) for r in report["wrong"]] == [("zendesk:876543", elsewhere)]
    assert [(str(l.desk), l.issue_key) for l in store.list_links()] == [(f"zendesk:{ticket}", issue)]


def test_imported_links_are_reconciled_by_the_daemon(world: World, store: Store, daemon) -> None:
    z, j, look = world.zendesk, world.jira, Observer(world)
    key = j.engineer_create("ENG", "Imported from the old integration")
    ticket = z.create_ticket("Adopted ticket", "body")
    z.integration_link(ticket, _issue_id(world, key), key)
    imported(world, "--from", "zendesk-integration")
    key_field = f"custom:{world.field_id(9001)}"
    # The daemon's first reconcile of the link writes the key field, as for a link it made.
    assert wait_for(lambda: look.ticket(ticket).fields.get(key_field) == key, timeout=20)
