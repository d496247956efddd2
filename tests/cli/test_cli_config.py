"""``syncd config check`` and ``--help`` of every command."""

from __future__ import annotations

from typing import Iterator

import click
import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.sim.world import World, build_world


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
    assert result.exit_code == 1
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
    assert result.exit_code != 0


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


ALL = sorted(path for path, _ in _commands(main))


def test_every_command_is_covered() -> None:
    top = {p[0] for p in ALL}
    assert top == {"run", "config", "db", "webhooks", "link", "unlink", "links", "resync", "plan",
                   "dlq", "status", "sim", "demo"}


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_text(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="syncd")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: syncd {' '.join(path)} ")
    command = dict(_commands(main))[path]
    assert (command.help or "").strip(), f"`syncd {' '.join(path)}` has no help text"
    assert " ".join(command.help.split()) in " ".join(result.output.split())
