"""The store's read-only inspection views, which tests and operators' tools use
instead of raw SQL on the store's private engine."""

from __future__ import annotations

from syncd.domain import ItemRef
from syncd.store import Store

Z1, Z2, Z3 = ItemRef("zendesk", "1"), ItemRef("zendesk", "2"), ItemRef("zendesk", "3")


def test_inbox_count_by_source(store: Store) -> None:
    assert store.inbox_count() == 0
    assert store.accept_delivery("zendesk", "d1", b"{}", [Z1])
    assert not store.accept_delivery("zendesk", "d1", b"{}", [Z1]), "a redelivery is not stored twice"
    assert store.accept_delivery("jira", "d1", b"{}", [])
    assert (store.inbox_count(), store.inbox_count("zendesk"), store.inbox_count("intercom")) == (2, 1, 0)


def test_lease_owners_of_queued_items(store: Store) -> None:
    store.mark_dirty([Z1, Z2], "test")
    claimed = store.claim("worker-a", 1, lease_seconds=30)
    assert len(claimed) == 1
    owners = store.lease_owners([Z1, Z2, Z3])
    assert set(owners) == {Z1, Z2}, "an item not in the queue is left out"
    assert owners[claimed[0].ref] == "worker-a"
    assert [o for r, o in owners.items() if r != claimed[0].ref] == [None]
    store.complete(claimed[0])
    assert set(store.lease_owners([Z1, Z2])) == {Z1, Z2} - {claimed[0].ref}


def test_pending_intents_oldest_first(store: Store) -> None:
    store.begin_intent("create:zendesk:1", "create")
    store.begin_intent("comment:1:tracker:5", "comment")
    store.finish_intent("create:zendesk:1", "10001")
    assert store.pending_intents() == ["comment:1:tracker:5"]
