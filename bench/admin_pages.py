"""The admin page with a million links (issue 15): each page's answer time over real HTTP.

1. Bulk-inserts ``--links`` links (as bench/links_scale.py: three tickets per issue) and one
   history entry per link (``--history``) through the store's migrations and tables.
2. Serves the admin app (syncd/admin.py) under uvicorn exactly as ``syncd run`` does, and
   requests each page ``--requests`` times with the bearer token over HTTP: the first and
   the last page of the list, a search by issue key, by ticket, by a bare number, and a
   link's page with its history. Reports mean / p50 / p99 / max per page.

    .venv/bin/python bench/admin_pages.py                       # SQLite, 1,000,000 links (~1 min)
    .venv/bin/python bench/admin_pages.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Goal (issue 15): the links list answers in <= 200 ms with 1,000,000 links stored.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from links_scale import CHUNK, bulk_insert  # noqa: E402
from propagation import say  # noqa: E402

GOAL_MS = 200.0
TOKEN = "bench-token-0123456789abcdef"


def insert_history(url: str, n: int) -> float:
    import sqlalchemy as sa

    from syncd.schema import history
    engine = sa.create_engine(url)
    started, now = time.monotonic(), time.time()
    with engine.begin() as conn:
        for lo in range(1, n + 1, CHUNK):
            conn.execute(sa.insert(history), [
                {"at": now, "link_id": i, "desk_ref": f"zendesk:{i}", "issue_id": str(100000 + i // 3),
                 "issue_key": f"SUP-{i // 3}", "side": "tracker", "target": f"SUP-{i // 3}", "what": "field:priority",
                 "old": "Medium", "new": "High", "why": "rule priority (copied): desk → tracker: 'Medium' → 'High'",
                 "trigger": f"zendesk:{i} (webhook:zendesk)"} for i in range(lo, min(n + 1, lo + CHUNK))])
    engine.dispose()
    return time.monotonic() - started


def serve(url: str) -> tuple[object, int]:
    import uvicorn

    from syncd.admin import make_admin_app
    from syncd.config import AdminSettings, HttpSettings
    from syncd.http_server import server_config
    from syncd.runtime import _listen
    from syncd.secrets import Secret
    from syncd.store import Store
    store = Store.open(url)
    status = {"status": "ready", "problems": [], "queue_depth": 0, "oldest_dirty_age_seconds": None}
    app = make_admin_app(store, AdminSettings("127.0.0.1:0", Secret(TOKEN), "admin"), lambda: status)
    listener = _listen("127.0.0.1", 0)
    server = uvicorn.Server(server_config(app, HttpSettings()))
    threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, listener.getsockname()[1]


def timed(fetch: Callable[[], bytes], n: int) -> dict[str, float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fetch()
        out.append(1000 * (time.perf_counter() - t))
    out.sort()
    return {"mean_ms": round(sum(out) / n, 2), "p50_ms": round(out[n // 2], 2),
            "p99_ms": round(out[min(n - 1, int(n * 0.99))], 2), "max_ms": round(out[-1], 2)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--links", type=int, default=1_000_000)
    ap.add_argument("--history", type=int, default=None, help="history entries (default: one per link)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--database-url", default=None, help="Postgres URL of a server (a fresh database is made); "
                                                          "default SQLite in a temporary directory")
    args = ap.parse_args(argv)
    from syncd.logs import configure_logging
    configure_logging("error", "console")
    import sqlalchemy as sa

    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-admin-"))
    admin_engine, pg_db = None, None
    if args.database_url:
        admin_engine = sa.create_engine(args.database_url, isolation_level="AUTOCOMMIT")
        pg_db = f"syncd_bench_{uuid.uuid4().hex[:8]}"
        with admin_engine.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{pg_db}"'))
        url = sa.make_url(args.database_url).set(database=pg_db).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{directory / 'syncd.db'}"
    server = None
    try:
        say(f"inserting {args.links} links …")
        insert_s = bulk_insert(url, args.links)
        n_history = args.links if args.history is None else args.history
        say(f"inserting {n_history} history entries …")
        history_s = insert_history(url, n_history)
        if args.database_url:
            with sa.create_engine(url).begin() as conn:
                conn.execute(sa.text("ANALYZE"))
        server, port = serve(url)
        rng = random.Random(7)
        n = args.links

        def get(path: Callable[[], str]) -> Callable[[], bytes]:
            def fetch() -> bytes:
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path()}",
                                             headers={"Authorization": f"Bearer {TOKEN}"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    body = r.read()
                    assert r.status == 200, r.status
                    return body
            return fetch

        pages = {
            "links, first page": get(lambda: "/links"),
            "links, last page": get(lambda: f"/links?after={n - 30}"),
            "links, a random page": get(lambda: f"/links?after={rng.randrange(1, n)}"),
            "search by issue key": get(lambda: f"/links?q=SUP-{rng.randrange(1, n // 3)}"),
            "search by ticket": get(lambda: f"/links?q=zendesk:{rng.randrange(1, n)}"),
            "search by number": get(lambda: f"/links?q={rng.randrange(1, n)}"),
            "one link with its history": get(lambda: f"/links/{rng.randrange(1, n)}"),
        }
        assert b"SUP-" in pages["search by issue key"]()
        results = {name: timed(fetch, args.requests) for name, fetch in pages.items()}
        report = {"backend": "postgresql" if args.database_url else "sqlite", "links": n, "history": n_history,
                  "insert_links_s": round(insert_s, 1), "insert_history_s": round(history_s, 1), "pages": results}
        print(json.dumps(report, indent=2))
        worst = max(r["p99_ms"] for name, r in results.items() if name.startswith(("links", "search")))
        met = worst <= GOAL_MS
        say(f"links list and searches, worst p99 {worst:.1f} ms: goal <= {GOAL_MS:.0f} ms "
            f"{'met' if met else 'NOT met'}")
        return 0 if met else 1
    finally:
        if server is not None:
            server.should_exit = True   # type: ignore[attr-defined]
        shutil.rmtree(directory, ignore_errors=True)
        if admin_engine is not None and pg_db is not None:
            time.sleep(0.5)
            with admin_engine.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
            admin_engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
