"""The engine's store port, held the same on the SQL store (SQLite and Postgres) and
on the in-memory store the engine's unit tests run on: if the two drifted apart,
the unit tests would prove the engine against promises the daemon's store does
not keep. Each check runs on both."""

from __future__ import annotations

from typing import Callable

import pytest

from syncd.domain import BaseEntry, ItemRef
from syncd.memory_store import MemoryStore
from syncd.queue import Claim
from syncd.sim.core import Clock
from syncd.store import Store
from syncd.store_ports import ClaimStore, CursorStore, DeliverySink, EngineStore, LinkNotFound, StaleBase, StoreError

Z1, Z2 = ItemRef("zendesk", "1"), ItemRef("zendesk", "2")


def claim_of(ref: ItemRef, fence: int) -> Claim:
    return Claim(ref, version=1, attempts=0, owner=f"w{fence}", lease_expires=0.0, fence=fence)


def intent_ownership(port: EngineStore, clock: Clock) -> None:
    first = port.begin_intent("comment:1:tracker:9", "comment", None, {"body": "hi"}, claim=claim_of(Z1, 1))
    again = port.begin_intent("comment:1:tracker:9", "comment", None, {"body": "other"}, claim=claim_of(Z1, 2))
    assert first.owned and not again.owned
    assert again.intent.payload == {"body": "hi"} and again.intent.owned_by(claim_of(Z1, 1))
    assert port.get_intent("comment:1:tracker:9") == first.intent


def take_over_is_compare_and_set(port: EngineStore, clock: Clock) -> None:
    seen = port.begin_intent("note:x", "note", claim=claim_of(Z1, 1)).intent
    clock.advance(30)
    assert port.take_intent(seen, claim_of(Z1, 2))
    assert not port.take_intent(seen, claim_of(Z1, 3)), "a second taker with the same view must lose"
    taken = port.get_intent("note:x")
    assert taken is not None and taken.owned_by(claim_of(Z1, 2))
    assert taken.created_at.timestamp() >= seen.created_at.timestamp() + 29, "taking over restarts the age"
    port.finish_intent("note:x", "c-1")
    done = port.get_intent("note:x")
    assert done is not None and done.state == "done" and done.result == "c-1"
    assert not port.take_intent(done, claim_of(Z1, 4)), "a done intent is never taken"


def drop_only_pending_and_owned(port: EngineStore, clock: Clock) -> None:
    port.begin_intent("a", "comment", claim=claim_of(Z1, 1))
    assert not port.drop_intent("a", claim_of(Z1, 2)), "another claim may not drop it"
    assert port.drop_intent("a", claim_of(Z1, 1))
    assert port.get_intent("a") is None
    port.begin_intent("b", "comment")
    port.finish_intent("b", "done-id")
    assert not port.drop_intent("b"), "a done intent is never dropped"
    with pytest.raises(StoreError):
        port.finish_intent("missing", "x")


def base_revisions(port: EngineStore, clock: Clock) -> None:
    link = port.add_link(Z1, "10001", "SUP-1")
    base = {"priority": BaseEntry("high", "High")}
    assert port.put_base(link.id, base, 0) == 1
    with pytest.raises(StaleBase):
        port.put_base(link.id, base, 0)
    assert port.put_base(link.id, {}, 1) == 2
    assert port.revisions([link.id, 999]) == {link.id: 2, 999: 0}
    with pytest.raises(LinkNotFound):
        port.put_base(999, base, 0)


def link_state_reads_base_and_intents(port: EngineStore, clock: Clock) -> None:
    link = port.add_link(Z1, "10001", "SUP-1")
    port.put_base(link.id, {"priority": BaseEntry("high", "High")}, 0)
    port.begin_intent("create:zendesk:1", "create", None, {"origin": "zendesk:1"})
    clock.advance(1)
    port.begin_intent(f"comment:{link.id}:tracker:5", "comment", link.id, {"side": "tracker", "source_id": "5"})
    port.begin_intent("comment:other", "comment", None, {})
    state = port.link_state(link.id, ("create:zendesk:1",))
    assert state.base == {"priority": BaseEntry("high", "High")} and state.revision == 1
    assert [i.key for i in state.intents] == ["create:zendesk:1", f"comment:{link.id}:tracker:5"]
    assert state.intent("create:zendesk:1") is not None and state.intent("comment:other") is None


def links(port: EngineStore, clock: Clock) -> None:
    a = port.add_link(Z1, "10001", "SUP-1")
    assert port.add_link(Z1, "10001", "SUP-1") == a, "a pair is linked once"
    b = port.add_link(Z2, "10001", "SUP-1")
    assert [l.id for l in port.links_for_issue("10001")] == [a.id, b.id]
    port.update_issue_key("10001", "OPS-7")
    assert {l.issue_key for l in port.links_for_issue("10001")} == {"OPS-7"}
    assert port.remove_link(Z1, "10001") and not port.remove_link(Z1, "10001")
    assert port.links_for_desk(Z1) == [] and [l.id for l in port.links_for_desk(Z2)] == [b.id]


def pending_intents_listed(port: Store | MemoryStore, clock: Clock) -> None:
    port.begin_intent("one", "comment")
    clock.advance(1)
    port.begin_intent("two", "note")
    port.finish_intent("one", "x")
    assert port.pending_intents() == ["two"]


CHECKS: list[Callable[..., None]] = [intent_ownership, take_over_is_compare_and_set, drop_only_pending_and_owned,
                                     base_revisions, link_state_reads_base_and_intents, links, pending_intents_listed]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_sql_store_keeps_the_engine_port(store: Store, clock: Clock, check: Callable[..., None]) -> None:
    check(store, clock)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_memory_store_keeps_the_engine_port(clock: Clock, check: Callable[..., None]) -> None:
    check(MemoryStore(clock.now), clock)


def port_members(port: type) -> set[str]:
    annotated = {n for klass in port.__mro__ for n in getattr(klass, "__annotations__", {})}
    return {n for n in dir(port) if not n.startswith("_")} | annotated


@pytest.mark.parametrize("port", [EngineStore, ClaimStore, CursorStore, DeliverySink], ids=lambda p: p.__name__)
def test_the_sql_store_offers_every_port(store: Store, port: type) -> None:
    assert {n for n in port_members(port) if not hasattr(store, n)} == set()


def test_the_memory_store_offers_the_engine_port(clock: Clock) -> None:
    assert {n for n in port_members(EngineStore) if not hasattr(MemoryStore(clock.now), n)} == set()
