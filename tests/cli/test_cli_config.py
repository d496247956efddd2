"""``syncd config check`` and ``--help`` of every command."""

from __future__ import annotations

from typing import Iterator

import click
import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.sandbox import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("cli-config") / "world")
    yield w
    w.stop()


def test_a_good_config_checks_ok(world: World) -> None:
    result = CliRunner(env=world.env).invoke(main, ["config", "check", "--config", str(world.config_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{world.config_path}: ok"


def test_a_broken_config_lists_every_problem_with_file_key_and_expectation(world: World) -> None:
    text = world.config_path.read_text()
    broken = (text.replace("workers = 4", 'workers = "many"')
                  .replace("requests_per_minute = 6000\npoll_interval_seconds", "requests_per_minut = 6000\npoll_interval_seconds", 1)
                  .replace('mapping = "zendesk-jira.toml"', 'mapping = "missing.toml"'))
    path = world.directory / "broken.toml"   # next to the mapping files it names
    path.write_text(broken)
    env = {**world.env, "SYNCD_JIRA_API_TOKEN": None}   # a secret that does not resolve
    result = CliRunner(env=env).invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 78   # EX_CONFIG: the unit's RestartPreventExitStatus
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected = {
        "syncd.workers": "an integer",
        "zendesk.requests_per_minut": "a known key",
        "zendesk.mapping": "a mapping file that exists",
        "jira.api_token": "environment variable SYNCD_JIRA_API_TOKEN",
    }
    for key, expectation in expected.items():
        assert any(line.startswith(f"error: {path}: {key}: ") and expectation in line for line in errors), (key, errors)
    assert len(errors) == len(expected), errors
    assert "ok" not in result.stdout


def test_a_missing_config_file_is_an_error(tmp_path) -> None:
    result = CliRunner().invoke(main, ["config", "check", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 78
    assert f"config file {tmp_path / 'nope.toml'} (from --config) does not exist" in result.stderr


@pytest.mark.parametrize("command", [["config", "check"], ["run"], ["status"], ["db", "upgrade"], ["links", "list"]])
def test_a_named_config_that_does_not_exist_never_falls_back_to_the_local_one(world: World, tmp_path, monkeypatch,
                                                                               command: list[str]) -> None:
    """Finding 1: with a good ./config.toml present, a typo in --config (or $SYNCD_CONFIG) is an error naming it."""
    monkeypatch.chdir(world.directory)   # world.directory/config.toml is a good config
    typo = str(tmp_path / "typo.toml")
    by_flag = CliRunner(env=world.env).invoke(main, [*command, "--config", typo])
    assert by_flag.exit_code == 78, by_flag.output
    assert f"config file {typo} (from --config) does not exist" in by_flag.stderr
    assert "ok" not in by_flag.stdout
    by_env = CliRunner(env={**world.env, "SYNCD_CONFIG": typo}).invoke(main, command)
    assert by_env.exit_code == 78 and "(from $SYNCD_CONFIG) does not exist" in by_env.stderr


def test_every_command_says_which_config_it_used(world: World, monkeypatch) -> None:
    named = CliRunner(env=world.env).invoke(main, ["config", "check", "--config", str(world.config_path)])
    assert f"syncd: config {world.config_path.absolute()} (--config)" in named.stderr
    monkeypatch.chdir(world.directory)
    default = CliRunner(env={**world.env, "SYNCD_CONFIG": None}).invoke(main, ["config", "check"])
    assert default.exit_code == 0, default.output
    assert f"syncd: config {world.directory / 'config.toml'} (default)" in default.stderr


def test_config_check_and_db_upgrade_work_before_the_zendesk_secret_exists(world: World, tmp_path) -> None:
    """Finding 6: README order (config check, db upgrade, webhooks install, run); only run needs the secret."""
    path = tmp_path / "config.toml"
    path.write_text(world.config_path.read_text().replace('database_url = "', f'database_url = "sqlite:///{tmp_path}/x.db" #'))
    for name in ("zendesk-jira.toml", "intercom-jira.toml"):
        (tmp_path / name).write_text((world.directory / name).read_text())
    env = {**world.env, "SYNCD_ZENDESK_WEBHOOK_SECRET": None}
    check = CliRunner(env=env).invoke(main, ["config", "check", "--config", str(path)])
    assert check.exit_code == 0, check.output
    assert "warning: " in check.stderr and "zendesk.webhook_secret" in check.stderr
    upgrade = CliRunner(env=env).invoke(main, ["db", "upgrade", "--config", str(path)])
    assert upgrade.exit_code == 0, upgrade.output
    run = CliRunner(env=env).invoke(main, ["run", "--config", str(path)])
    assert run.exit_code == 78
    assert "error: " in run.stderr and "zendesk.webhook_secret" in run.stderr


def test_config_check_as_json(world: World) -> None:
    import json
    result = CliRunner(env={**world.env, "SYNCD_JIRA_API_TOKEN": None}).invoke(
        main, ["config", "check", "--json", "--config", str(world.config_path)])
    assert result.exit_code == 78
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and [p["key"] for p in doc["problems"]] == ["jira.api_token"]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


ALL = sorted(path for path, _ in _commands(main))


def test_every_command_is_covered() -> None:
    top = {p[0] for p in ALL}
    assert top == {"run", "config", "db", "webhooks", "link", "unlink", "links", "resync", "plan",
                   "dlq", "status", "sim", "demo", "doctor", "reconcile", "backfill"}
    assert {p for p in ALL if p[0] == "db"} == {("db",), ("db", "upgrade"), ("db", "current"), ("db", "history")}


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_text(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="syncd")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: syncd {' '.join(path)} ")
    command = dict(_commands(main))[path]
    assert (command.help or "").strip(), f"`syncd {' '.join(path)}` has no help text"
    # Click may wrap a line at an option's hyphen ("--dry-" / "run"): undone on both sides.
    def flat(text: str) -> str:
        return " ".join(text.split()).replace("- ", "-")
    assert flat(command.help) in flat(result.output)
