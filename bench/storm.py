"""A 429 storm (issue 12, finding 3): for ``--seconds`` both Zendesk and Jira answer
every API call 429 with ``Retry-After: --retry-after`` while changes keep coming
(customer replies and engineer comments on ``--links`` escalated pairs, one every
``--every`` seconds). Printed per vendor: requests during the storm, 429s, requests
that reached the vendor before the time an earlier 429 had named (arrived more than
150 ms after that 429 was answered -- earlier ones were already on the wire); and
the seconds from the storm's end until every change had landed exactly once.

    .venv/bin/python bench/storm.py                     # 30 s storm, Retry-After 2, budget 120/min
    .venv/bin/python bench/storm.py --rpm 600 --seconds 10
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import say  # noqa: E402

from syncd.testing import wait_for  # noqa: E402
from syncd.runtime import App  # noqa: E402
from syncd.sim.core import Fault, Recorded, SimServer  # noqa: E402
from syncd.sandbox import World, build_world  # noqa: E402

IN_FLIGHT = 0.15


def _arrival(r: Recorded) -> float:
    return r.at - r.latency_ms / 1000.0


def figures(sim: SimServer, since: float, until: float, retry_after: float) -> tuple[int, int, int]:
    records = sorted((r for r in sim.records() if not r.operation.startswith("_sim") and since <= r.at),
                     key=_arrival)
    limits = [(r.at, r.at + retry_after) for r in records if r.status == 429]
    early = sum(1 for r in records if any(a + IN_FLIGHT < _arrival(r) < allowed - 0.02 for a, allowed in limits))
    return len([r for r in records if r.at <= until + retry_after]), len(limits), early


def _key(world: World, ticket: int) -> str | None:
    with world.zendesk.lock:
        value = world.zendesk.tickets[ticket].custom.get(world.field_id(9001))
    return value if isinstance(value, str) and value else None


def _count(world: World, where: str, ticket: int, key: str, text: str) -> int:
    if where == "jira":
        with world.jira.lock:
            return sum(1 for c in world.jira.issue(key).comments if text in str(c.body))
    with world.zendesk.lock:
        return sum(1 for c in world.zendesk.tickets[ticket].comments if text in str(c.get("body", "")))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--retry-after", type=float, default=2.0)
    ap.add_argument("--links", type=int, default=4)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--rpm", type=int, default=120, help="each vendor's budget")
    ap.add_argument("--lease", type=int, default=30)
    args = ap.parse_args(argv)
    from syncd.logs import configure_logging
    configure_logging("error", "console")

    directory = Path(tempfile.mkdtemp(prefix="syncd-storm-"))
    world = build_world(directory, zendesk_poll=3600, jira_poll=3600, intercom_poll=3600, log_level="error")
    text = re.sub(r"(?m)^requests_per_minute = \d+$", f"requests_per_minute = {args.rpm}", world.config_path.read_text())
    world.config_path.write_text(re.sub(r"lease_seconds = \d+", f"lease_seconds = {args.lease}", text))
    app = App.build(world.settings())
    app.start()
    try:
        tickets = []
        for n in range(args.links):
            t = world.zendesk.create_ticket(f"Storm {n}", "It fails.")
            world.zendesk.agent_set(t, add_tags=["jira_escalate"])
            tickets.append(t)
        assert wait_for(lambda: all(_key(world, t) for t in tickets), timeout=60), "escalation failed"
        pairs = [(t, str(_key(world, t))) for t in tickets]
        assert wait_for(lambda: app.store.queue_depth() == 0, timeout=60)
        time.sleep(1.0)

        started = time.time()
        for sim in (world.zendesk, world.jira):
            sim.inject(Fault("429", retry_after=args.retry_after))
        made: list[tuple[str, int, str, str]] = []
        n = 0
        while time.time() - started < args.seconds:
            ticket, key = pairs[n % len(pairs)]
            if n % 2 == 0:
                text = f"customer storm {n}."
                world.zendesk.customer_reply(ticket, text)
                made.append(("jira", ticket, key, text))
            else:
                text = f"engineer storm {n}."
                world.jira.engineer_comment(key, text)
                made.append(("zendesk", ticket, key, text))
            n += 1
            time.sleep(args.every)
        for sim in (world.zendesk, world.jira):
            sim.clear_faults()
        over = time.time()
        landed = wait_for(lambda: all(_count(world, *m) >= 1 for m in made), timeout=600, every=0.05)
        converge = time.time() - over
        time.sleep(2.0)
        doubled = sum(1 for m in made if _count(world, *m) > 1)
        say(f"storm: {args.seconds:g} s of 429 (Retry-After {args.retry_after:g}) on every Zendesk and Jira call, "
            f"{len(made)} changes, budget {args.rpm}/min, lease {args.lease} s")
        for name, sim in (("zendesk", world.zendesk), ("jira", world.jira)):
            total, limited, early = figures(sim, started, over, args.retry_after)
            say(f"  {name}: {total} requests during the storm, {limited} answered 429, "
                f"{early} before the time a 429 had named")
        say(f"  converged {converge:.1f} s after the storm ended" if landed else "  NOT converged in 600 s")
        say(f"  changes doubled: {doubled}")
        return 0 if landed and not doubled else 1
    finally:
        app.stop()
        world.stop()


if __name__ == "__main__":
    raise SystemExit(main())
