"""``syncd webhooks install`` against the simulators: registers once, a second
run creates nothing new, the Zendesk signing secret is shown to the admin and
never logged."""

from __future__ import annotations

from typing import Iterator

import pytest
from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.sandbox import World, build_world

PUBLIC = "https://syncd.example.com"


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = build_world(tmp_path / "world")
    yield w
    w.stop()


def _install(world: World, **env: str | None) -> Result:
    runner = CliRunner(env={**world.env, **env})
    return runner.invoke(main, ["webhooks", "install", "--config", str(world.config_path), "--public-url", PUBLIC])


def _registrations(world: World) -> tuple[int, int, int]:
    return len(world.zendesk.webhook_defs), len(world.zendesk.triggers), len(world.jira.hooks)


def _syncd_hook(world: World) -> dict:
    return next(h for h in world.zendesk.webhook_defs.values() if h["endpoint"] == f"{PUBLIC}/webhooks/zendesk")


def test_first_install_registers_and_shows_the_zendesk_secret_once(world: World) -> None:
    before = _registrations(world)
    # Before the first install the Zendesk secret does not exist yet: that must not stop it.
    result = _install(world, SYNCD_ZENDESK_WEBHOOK_SECRET=None)
    assert result.exit_code == 0, result.output
    assert _registrations(world) == (before[0] + 1, before[1], before[2] + 1)

    hook = _syncd_hook(world)
    secret = world.zendesk.webhook_secrets[hook["id"]]
    assert result.stdout.count(secret) == 1
    assert secret not in result.stderr
    assert "env:SYNCD_ZENDESK_WEBHOOK_SECRET" in result.stdout
    # The existing trigger now calls the new webhook (whose secret the admin is told).
    (trigger,) = world.zendesk.triggers.values()
    assert [a["value"][0] for a in trigger["actions"]] == [hook["id"]]
    jira_urls = [h.url for h in world.jira.hooks.values()]
    assert f"{PUBLIC}/webhooks/jira" in jira_urls
    jira_hook = next(h for h in world.jira.hooks.values() if h.url == f"{PUBLIC}/webhooks/jira")
    assert jira_hook.secret == world.env["SYNCD_JIRA_WEBHOOK_SECRET"]
    assert f"{PUBLIC}/webhooks/intercom" in result.stdout


def test_second_install_creates_nothing_and_keeps_a_stored_secret_hidden(world: World) -> None:
    assert _install(world).exit_code == 0
    after_first = _registrations(world)
    secret = world.zendesk.webhook_secrets[_syncd_hook(world)["id"]]
    writes = world.zendesk.writes() + world.jira.writes()

    again = _install(world, SYNCD_ZENDESK_WEBHOOK_SECRET=secret)
    assert again.exit_code == 0, again.output
    assert _registrations(world) == after_first
    assert world.zendesk.writes() + world.jira.writes() == writes
    assert secret not in again.output
    assert "already stored" in again.stdout


def test_install_refuses_a_missing_public_url_and_a_broken_config(world: World, tmp_path) -> None:
    no_url = CliRunner(env=world.env).invoke(main, ["webhooks", "install", "--config", str(world.config_path)])
    assert no_url.exit_code == 2 and "--public-url" in no_url.output

    unresolved = _install(world, SYNCD_JIRA_API_TOKEN=None)
    assert unresolved.exit_code == 78
    assert "jira.api_token" in unresolved.output and "SYNCD_JIRA_API_TOKEN" in unresolved.output
    assert _registrations(world)[2] == 1   # nothing registered with Jira
