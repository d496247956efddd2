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
from harness import (LEASE_SECONDS, Books, check, issue_bodies, issues_for_origin, mentions, replica_daemons,
                     settle, ticket_bodies, wait_for)

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


def _link_locks_held(url: str, daemon) -> int:
    """Link advisory locks ``daemon``'s sessions hold right now (what an operator sees in
    pg_locks; the harness names each daemon's sessions through PGAPPNAME)."""
    import sqlalchemy as sa

    from syncd.store import LINK_LOCK_CLASSID_SQL
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.text(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                f"WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid::bigint = {LINK_LOCK_CLASSID_SQL} "
                "AND l.granted AND a.application_name = :app"), {"app": daemon.app_name}) or 0
    finally:
        engine.dispose()


def test_crash_frozen_lock_holder_does_not_stall_other_replicas(make_rig, db_url):
    """Issue 10, finding 3: a replica frozen inside a reconcile keeps its link's advisory lock
    (its session stays open). On main every worker of the other replicas that reached that
    link blocked on it for good, and nothing else was reconciled anywhere. Now a worker that
    cannot get the link requeues the item and moves on; the link is done once the frozen
    replica resumes, nothing doubled."""
    from syncd.sim.core import Fault

    rig, books = make_rig(db_url), Books()
    world = rig.world
    frozen, other = replica_daemons(world, 2)
    frozen.start()
    other.start()
    tickets = []
    for n in range(3):
        t = world.zendesk.create_ticket(f"Problem {n}", f"Problem {n}: something broke.")
        world.zendesk.agent_set(t, add_tags=["jira_escalate"])
        books.escalated.add(t)
        tickets.append(t)
    assert wait_for(lambda: all(rig.store.links_for_desk(ItemRef("zendesk", str(t))) for t in tickets), timeout=40)
    settle(world, rig.store)
    assert other.terminate() == 0
    hot, *rest = tickets
    hot_issue = issues_for_origin(world, f"zendesk:{hot}")[0]

    # The frozen-to-be replica mirrors a reply on the hot ticket; its Jira call stalls (under
    # the link's lock), and the process is frozen right there.
    world.jira.inject(Fault("timeout", operation="addComment", stall=4.0, count=1))
    world.zendesk.customer_reply(hot, "Customer (lock-hot-reply).")
    books.to_jira.append((hot, "lock-hot-reply"))
    assert wait_for(lambda: _link_locks_held(db_url, frozen) > 0, timeout=20), frozen.tail()
    frozen.freeze()

    # More work on the locked link, claimed first by the other replica's workers...
    world.jira.engineer_comment(str(hot_issue), "Engineer (lock-hot-engineer).")
    books.to_zendesk.append((hot, "lock-hot-engineer"))
    rig.store.mark_dirty([ItemRef("jira", str(hot_issue))], "test")   # its webhook goes to the frozen listener
    other.start()
    time.sleep(LEASE_SECONDS + 2)   # the frozen replica's claim on the hot ticket has run out by now
    # ...and work on other links, which must flow meanwhile.
    for t in rest:
        world.zendesk.customer_reply(t, f"Customer (lock-other-{t}).")
        books.to_jira.append((t, f"lock-other-{t}"))
    rig.store.mark_dirty([ItemRef("zendesk", str(t)) for t in rest], "test")
    assert wait_for(lambda: all(mentions(issue_bodies(world, issues_for_origin(world, f"zendesk:{t}")[0]),
                                         f"lock-other-{t}") == 1 for t in rest), timeout=30), \
        f"other links stalled behind the frozen replica's lock:\n{other.tail()}"
    assert frozen._state() == "T" and _link_locks_held(db_url, frozen) > 0, "the lock holder must still be frozen"

    frozen.resume()
    assert wait_for(lambda: mentions(ticket_bodies(world, hot), "lock-hot-engineer") == 1, timeout=40), other.tail()
    settle(world, rig.store, timeout=60)
    verdict = check(world, rig.store, books)
    assert verdict.ok, f"{verdict}\n{frozen.tail()}\n{other.tail()}"
    for d in (frozen, other):
        assert d.terminate() == 0, d.tail()


def test_crash_frozen_replica_comment_double_is_repaired(make_rig, db_url):
    """A replica frozen right after its claim check, before its ``addComment`` request,
    holding the link's lock. Its database session is then cut (a server-side idle or
    keepalive timeout does that), which frees the lock; the other replica takes the item,
    waits out the pending intent's settle window and posts the comment. When the frozen
    one resumes its request goes out: the second copy is found by the intent's marker
    and deleted (the older is kept). One comment in the end."""
    rig, books, world, ticket, (frozen, other) = _escalated_with_two_replicas(make_rig, db_url)
    frozen.start("before_vendor_write:addComment=1@stop")

    world.zendesk.customer_reply(ticket, "Customer (frozen-comment).")
    books.to_jira.append((ticket, "frozen-comment"))
    assert frozen.wait_stopped() == "before_vendor_write:addComment"
    _cut_link_lock_session(db_url, frozen)

    other.start()
    issue = issues_for_origin(world, f"zendesk:{ticket}")[0]
    assert wait_for(lambda: mentions(issue_bodies(world, issue), "frozen-comment") == 1, timeout=90), other.tail()
    frozen.resume()
    assert wait_for(lambda: '"duplicate_repaired"' in frozen.logs[-1].read_text(errors="replace"), timeout=30), \
        frozen.tail()
    settle(world, rig.store, timeout=60)
    repaired = [json.loads(line) for line in frozen.logs[-1].read_text(errors="replace").splitlines()
                if '"duplicate_repaired"' in line]
    assert [r["what"] for r in repaired] == ["comment"], repaired
    verdict = check(world, rig.store, books)
    assert verdict.ok, f"{verdict}\n{frozen.tail()}\n{other.tail()}"
    for d in (frozen, other):
        assert d.terminate() == 0, d.tail()


def test_crash_frozen_replica_desk_note_double_is_redacted(make_rig, db_url):
    """The same freeze on the desk side (issue 10, session 7): the frozen replica holds the
    link's lock right before its ``updateTicket`` that mirrors an engineer's comment to the
    ticket. The other replica takes over and posts it; the frozen one's request then goes
    out too. Zendesk deletes no comment, so the later copy is made private and its text
    redacted (the older kept); on the old code both stayed on the ticket, public."""
    rig, books, world, ticket, (frozen, other) = _escalated_with_two_replicas(make_rig, db_url)
    # updateTicket is a non-idempotent write only when it carries a comment (field writes are safe updates).
    frozen.start("before_vendor_write:updateTicket=1@stop")

    issue = issues_for_origin(world, f"zendesk:{ticket}")[0]
    world.jira.engineer_comment(str(issue), "Engineer (frozen-desk-note).")
    books.to_zendesk.append((ticket, "frozen-desk-note"))
    assert frozen.wait_stopped() == "before_vendor_write:updateTicket"
    _cut_link_lock_session(db_url, frozen)

    other.start()
    assert wait_for(lambda: mentions(ticket_bodies(world, ticket), "frozen-desk-note") == 1, timeout=90), other.tail()
    frozen.resume()
    assert wait_for(lambda: '"duplicate_repaired"' in frozen.logs[-1].read_text(errors="replace"), timeout=30), \
        frozen.tail()
    settle(world, rig.store, timeout=60)
    with world.zendesk.lock:
        mine = [dict(c) for c in world.zendesk.tickets[ticket].comments
                if "frozen-desk-note" in c["plain_body"] or set(c["plain_body"]) <= set("▇ \n")]
    kept, *copies = mine   # in the order posted
    assert "frozen-desk-note" in kept["plain_body"], mine
    assert [(c["public"], set(c["plain_body"]) <= set("▇ \n")) for c in copies] == [(False, True)], mine
    repaired = [json.loads(line) for line in frozen.logs[-1].read_text(errors="replace").splitlines()
                if '"duplicate_repaired"' in line]
    assert [(r["what"], r["kept"]) for r in repaired] == [("desk_comment", str(kept["id"]))], repaired
    verdict = check(world, rig.store, books)
    assert verdict.ok, f"{verdict}\n{frozen.tail()}\n{other.tail()}"
    for d in (frozen, other):
        assert d.terminate() == 0, d.tail()


def _escalated_with_two_replicas(make_rig, db_url):  # type: ignore[no-untyped-def]
    """A ticket escalated by the first of two replica daemons (stopped again: each test
    restarts it at its stop point); the books, the world and both daemons."""
    rig, books = make_rig(db_url), Books()
    world = rig.world
    world.config_path.write_text(world.config_path.read_text().replace(
        "[syncd]\n", f"[syncd]\nvendor_timeout_seconds = {VENDOR_TIMEOUT}\n", 1))
    frozen, other = replica_daemons(world, 2)
    frozen.start()
    ticket = world.zendesk.create_ticket("Checkout fails", "Checkout fails: paying by card shows an error.")
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
    books.escalated.add(ticket)
    assert wait_for(lambda: rig.store.links_for_desk(ItemRef("zendesk", str(ticket))), timeout=30)
    settle(world, rig.store)
    assert frozen.terminate() == 0
    return rig, books, world, ticket, (frozen, other)


def _cut_link_lock_session(db_url: str, frozen) -> None:  # type: ignore[no-untyped-def]
    """End the frozen replica's database session that holds the link's advisory lock (as a
    server-side idle or keepalive timeout does), so the lock is free for the other one."""
    import sqlalchemy as sa

    from syncd.store import LINK_LOCK_CLASSID_SQL

    admin = sa.create_engine(db_url)
    try:
        with admin.begin() as conn:
            cut = conn.scalar(sa.text(
                "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                f"WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid::bigint = {LINK_LOCK_CLASSID_SQL} "
                "AND a.application_name = :app"), {"app": frozen.app_name})
    finally:
        admin.dispose()
    assert cut == 1
