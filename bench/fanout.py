"""Vendor calls when one Jira issue linked to many tickets changes (issue 16: resolving
an issue linked to 20 tickets <= 25 Zendesk calls and <= 2 Jira calls).

Links N Zendesk tickets to one Jira issue the way ``syncd link`` does, then an
engineer moves the issue along its workflow (In Progress, Done, To Do, …
one move per round; Done resolves it) and
the bench waits until every ticket shows the new Jira status. Webhooks and
pollers are on at the default intervals; after the last round the bench waits
until every poller has polled once more (what the polls find of the rounds'
own writes is their cost too). Calls per round, per vendor and operation.

    .venv/bin/python bench/fanout.py                  # ~1.5 min, 20 tickets, 3 rounds
    .venv/bin/python bench/fanout.py --spaced         # ~4 min: every poller looks between moves
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
from escalation import per_vendor  # noqa: E402
from propagation import (catch_up, default_poll_intervals, say, settle, vendor_calls, warm_up,  # noqa: E402
                         wait_for_polls, wait_until)

from syncd.domain import ItemRef  # noqa: E402
from syncd.errors import RateLimited  # noqa: E402
from syncd.runtime import App  # noqa: E402
from syncd.sandbox import build_world  # noqa: E402
from syncd.sim.core import SimServer  # noqa: E402

GOAL_ZENDESK = 25.0
GOAL_JIRA = 2.0
CYCLE = ("In Progress", "Done", "To Do")   # the simulator's workflow, from a new issue's To Do


def by_window(sims: Sequence[SimServer], marks: Sequence[tuple[str, float]]) -> list[tuple[str, Counter[str]]]:
    """Requests per operation between consecutive marks (the last runs to now)."""
    out = []
    for i, (label, start) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else time.time() + 1
        ops: Counter[str] = Counter()
        for sim in sims:
            ops.update(f"{sim.vendor}.{r.operation}" for r in sim.records()
                       if not r.operation.startswith("_sim") and start <= r.at < end)
        out.append((label, ops))
    return out


def link(app: App, ref: ItemRef, key: str) -> None:
    """``syncd link``, waiting out Jira's per-issue write limit (every link writes a
    remote link to the same issue, and the set-up makes them back to back)."""
    for _ in range(10):
        try:
            app.engine.link(ref, key)
            return
        except RateLimited as e:
            time.sleep(e.retry_after)
    raise SystemExit(f"setup failed: could not link {ref} to {key}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.05, help="simulated seconds per vendor request")
    ap.add_argument("--spaced", action="store_true",
                    help="a poll of every source between moves (as when moves are minutes apart); "
                         "default: back to back")
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    ap.add_argument("--cold", action="store_true",
                    help="a fresh install (no warm-up: see propagation.warm_up)")
    args = ap.parse_args(argv)

    from syncd.logs import configure_logging
    configure_logging("error", "console")
    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-fanout-"))
    zendesk_poll, jira_poll, intercom_poll = default_poll_intervals()
    world = build_world(directory, database_url=args.database_url, zendesk_poll=zendesk_poll,
                        jira_poll=jira_poll, intercom_poll=intercom_poll, log_level="error")
    world.zendesk.configure({"ticket_update_limit": None})
    z, j = world.zendesk, world.jira
    status_field = world.field_id(9002)
    app = App.build(world.settings())
    app.start()
    sims = [z, j, world.intercom]
    try:
        if not args.cold:
            warm_up(app, world)
        say(f"fan-out: linking {args.tickets} tickets to one issue …")
        key = j.engineer_create("SUP", "Payments fail for every EU customer")
        tickets = [z.create_ticket(f"Payment failed ({i})", "Card declined.") for i in range(args.tickets)]
        refs = [ItemRef("zendesk", str(t)) for t in tickets]
        for ref in refs:
            link(app, ref, key)
        app.store.mark_dirty(refs, "bench_link")
        app.workers.wake.set()
        settle(app, quiet=1.0)
        # Zendesk's export holds back the last minute: it never shows a ticket within the
        # second of its last write, which is when a view proves nothing (poll_stamps). The
        # simulator shows it at once, so the set-up's poll waits for that second to end.
        time.sleep(2.1)
        catch_up(app)
        if args.spaced:
            # Linked minutes before the first move, too: the pollers have looked since.
            wait_for_polls(app, timeout=2 * max(p.source.interval for p in app.pollers) + 10)
            settle(app, quiet=1.0)
        for sim in sims:
            sim.clear_records()
            sim.knobs.latency = (args.latency, args.latency)

        def shown(status: str) -> bool:
            with z.lock:
                return all(z.tickets[t].custom.get(status_field) == status for t in tickets)

        marks: list[tuple[str, float]] = []
        for n in range(args.rounds):
            target = CYCLE[n % len(CYCLE)]
            marks.append((target, time.time()))
            j.engineer_transition(key, target)
            if not wait_until(lambda: shown(target), timeout=60):
                raise SystemExit(f"round {n + 1}: not every ticket showed {target!r} within 60 s")
            settle(app, quiet=1.0)
            say(f"  round {n + 1}: {target} shown on all {args.tickets} tickets")
            if args.spaced and n + 1 < args.rounds:
                # An issue's moves are minutes to days apart: every poller looks in between.
                if not wait_for_polls(app, timeout=2 * max(p.source.interval for p in app.pollers) + 10):
                    say("fan-out: WARNING: not every poller polled between the moves")
                settle(app, quiet=1.0)
        marks.append(("polls after the last move", time.time()))
        longest = max(p.source.interval for p in app.pollers)
        say(f"fan-out: waiting for a poll of every source (up to {2 * longest + 10:.0f}s) …")
        if not wait_for_polls(app, timeout=2 * longest + 10):
            say("fan-out: WARNING: not every poller polled after the rounds")
        settle(app, quiet=1.0)
        calls = vendor_calls(sims)
        windows = by_window(sims, marks)
    finally:
        app.stop()
        world.stop()
        shutil.rmtree(directory, ignore_errors=True)
    every = calls.reads + calls.writes
    say("")
    say(f"fan-out: one issue linked to {args.tickets} tickets, {args.rounds} status moves "
        f"({'a poll between moves' if args.spaced else 'back to back'}), "
        f"{args.latency * 1000:.0f} ms latency, polls included, "
        f"{'a fresh install (--cold)' if args.cold else 'after a warm-up'}")
    ok = True
    for vendor, goal in (("zendesk", GOAL_ZENDESK), ("jira", GOAL_JIRA)):
        per, detail = per_vendor(every, vendor, args.rounds)
        met = per <= goal
        ok = ok and met
        say(f"  {vendor:8} {per:6.1f} calls per move  goal <= {goal:g}: {'MET' if met else 'NOT MET'}  ({detail})")
    say("each move until the next (the last: the polls that followed):")
    for label, ops in windows:
        say(f"  {label:26} " + ", ".join(f"{op} {c}" for op, c in ops.most_common()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
