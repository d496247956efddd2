"""A silent database partition (issue 10, finding 4): connections stay open, nothing
moves. The liveness probe must still answer (restarting a daemon that only waits for
its database helps nobody), the readiness probe must answer within a second naming
the database, and both must be right again as soon as the partition heals."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy as sa

from syncd.runtime import App

from .conftest import TcpProxy, comments_with, escalate, wait_for


def _get(app: App, path: str, timeout: float) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{app.http_port}{path}", timeout=timeout)
    except httpx.TimeoutException:
        return None


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_fault_silent_partition_health_answers_and_recovers(db_url, make_world, start_daemon, look_at, logs):
    url = sa.make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        world = make_world(database_url=proxied)
        # Vendors deliver in parallel: enough deliveries stuck on the database to take
        # every thread of the receiver's shared pool.
        world.zendesk.webhooks.stop()
        world.zendesk.webhooks.start(threads=12)
        daemon = start_daemon(world)
        look = look_at(world)
        tickets = [escalate(world, look, f"Partition {n}") for n in range(2)]
        assert wait_for(lambda: daemon.store.queue_depth() == 0 and daemon.workers.busy == 0, timeout=20)

        proxy.blackhole()
        for n in range(12):
            ticket, _ = tickets[n % 2]
            world.zendesk.customer_reply(ticket, f"Sent into the partition {n}.")
        time.sleep(2.0)   # the deliveries, workers and pollers are now stuck on the database

        health = [_get(daemon, "/healthz", timeout=2.0) for _ in range(3)]
        assert all(r is not None and r.status_code == 200 for r in health), "/healthz hung with the database"
        for _ in range(3):
            ready = _get(daemon, "/readyz", timeout=3.0)
            assert ready is not None, "/readyz gave no answer while the database hung"
            assert ready.status_code == 503
            body = ready.json()
            assert body["status"] == "unready" and body["problems"][0].startswith("database: "), body

        proxy.restore()
        assert wait_for(lambda: (r := _get(daemon, "/readyz", timeout=3.0)) is not None and r.status_code == 200,
                        timeout=60), "/readyz did not recover after the partition healed"
        for n in range(12):
            ticket, key = tickets[n % 2]
            assert wait_for(lambda: comments_with(world, key, f"Sent into the partition {n}.") == 1, timeout=60)
        assert wait_for(lambda: daemon.store.queue_depth() == 0, timeout=30)
        time.sleep(0.5)
        assert all(comments_with(world, tickets[n % 2][1], f"Sent into the partition {n}.") == 1 for n in range(12))
    finally:
        proxy.close()


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_fault_readyz_clears_a_pollers_database_error_as_soon_as_the_database_answers(
        db_url, make_world, start_daemon):
    """The poller's error used to stay until its next poll, which backs off up to 300 s:
    /readyz kept saying "degraded" long after the database was back (issue 10, finding 5)."""
    url = sa.make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        world = make_world(database_url=proxied, jira_poll=1)
        daemon = start_daemon(world)
        jira = next(p for p in daemon.pollers if p.source.name == "jira")
        proxy.cut()
        # Long enough for the poller's wait to double a few times (1, 2, 4, 8 s ...).
        assert wait_for(lambda: jira.last_error is not None, timeout=15)
        time.sleep(8.0)
        proxy.restore()

        def ready() -> bool:
            r = _get(daemon, "/readyz", timeout=3.0)
            return r is not None and r.status_code == 200
        assert wait_for(ready, timeout=30, every=0.1)
        assert jira.last_error is not None, (
            "the poller polled again first: the test shows nothing (its wait was too short)")
    finally:
        proxy.close()
