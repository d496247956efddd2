"""Store-backed commands (``db upgrade``, ``links``, ``dlq``, ``status``) on
SQLite and Postgres. ``link``/``resync``/``plan`` against live simulators are
covered by the end-to-end tests."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.domain import ItemRef
from syncd.reconcile import BaseEntry
from syncd.sandbox import World, build_world
from syncd.store import Store


@pytest.fixture
def world(tmp_path, db_url) -> Iterator[World]:
    w = build_world(tmp_path / "world", database_url=db_url)
    yield w
    w.stop()


@pytest.fixture
def store(world: World) -> Iterator[Store]:
    s = Store.open(world.settings().core.database_url)
    s.upgrade()
    yield s
    s.close()


def syncd(world: World, *args: str) -> Result:
    return CliRunner(env=world.env).invoke(main, [*args, "--config", str(world.config_path)])


def test_db_upgrade_is_idempotent(world: World) -> None:
    first = syncd(world, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("database at revision ") and "None" not in first.stdout
    again = syncd(world, "db", "upgrade")
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout


def test_links_list_and_show_as_json(world: World, store: Store) -> None:
    a = store.add_link(ItemRef.parse("zendesk:11"), "10042", "ENG-42")
    b = store.add_link(ItemRef.parse("intercom:conversation:9"), "10042", "ENG-42")
    store.put_base(a.id, {"status": BaseEntry(desk="open", tracker="In Progress")}, expected_revision=0)

    listed = syncd(world, "links", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert {(r["id"], r["desk"], r["issue_id"], r["issue_key"]) for r in rows} == {
        (a.id, "zendesk:11", "10042", "ENG-42"), (b.id, "intercom:conversation:9", "10042", "ENG-42")}

    shown = syncd(world, "links", "show", "zendesk:11", "--json")
    assert shown.exit_code == 0, shown.output
    (doc,) = json.loads(shown.stdout)
    assert doc["issue_key"] == "ENG-42" and doc["revision"] == 1
    assert doc["base"] == {"status": {"desk": "open", "tracker": "In Progress"}}

    by_issue = json.loads(syncd(world, "links", "show", "jira:10042", "--json").stdout)
    assert {d["desk"] for d in by_issue} == {"zendesk:11", "intercom:conversation:9"}

    text = syncd(world, "links", "list")
    assert "2 links" in text.stdout and "ENG-42" in text.stdout
    assert syncd(world, "links", "show", "zendesk:999").exit_code == 1
    assert syncd(world, "links", "show", "nonsense").exit_code == 2


def _dead(store: Store, ref: str) -> int:
    store.mark_dirty([ItemRef.parse(ref)], "test")
    (claim,) = store.claim("test-worker", 1, 30)
    assert store.fail(claim, "HTTP 500 from jira", max_attempts=1, backoff=lambda n: 0.0)
    (row,) = [d for d in store.dead_letters() if str(d.ref) == ref]
    return row.id


def test_dlq_list_retry_drop(world: World, store: Store) -> None:
    first, second = _dead(store, "zendesk:5"), _dead(store, "zendesk:6")

    listed = syncd(world, "dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {first, second}
    assert rows[first]["error"] == "HTTP 500 from jira" and rows[first]["attempts"] == 1
    assert "2 dead letters" in syncd(world, "dlq", "list").stdout

    retried = syncd(world, "dlq", "retry", str(first))
    assert retried.exit_code == 0, retried.output
    assert [str(d.ref) for d in store.dead_letters()] == ["zendesk:6"]
    assert store.queue_depth() == 1
    (claim,) = store.claim("test-worker", 1, 30)
    assert str(claim.ref) == "zendesk:5" and claim.attempts == 0

    dropped = syncd(world, "dlq", "drop", str(second))
    assert dropped.exit_code == 0, dropped.output
    assert store.dead_letters() == []
    for verb in ("retry", "drop"):
        missing = syncd(world, "dlq", verb, str(second))
        assert missing.exit_code == 1 and f"no dead letter {second}" in missing.output


def test_status(world: World, store: Store) -> None:
    _dead(store, "zendesk:2")
    store.add_link(ItemRef.parse("zendesk:1"), "10001", "ENG-1")
    store.mark_dirty([ItemRef.parse("zendesk:1"), ItemRef.parse("jira:10001")], "test")
    result = syncd(world, "status")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert {k: v.strip() for k, v in lines.items() if k in ("links", "queue depth", "dead letters")} == {
        "links": "1", "queue depth": "2", "dead letters": "1"}
    assert lines["daemon"].strip().startswith("not reachable at http://")
    assert lines["oldest dirty"].strip().endswith("s")
