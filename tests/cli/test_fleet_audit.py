"""``syncd reconcile --dry-run`` over many links (issue 15), on SQLite and Postgres:
the small version of bench/fleet_scale.py's seeded-drift check (20 links, 2 of each
kind of drift: every one reported, nothing else), a pass cut short carries on
where it stopped (``--restart`` starts over), and ``--since`` audits only the
links whose desk item or issue changed since then."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest
from click.testing import CliRunner, Result

from syncd import audit_progress, drift, drift_pass
from syncd.cli import main
from syncd.drift_seeds import Pair, link_pairs, mismatches, seed_drift, seed_pairs
from syncd.runtime import App
from syncd.sandbox import World, build_world
from syncd.store import Store

DRIFT_EXIT = 3


@pytest.fixture
def world(tmp_path, db_url) -> Iterator[World]:
    w = build_world(tmp_path / "world", database_url=db_url, zendesk_poll=3600, jira_poll=3600,
                    intercom_poll=3600, log_level="warning")
    for sim in (w.zendesk, w.jira):
        sim.knobs.webhooks.drop = 1.0   # no daemon: the audit alone looks at the accounts
    yield w
    w.stop()


@pytest.fixture
def pairs(world: World) -> Iterator[list[Pair]]:
    """20 linked pairs in sync."""
    upgraded = syncd(world, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    store = Store.open(world.settings().core.database_url)
    made = seed_pairs(world, 20)
    link_pairs(store, made)
    store.close()
    yield made


def syncd(world: World, *args: str) -> Result:
    return CliRunner(env=world.env).invoke(main, [*args, "--config", str(world.config_path)])


def audit(world: World, *args: str, code: int) -> dict[str, Any]:
    result = syncd(world, "reconcile", "--dry-run", "--json", *args)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def interrupted_pass(world: World, after: int) -> audit_progress.AuditPass:
    """An audit of every link, in chunks of 5, interrupted (as by Ctrl-C) after ``after`` issues."""
    def interrupt(a: drift.IssueAudit, done: int, total: int) -> None:
        if done == after:
            raise KeyboardInterrupt

    app = App.build(world.settings(), migrate=False, role="command")
    try:
        with pytest.raises(KeyboardInterrupt):
            drift_pass.run(app.engine, drift.select_links(app.store, "all"), "all", chunk=5, threads=2,
                           on_issue=interrupt)
        stored = audit_progress.load(app.store, "all")
    finally:
        app.store.close()
    assert stored is not None
    return stored


def test_every_seeded_drift_is_reported_and_nothing_else(world: World, pairs: list[Pair]) -> None:
    assert audit(world, "--all", code=0)["drifted"] == [], "seeded in sync: no drift"
    seeded = seed_drift(world, pairs, per_kind=2)
    assert sorted(seeded.values()) == sorted(["field", "comment_to_jira", "comment_to_desk", "key"] * 2)
    report = audit(world, "--all", code=DRIFT_EXIT)
    assert report["errors"] == []
    assert mismatches(seeded, report) == ({}, {})
    moved = next(l for i in report["drifted"] for l in i["links"] for d in l["drift"] if d["kind"] == "key")
    assert moved["drift"][0]["detail"].startswith("SUP-") and "→ ENG-" in moved["drift"][0]["detail"]

    text = syncd(world, "reconcile", "--all", "--dry-run")
    assert text.exit_code == DRIFT_EXIT
    assert "stored issue key is stale: SUP-" in text.stdout
    assert "20 links checked: 8 drifted" in text.stdout


def test_a_pass_cut_short_carries_on_where_it_stopped(world: World, pairs: list[Pair]) -> None:
    seeded = seed_drift(world, pairs, per_kind=2)
    stored = interrupted_pass(world, after=7)   # Ctrl-C in the middle of the second chunk of 5
    assert stored is not None and not stored.done and stored.checked == 5, "the first chunk is stored"

    resumed = audit(world, "--all", code=DRIFT_EXIT)
    assert resumed["resumed"] and resumed["audited_now"] == 15 and resumed["issues"] == 20
    assert mismatches(seeded, resumed) == ({}, {}), "the findings of the first run are in the report"

    again = audit(world, "--all", code=DRIFT_EXIT)
    assert not again["resumed"] and again["audited_now"] == 20, "a finished pass starts over"
    assert mismatches(seeded, again) == ({}, {})

    # --restart drops an unfinished pass and its findings.
    assert interrupted_pass(world, after=6).checked == 5
    restarted = audit(world, "--all", "--restart", code=DRIFT_EXIT)
    assert not restarted["resumed"] and restarted["audited_now"] == 20
    assert mismatches(seeded, restarted) == ({}, {})


def test_since_audits_only_the_links_changed_since_then(world: World, pairs: list[Pair]) -> None:
    # Two minutes pass on the vendors' clocks (Jira's JQL dates have minute resolution).
    for sim in (world.zendesk, world.jira):
        sim.clock.advance(180)
    since = datetime.fromtimestamp(world.jira.clock.now() - 5, timezone.utc).isoformat()
    field_pair, comment_pair = pairs[3], pairs[11]
    world.zendesk.agent_set(field_pair.ticket, custom_fields={world.field_id(9006): "Every EU customer"})
    world.jira.engineer_comment(comment_pair.key, "Root cause found")

    report = audit(world, "--all", "--since", since, code=DRIFT_EXIT)
    assert report["links"] == 2, "only the two links changed since then are audited"
    assert mismatches({field_pair.desk: "field", comment_pair.desk: "comment_to_desk"}, report) == ({}, {})

    assert audit(world, "--all", code=DRIFT_EXIT)["links"] == 20
    bad = syncd(world, "reconcile", "--all", "--dry-run", "--since", "last tuesday")
    assert bad.exit_code == 2 and "is not a date" in bad.output
