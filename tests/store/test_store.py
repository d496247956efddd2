"""The store on SQLite and Postgres (same tests, see conftest's ``store`` fixture)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from syncd.domain import ItemRef
from syncd.reconcile import BaseEntry
from syncd.schema import metadata
from syncd.sim.core import Clock
from syncd.store import Fenced, LinkNotFound, StaleBase, Store, StoreError, StoreUnavailable

Z1, Z2, Z3 = ItemRef("zendesk", "1"), ItemRef("zendesk", "2"), ItemRef("zendesk", "3")
IC = ItemRef("intercom:conversation", "9")

# The newest migration: a new one must move this (and be run by upgrade).
HEAD = "0008"


def no_backoff(_attempts: int) -> float:
    return 0.0


# -- schema and migrations ---------------------------------------------------------------------


def test_upgrade_on_empty_db_matches_schema_module(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        assert store.current_revision() is None
        store.upgrade()
        assert store.current_revision() == HEAD
    finally:
        store.close()
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        # The migrations are the schema; syncd.schema is what the queries use. They must agree.
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_data(store: Store) -> None:
    link = store.add_link(Z1, "10001", "ABC-1")
    store.upgrade()
    store.upgrade()
    assert store.current_revision() == HEAD
    assert store.get_link(link.id) == link


UPGRADE_SCRIPT = "import sys; from syncd.store import Store; s = Store.open(sys.argv[1]); s.upgrade(); print(s.current_revision())"


def test_two_processes_upgrading_at_once_both_succeed(db_url: str) -> None:
    # Real processes: that is where the race lives (advisory lock on Postgres, write lock on SQLite).
    racers = [
        subprocess.Popen([sys.executable, "-c", UPGRADE_SCRIPT, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err.decode()
        assert out.decode().strip().splitlines()[-1] == HEAD
    store = Store.open(db_url)
    try:
        assert store.current_revision() == HEAD
    finally:
        store.close()


def test_upgrades_in_threads_of_one_process_do_not_collide(db_url: str) -> None:
    stores = [Store.open(db_url), Store.open(db_url)]
    errors: list[BaseException] = []

    def run(s: Store) -> None:
        try:
            s.upgrade()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == []
        assert [s.current_revision() for s in stores] == [HEAD, HEAD]
    finally:
        for s in stores:
            s.close()


def _plan(raw: sa.Engine, query: str) -> str:
    with raw.connect() as conn:
        if raw.dialect.name == "sqlite":
            return " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}"))
        # Postgres would seq-scan a tiny table; forbid that to see whether an index can serve the query.
        conn.exec_driver_sql("SET enable_seqscan = off")
        return " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {query}"))


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM links WHERE desk_ref = 'zendesk:1'",
        "SELECT * FROM links WHERE issue_id = '10001'",
        "SELECT ref FROM dirty WHERE due_at <= 5 ORDER BY due_at",
        "SELECT * FROM intents WHERE link_id = 1",
        "SELECT * FROM audit WHERE link_id = 1 ORDER BY id DESC",
    ],
)
def test_lookups_are_served_by_an_index(store: Store, raw: sa.Engine, query: str) -> None:
    plan = _plan(raw, query)
    assert "INDEX" in plan.upper(), plan
    assert "SCAN links" not in plan and "Seq Scan" not in plan, plan


# -- links ---------------------------------------------------------------------------------------


def test_link_is_unique_per_desk_item_and_issue(store: Store) -> None:
    first = store.add_link(Z1, "10001", "ABC-1")
    again = store.add_link(Z1, "10001", "ABC-1")
    other_issue = store.add_link(Z1, "10002", "ABC-2")
    other_desk = store.add_link(IC, "10001", "ABC-1")
    assert again == first
    assert len({first.id, other_issue.id, other_desk.id}) == 3
    assert store.count_links() == 3
    assert [link.issue_id for link in store.links_for_desk(Z1)] == ["10001", "10002"]
    assert [link.desk for link in store.links_for_issue("10001")] == [Z1, IC]
    assert [link.id for link in store.list_links(limit=2, offset=1)] == [other_issue.id, other_desk.id]


def test_issue_key_follows_a_moved_issue_and_links_can_be_removed(store: Store) -> None:
    link = store.add_link(Z1, "10001", "ABC-1")
    store.add_link(Z2, "10001", "ABC-1")
    store.update_issue_key("10001", "XYZ-7")
    assert {x.issue_key for x in store.links_for_issue("10001")} == {"XYZ-7"}
    assert store.remove_link(Z1, "10001") is True
    assert store.remove_link(Z1, "10001") is False
    assert store.get_link(link.id) is None
    assert store.count_links() == 1


# -- base ----------------------------------------------------------------------------------------


def test_base_round_trips_and_is_optimistic(store: Store) -> None:
    link = store.add_link(Z1, "10001", "ABC-1")
    assert store.get_base(link.id) == ({}, 0)
    base = {"status": BaseEntry("open", "To Do"), "labels": BaseEntry(("a", "b"), ("a", "b")), "due": BaseEntry(None, None)}
    assert store.put_base(link.id, base, 0) == 1
    assert store.get_base(link.id) == (base, 1)
    with pytest.raises(StaleBase):
        store.put_base(link.id, {"status": BaseEntry("solved", "Done")}, 0)  # a second writer from revision 0
    newer = {"status": BaseEntry("solved", "Done")}
    assert store.put_base(link.id, newer, 1) == 2
    with pytest.raises(StaleBase):
        store.put_base(link.id, base, 1)
    assert store.get_base(link.id) == (newer, 2)


def test_base_goes_with_its_link(store: Store) -> None:
    link = store.add_link(Z1, "10001", "ABC-1")
    store.put_base(link.id, {"status": BaseEntry("open", "To Do")}, 0)
    store.remove_link(Z1, "10001")
    assert store.get_base(link.id) == ({}, 0)
    with pytest.raises(LinkNotFound):
        store.put_base(link.id, {"status": BaseEntry("open", "To Do")}, 0)


def test_linked_reads_an_items_links_with_their_base_revisions(store: Store) -> None:
    first = store.add_link(Z1, "10001", "ABC-1")
    second = store.add_link(Z2, "10001", "ABC-1")
    other = store.add_link(Z1, "10002", "ABC-2")
    store.put_base(second.id, {"status": BaseEntry("open", "To Do")}, 0)
    store.put_base(second.id, {"status": BaseEntry("solved", "Done")}, 1)
    by_issue = store.linked(ItemRef("jira", "10001"))
    assert by_issue.links == (first, second)
    assert by_issue.revisions == {first.id: 0, second.id: 2}   # 0: no base yet, as revisions() says
    by_desk = store.linked(Z1)
    assert by_desk.links == (first, other) and by_desk.revisions == {first.id: 0, other.id: 0}
    assert store.linked(Z3).links == () and store.linked(ItemRef("jira", "404")).revisions == {}


# -- intents -------------------------------------------------------------------------------------


def test_intent_is_recorded_once_and_outlives_its_link(store: Store) -> None:
    link = store.add_link(Z1, "10001", "ABC-1")
    begun = store.begin_intent("comment:zendesk:1:c7", "comment_post", link.id, {"to": "jira", "n": 1})
    first = begun.intent
    assert begun.owned
    assert (first.state, first.result, first.payload) == ("pending", None, {"to": "jira", "n": 1})
    again = store.begin_intent("comment:zendesk:1:c7", "other", None, {"ignored": True})
    assert again.intent == first and not again.owned
    store.finish_intent("comment:zendesk:1:c7", "30001")
    store.begin_intent("issue:zendesk:1", "issue_create", link.id)
    done = store.get_intent("comment:zendesk:1:c7")
    assert done is not None and (done.state, done.result) == ("done", "30001")
    assert store.begin_intent("comment:zendesk:1:c7", "comment_post").intent.state == "done"
    assert [i.key for i in store.intents_for_link(link.id, "comment_post")] == ["comment:zendesk:1:c7"]
    assert len(store.intents_for_link(link.id)) == 2
    store.remove_link(Z1, "10001")
    kept = store.get_intent("comment:zendesk:1:c7")
    assert kept is not None and kept.link_id is None and kept.result == "30001"
    assert store.get_intent("nope") is None
    with pytest.raises(StoreError):
        store.finish_intent("nope", "1")


# -- dirty queue ---------------------------------------------------------------------------------


def test_marks_coalesce_into_one_row_and_keep_the_earlier_due_time(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1, Z1, Z2], "webhook")
    store.mark_dirty([Z1], "webhook", delay=300)  # later due time must not push Z1 back
    store.mark_dirty([Z3], "poll", delay=300)
    store.mark_dirty([Z3], "webhook")  # an earlier due time wins
    store.mark_dirty([], "nothing")
    assert store.queue_depth() == 3
    claims = {c.ref: c for c in store.claim("w1", 10, 30)}
    assert set(claims) == {Z1, Z2, Z3}
    assert claims[Z1].version == 2 and claims[Z2].version == 1 and claims[Z3].version == 2


def test_delay_holds_an_item_back_until_due(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook", delay=5)
    assert store.claim("w1", 10, 30) == []
    clock.advance(5.1)
    assert [c.ref for c in store.claim("w1", 10, 30)] == [Z1]


def test_complete_keeps_an_item_dirtied_again_during_reconcile(store: Store) -> None:
    store.mark_dirty([Z1, Z2], "webhook")
    c1, c2 = store.claim("w1", 10, 30)
    store.mark_dirty([Z1], "webhook")  # a new event while w1 works on Z1
    store.complete(c1)
    store.complete(c2)
    assert store.queue_depth() == 1
    again = store.claim("w2", 10, 30)  # lease released, due now
    assert [c.ref for c in again] == [Z1] and again[0].version == c1.version + 1
    store.complete(again[0])
    assert store.queue_depth() == 0


def test_history_entries_are_committed_with_the_completion(store: Store) -> None:
    from syncd import history
    from syncd.outcome import Write

    link = store.add_link(Z1, "10001", "ABC-1")
    writes = [Write("ABC-1", "comment", "It broke.", link=link.id, source="c1", mirrored="m1")]
    store.mark_dirty([Z1], "webhook")
    (claim,) = store.claim("w1", 1, 30, look_first=False)
    store.complete(claim, history.rows(store, writes, Z1, "zendesk:1 (webhook)", [link]))
    assert store.queue_depth() == 0
    with store.reading() as conn:
        (entry,) = history.read(conn, link_id=link.id)
    assert (entry.target, entry.what, entry.mirrored_id, entry.issue_id) == ("ABC-1", "comment", "m1", "10001")
    assert store.claim("w1", 1, 30, look_first=False) == []   # nothing due: the write finds nothing


def test_expired_lease_is_claimed_again_and_the_old_owner_cannot_complete(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook")
    (old,) = store.claim("w1", 10, 30)
    assert store.claim("w2", 10, 30) == []
    clock.advance(31)
    (new,) = store.claim("w2", 10, 30)
    assert new.ref == Z1 and new.owner == "w2"
    store.complete(old)  # w1 woke up late: its lease is gone, the row stays with w2
    assert store.queue_depth() == 1
    assert store.claim("w3", 10, 30) == []
    store.complete(new)
    assert store.queue_depth() == 0


def test_concurrent_claimers_never_share_an_item(db_url: str, store: Store) -> None:
    refs = [ItemRef("zendesk", str(n)) for n in range(1, 121)]   # vendor ids start at 1
    store.mark_dirty(refs, "webhook")
    seen: list[ItemRef] = []
    seen_lock = threading.Lock()
    errors: list[BaseException] = []
    # Each worker has its own Store (own pool, own connections), like separate replicas.
    workers = [Store.open(db_url) for _ in range(4)]
    start = threading.Barrier(len(workers))

    def work(s: Store, owner: str) -> None:
        try:
            start.wait(10)
            while claims := s.claim(owner, 3, 60):
                with seen_lock:
                    seen.extend(c.ref for c in claims)
                for c in claims:
                    s.complete(c)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(s, f"w{i}")) for i, s in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in workers:
        s.close()
    assert errors == []
    assert [ref for ref, n in Counter(seen).items() if n > 1] == []
    assert sorted(seen) == sorted(refs)
    assert store.queue_depth() == 0


def test_failures_back_off_then_dead_letter_and_can_be_retried(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook")
    for attempt in (1, 2):
        (c,) = store.claim("w1", 10, 30)
        assert c.attempts == attempt - 1
        assert store.fail(c, f"boom {attempt}", max_attempts=3, backoff=lambda n: 10.0 * n) is False
        assert store.claim("w1", 10, 30) == []  # backing off
        clock.advance(10.0 * attempt + 0.1)
    (c,) = store.claim("w1", 10, 30)
    assert store.fail(c, "boom 3", max_attempts=3, backoff=no_backoff) is True
    assert store.queue_depth() == 0
    (dead,) = store.dead_letters()
    assert (dead.ref, dead.attempts, dead.error, dead.reason) == (Z1, 3, "boom 3", "webhook")
    assert store.retry_dead(dead.id) is True
    assert store.dead_letters() == [] and store.retry_dead(dead.id) is False
    (c,) = store.claim("w1", 10, 30)
    assert c.ref == Z1 and c.attempts == 0
    assert store.fail(c, "again", max_attempts=1, backoff=no_backoff) is True
    (dead,) = store.dead_letters()
    assert store.drop_dead(dead.id) is True and store.drop_dead(dead.id) is False
    assert store.dead_letters() == []


def test_backoff_survives_new_events_but_not_a_manual_sync(store: Store) -> None:
    store.mark_dirty([Z1], "webhook")
    (c,) = store.claim("w1", 10, 30)
    store.fail(c, "jira down", max_attempts=5, backoff=lambda n: 600.0)
    store.mark_dirty([Z1], "webhook")
    assert store.claim("w1", 10, 30) == []
    store.mark_dirty([Z1], "manual")
    (c,) = store.claim("w1", 10, 30)
    assert c.attempts == 0


def test_defer_releases_without_counting_an_attempt(store: Store, clock: Clock) -> None:
    store.mark_dirty([Z1], "webhook")
    (c,) = store.claim("w1", 10, 30)
    store.fail(c, "x", max_attempts=5, backoff=no_backoff)
    (c,) = store.claim("w1", 10, 30)
    store.defer(c, 20, "rate limited")
    assert store.claim("w1", 10, 30) == []
    clock.advance(20.1)
    (c,) = store.claim("w1", 10, 30)
    assert c.attempts == 1


def test_queue_depth_and_oldest_age(store: Store, clock: Clock) -> None:
    assert store.queue_depth() == 0 and store.oldest_dirty_age() is None
    store.mark_dirty([Z1], "webhook")
    clock.advance(7)
    store.mark_dirty([Z1, Z2], "webhook")
    age = store.oldest_dirty_age()
    assert store.queue_depth() == 2 and age is not None and 7 <= age < 8


# -- webhook inbox, cursors, leases -------------------------------------------------------------


def test_a_delivery_is_accepted_once(store: Store) -> None:
    assert store.accept_delivery("zendesk", "d-1", b'{"id": 1}', [Z1]) is True
    (c,) = store.claim("w1", 10, 30)
    store.complete(c)
    assert store.accept_delivery("zendesk", "d-1", b'{"id": 1}', [Z1, Z2]) is False
    assert store.queue_depth() == 0
    assert store.accept_delivery("jira", "d-1", b"{}", [ItemRef("jira", "10001")]) is True  # ids are per source


# Item ids are vendor integers (syncd.domain.parse_id): the poisoned one is a number too.
POISON = ItemRef("zendesk", "666000666")


def _reject_poison_refs(raw: sa.Engine) -> None:
    """A real database failure while marking dirty (no mocks): a trigger refuses one ref (POISON)."""
    with raw.begin() as conn:
        if raw.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER reject_poison BEFORE INSERT ON dirty WHEN NEW.ref LIKE '%666000666%' "
                "BEGIN SELECT RAISE(ABORT, 'poison'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.ref LIKE '%%666000666%%' THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER reject_poison BEFORE INSERT ON dirty FOR EACH ROW EXECUTE FUNCTION reject_poison()"
            )


def test_old_deliveries_are_pruned_and_recent_ones_still_deduplicate(store: Store, clock) -> None:
    assert store.accept_delivery("jira", "old", b"{}", [Z1])
    clock.advance(8 * 24 * 3600)
    assert store.accept_delivery("jira", "new", b"{}", [Z2])
    assert store.prune_inbox(older_than=7 * 24 * 3600) == 1
    assert store.accept_delivery("jira", "new", b"{}", [Z2]) is False   # still known
    assert store.accept_delivery("jira", "old", b"{}", [Z1]) is True    # forgotten after a week


def test_a_delivery_and_its_dirty_marks_are_stored_together_or_not_at_all(store: Store, raw: sa.Engine) -> None:
    _reject_poison_refs(raw)
    with pytest.raises(StoreError):
        store.accept_delivery("zendesk", "d-9", b"{}", [Z1, POISON])
    assert store.queue_depth() == 0
    assert store.accept_delivery("zendesk", "d-9", b"{}", [Z1]) is True  # the failed try left no inbox row
    assert store.queue_depth() == 1


def test_advancing_a_cursor_marks_dirty_and_is_fenced(store: Store, raw: sa.Engine) -> None:
    assert store.get_cursor("zendesk") is None
    store.advance_cursor("zendesk", "t=100", [Z1], fence=1)
    store.advance_cursor("zendesk", "t=200", [Z2], fence=2)
    with pytest.raises(Fenced):
        store.advance_cursor("zendesk", "t=150", [Z3], fence=1)
    assert store.get_cursor("zendesk") == "t=200"
    assert {c.ref for c in store.claim("w1", 10, 30)} == {Z1, Z2}
    store.advance_cursor("zendesk", "t=300", [], fence=None)  # unfenced single process
    assert store.get_cursor("zendesk") == "t=300"
    _reject_poison_refs(raw)
    with pytest.raises(StoreError):
        store.advance_cursor("zendesk", "t=400", [POISON], fence=2)
    assert store.get_cursor("zendesk") == "t=300"  # one transaction: the cursor did not move either


def test_lease_is_taken_over_after_ttl_with_a_higher_fence(store: Store, clock: Clock) -> None:
    a = store.acquire_lease("poll:zendesk", "replica-a", ttl=10)
    assert a is not None
    assert store.acquire_lease("poll:zendesk", "replica-b", ttl=10) is None
    clock.advance(5)
    assert store.acquire_lease("poll:zendesk", "replica-a", ttl=10) == a  # renewal keeps the token
    clock.advance(9)
    assert store.acquire_lease("poll:zendesk", "replica-b", ttl=10) is None  # renewed lease still valid
    clock.advance(2)
    b = store.acquire_lease("poll:zendesk", "replica-b", ttl=10)
    assert b is not None and b > a
    assert store.acquire_lease("poll:zendesk", "replica-a", ttl=10) is None
    store.advance_cursor("zendesk", "t=2", [], fence=b)
    with pytest.raises(Fenced):
        store.advance_cursor("zendesk", "t=1", [], fence=a)  # the old leader, late
    assert store.release_lease("poll:zendesk", "replica-b") is True
    c = store.acquire_lease("poll:zendesk", "replica-a", ttl=10)
    assert c is not None and c > b


# -- audit and errors ----------------------------------------------------------------------------


def test_audit_log_newest_first_filtered_by_link(store: Store) -> None:
    link = store.add_link(Z1, "10001", "ABC-1")
    store.audit("link_created", link.id, desk=str(Z1), issue="10001")
    store.audit("field_conflict", link.id, field="status", winner="tracker")
    store.audit("poller_started", source="zendesk")
    rows = store.audit_log(link.id)
    assert [r.event for r in rows] == ["field_conflict", "link_created"]
    assert rows[0].detail == {"field": "status", "winner": "tracker"}
    assert [r.event for r in store.audit_log(limit=1)] == ["poller_started"]


def test_unreachable_database_raises_store_unavailable(tmp_path) -> None:
    for url in (f"sqlite:///{tmp_path}/missing-dir/x.db", "postgresql+psycopg://postgres@127.0.0.1:1/none"):
        store = Store.open(url)
        try:
            with pytest.raises(StoreUnavailable):
                store.upgrade()
            with pytest.raises(StoreUnavailable):
                store.queue_depth()
        finally:
            store.close()


def test_a_locked_sqlite_database_raises_store_unavailable(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    store = Store.open(url, busy_timeout=0.05)
    store.upgrade()
    blocker = sa.create_engine(url, connect_args={"isolation_level": None})
    try:
        with blocker.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(StoreUnavailable):
                store.mark_dirty([Z1], "webhook")
            conn.exec_driver_sql("ROLLBACK")
        store.mark_dirty([Z1], "webhook")
        assert store.queue_depth() == 1
    finally:
        blocker.dispose()
        store.close()


def test_unknown_url_scheme_is_a_config_error() -> None:
    from syncd.errors import ConfigError

    with pytest.raises(ConfigError):
        Store.open("mysql://localhost/x")


def test_link_lock_serialises_one_link_across_stores(db_url: str, store: Store) -> None:
    other = Store.open(db_url)
    entered = threading.Event()

    def take_link_1() -> None:
        with other.link_lock(1):
            entered.set()

    try:
        with store.link_lock(1):
            with other.link_lock(2):  # another link is never blocked
                pass
            t = threading.Thread(target=take_link_1)
            t.start()
            # On Postgres a second replica waits; SQLite is one process, whose LinkLocks do the job.
            assert entered.wait(0.3) is (store.backend == "sqlite")
        t.join(10)
        assert entered.is_set()
    finally:
        other.close()


@pytest.mark.postgres
def test_link_locks_of_two_installations_in_one_database_are_apart(pg_base_url: str) -> None:
    """Advisory locks belong to the whole database; two syncd schemas in it (two
    installations, or two test runs side by side) both have a link 1. Found when the
    suite ran its Postgres tests in parallel: every link 1 was 'held by another replica'."""
    admin = sa.create_engine(pg_base_url)
    schemas = [f"syncd_apart_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    stores: list[Store] = []
    try:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        for schema in schemas:
            url = sa.make_url(pg_base_url).update_query_dict({"options": f"-csearch_path={schema}"})
            stores.append(Store.open(url.render_as_string(hide_password=False)))
        with stores[0].link_lock(1), stores[1].link_lock(1, wait=0.5):
            pass   # before: LinkBusy from the second
    finally:
        for s in stores:
            s.close()
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_postgres_sessions_ask_the_server_for_keepalives_too(db_url: str) -> None:
    """A replica that vanishes (host gone, half-open partition) must not keep its session --
    and the link advisory locks it holds -- for the kernel's two hours: the server probes too."""
    if not db_url.startswith("postgresql"):
        pytest.skip("server-side keepalives are a Postgres setting")
    from syncd.store import _postgres_connect_args
    url = sa.make_url(db_url)
    args = _postgres_connect_args(url, connect_timeout=5, statement_timeout=30)
    engine = sa.create_engine(url, connect_args=args)   # args keep the URL's own options (the test's schema)
    try:
        with engine.connect() as conn:
            shown = {name: conn.scalar(sa.text(f"SHOW {name}")) for name in
                     ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout",
                      "statement_timeout")}
    finally:
        engine.dispose()
    assert shown == {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3",
                     "tcp_user_timeout": "20000", "statement_timeout": "30s"}, shown


def test_a_claim_carries_the_newest_stamp_only_when_every_mark_had_one(store: Store) -> None:
    """The engine skips reading an issue it read at least as recently as the claim's stamp:
    that is sound only if the stamp bounds *every* change the marks stand for, so one mark
    without a stamp (a poll, a released version, syncd's own queueing) clears it for good."""
    j1, j2 = ItemRef("jira", "10001"), ItemRef("jira", "10002")
    store.accept_delivery("jira", "d-1", b"{}", [j1], stamp=100.5)
    store.accept_delivery("jira", "d-2", b"{}", [j1], stamp=90.25)     # older, arrived later
    store.accept_delivery("jira", "d-3", b"{}", [j2], stamp=100.5)
    store.mark_dirty([j2], "version_released")
    store.accept_delivery("jira", "d-4", b"{}", [j2], stamp=200.0)
    claims = {c.ref: c for c in store.claim("w", 10, 30)}
    assert claims[j1].stamp == 100.5
    assert claims[j2].stamp is None
