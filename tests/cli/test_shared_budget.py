"""The account budget is shared by the daemon and a command running beside it
(issue 15: "it paces by the same account budget as the daemon, so running it
never causes a 429"), on SQLite and Postgres.

The daemon drains a backlog while ``syncd links import`` (its own process) checks
links against the same Zendesk account, whose simulated limit is the configured
``requests_per_minute``. Each paced itself at the whole rate before, so together
they made twice the account's rate and drew 429s after half a minute; sharing
the ledger they make no 429, and both progress.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Iterator

import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.domain import ItemRef
from syncd.runtime import App
from syncd.sandbox import World, build_world
from syncd.store import Store
from syncd.testing import wait_for

# Sharing a sliding minute can only be seen over more than a minute: this test makes ~100 Zendesk
# calls at 60 a minute (~100 s; 16 links to import made ~150 and ran ~165 s, for no more proof).
pytestmark = pytest.mark.timeout(400)

RPM = 60           # the Zendesk budget and the simulated account's limit (a sliding minute)
BACKLOG = 10       # dirty links for the daemon (~3 Zendesk calls each)
TO_IMPORT = 10     # integration links for the import, a page each (2 Zendesk calls: the page, its ticket);
                   # the daemon then reconciles each imported link too


@pytest.fixture
def world(tmp_path, db_url) -> Iterator[World]:
    w = build_world(tmp_path / "world", database_url=db_url, zendesk_poll=3600, jira_poll=3600,
                    intercom_poll=3600, log_level="warning")
    yield w
    w.stop()


def set_zendesk_budget(world: World, rpm: int) -> None:
    text = world.config_path.read_text()
    head, body, tail = re.split(r"(?m)^(\[zendesk\]\n(?:(?!^\[).*\n)*)", text, maxsplit=1)
    body = re.sub(r"(?m)^requests_per_minute = \d+$", f"requests_per_minute = {rpm}", body)
    world.config_path.write_text(head + body + tail)


def test_daemon_and_import_share_the_account_budget(world: World) -> None:
    upgraded = CliRunner(env=world.env).invoke(main, ["db", "upgrade", "--config", str(world.config_path)])
    assert upgraded.exit_code == 0, upgraded.output
    set_zendesk_budget(world, RPM)
    z, j = world.zendesk, world.jira
    store = Store.open(world.settings().core.database_url)
    backlog = []
    for n in range(BACKLOG):
        key = j.engineer_create("ENG", f"busy issue {n}")
        ticket = z.create_ticket(f"busy ticket {n}", "It broke.")
        backlog.append(store.add_link(ItemRef("zendesk", str(ticket)), str(j.issue(key).id), key))
    for n in range(TO_IMPORT):
        key = j.engineer_create("ENG", f"hand-linked issue {n}")
        z.integration_link(z.create_ticket(f"hand-linked ticket {n}", "body"), str(j.issue(key).id), key)
    for sim in (z, j):
        sim.clear_records()
    z.knobs.rate_limit = RPM
    z._window.clear()

    def synced() -> int:   # backlog links reconciled (a base stored)
        return sum(1 for rev in store.revisions([l.id for l in backlog]).values() if rev > 0)

    app = App.build(world.settings())
    try:
        store.mark_dirty([l.desk for l in backlog], "test")
        app.start()
        app.workers.wake.set()
        done = subprocess.run([sys.executable, "-m", "syncd", "links", "import", "--from", "zendesk-integration",
                               "--page-size", "1", "--json", "--config", str(world.config_path)],
                              env={**os.environ, **world.env}, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["totals"]["imported"] == TO_IMPORT
        # The daemon worked meanwhile: not starved by the import.
        assert synced() > 0, "the daemon made no progress while the import ran"
        assert wait_for(lambda: synced() == BACKLOG, timeout=180), "the daemon's backlog did not drain"
    finally:
        app.stop()
        store.close()
    calls = [r for r in z.records() if not r.operation.startswith("_sim")]
    limited = [r for r in calls if r.status == 429]
    assert limited == [], f"{len(limited)} of {len(calls)} Zendesk calls drew a 429"
    assert len(calls) > RPM, "the test must ask for more than the account allows in a minute"
