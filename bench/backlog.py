"""Backlog drain under a Zendesk request budget (issue 5, points 4 and 7).

An outage left ``--items`` linked tickets each with one customer reply not yet
mirrored; all are marked dirty at once. The daemon (in this process, with the
simulators) drains them under a ``--rpm`` requests-per-minute Zendesk budget
while the Zendesk simulator enforces the same number as the account's limit.
Printed: the drain time against the theoretical minimum (Zendesk calls made /
budget, and 2 reads per item / budget), and the 429s the daemon caused itself.

    .venv/bin/python bench/backlog.py                           # 1,000 items, 6,000 req/min (scaled down, ~40 s)
    .venv/bin/python bench/backlog.py --items 10000 --rpm 700   # the issue's figure: about an hour

Setup (tickets, issues, links through the store) happens before the daemon
starts, with webhooks dropped, so only the drain is measured.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import say, vendor_calls, wait_until  # noqa: E402

from syncd.domain import ItemRef  # noqa: E402
from syncd.runtime import App  # noqa: E402
from syncd.sim.world import World, build_world  # noqa: E402
from syncd.store import Store  # noqa: E402

GOAL_RATIO = 1.1


def set_budget(world: World, section: str, rpm: int) -> None:
    text = world.config_path.read_text()
    head, body, tail = re.split(rf"(?m)^(\[{section}\]\n(?:(?!^\[).*\n)*)", text, maxsplit=1)
    body = re.sub(r"(?m)^requests_per_minute = \d+$", f"requests_per_minute = {rpm}", body)
    world.config_path.write_text(head + body + tail)


def seed(world: World, store: Store, items: int) -> list[tuple[int, int]]:
    """Linked, in-sync pairs (key field, linked tag, matching priority and status
    shown), then one customer reply on each ticket after its link: the backlog."""
    z, j = world.zendesk, world.jira
    key_field, status_field = world.field_id(9001), world.field_id(9002)
    pairs = []
    for i in range(items):
        key = j.engineer_create("SUP", f"Backlog issue {i}")
        with j.lock:
            issue_id = next(rec.id for rec in reversed(list(j.issues.values())) if rec.key == key)
        ticket = z.create_ticket(f"Backlog ticket {i}", "It broke.", tags=["jira_linked"], priority="normal",
                                 custom_fields={key_field: key, status_field: "To Do"})
        store.add_link(ItemRef("zendesk", str(ticket)), str(issue_id), key)
        pairs.append((ticket, issue_id))
        if (i + 1) % 1000 == 0:
            say(f"  seeded {i + 1} pairs")
    for ticket, _ in pairs:
        z.customer_reply(ticket, f"Any news on ticket {ticket}? (backlog)")
    return pairs


def mirrored(world: World, pairs: Sequence[tuple[int, int]]) -> int:
    j = world.jira
    with j.lock:
        return sum(1 for _, issue_id in pairs if any("(backlog)" in str(c.body) for c in j.issues[issue_id].comments))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--rpm", type=int, default=6000, help="Zendesk budget and simulated account limit")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=150.0, help="give up on the drain after this many seconds")
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args(argv)

    from syncd.logs import configure_logging
    configure_logging("error", "console")
    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-backlog-"))
    world = build_world(directory, database_url=args.database_url, workers=args.workers,
                        zendesk_poll=3600, jira_poll=3600, intercom_poll=3600, log_level="error")
    world.zendesk.configure({"ticket_update_limit": None})
    set_budget(world, "zendesk", args.rpm)
    # Jira's budget is not what is measured here: generous, so Zendesk's alone binds.
    set_budget(world, "jira", 100 * args.rpm)
    app: App | None = None
    try:
        for sim in (world.zendesk, world.jira):
            sim.knobs.webhooks.drop = 1.0     # the daemon is "down": nothing arrives during the seeding
        store = Store.open(args.database_url or f"sqlite:///{directory / 'syncd.db'}")
        store.upgrade()
        say(f"seeding {args.items} linked pairs …")
        pairs = seed(world, store, args.items)
        for sim in (world.zendesk, world.jira):
            sim.knobs.webhooks.drop = 0.0
            sim.clear_records()
        # The account limit equals the budget; the window starts empty (no other integration).
        world.zendesk.knobs.rate_limit = args.rpm
        world.zendesk._window.clear()
        app = App.build(world.settings())
        store.mark_dirty([ItemRef("zendesk", str(t)) for t, _ in pairs], "bench_backlog")
        started = time.monotonic()
        app.start()
        app.workers.wake.set()
        last = started

        def drained() -> bool:
            nonlocal last
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                say(f"  {last - started:5.0f}s  queue {store.queue_depth()}, mirrored {mirrored(world, pairs)}")
            return store.queue_depth() == 0 and mirrored(world, pairs) == len(pairs)

        ok = wait_until(drained, timeout=args.timeout, every=0.1)
        seconds = time.monotonic() - started
        calls = vendor_calls([world.zendesk])
        zd_calls = calls.total
        too_many = sum(1 for r in world.zendesk.records() if r.status == 429)
        done = mirrored(world, pairs)
        store.close()
    finally:
        if app is not None:
            app.stop()
        world.stop()
        shutil.rmtree(directory, ignore_errors=True)

    per_second = args.rpm / 60.0
    minimum_made = zd_calls / per_second
    minimum_reads = 2 * args.items / per_second
    say("")
    say(f"backlog: {args.items} dirty tickets, Zendesk budget = account limit = {args.rpm} req/min, "
        f"{args.workers} workers")
    say(f"  drained:                 {'yes' if ok else 'NO (timed out)'} — {done}/{len(pairs)} replies mirrored")
    say(f"  drain time:              {seconds:.1f} s")
    say(f"  Zendesk calls made:      {zd_calls} ({zd_calls / args.items:.2f} per item): "
        + ", ".join(f"{op.split('.', 1)[1]} {n}" for op, n in (calls.reads + calls.writes).most_common()))
    say(f"  minimum for those calls: {minimum_made:.1f} s  → drain / minimum = {seconds / minimum_made:.2f} "
        f"(goal <= {GOAL_RATIO}: {'MET' if ok and seconds / minimum_made <= GOAL_RATIO else 'NOT MET'})")
    say(f"  minimum at 2 reads/item: {minimum_reads:.1f} s  → drain / minimum = {seconds / minimum_reads:.2f}")
    say(f"  self-caused 429s:        {too_many} (goal 0: {'MET' if too_many == 0 else 'NOT MET'})")
    return 0 if ok and too_many == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
