"""Workers share one Zendesk connector: its writes must not cross between threads.

zenpy remembers the object being written on its shared API object and cleans it when
the answer arrives; two threads updating tickets through one zenpy client crossed
there (``TypeError: 'Ticket' object is not iterable``, ``KeyError: '_dirty'``) after
their requests had landed, so a write that was made was reported as failed (seen
under load in the calls benchmarks, issue 16). The thread switch interval is made
tiny so that the interleaving the daemon meets now and then happens in every run.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Iterator

import pytest

from syncd.connectors.zendesk import ZendeskAccess, ZendeskConnector
from syncd.domain import ItemRef
from syncd.sim.zendesk import ZendeskSim

THREADS, WRITES = 8, 30


@pytest.fixture
def sim() -> Iterator[ZendeskSim]:
    sim = ZendeskSim().start()
    sim.ticket_update_limit = None      # the per-ticket limit is not what this test is about
    yield sim
    threading.Thread(target=sim.stop, daemon=True).start()


@pytest.fixture
def busy_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_concurrent_ticket_writes_through_one_connector_all_succeed(sim: ZendeskSim, busy_switching: None) -> None:
    creds = sim.describe()["credentials"]
    conn = ZendeskConnector(ZendeskAccess(sim.base_url, creds["email"], creds["token"]))
    tickets = [sim.create_ticket(f"Case {n}", "Help") for n in range(THREADS)]
    errors: Counter[str] = Counter()
    notes: Counter[int] = Counter()

    def work(ticket: int) -> None:
        ref = ItemRef("zendesk", str(ticket))
        for n in range(WRITES):
            try:
                if n % 3 == 2:
                    conn.add_comment(ref, f"note {n}", public=False)
                    notes[ticket] += 1
                else:
                    assert conn.update_fields(ref, {"priority": ("low", "high")[n % 2]}) == []
            except Exception as e:   # what the engine would see as a failed write
                errors[f"{type(e).__name__}: {e}"[:100]] += 1

    threads = [threading.Thread(target=work, args=(t,)) for t in tickets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dict(errors) == {}
    assert sim.count("UpdateTicket") >= THREADS * WRITES
    for ticket in tickets:
        assert len([c for c in sim.tickets[ticket].comments if str(c["body"]).startswith("note ")]) == notes[ticket]


def test_each_thread_writes_through_its_own_zenpy_client_over_one_session(sim: ZendeskSim) -> None:
    # The deterministic half of the test above (whose race shows in about half the
    # runs on the old code): no zenpy API object, and so no "object being written",
    # is shared between threads; the HTTP session and its connection pool are.
    creds = sim.describe()["credentials"]
    conn = ZendeskConnector(ZendeskAccess(sim.base_url, creds["email"], creds["token"]))
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(conn.client))
    thread.start()
    thread.join()
    assert seen[0] is not conn.client and conn.client is conn.client
    assert seen[0].tickets.session is conn.client.tickets.session is conn.session   # type: ignore[attr-defined]
