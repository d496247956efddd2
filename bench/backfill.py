"""``syncd backfill`` over many tickets (issue 15, part 2): calls, pacing and wall time.

1. Builds a simulated installation (bench: no daemon), with ``--latency`` per vendor
   request, and creates ``--tickets`` Zendesk tickets straight in the simulator, one in
   ``--every`` tagged ``jira_escalate``, all stamped an hour ago (before "installation").
2. Runs ``syncd backfill --since <yesterday> --json`` (the real command, through the CLI):
   wall time, export pages, other vendor calls, items found and queued.
3. Runs it again: everything still queued is "queued" again (nothing doubled: one queue
   row per item), calls the same.

The export is paced at 4 requests a minute (syncd/backfill.py): ``--tickets`` above
1,000 (one page) costs about 15 s per further page. Goal: calls = ceil(tickets / 1000)
export pages and nothing else; wall time within 1.1x of the pacing minimum plus latency.

    .venv/bin/python bench/backfill.py                    # 5,000 tickets, 500 tagged (~1.5 min)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import say  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tickets", type=int, default=5000)
    ap.add_argument("--every", type=int, default=10, help="one ticket in EVERY is tagged for escalation")
    ap.add_argument("--latency", type=float, default=0.05, help="simulated seconds per vendor request")
    args = ap.parse_args()

    from click.testing import CliRunner

    from syncd.backfill import EXPORT_PER_MINUTE
    from syncd.cli import main as cli
    from syncd.sandbox import build_world
    from syncd.store import Store

    folder = Path(tempfile.mkdtemp(prefix="syncd-bench-backfill-"))
    world = build_world(folder / "world", zendesk_poll=3600, jira_poll=3600, intercom_poll=3600)
    try:
        z = world.zendesk
        z.knobs.webhooks.drop = 1.0
        z.clock.advance(-3600)
        started = time.monotonic()
        tagged = 0
        for n in range(args.tickets):
            escalate = n % args.every == 0
            tagged += escalate
            z.create_ticket(f"ticket {n}", "body", tags=["jira_escalate"] if escalate else [])
        z.clock.advance(3600)
        say(f"backfill: {args.tickets} tickets ({tagged} tagged) made in {time.monotonic() - started:.1f} s; "
            f"{args.latency * 1000:.0f} ms latency a request")
        for sim in (world.zendesk, world.jira, world.intercom):
            sim.knobs.latency = (args.latency, args.latency)
        env = world.env
        config = str(world.config_path)
        upgraded = CliRunner(env=env).invoke(cli, ["db", "upgrade", "--config", config])
        assert upgraded.exit_code == 0, upgraded.output
        since = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
        pages = math.ceil(args.tickets / 1000)
        minimum = (pages - 1) * 60.0 / EXPORT_PER_MINUTE + pages * args.latency
        ok = True
        for run in (1, 2):
            before = z.counts()
            t0 = time.monotonic()
            result = CliRunner(env=env).invoke(cli, ["backfill", "--since", since, "--desk", "zendesk", "--json",
                                                     "--config", config])
            wall = time.monotonic() - t0
            assert result.exit_code == 0, result.output
            report = json.loads(result.stdout)
            calls = z.counts() - before
            export = calls.get("IncrementalTicketExportCursor", 0)
            other = {k: v for k, v in calls.items() if k != "IncrementalTicketExportCursor"}
            store = Store.open(world.settings().core.database_url)
            depth = store.queue_depth()
            store.close()
            say(f"run {run}: {wall:.1f} s (pacing minimum {minimum:.1f} s), {report['read']} read, "
                f"{report['found']} found, {report['queued']} queued, {report['already_linked']} already linked; "
                f"export pages {export}, other Zendesk calls {dict(other)}; queue depth {depth}")
            ok &= export == pages and report["found"] == tagged and depth == tagged and wall <= 1.1 * minimum + 5
        say("goal met" if ok else "GOAL NOT MET")
        return 0 if ok else 1
    finally:
        world.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
