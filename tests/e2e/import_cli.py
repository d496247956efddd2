"""What the ``syncd links import`` tests share: the command through Click's runner, its
JSON report, and a store on the world's database (upgraded by ``syncd db upgrade``)."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.sandbox import World
from syncd.store import Store

WRONG_EXIT = 3


def syncd(world: World, *args: str) -> Result:
    return CliRunner(env=world.env).invoke(main, [*args, "--config", str(world.config_path)])


def imported(world: World, *args: str, exit_code: int = 0) -> dict[str, Any]:
    result = syncd(world, "links", "import", "--json", *args)
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


@pytest.fixture
def store(world: World) -> Iterator[Store]:
    upgraded = syncd(world, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    s = Store.open(world.settings().core.database_url)
    yield s
    s.close()


def issue_id(world: World, key: str) -> str:
    return str(world.jira.issue(key).id)


def by_desk(report: dict[str, Any], outcome: str) -> dict[str, dict[str, Any]]:
    return {r["desk"]: r for r in report[outcome]}
