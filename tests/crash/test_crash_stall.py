"""A replica frozen (SIGSTOP) right before its ``createIssue`` request left, for longer
than its lease and the create's settle time (issue 10, finding 2): another replica takes
the claim and escalates; when the frozen one resumes, its request goes out — no check of
ours can stop a request already past its last check — and the duplicate it made is found
by its origin label and removed. The books then show one issue, one link, one note.

On main this could not be tested this way (no failpoint between the claim check and the
request); a frozen replica there made two issues with two links and two notes (2 of 2
black-box runs, issue 10)."""

from __future__ import annotations

import json
import time

import pytest
from harness import (Books, check, issues_for_origin, mentions, replica_daemons, settle, ticket_bodies,
                     wait_for)

from syncd.domain import ItemRef

pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                     indirect=True)
VENDOR_TIMEOUT = 1.0   # keeps the create-settle window (retry budget + 2 timeouts) near 22 s


def test_crash_frozen_replica_before_create_leaves_one_issue(make_rig, db_url):
    rig, books = make_rig(db_url), Books()
    world = rig.world
    world.config_path.write_text(world.config_path.read_text().replace(
        "[syncd]\n", f"[syncd]\nvendor_timeout_seconds = {VENDOR_TIMEOUT}\n", 1))
    frozen, other = replica_daemons(world, 2)
    frozen.start("before_vendor_write:createIssue=1@stop")

    ticket = world.zendesk.create_ticket("Checkout fails", "Checkout fails: paying by card shows an error.")
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
    books.escalated.add(ticket)
    assert frozen.wait_stopped() == "before_vendor_write:createIssue"
    assert world.jira.count("createIssue") == 0

    other.start()   # takes the claim once the frozen one's lease ran out, waits out the settle, escalates
    origin = f"zendesk:{ticket}"
    assert wait_for(lambda: issues_for_origin(world, origin) and rig.store.links_for_desk(ItemRef.parse(origin))
                    and mentions(ticket_bodies(world, ticket), "Escalated to Jira:") == 1, timeout=90), other.tail()
    first = issues_for_origin(world, origin)

    frozen.resume()   # its createIssue goes out now: a second issue, found and removed
    assert wait_for(lambda: world.jira.count("createIssue") == 2, timeout=20), frozen.tail()
    assert wait_for(lambda: "duplicate_repaired" in frozen.logs[-1].read_text(errors="replace"), timeout=30), \
        frozen.tail()
    settle(world, rig.store, timeout=60)
    time.sleep(1.0)
    assert issues_for_origin(world, origin) == first, "the older issue must be the one kept"
    verdict = check(world, rig.store, books)
    assert verdict.ok, f"{verdict}\n{frozen.tail()}\n{other.tail()}"
    repaired = [json.loads(line) for line in frozen.logs[-1].read_text(errors="replace").splitlines()
                if "duplicate_repaired" in line]
    assert [(r["what"], r["where"], r["kept"]) for r in repaired] == [("issue", origin, str(first[0]))], repaired
    for d in (frozen, other):
        assert d.terminate() == 0, d.tail()
