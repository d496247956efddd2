"""``syncd doctor`` and ``syncd sim --write-config`` (issue 13, finding 5): the written
config passes every online check; each mistake an admin makes is one FAIL line naming
the config key and URL, and the exit status is 1."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result

from syncd.cli import main
from syncd.sandbox import write_config
from syncd.sim.cli import start_all
from syncd.sandbox import World, furnish


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    sims = start_all()
    w = furnish(*sims, tmp_path / "world", secrets_in_files=True, public_url=True)
    CliRunner().invoke(main, ["db", "upgrade", "--config", str(w.config_path)])
    yield w
    w.stop()


def doctor(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", "--config", str(config), *args])


def _fails(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("FAIL")]


def test_sim_write_config_passes_every_check(world: World) -> None:
    result = doctor(world.config_path)
    assert result.exit_code == 0, result.output
    assert _fails(result) == []
    names = {line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("PASS")}
    for expected in ("PASS  database migrated", "PASS  jira credentials", "PASS  zendesk credentials",
                     "PASS  intercom credentials", "PASS  zendesk field", "PASS  jira field",
                     "PASS  intercom attribute", "PASS  zendesk webhook", "PASS  jira webhook",
                     "PASS  zendesk integration account"):
        assert expected in names, (expected, result.stdout)
    doc = json.loads(doctor(world.config_path, "--json").stdout)
    assert doc["ok"] is True and all(c["key"] for c in doc["checks"])
    # The secrets are files beside the config, never in it.
    assert not re.search(r"sim-token|[0-9a-f]{32}", world.config_path.read_text())
    assert (world.directory / "secrets" / "zendesk_token").stat().st_mode & 0o077 == 0


def test_written_mapping_names_fields_the_simulator_has(world: World) -> None:
    mapping = (world.directory / "zendesk-jira.toml").read_text()
    ids = {int(i) for i in re.findall(r'"custom:(\d+)"', mapping)}
    assert ids and ids <= set(world.zendesk.ticket_fields), (ids, set(world.zendesk.ticket_fields))
    assert not re.search(r'"custom:900\d"', mapping)


def _variant(world: World, name: str, config: str | None = None, mapping: str | None = None) -> Path:
    directory = world.directory / name
    directory.mkdir()
    (directory / "secrets").symlink_to(world.directory / "secrets")
    (directory / "intercom-jira.toml").write_text((world.directory / "intercom-jira.toml").read_text())
    (directory / "zendesk-jira.toml").write_text(mapping or (world.directory / "zendesk-jira.toml").read_text())
    path = directory / "config.toml"
    path.write_text(config or world.config_path.read_text())
    return path


def test_each_mistake_is_a_fail_line_with_key_and_url(world: World) -> None:
    text = world.config_path.read_text()
    zd = world.zendesk.base_url
    real = re.findall(r'"custom:(\d+)"', (world.directory / "zendesk-jira.toml").read_text())[0]
    cases = {
        "missing field": (_variant(world, "a", mapping=(world.directory / "zendesk-jira.toml").read_text()
                                   .replace(f'"custom:{real}"', '"custom:424242"')),
                          "FAIL  zendesk field: custom:424242 does not exist", "zendesk.mapping", zd),
        "wrong token": (_variant(world, "b", config=text.replace("file:secrets/zendesk_token",
                                                                  "file:secrets/jira_api_token")),
                        "FAIL  zendesk credentials:", "zendesk.email, zendesk.token (file:secrets/jira_api_token)", zd),
        "old public url": (_variant(world, "c", config=re.sub(r'public_url = "[^"]+"',
                                                               'public_url = "https://syncd.example.com"', text)),
                           "FAIL  zendesk webhook: none active to https://syncd.example.com/webhooks/zendesk",
                           "http.public_url", zd),
        "not migrated": (_variant(world, "d", config=re.sub(r'database_url = "[^"]+"',
                                                             f'database_url = "sqlite:///{world.directory}/new.db"',
                                                             text)),
                         "FAIL  database migrated: at revision (none)", "syncd.database_url", "new.db"),
    }
    for what, (path, line, key, url) in cases.items():
        result = doctor(path)
        assert result.exit_code == 1, (what, result.output)
        found = [f for f in _fails(result) if f.startswith(line)]
        assert found and key in found[0] and url in found[0], (what, _fails(result))
        assert "Traceback" not in result.output


def test_budget_over_the_plan_and_a_person_on_syncds_account_fail(world: World) -> None:
    world.zendesk.knobs.rate_limit = 400   # what POST /_sim/knobs {"rate_limit": 400} sets
    world.zendesk.sign_in("admin@example.com")
    result = doctor(world.config_path)
    assert result.exit_code == 1
    fails = "\n".join(_fails(result))
    assert "FAIL  zendesk budget: 6000/min configured, the account allows 400/min" in fails, result.stdout
    assert "[zendesk.requests_per_minute @ " in fails
    assert "FAIL  zendesk integration account: admin@example.com has 1 web session(s)" in fails
    doc = json.loads(doctor(world.config_path, "--json").stdout)
    assert doc["ok"] is False
    assert {c["name"] for c in doc["checks"] if c["status"] == "fail"} == {"zendesk budget",
                                                                          "zendesk integration account"}


def test_write_config_prints_the_next_commands(tmp_path) -> None:
    sims = start_all()
    try:
        said = write_config(sims, tmp_path / "w")
    finally:
        for s in sims:
            s.stop()
    assert f"syncd doctor --config {tmp_path / 'w' / 'config.toml'}" in said
    assert f"syncd run --config {tmp_path / 'w' / 'config.toml'}" in said


def test_intercom_budget_over_the_apps_limit_fails(world: World) -> None:
    world.intercom.knobs.rate_limit = 100   # per 10-second window: 600/min
    result = doctor(world.config_path)
    assert result.exit_code == 1
    assert "FAIL  intercom budget: 6000/min configured, the app allows 600/min (100 per 10 s)" in result.stdout, \
        result.stdout
