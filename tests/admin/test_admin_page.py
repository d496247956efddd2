"""The admin page's app (syncd/admin.py) over a real store, SQLite and Postgres: who gets in,
what every answer carries, that vendor text is escaped, search and paging. The page in a real
browser against a running daemon is tests/admin/test_admin_browser.py."""

from __future__ import annotations

import base64
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from syncd import history
from syncd.admin import authorized, make_admin_app
from syncd.config import AdminSettings
from syncd.domain import ItemRef
from syncd.engine import Write
from syncd.reconcile import BaseEntry
from syncd.secrets import Secret
from syncd.store import Store

TOKEN = "t0ken-of-at-least-16-chars"
XSS = '<img src=x onerror=alert(1)><script>alert(2)</script>'
STATUS: dict[str, Any] = {"status": "degraded", "problems": [f"worker: zendesk:1: {XSS}"], "queue_depth": 0,
                          "oldest_dirty_age_seconds": None, "dead_letters": 0, "last_webhook_age_seconds": 3.0,
                          "warnings": [], "webhooks": {"zendesk": {"last_accepted_age_seconds": 3.0,
                                                                   "refused_since_last_accepted": 2,
                                                                   "last_refusal": "bad_signature"}},
                          "pollers": {"jira": {"leader": True, "last_success": 1.0}}}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def client(store: Store) -> TestClient:
    app = make_admin_app(store, AdminSettings("127.0.0.1:8081", Secret(TOKEN, "env:T"), "admin"), lambda: STATUS)
    return TestClient(app)


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _assert_guarded(r: Any) -> None:
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-wrong-token"},
                                     {"Authorization": f"Bearer {TOKEN}x"}, _basic("admin", "nope"),
                                     _basic("root", TOKEN), {"Authorization": "Basic !!notbase64"},
                                     {"Authorization": TOKEN}])
def test_every_page_refuses_without_the_token(client: TestClient, headers: dict[str, str]) -> None:
    for path in ("/", "/links", "/links/1", "/queue", "/dead", "/admin.css", "/nothing"):
        r = client.get(path, headers=headers)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith('Basic realm="syncd admin"')
        assert r.text == "authentication required"
        _assert_guarded(r)


def test_bearer_and_basic_credentials_get_in_and_it_is_read_only(client: TestClient) -> None:
    for headers in (BEARER, _basic("admin", TOKEN)):
        r = client.get("/", headers=headers)
        assert r.status_code == 200 and "Overview" in r.text
        _assert_guarded(r)
    assert client.head("/links", headers=BEARER).status_code == 200
    r = client.post("/links", headers=BEARER, data={"q": "x"})
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    _assert_guarded(r)


def test_authorized_is_exact() -> None:
    assert authorized(b"Bearer " + TOKEN.encode(), b"admin", TOKEN.encode())
    assert authorized(b"bearer  " + TOKEN.encode() + b" ", b"admin", TOKEN.encode())
    assert not authorized(b"Bearer " + TOKEN.encode()[:-1], b"admin", TOKEN.encode())
    assert not authorized(b"Basic " + base64.b64encode(TOKEN.encode()), b"admin", TOKEN.encode())  # no user:
    assert not authorized("Bearer tökén".encode(), b"admin", TOKEN.encode())


def test_overview_shows_lag_webhook_flow_and_escapes_problems(client: TestClient) -> None:
    r = client.get("/", headers=BEARER)
    assert XSS not in r.text and "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;" in r.text
    assert "bad_signature" in r.text and "leader" in r.text and "degraded" in r.text
    assert TOKEN not in r.text


def test_search_by_ticket_issue_key_issue_id_and_number_paged(client: TestClient, store: Store) -> None:
    made = [store.add_link(ItemRef.parse(f"zendesk:{n}"), str(10000 + n), f"SUP-{n}") for n in range(1, 121)]
    store.add_link(ItemRef.parse("intercom:conversation:7"), "10007", "SUP-7")

    def ids(q: str, after: int = 0) -> list[str]:
        r = client.get("/links", params={"q": q, "after": after}, headers=BEARER)
        assert r.status_code == 200, r.text
        return [row.split('">')[1].split("<")[0] for row in r.text.split('<a href="/links/')[1:]]

    assert ids("zendesk:5") == [str(made[4].id)]
    assert ids("sup-5") == [str(made[4].id)]
    assert len(ids("SUP-7")) == 2 and len(ids("jira:10007")) == 2
    assert len(ids("7")) == 2                              # zendesk:7 and intercom:conversation:7 (issue id 10007 is not 7)
    assert ids("intercom:conversation:7") == [str(made[-1].id + 1)]
    first = client.get("/links", headers=BEARER).text
    assert 'id="next"' in first and f"after={made[49].id}" in first
    page3 = ids("", after=made[99].id)
    assert len(page3) == 21 and 'id="next"' not in client.get(f"/links?after={made[99].id}", headers=BEARER).text
    for bad in ("zendesk:abc", "nothing:1", "jira:version:5", "1" * 30):
        r = client.get("/links", params={"q": bad}, headers=BEARER)
        assert r.status_code == 400 and 'id="search-error"' in r.text, bad


def test_link_page_shows_base_and_history_with_vendor_text_escaped(client: TestClient, store: Store) -> None:
    link = store.add_link(ItemRef.parse("zendesk:1"), "10001", "SUP-1")
    store.put_base(link.id, {"summary": BaseEntry(XSS, XSS), "labels": BaseEntry(("a", "b"), None)}, 0)
    history.record(store, [Write("zendesk:1", "comment", XSS, link=link.id, source="3", mirrored="4"),
                           Write("SUP-1", "field:summary", XSS, link=link.id, old="<b>old</b>", why="rule summary")],
                   ItemRef.parse("zendesk:1"), "zendesk:1 (webhook:zendesk)")
    r = client.get(f"/links/{link.id}", headers=BEARER)
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img" not in r.text and "<b>" not in r.text
    assert r.text.count("&lt;img src=x onerror=alert(1)&gt;") == 4    # base twice, the comment, the field
    assert "a, b" in r.text and "(none)" in r.text and "3 → 4" in r.text and "&lt;b&gt;old&lt;/b&gt; →" in r.text
    assert client.get("/links/999999", headers=BEARER).status_code == 404


def test_queue_and_dead_letters_pages(client: TestClient, store: Store) -> None:
    store.mark_dirty([ItemRef.parse("zendesk:9")], "webhook:zendesk")
    claim, = store.claim("w", 1, 60)
    store.fail(claim, f"VendorError: {XSS}", max_attempts=1, backoff=lambda n: 1.0)
    store.mark_dirty([ItemRef.parse("jira:10001")], "poll:jira")
    queue = client.get("/queue", headers=BEARER).text
    assert 'id="oldest"' in queue and "jira:10001" in queue and "poll:jira" in queue
    dead = client.get("/dead", headers=BEARER).text
    assert "zendesk:9" in dead and "&lt;script&gt;" in dead and "<script>" not in dead


def test_every_search_and_page_query_is_an_index_seek_on_sqlite(tmp_path) -> None:
    """No query of the page scans a table that grows with the links or the history (the
    1 M-links figures are in docs/benchmarks.md, bench/admin_pages.py)."""
    import sqlalchemy as sa

    from syncd import admin_queries
    from syncd.schema import history as history_t
    from syncd.schema import links

    store = Store.open(f"sqlite:///{tmp_path / 'plan.db'}")
    store.upgrade()
    try:
        with store.reading() as conn:
            def plan(stmt: Any) -> str:
                sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
                return " | ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))

            expected = {"": "USING INTEGER PRIMARY KEY", "SUP-1": "USING INDEX ix_links_issue_key",
                        "zendesk:5": "USING INDEX sqlite_autoindex_links_1 (desk_ref=?)",
                        "intercom:conversation:7": "USING INDEX sqlite_autoindex_links_1 (desk_ref=?)",
                        "jira:10001": "USING INDEX ix_links_issue_id", "42": "MULTI-INDEX OR"}
            for q, seek in expected.items():
                shown = plan(sa.select(links).where(admin_queries.search_condition(q), links.c.id > 10)
                             .order_by(links.c.id).limit(51))
                assert seek in shown and "SCAN" not in shown, (q, shown)
            for column, index in (("link_id", "ix_history_link_id"), ("desk_ref", "ix_history_desk_ref"),
                                  ("issue_id", "ix_history_issue_id")):
                h = history_t.c
                shown = plan(sa.select(history_t).where(h[column] == sa.literal("1")).order_by(h.id.desc())
                             .limit(51))
                assert f"SEARCH history USING INDEX {index}" in shown and "TEMP B-TREE" not in shown, shown
    finally:
        store.close()


def test_link_page_shows_both_sides_as_last_read_next_to_the_base(store: Store) -> None:
    from datetime import datetime, timezone

    from syncd.admin_current import CurrentValues
    from syncd.domain import DeskItem, Side, TrackerIssue
    from syncd.mapping import FieldRule, Mapping
    from syncd.snapshots import SnapshotCache

    link = store.add_link(ItemRef.parse("zendesk:1"), "10001", "SUP-1")
    store.put_base(link.id, {"priority": BaseEntry("high", "High"), "summary": BaseEntry("old", "old")}, 0)
    _, revision = store.get_base(link.id)
    mapping = Mapping("zendesk", "m.toml", fields=(FieldRule("priority", "priority", "priority"),
                                                   FieldRule("summary", "subject", "summary")))
    snapshots = SnapshotCache()
    read = datetime(2026, 12, 2, 10, 0, 5, tzinfo=timezone.utc)
    ticket = DeskItem(ItemRef.parse("zendesk:1"), XSS, "u", "open", "", None, None,
                      {"priority": "urgent", "subject": XSS}, (), datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc),
                      observed_at=read)
    issue = TrackerIssue(ItemRef.parse("jira:10001"), "SUP-1", "u", "s", {"priority": "High", "summary": "old"}, (),
                         (), datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc))
    snapshots.put(link.id, Side.DESK, ticket, revision)
    snapshots.put(link.id, Side.TRACKER, issue, revision - 1)      # read before the last sync
    settings = AdminSettings("127.0.0.1:8081", Secret(TOKEN, "env:T"), "admin")
    client = TestClient(make_admin_app(store, settings, lambda: STATUS, CurrentValues(snapshots, {"zendesk": mapping})))
    r = client.get(f"/links/{link.id}", headers=BEARER)
    assert r.status_code == 200 and "<script>" not in r.text and "<img" not in r.text
    now = r.text.split('id="now"', 1)[1].split("</table>", 1)[0]
    rows = [row for row in now.split("<tr")[2:]]
    assert "<td>priority</td><td>urgent</td><td>High</td><td>high</td><td>High</td>" in rows[0]
    assert 'class="differs"' in rows[0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in rows[1]                      # the desk's summary, escaped
    source = r.text.split('id="now-source"', 1)[1].split("</p>", 1)[0]
    assert "Desk: read 2026-12-02 10:00:05Z, item updated 2026-12-02 10:00:00Z" in source
    assert f"at base revision {revision - 1} (older than the base: may be stale)" in source
    assert "this page calls no vendor" in source

    # A link the daemon has not read since it started: said so, and no "now" table.
    other = store.add_link(ItemRef.parse("zendesk:2"), "10002", "SUP-2")
    r = client.get(f"/links/{other.id}", headers=BEARER)
    assert 'id="now"' not in r.text and "Neither side was read by this daemon" in r.text
