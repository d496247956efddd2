"""Backlog drain under a Zendesk request budget (issue 5, points 4 and 7).

An outage left ``--items`` linked tickets each with one customer reply not yet
mirrored; all are marked dirty at once. The daemon (in this process, with the
simulators) drains them under a ``--rpm`` requests-per-minute Zendesk budget
while the Zendesk simulator enforces the same number as the account's limit
(a sliding 60 s window). Printed: the drain time against the theoretical
minimum, and the 429s the daemon caused itself.

The minimum is the time the budgets allow for the calls: for each vendor,
calls / (budget per second), and the larger of the two binds. Two floors:
the calls the daemon made during the drain (answered, not 429), and the calls
each item needs at least on Zendesk: the ticket and its comments, 2 reads.
Jira's budget is ``--jira-rpm`` (default 100 × ``--rpm``, so that Zendesk's is
the one measured); the Jira floor is printed either way.

    .venv/bin/python bench/backlog.py                                          # 1,000 items, 6,000 req/min
    .venv/bin/python bench/backlog.py --items 10000 --rpm 700 --timeout 5400   # the issue's figure: ~30 min

Setup (tickets, issues, links through the store) happens before the daemon
starts, with webhooks dropped, so only the drain is measured (from
``App.start``; the start-up calls of ``App.build`` are not counted).
"""

from __future__ import annotations

import argparse
import os
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
from syncd.sandbox import World, build_world  # noqa: E402
from syncd.store import Store  # noqa: E402

GOAL_RATIO = 1.1


def set_budget(world: World, section: str, rpm: int) -> None:
    text = world.config_path.read_text()
    head, body, tail = re.split(rf"(?m)^(\[{section}\]\n(?:(?!^\[).*\n)*)", text, maxsplit=1)
    body = re.sub(r"(?m)^requests_per_minute = \d+$", f"requests_per_minute = {rpm}", body)
    world.config_path.write_text(head + body + tail)


def seed(world: World, store: Store, items: int, distinct_requesters: bool = False) -> list[tuple[int, int]]:
    """Linked, in-sync pairs (key field, linked tag, matching priority and status
    shown on both sides, the ticket's first comment older than the link: already
    history), then one customer reply on each ticket after its link: the backlog."""
    z, j = world.zendesk, world.jira
    key_field, status_field = world.field_id(9001), world.field_id(9002)
    made = []
    for i in range(items):
        key = j.engineer_create("SUP", f"Backlog issue {i}", customfield_10055="new")   # desk status shown
        with j.lock:
            issue_id = next(rec.id for rec in reversed(list(j.issues.values())) if rec.key == key)
        requester = {"requester_email": f"customer{i}@example.com"} if distinct_requesters else {}
        ticket = z.create_ticket(f"Backlog ticket {i}", "It broke.", tags=["jira_linked"], priority="normal",
                                 custom_fields={key_field: key, status_field: "To Do"}, **requester)
        made.append((ticket, issue_id, key))
        if (i + 1) % 1000 == 0:
            say(f"  seeded {i + 1} pairs")
    # Links are made more than a second (the history rule's slack) after the first comments.
    time.sleep(2.5)
    pairs = []
    for ticket, issue_id, key in made:
        store.add_link(ItemRef("zendesk", str(ticket)), str(issue_id), key)
        pairs.append((ticket, issue_id))
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
    ap.add_argument("--jira-rpm", type=int, default=None,
                    help="Jira budget (default 100 × --rpm: not binding; syncd's default is 300)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=150.0, help="give up on the drain after this many seconds")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--distinct-requesters", action="store_true",
                    help="a different customer on every ticket (default: one customer wrote them all)")
    args = ap.parse_args(argv)

    from syncd.logs import configure_logging
    configure_logging("error", "console")
    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-backlog-"))
    world = build_world(directory, database_url=args.database_url, workers=args.workers,
                        zendesk_poll=3600, jira_poll=3600, intercom_poll=3600, log_level="error")
    world.zendesk.configure({"ticket_update_limit": None})
    set_budget(world, "zendesk", args.rpm)
    # Jira's budget is not what is measured here: by default generous, so Zendesk's alone binds.
    jira_rpm = args.jira_rpm or 100 * args.rpm
    set_budget(world, "jira", jira_rpm)
    app: App | None = None
    try:
        for sim in (world.zendesk, world.jira):
            sim.knobs.webhooks.drop = 1.0     # the daemon is "down": nothing arrives during the seeding
        store = Store.open(args.database_url or f"sqlite:///{directory / 'syncd.db'}")
        store.upgrade()
        say(f"seeding {args.items} linked pairs …")
        pairs = seed(world, store, args.items, args.distinct_requesters)
        for sim in (world.zendesk, world.jira):
            sim.knobs.webhooks.drop = 0.0
            sim.clear_records()
        # The account limit equals the budget; the window starts empty (no other integration).
        world.zendesk.knobs.rate_limit = args.rpm
        world.zendesk._window.clear()
        app = App.build(world.settings())
        for sim in (world.zendesk, world.jira):
            sim.clear_records()          # the start-up calls (who am I, fields) are not the drain's
        store.mark_dirty([ItemRef("zendesk", str(t)) for t, _ in pairs], "bench_backlog")
        load_before = os.getloadavg()
        say(f"draining from {time.strftime('%H:%M:%S')}, load average {load_before[0]:.2f}")
        started = time.monotonic()
        app.start()
        app.workers.wake.set()
        last = started

        def drained() -> bool:
            nonlocal last
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                records = world.zendesk.records()
                limited = sum(1 for r in records if r.status == 429)
                say(f"  {last - started:5.0f}s  queue {store.queue_depth()}, mirrored {mirrored(world, pairs)}, "
                    f"Zendesk calls {len(records) - limited} ({60 * (len(records) - limited) / (last - started):.0f}"
                    f"/min), 429 {limited}, load {os.getloadavg()[0]:.2f}")
            return store.queue_depth() == 0 and mirrored(world, pairs) == len(pairs)

        ok = wait_until(drained, timeout=args.timeout, every=0.1)
        seconds = time.monotonic() - started
        load_after = os.getloadavg()
        zd_records = [r for r in world.zendesk.records() if not r.operation.startswith("_sim")]
        jira_records = [r for r in world.jira.records() if not r.operation.startswith("_sim")]
        too_many = sum(1 for r in zd_records if r.status == 429)
        jira_too_many = sum(1 for r in jira_records if r.status == 429)
        zd_calls = len(zd_records) - too_many
        jira_calls = len(jira_records) - jira_too_many
        calls = vendor_calls([world.zendesk, world.jira])
        done = mirrored(world, pairs)
        budget_waited = app.budgets["zendesk"].waited
        store.close()
    finally:
        if app is not None:
            app.stop()
        world.stop()
        shutil.rmtree(directory, ignore_errors=True)

    zd_per_second, jira_per_second = args.rpm / 60.0, jira_rpm / 60.0
    jira_floor = jira_calls / jira_per_second
    minimum_made = max(zd_calls / zd_per_second, jira_floor)
    minimum_reads = max(2 * args.items / zd_per_second, jira_floor)
    by_op = calls.reads + calls.writes

    def ops(vendor: str) -> str:
        return ", ".join(f"{op.split('.', 1)[1]} {n}" for op, n in by_op.most_common() if op.startswith(vendor + "."))

    say("")
    say(f"backlog: {args.items} dirty tickets, Zendesk budget = account limit = {args.rpm} req/min, "
        f"Jira budget {jira_rpm} req/min, {args.workers} workers")
    say(f"  drained:                 {'yes' if ok else 'NO (timed out)'} — {done}/{len(pairs)} replies mirrored")
    say(f"  drain time:              {seconds:.1f} s (load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after)")
    say(f"  Zendesk calls answered:  {zd_calls} ({zd_calls / args.items:.3f} per item); all requests: {ops('zendesk')}")
    say(f"  Jira calls answered:     {jira_calls} ({jira_calls / args.items:.3f} per item); all requests: {ops('jira')}")
    say(f"  Zendesk budget waits:    {budget_waited:.0f} s summed over threads")
    say(f"  Jira floor at its budget: {jira_floor:.1f} s ({'binds' if jira_floor >= zd_calls / zd_per_second else 'does not bind'})")
    say(f"  minimum for the calls made:    {minimum_made:.1f} s  → drain / minimum = {seconds / minimum_made:.3f} "
        f"(goal <= {GOAL_RATIO}: {'MET' if ok and seconds / minimum_made <= GOAL_RATIO else 'NOT MET'})")
    say(f"  minimum at 2 Zendesk reads/item{' (Jira binds)' if jira_floor > 2 * args.items / zd_per_second else ''}: "
        f"{minimum_reads:.1f} s  → drain / minimum = {seconds / minimum_reads:.3f} "
        f"(goal <= {GOAL_RATIO}: {'MET' if ok and seconds / minimum_reads <= GOAL_RATIO else 'NOT MET'})")
    say(f"  self-caused 429s:        Zendesk {too_many}, Jira {jira_too_many} "
        f"(goal 0: {'MET' if too_many == 0 and jira_too_many == 0 else 'NOT MET'}; no 429s are injected)")
    return 0 if ok and too_many == 0 and jira_too_many == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
