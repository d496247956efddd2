"""A million links: peak memory and lookup time (issue 5, point 7).

1. Bulk-inserts ``--links`` rows into the store's ``links`` table (through the
   store's own SQLAlchemy table and migrations; three tickets per issue).
2. In a fresh child process: opens the store, looks links up by ticket and by
   issue (``--lookups`` random ones each), and reports the time per lookup and
   the process's peak RSS (``resource.getrusage``).
3. Starts the real daemon (``syncd run``) on that database against the
   simulators, lets it escalate a few tickets, and reads its peak RSS (VmHWM).

    .venv/bin/python bench/links_scale.py                       # SQLite, 1,000,000 links (~1-2 min)
    .venv/bin/python bench/links_scale.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import say, wait_until  # noqa: E402

GOAL_MB = 200.0
CHUNK = 20_000

PROBE = r"""
import json, random, resource, sys, time
from syncd.domain import ItemRef
from syncd.store import Store
url, n, lookups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
store = Store.open(url)
started = time.perf_counter()
count = store.count_links()
count_s = time.perf_counter() - started
def timed(fn, keys):
    out = []
    for k in keys:
        t = time.perf_counter(); found = fn(k); out.append(time.perf_counter() - t)
        assert found, k
    out.sort()
    return {"mean_ms": 1000 * sum(out) / len(out), "p50_ms": 1000 * out[len(out) // 2],
            "p99_ms": 1000 * out[int(len(out) * 0.99)]}
by_ticket = timed(lambda i: store.links_for_desk(ItemRef("zendesk", str(i))),
                  [rng.randrange(1, n + 1) for _ in range(lookups)])
by_issue = timed(lambda i: store.links_for_issue(str(100000 + i // 3)),
                 [rng.randrange(1, n + 1) for _ in range(lookups)])
store.close()
print(json.dumps({"count": count, "count_s": count_s, "by_ticket": by_ticket, "by_issue": by_issue,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bulk_insert(url: str, n: int) -> float:
    import sqlalchemy as sa

    from syncd.schema import links
    from syncd.store import Store
    store = Store.open(url)
    store.upgrade()
    store.close()
    engine = sa.create_engine(url)
    started = time.monotonic()
    now = time.time()
    with engine.begin() as conn:
        for lo in range(1, n + 1, CHUNK):
            rows = [{"desk_ref": f"zendesk:{i}", "issue_id": str(100000 + i // 3), "issue_key": f"SUP-{i // 3}",
                     "created_at": now} for i in range(lo, min(n + 1, lo + CHUNK))]
            conn.execute(sa.insert(links), rows)
            if (lo - 1 + len(rows)) % 200_000 == 0:
                say(f"  {lo - 1 + len(rows):>9} links")
    engine.dispose()
    return time.monotonic() - started


def daemon_peak(url: str, directory: Path) -> float:
    """VmHWM of ``syncd run`` on the big database after a few escalations."""
    from throughput import replicas_for

    from syncd.sandbox import build_world
    world = build_world(directory / "world", database_url=url, zendesk_poll=3600, jira_poll=3600,
                        intercom_poll=3600, log_level="error")
    replica = replicas_for(world, 1)[0]
    try:
        replica.start(world)
        if not wait_until(replica.ready, timeout=60, every=0.1):
            raise SystemExit("daemon not ready")
        tickets = [world.zendesk.create_ticket(f"Scale {i}", "Broken.", tags=["jira_escalate"]) for i in range(5)]
        field = world.field_id(9001)

        def escalated() -> bool:
            with world.zendesk.lock:
                return all(world.zendesk.tickets[t].custom.get(field) for t in tickets)

        if not wait_until(escalated, timeout=60, every=0.1):
            raise SystemExit("daemon did not escalate the probe tickets")
        assert replica.proc is not None
        status = Path(f"/proc/{replica.proc.pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return kb / 1024
    finally:
        replica.stop()
        world.stop()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--links", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--database-url", default=None, help="Postgres URL of a server (a fresh database is made); "
                                                          "default SQLite in a temporary directory")
    ap.add_argument("--skip-daemon", action="store_true")
    args = ap.parse_args(argv)
    from syncd.logs import configure_logging
    configure_logging("error", "console")

    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-links-"))
    admin, pg_db = None, None
    if args.database_url:
        import sqlalchemy as sa
        admin = sa.create_engine(args.database_url, isolation_level="AUTOCOMMIT")
        pg_db = f"syncd_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{pg_db}"'))
        url = sa.make_url(args.database_url).set(database=pg_db).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{directory / 'syncd.db'}"
    try:
        say(f"inserting {args.links} links …")
        insert_s = bulk_insert(url, args.links)
        size = (directory / "syncd.db").stat().st_size / 2**20 if not args.database_url else float("nan")
        say("probing lookups in a fresh process …")
        out = subprocess.run([sys.executable, "-c", PROBE, url, str(args.links), str(args.lookups)],
                             check=True, capture_output=True, text=True, env=os.environ)
        probe = json.loads(out.stdout.strip().splitlines()[-1])
        daemon_mb = float("nan")
        if not args.skip_daemon:
            say("starting the daemon on it …")
            daemon_mb = daemon_peak(url, directory)
    finally:
        if admin is not None:
            import sqlalchemy as sa
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(directory, ignore_errors=True)

    backend = "postgres" if args.database_url else "sqlite"
    say("")
    say(f"links_scale: {probe['count']} links on {backend}"
        + (f" ({size:.0f} MiB file)" if size == size else "") + f", inserted in {insert_s:.1f} s")
    for name in ("by_ticket", "by_issue"):
        r = probe[name]
        say(f"  lookup {name.replace('_', ' '):10}: mean {r['mean_ms']:.3f} ms, p50 {r['p50_ms']:.3f} ms, "
            f"p99 {r['p99_ms']:.3f} ms ({args.lookups} lookups)")
    say(f"  count(*) of links:        {probe['count_s'] * 1000:.0f} ms")
    say(f"  peak RSS, store + lookups: {probe['peak_rss_mb']:.0f} MB")
    ok = probe["peak_rss_mb"] <= GOAL_MB
    if daemon_mb == daemon_mb:
        say(f"  peak RSS, syncd run:       {daemon_mb:.0f} MB (after start-up and 5 escalations)")
        ok = ok and daemon_mb <= GOAL_MB
    say(f"goal <= {GOAL_MB:.0f} MB: {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
