"""Vendor calls per escalation (issue 16: <= 3 Zendesk + 3 Jira calls).

Agents escalate N Zendesk tickets (the ``jira_escalate`` tag, set when the
ticket is created), with webhooks and pollers on at the default intervals as
``syncd run`` runs them and 50 ms simulated latency a request. Everything the
simulators receive from the first ticket until the daemon is quiet *and*
every poller has polled once more (the polls that find the escalation's own
writes are part of its cost) is divided by N, per vendor and operation.

    .venv/bin/python bench/escalation.py              # ~1.5 min, 20 escalations
    .venv/bin/python bench/escalation.py --tickets 50
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import (ZendeskDesk, catch_up, default_poll_intervals, say, settle,  # noqa: E402
                         vendor_calls, wait_for_polls, warm_up)

from syncd.runtime import App  # noqa: E402
from syncd.sandbox import build_world  # noqa: E402

GOAL_PER_SIDE = 3.0


def per_vendor(calls: Counter[str], vendor: str, n: int) -> tuple[float, str]:
    mine = Counter({op.split(".", 1)[1]: c for op, c in calls.items() if op.startswith(vendor + ".")})
    detail = ", ".join(f"{op} {c / n:.2f}" for op, c in mine.most_common())
    return sum(mine.values()) / n, detail


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=20)
    ap.add_argument("--latency", type=float, default=0.05, help="simulated seconds per vendor request")
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    ap.add_argument("--cold", action="store_true",
                    help="count a fresh install's first escalations (no warm-up: see propagation.warm_up)")
    args = ap.parse_args(argv)

    from syncd.logs import configure_logging
    configure_logging("error", "console")
    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-escalation-"))
    zendesk_poll, jira_poll, intercom_poll = default_poll_intervals()
    world = build_world(directory, database_url=args.database_url, zendesk_poll=zendesk_poll,
                        jira_poll=jira_poll, intercom_poll=intercom_poll, log_level="error")
    world.zendesk.configure({"ticket_update_limit": None})
    app = App.build(world.settings())
    app.start()
    sims = [world.zendesk, world.jira, world.intercom]
    try:
        if not args.cold:
            warm_up(app, world)
        catch_up(app)
        for sim in sims:
            sim.clear_records()
            sim.knobs.latency = (args.latency, args.latency)
        say(f"escalation: {args.tickets} tickets tagged jira_escalate …")
        ZendeskDesk(world).create_pairs(app, args.tickets)
        settle(app, quiet=1.0)
        longest = max(p.source.interval for p in app.pollers)
        say(f"escalation: escalated; waiting for a poll of every source (up to {2 * longest + 10:.0f}s) …")
        if not wait_for_polls(app, timeout=2 * longest + 10):
            say("escalation: WARNING: not every poller polled after the escalations")
        settle(app, quiet=1.0)
        calls = vendor_calls(sims)
    finally:
        app.stop()
        world.stop()
        shutil.rmtree(directory, ignore_errors=True)
    # The sim's own CreateTicket (the agent's action, made in-process) is not a request.
    every = calls.reads + calls.writes
    n = args.tickets
    say("")
    say(f"escalation: {n} tickets, {args.latency * 1000:.0f} ms latency, polls every "
        f"{zendesk_poll:.0f}/{jira_poll:.0f}s (Zendesk/Jira), their cost included, "
        f"{'a fresh install (--cold)' if args.cold else 'after a warm-up'}")
    ok = True
    for vendor in ("zendesk", "jira"):
        per, detail = per_vendor(every, vendor, n)
        met = per <= GOAL_PER_SIDE
        ok = ok and met
        say(f"  {vendor:8} {per:6.2f} calls per escalation  goal <= {GOAL_PER_SIDE:g}: "
            f"{'MET' if met else 'NOT MET'}  ({detail})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
