"""Vendor calls per minute while nothing changes (issue 16: <= 4 a minute per vendor).

Links N Zendesk tickets to N Jira issues (1,000 by default) the way ``syncd link``
does, waits until the daemon has synced them, then changes nothing for a while
with webhooks and pollers on at a 30 s poll interval (the default of
``syncd run``) and counts the requests each simulator receives, per minute and
by operation.

    .venv/bin/python bench/idle.py                      # ~3 min: 1,000 links, 1 min idle after 1 min quiet
    .venv/bin/python bench/idle.py --settle 5 --minutes 5

The figure is *measured* at the full size, over a short window. What it measures
depends on how long ago the links last changed: the Jira poll looks back
``poll_overlap_seconds`` (120 s) from the newest ``updated`` it has seen, and
JQL dates have minute resolution, so for a few minutes after a burst of changes
the poll's window still holds those issues. ``--settle`` is how many minutes the
bench waits after the set-up before it starts counting (default 1); the figure
printed is for that age. Longer ``--settle`` shows the steady state.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import say, settle  # noqa: E402

from syncd.domain import ItemRef  # noqa: E402
from syncd.runtime import App  # noqa: E402
from syncd.sandbox import build_world  # noqa: E402
from syncd.sim.core import SimServer  # noqa: E402

GOAL_PER_MINUTE = 4.0
POLL_INTERVAL = 30.0


def link_many(app: App, world, n: int) -> None:  # type: ignore[no-untyped-def]
    """Tickets and issues made by people, linked one to one by ``syncd link``."""
    z, j = world.zendesk, world.jira
    refs = []
    for i in range(n):
        ticket = z.create_ticket(f"Idle ticket {i}", f"Something broke ({i}).")
        key = j.engineer_create("SUP", f"Idle issue {i}")
        ref = ItemRef("zendesk", str(ticket))
        app.engine.link(ref, key)
        refs.append(ref)
        if (i + 1) % 200 == 0:
            say(f"  linked {i + 1}/{n}")
    app.store.mark_dirty(refs, "bench_link")
    app.workers.wake.set()
    if not settle(app, quiet=2.0, timeout=120 + n / 5):
        raise SystemExit("setup failed: the links did not sync within the time")


def window_counts(sims: Sequence[SimServer], start: float, end: float) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for sim in sims:
        out[sim.vendor] = Counter(r.operation for r in sim.records()
                                  if not r.operation.startswith("_sim") and start <= r.at < end)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--links", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=1.0, help="idle minutes counted (default 1)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="minutes after the set-up before counting starts (default 1)")
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = ap.parse_args(argv)

    from syncd.logs import configure_logging
    configure_logging("error", "console")
    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-idle-"))
    world = build_world(directory, database_url=args.database_url, zendesk_poll=POLL_INTERVAL,
                        jira_poll=POLL_INTERVAL, intercom_poll=POLL_INTERVAL, log_level="error")
    app = App.build(world.settings())
    app.start()
    sims = [world.zendesk, world.jira, world.intercom]
    try:
        say(f"idle: linking {args.links} ticket/issue pairs …")
        t0 = time.monotonic()
        link_many(app, world, args.links)
        say(f"idle: linked and synced in {time.monotonic() - t0:.0f}s; quiet for {args.settle:g} min …")
        time.sleep(args.settle * 60)
        start = time.time()
        say(f"idle: counting for {args.minutes:g} min …")
        time.sleep(args.minutes * 60)
        end = time.time()
        queued = app.store.queue_depth()
    finally:
        app.stop()
        world.stop()
        shutil.rmtree(directory, ignore_errors=True)
    counts = window_counts(sims, start, end)
    minutes = (end - start) / 60
    say("")
    say(f"idle: {args.links} links, nothing changed, polls every {POLL_INTERVAL:.0f}s, "
        f"counted {minutes:.1f} min starting {args.settle:g} min after the set-up; queue at the end: {queued}")
    ok = True
    for vendor, ops in counts.items():
        total = sum(ops.values())
        per = total / minutes
        met = per <= GOAL_PER_MINUTE
        ok = ok and met
        detail = ", ".join(f"{op} {n / minutes:.1f}" for op, n in ops.most_common()) or "none"
        say(f"  {vendor:9} {per:7.1f} calls/min  goal <= {GOAL_PER_MINUTE:g}: {'MET' if met else 'NOT MET'}  ({detail})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
