"""Vendor calls per minute while nothing changes (issue 16: <= 4 a minute per vendor).

Links N Zendesk tickets to N Jira issues the way ``syncd link`` does and lets the
daemon sync them, then changes nothing and counts, for a few minutes, the
requests each simulator receives with webhooks and pollers on at a 30 s poll
interval (the default of ``syncd run``): per minute and by operation.

    .venv/bin/python bench/idle.py                      # ~3 min: 200 links, 2 min counted
    .venv/bin/python bench/idle.py --links 1000 --minutes 3
    .venv/bin/python bench/idle.py --links 1000 --ago 0 --minutes 8   # after a burst

Idle means the links last changed ``--ago`` minutes before counting starts
(default 10): the simulators' clocks are set that far back while the links are
made, so the set-up's changes (and syncd's echoes of them) lie where a quiet
spell that long would leave them. ``--ago 0`` counts right after the links were
made, i.e. after a burst of changes to every linked item; a per-minute series
then shows how long the burst still costs (the Jira poll's look-back window
lists every issue changed in the two minutes before the quiet, 100 a request).
Before counting, every poller polls once and the daemon carries out what it found.

The figure is *measured*, at the size given. An idle poll's cost does not grow
with the number of links (one Zendesk export page holds 1,000 tickets, and an
empty Jira or Intercom search is one request), so the default 200 links give
the 1,000-link figure; ``--links 1000`` measures it (set-up ~3 min more).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import catch_up, say, settle  # noqa: E402

from syncd.domain import ItemRef  # noqa: E402
from syncd.runtime import App  # noqa: E402
from syncd.sandbox import build_world  # noqa: E402
from syncd.sim.core import SimServer  # noqa: E402

GOAL_PER_MINUTE = 4.0
POLL_INTERVAL = 30.0


def link_many(app: App, world, n: int) -> None:  # type: ignore[no-untyped-def]
    """Tickets and issues made by people, linked one to one by ``syncd link``."""
    z, j = world.zendesk, world.jira

    def one(i: int) -> ItemRef:
        ticket = z.create_ticket(f"Idle ticket {i}", f"Something broke ({i}).")
        key = j.engineer_create("SUP", f"Idle issue {i}")
        ref = ItemRef("zendesk", str(ticket))
        app.engine.link(ref, key)
        return ref

    with ThreadPoolExecutor(max_workers=4) as pool:
        refs = list(pool.map(one, range(n)))
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


def per_minute(sims: Sequence[SimServer], start: float, end: float) -> dict[str, list[int]]:
    slots = max(1, int((end - start) // 60))
    out: dict[str, list[int]] = {}
    for sim in sims:
        series = [0] * slots
        for r in sim.records():
            if not r.operation.startswith("_sim") and start <= r.at < start + 60 * slots:
                series[int((r.at - start) // 60)] += 1
        out[sim.vendor] = series
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--links", type=int, default=200, help="linked pairs (default 200)")
    ap.add_argument("--minutes", type=float, default=2.0, help="idle minutes counted (default 2)")
    ap.add_argument("--ago", type=float, default=10.0,
                    help="minutes since the links last changed when counting starts (default 10; 0: just now)")
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
        ago = args.ago * 60
        say(f"idle: linking {args.links} ticket/issue pairs (vendor clocks {args.ago:g} min back) …")
        t0 = time.monotonic()
        for sim in sims:
            sim.clock.advance(-ago)
        try:
            link_many(app, world, args.links)
        finally:
            for sim in sims:
                sim.clock.advance(ago)
        catch_up(app)
        say(f"idle: linked and synced in {time.monotonic() - t0:.0f}s")
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
        f"counted {minutes:.1f} min; queue at the end: {queued}")
    ok = True
    for vendor, ops in counts.items():
        total = sum(ops.values())
        per = total / minutes
        met = per <= GOAL_PER_MINUTE
        ok = ok and met
        detail = ", ".join(f"{op} {n / minutes:.1f}" for op, n in ops.most_common()) or "none"
        say(f"  {vendor:9} {per:7.1f} calls/min  goal <= {GOAL_PER_MINUTE:g}: {'MET' if met else 'NOT MET'}  ({detail})")
    if minutes >= 2:
        say("calls in each minute:")
        for vendor, series in per_minute(sims, start, end).items():
            say(f"  {vendor:9} " + " ".join(f"{n:4}" for n in series))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
