"""The database goes away or is locked while the daemon runs.

Postgres is shared by everyone's tests on this machine, so it is never
restarted: a TCP proxy in front of it drops every connection and refuses new
ones instead (what clients of a restarting server see). SQLite is locked by
another process holding an exclusive transaction.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from syncd.domain import ItemRef
from syncd.fencing import Fence, holding
from syncd.queue import Claim
from syncd.store import StoreUnavailable

from .conftest import SQLITE_ONLY, TcpProxy, comments_with, escalate, get, notes_with, wait_for


# SQLite is a local file: its fault is the lock (see the next test).
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_fault_database_unreachable_is_reported_and_work_resumes(db_url, make_world, start_daemon, look_at, logs):
    url = sa.make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        world = make_world(database_url=proxied, jira_poll=1)
        daemon = start_daemon(world)
        look = look_at(world)
        ticket, key = escalate(world, look)

        proxy.cut()
        # Jira's webhook retries may all fail during the outage: the Jira poller (every
        # second here) is the safety net that still brings the comment over.
        world.jira.engineer_comment(key, "Written while the database was down.")
        ready = wait_for(lambda: (r := get(daemon, "/readyz")).status == 503 and r, timeout=10)
        assert ready and ready.body["problems"][0].startswith("database: "), ready and ready.body
        assert wait_for(lambda: logs.named("claim_failed") and logs.named("poll_failed"), timeout=10)
        refused = wait_for(lambda: [e for e in logs.named("webhook_refused") if e["reason"] == "store_unavailable"])
        assert refused and refused[0]["status"] == 503
        time.sleep(1.0)   # an outage of a few seconds: the vendor retries, the pollers back off
        proxy.restore()

        # Generous for a busy machine (the poll brings the comment within seconds once the
        # database is back).
        assert wait_for(lambda: notes_with(world, ticket, "Written while the database was down.") == 1, timeout=60)
        assert wait_for(lambda: get(daemon, "/readyz").status == 200, timeout=10)
        assert logs.named("claim_recovered")
        assert all(t.is_alive() for t in daemon.workers._threads), "a worker thread died with the database"
        assert wait_for(lambda: daemon.store.queue_depth() == 0)
        assert notes_with(world, ticket, "Written while the database was down.") == 1
    finally:
        proxy.close()


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


@SQLITE_ONLY
def test_fault_sqlite_locked_by_another_process_waits_and_recovers(db_url, make_world, start_daemon, look_at):
    world = make_world()
    daemon = start_daemon(world)
    look = look_at(world)
    ticket, key = escalate(world, look)

    path = sa.make_url(db_url).database
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        world.zendesk.customer_reply(ticket, "Written while SQLite was locked.")
        assert wait_for(lambda: comments_with(world, key, "Written while SQLite was locked.") == 1, timeout=20)
        # Nothing could be stored or claimed until the other process let go.
        assert time.monotonic() - locked_at >= 2.5
    finally:
        holder.wait(10)
    assert holder.returncode == 0
    assert all(t.is_alive() for t in daemon.workers._threads)
    assert wait_for(lambda: daemon.store.queue_depth() == 0)
    assert comments_with(world, key, "Written while SQLite was locked.") == 1
    assert get(daemon, "/readyz").status == 200


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_fault_database_lost_between_intent_and_write_does_not_hold_the_link(db_url, make_world, start_daemon,
                                                                            look_at, logs):
    """Issue 10: the database goes away after a note's intent is recorded and before its
    request leaves (the claim check cannot reach it). Nothing was sent, so once the database
    is back the note is written at once — not after the intent settle window (over a minute:
    a Postgres restart held every engineer note of one link that long)."""
    url = sa.make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        world = make_world(database_url=proxied)
        daemon = start_daemon(world)
        ticket, key = escalate(world, look_at(world))
        assert wait_for(lambda: daemon.store.queue_depth() == 0)
        daemon.workers.stop()   # from here this test is the only worker
        store, engine = daemon.store, daemon.engine
        text = "Engineer note written as the database went away."
        world.jira.engineer_comment(key, text)
        with world.jira.lock:
            issue_ref = ItemRef("jira", str(world.jira.issue(key).id))
        claim = wait_for(lambda: next(iter(store.claim("test/worker", 1, 30)), None))
        assert claim is not None and claim.ref == issue_ref, claim

        def database_gone_at_the_check(c: Claim) -> bool:
            proxy.cut()
            return store.claim_current(c)

        with holding(Fence(claim, database_gone_at_the_check)):
            with pytest.raises(StoreUnavailable):
                engine.reconcile(claim.ref)
        assert notes_with(world, ticket, text) == 0, "the note went out although the claim check failed"
        proxy.restore()
        assert wait_for(lambda: _gives_back(store, claim), timeout=15)

        again = wait_for(lambda: next(iter(store.claim("test/worker", 1, 30)), None))
        assert again is not None and again.ref == issue_ref and again.fence != claim.fence
        with holding(Fence(again, store.claim_current)):
            engine.reconcile(again.ref)          # no IntentSettling: the write never left
        assert notes_with(world, ticket, text) == 1
        store.complete(again)
        engine.reconcile(issue_ref)
        assert notes_with(world, ticket, text) == 1
    finally:
        proxy.close()


def _gives_back(store, claim) -> bool:
    try:
        return store.defer(claim, 0.0, "test: given back") or True
    except StoreUnavailable:
        return False
