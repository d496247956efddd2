"""Fast takeover on SQLite (issue 10, finding 7): the daemon's exclusive lock proves the
previous daemon gone, so its claims and poll leadership are taken at once after a
SIGKILL instead of waited out. With a long lease (120 s) main left the in-flight
escalation and the pollers idle for the whole lease after the restart."""

from __future__ import annotations

import json

from harness import Books, check, issues_for_origin, mentions, settle, ticket_bodies, wait_for

from syncd.domain import ItemRef

LONG_LEASE = 120


def _events(daemon, name: str) -> list[dict]:
    out = []
    for line in daemon.logs[-1].read_text(errors="replace").splitlines():
        if name in line and line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


def test_crash_sqlite_restart_takes_over_claims_and_pollers_at_once(make_rig, sqlite_url):
    rig, books = make_rig(sqlite_url, jira_poll=1.0), Books()
    world = rig.world
    text = world.config_path.read_text()
    world.config_path.write_text(text.replace("lease_seconds = 5\n", f"lease_seconds = {LONG_LEASE}\n"))

    rig.daemon.start("after_issue_create=1")
    ticket = world.zendesk.create_ticket("Checkout fails", "Checkout fails: paying by card shows an error.")
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
    books.escalated.add(ticket)
    assert rig.daemon.wait_killed() == "after_issue_create"

    rig.daemon.start()
    origin = f"zendesk:{ticket}"
    # Well inside the 120 s lease main waited out: the escalation finishes (its issue found by label).
    assert wait_for(lambda: rig.store.links_for_desk(ItemRef.parse(origin))
                    and mentions(ticket_bodies(world, ticket), "Escalated to Jira:") == 1, timeout=40), \
        rig.daemon.tail()
    taken = _events(rig.daemon, "previous_daemon_taken_over")
    assert taken and taken[0]["claims"] >= 1 and taken[0]["poll_leases"] >= 1, rig.daemon.tail()
    # The Jira poller leads again at once: a change whose webhook never comes arrives by poll.
    world.jira.knobs.webhooks.drop = 1.0
    issue = issues_for_origin(world, origin)[0]
    world.jira.engineer_comment(str(issue), "Only the poller saw this (takeover-poll).")
    books.to_zendesk.append((ticket, "takeover-poll"))
    assert wait_for(lambda: mentions(ticket_bodies(world, ticket), "takeover-poll") == 1, timeout=40), \
        rig.daemon.tail()
    settle(world, rig.store)
    verdict = check(world, rig.store, books)
    assert verdict.ok, f"{verdict}\n{rig.daemon.tail()}"
