"""Two more ``syncd links import`` sources against the simulators, on SQLite and Postgres
(issue 15, part 1): the links of Zendesk's Jira integration V2 (``--from
zendesk-integration-v2 --external-id``), and Intercom conversations whose key attribute
names issues (``--from intercom-key-field``). Each candidate is verified as for the other
sources; every identifier is parsed to the vendor's spelling before it becomes a URL or a
key, and hostile values are clear errors (the external id) or reported wrong (a record's
issue id or key)."""

from __future__ import annotations

import re

import pytest

from syncd.domain import ItemRef
from syncd.sandbox import World
from syncd.store import Store
from syncd.testing import Teammate

from .import_cli import WRONG_EXIT, by_desk as _by_desk, imported, issue_id as _issue_id, store, syncd  # noqa: F401


def test_v2_integration_links_are_verified_and_resumable(world: World, store: Store) -> None:
    z, j = world.zendesk, world.jira
    good, second, moved = (j.engineer_create("ENG", f"issue {n}") for n in range(3))
    t_good, t_second, t_moved, t_bad_id, t_bad_key = (z.create_ticket(f"ticket {n}", "body") for n in range(5))
    z.integration_v2_link("acme-jira", t_good, _issue_id(world, good), good)
    z.integration_v2_link("acme-jira", t_moved, _issue_id(world, moved), moved)
    z.integration_v2_link("acme-jira", t_bad_id, "../../rest/api/3/myself", good)       # hostile records
    z.integration_v2_link("acme-jira", t_bad_key, "", "ENG-1/../../x")
    z.integration_v2_link("acme-jira", "5?admin=1", _issue_id(world, good), good)      # not a ticket id
    z.integration_v2_link("acme-jira", t_second, _issue_id(world, second), second.lower())
    z.integration_v2_link("other-integration", t_good, _issue_id(world, second), second)
    moved_to = j.move_issue(moved, "SUP")

    first = imported(world, "--from", "zendesk-integration-v2", "--external-id", "acme-jira",
                     "--page-size", "2", "--max-pages", "1", exit_code=WRONG_EXIT)
    assert not first["complete"] and set(_by_desk(first, "imported")) == {f"zendesk:{t_good}"}
    assert set(_by_desk(first, "wrong")) == {f"zendesk:{t_moved}"}
    rest = imported(world, "--from", "zendesk-integration-v2", "--external-id", "acme-jira", "--page-size", "2",
                    exit_code=WRONG_EXIT)
    assert rest["complete"] and rest["resumed_from"] is not None, "carries on from the stored cursor"
    assert set(_by_desk(rest, "imported")) == {f"zendesk:{t_second}"}     # a lower-case key is still the key
    assert f"is {moved_to} now" in _by_desk(first, "wrong")[f"zendesk:{t_moved}"]["reason"]
    wrong = _by_desk(rest, "wrong")
    assert set(wrong) == {f"zendesk:{t}" for t in (t_bad_id, t_bad_key)}
    assert wrong[f"zendesk:{t_bad_id}"]["reason"].startswith("bad issue id '../../rest/api/3/myself': expected")
    assert wrong[f"zendesk:{t_bad_key}"]["reason"].startswith("bad issue key 'ENG-1/../../x': expected")
    assert rest["totals"] == {"imported": 2, "skipped": 0, "wrong": 3}
    assert {(str(l.desk), l.issue_key) for l in store.list_links()} == \
        {(f"zendesk:{t_good}", good), (f"zendesk:{t_second}", second)}
    # The hostile values never reached Jira: every issue read names an id or a key.
    reads = [r.path for r in world.jira.records() if r.operation == "getIssue"]
    assert reads and all(re.fullmatch(r"/rest/api/[23]/issue/[A-Z0-9-]+", p) for p in reads), reads

    # Another integration's list has its own progress (it starts from its first page).
    other = imported(world, "--from", "zendesk-integration-v2", "--external-id", "other-integration")
    assert other["resumed_from"] is None and set(_by_desk(other, "imported")) == {f"zendesk:{t_good}"}


@pytest.mark.parametrize("bad", ["../../users", "acme jira", "a" * 65, "acme%2Fjira", "-acme", "acme/links?x=1", ""])
def test_a_hostile_external_id_is_a_clear_error_before_any_request(world: World, store: Store, bad: str) -> None:
    before = len(world.zendesk.records())
    result = syncd(world, "links", "import", "--from", "zendesk-integration-v2", "--external-id", bad)
    assert result.exit_code == 2, result.output
    assert "bad external id" in result.output and "letters, digits" in result.output
    assert len(world.zendesk.records()) == before


def test_external_id_goes_with_v2_only_and_unknown_ones_are_named(world: World, store: Store) -> None:
    alone = syncd(world, "links", "import", "--from", "zendesk-integration-v2")
    assert alone.exit_code == 2 and "--external-id" in alone.output
    stray = syncd(world, "links", "import", "--from", "zendesk-integration", "--external-id", "acme")
    assert stray.exit_code == 2 and "--external-id" in stray.output
    unknown = syncd(world, "links", "import", "--from", "zendesk-integration-v2", "--external-id", "nobody")
    assert unknown.exit_code == 1 and "ListJiraIntegrationLinks" in unknown.output, unknown.output


def test_intercom_key_attribute_links(world: World, store: Store) -> None:
    ic, j, teammate = world.intercom, world.jira, Teammate(world)
    key, other = j.engineer_create("ENG", "Known bug"), j.engineer_create("ENG", "Other bug")
    conv = ic.create_conversation(ic.first_contact_id(), "Same as the known bug")
    teammate.set_attributes(conv, jira_issue=f"{key}, {other.lower()}")
    typo = ic.create_conversation(ic.first_contact_id(), "Typed a wrong key")
    teammate.set_attributes(typo, jira_issue="ENG-9999")
    ic.create_conversation(ic.first_contact_id(), "No key at all")
    linked = ic.create_conversation(ic.first_contact_id(), "Already linked")
    teammate.set_attributes(linked, jira_issue=key)
    store.add_link(ItemRef("intercom:conversation", linked), _issue_id(world, key), key)

    dry = imported(world, "--from", "intercom-key-field", "--dry-run", exit_code=WRONG_EXIT)
    assert store.count_links() == 1, "a dry run stores nothing"
    report = imported(world, "--from", "intercom-key-field", "--page-size", "1", exit_code=WRONG_EXIT)
    assert [r["desk"] for r in dry["imported"]] == [r["desk"] for r in report["imported"]]
    ref, typo_ref, linked_ref = (str(ItemRef("intercom:conversation", c)) for c in (conv, typo, linked))
    assert sorted((r["desk"], r["issue_key"]) for r in report["imported"]) == [(ref, key), (ref, other)]
    assert [(r["desk"], r["issue_key"]) for r in report["skipped"]] == [(linked_ref, key)]
    assert [(r["desk"], r["reason"]) for r in report["wrong"]] == [(typo_ref, "no issue ENG-9999 (deleted?)")]
    assert {(str(l.desk), l.issue_key) for l in store.list_links()} == {(ref, key), (ref, other), (linked_ref, key)}
