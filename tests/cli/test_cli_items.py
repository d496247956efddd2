"""Commands that name an item, and commands that read the database, against a simulated
world (issue 13, findings 5, 7, 8, 10): read-only commands never migrate; unknown items,
unconfigured desks and vendor failures are one-line errors naming the URL and config key
(exit 1, never a traceback); issue keys work wherever an item is named; ``plan`` prints
exactly what ``resync`` then writes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.dbschema import head_revision
from syncd.sandbox import World, build_world, free_port
from syncd.store import Store


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = build_world(tmp_path / "world")
    yield w
    w.stop()


def syncd(world: World, *args: str, config: Path | None = None, **env: str | None) -> Result:
    return CliRunner(env={**world.env, **env}).invoke(main, [*args, "--config", str(config or world.config_path)])


def _no_chatter(result: Result) -> None:
    assert "Traceback" not in result.output
    assert not re.search(r"alembic|Context impl|Running upgrade|Will assume", result.output, re.I), result.output


def _upgraded(world: World) -> None:
    done = syncd(world, "db", "upgrade")
    assert done.exit_code == 0, done.output


def test_read_only_commands_never_migrate(world: World) -> None:
    for command in (["status"], ["links", "list"], ["dlq", "list"]):
        refused = syncd(world, *command)
        assert refused.exit_code == 1, refused.output
        assert "has no syncd schema: run `syncd db upgrade --config" in refused.stderr
        _no_chatter(refused)
    with Store.open(world.settings().core.database_url) as store:
        assert store.current_revision() is None   # nothing was migrated behind the admin's back
    behind = syncd(world, "db", "current")
    assert behind.exit_code == 1 and "(empty: no syncd schema)" in behind.stdout

    _upgraded(world)
    for command in (["status"], ["links", "list"], ["dlq", "list"]):
        ok = syncd(world, *command)
        assert ok.exit_code == 0, ok.output
        _no_chatter(ok)
    current = syncd(world, "db", "current")
    assert current.exit_code == 0 and "up to date" in current.stdout
    history = CliRunner().invoke(main, ["db", "history"])
    head = head_revision()   # the newest migration, whichever it is: the history marks it
    assert history.exit_code == 0 and re.search(rf"^{head}\S*\s.*\(head\)$", history.stdout, re.M), history.stdout
    assert re.search(r"^0001\S*\s", history.stdout, re.M), history.stdout


def test_unknown_items_and_unconfigured_desks_are_clear_errors(world: World) -> None:
    _upgraded(world)
    text = world.config_path.read_text()
    no_intercom = world.directory / "no-intercom.toml"
    no_intercom.write_text(text[:text.index("[intercom]")] + text[text.index("[logging]"):])
    for verb in ("plan", "resync"):
        unconfigured = syncd(world, verb, "intercom:conversation:1", config=no_intercom)
        assert unconfigured.exit_code == 1, unconfigured.output
        assert "intercom is not configured in" in unconfigured.stderr and "(no [intercom] section)" in unconfigured.stderr
        _no_chatter(unconfigured)
        unknown = syncd(world, verb, "zendesk:999")
        assert unknown.exit_code == 1 and f"no zendesk:999 at {world.zendesk.base_url} (zendesk.url)" in unknown.stderr
        no_issue = syncd(world, verb, "SUP-999")
        assert no_issue.exit_code == 1 and f"no Jira issue SUP-999 at {world.jira.base_url}" in no_issue.stderr
        _no_chatter(no_issue)


def test_vendor_errors_name_the_url_and_the_config_key(world: World) -> None:
    _upgraded(world)
    ticket = world.zendesk.create_ticket("Printer on fire", "Help")
    wrong_token = syncd(world, "plan", f"zendesk:{ticket}", SYNCD_ZENDESK_TOKEN="not-the-token")
    assert wrong_token.exit_code == 1
    assert "refused syncd's credentials; check zendesk.email, zendesk.token (env:SYNCD_ZENDESK_TOKEN)" \
        in wrong_token.stderr, wrong_token.stderr

    text = world.config_path.read_text()
    nobody = f"http://127.0.0.1:{free_port()}"
    unreachable = world.directory / "unreachable.toml"
    unreachable.write_text(text.replace(f'url = "{world.zendesk.base_url}"', f'url = "{nobody}"'))
    down = syncd(world, "plan", f"zendesk:{ticket}", config=unreachable)
    assert down.exit_code == 1 and f"cannot reach zendesk.url = {nobody}" in down.stderr, down.stderr

    tls = world.directory / "tls.toml"
    tls.write_text(text.replace(f'url = "{world.zendesk.base_url}"',
                                f'url = "{world.zendesk.base_url.replace("http:", "https:")}"'))
    wrong_scheme = syncd(world, "plan", f"zendesk:{ticket}", config=tls)
    assert wrong_scheme.exit_code == 1
    assert "TLS failed with zendesk.url = https://" in wrong_scheme.stderr
    assert "an https:// URL for a server that speaks plain http?" in wrong_scheme.stderr
    for r in (wrong_token, down, wrong_scheme):
        _no_chatter(r)


def _writes(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["writes"]


def test_issue_keys_everywhere_and_plan_prints_what_resync_writes(world: World) -> None:
    _upgraded(world)
    ticket = world.zendesk.create_ticket("Login fails", "Since this morning", priority="high")
    key = world.jira.engineer_create("SUP", "Login fails")
    linked = syncd(world, "link", f"zendesk:{ticket}", key)
    assert linked.exit_code == 0, linked.output

    scenarios = [
        ("an engineer moves the issue", lambda: world.jira.engineer_transition(key, "In Progress")),
        ("an agent changes the priority", lambda: world.zendesk.agent_set(ticket, priority="urgent")),
        ("both at once", lambda: (world.jira.engineer_transition(key, "Done"),
                                  world.zendesk.agent_set(ticket, priority="low"))),
    ]
    for what, change in scenarios:
        change()
        planned = _writes(syncd(world, "plan", key, "--json"))
        assert planned, what
        assert _writes(syncd(world, "plan", key.lower(), "--json")) == planned, f"{what}: plan wrote something"
        assert _writes(syncd(world, "plan", f"zendesk:{ticket}", "--json")), what
        resynced = _writes(syncd(world, "resync", key, "--json"))
        # The same writes; not in the same order (a reconcile sends one side's writes
        # together: the desk's fields and notes go in one ticket update, issue 16).
        assert sorted(planned, key=repr) == sorted(resynced, key=repr), \
            f"{what}: plan said {planned}, resync wrote {resynced}"
        assert _writes(syncd(world, "plan", key, "--json")) == [], f"{what}: still out of sync after resync"

    shown = syncd(world, "links", "show", key, "--json")
    assert shown.exit_code == 0, shown.output
    (doc,) = json.loads(shown.stdout)
    assert doc["issue_key"] == key and doc["base"]
    assert not [k for k in doc["base"] if k.startswith("__")], doc["base"]
    text = syncd(world, "links", "show", key)
    assert "__" not in text.stdout and f"zendesk:{ticket} ↔ {key}" in text.stdout


def test_dlq_list_json_gives_iso_timestamps(world: World) -> None:
    _upgraded(world)
    from syncd.domain import ItemRef
    with Store.open(world.settings().core.database_url) as store:
        store.mark_dirty([ItemRef.parse("zendesk:5")], "test")
        (claim,) = store.claim("t", 1, 30)
        assert store.fail(claim, "boom", max_attempts=1, backoff=lambda n: 0.0)
    listed = syncd(world, "dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", row["failed_at"]), row
    assert row["ref"] == "zendesk:5"


def test_status_as_json(world: World) -> None:
    _upgraded(world)
    result = syncd(world, "status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["links"] == 0 and doc["queue_depth"] == 0 and doc["daemon"] is None


def test_a_write_to_a_field_zendesk_does_not_have_is_reported_not_claimed(world: World) -> None:
    """Finding 5: Zendesk drops a value for a ticket field id it does not have and answers 200;
    resync must say so instead of printing it as written on every run."""
    _upgraded(world)
    mapping = world.directory / "zendesk-jira.toml"
    real = world.field_id(9002)   # "Jira status": written when the issue moves
    mapping.write_text(mapping.read_text().replace(f'"custom:{real}"', '"custom:424242"'))
    ticket = world.zendesk.create_ticket("Export broken", "CSV is empty")
    key = world.jira.engineer_create("SUP", "Export broken")
    assert syncd(world, "link", f"zendesk:{ticket}", key).exit_code == 0
    world.jira.engineer_transition(key, "In Progress")
    for _ in range(2):
        result = syncd(world, "resync", key, "--json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert not [w for w in doc["writes"] if w["what"] == "field:custom:424242"], doc
        assert any(d.startswith("custom:424242: refused: Zendesk has no ticket field 424242") for d in doc["decisions"]), doc
