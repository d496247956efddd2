"""Every link at once (issue 15, "Numbers"): ``syncd links import`` of 10,000 links from
Zendesk's Jira integration, and ``syncd reconcile --all --dry-run`` over 10,000 links,
each against the minimum time the account budgets allow for the calls it made.

    .venv/bin/python bench/fleet_scale.py import                  # 10,000 integration links
    .venv/bin/python bench/fleet_scale.py audit                   # 10,000 links, 100 drifts of each kind
    .venv/bin/python bench/fleet_scale.py audit --links 300 --drifts 10 --rpm 1200    # a quick look

Both simulators answer every call after ``--latency`` (50 ms), and the Zendesk
simulator enforces ``--rpm`` as the account's limit (a sliding minute), which is
also syncd's Zendesk budget; Jira's budget is ``--jira-rpm``. The command runs as
its own process (``python -m syncd ...``, as an admin runs it), so its wall time
includes starting up and its peak RSS is its own (``getrusage`` of the child).

The minimum is the time the budgets allow for the calls the command made: per
vendor, calls answered / (budget per second); the larger binds. It is printed
with the floor of the reads the command needs at least (import: the integration
pages and the tickets, 100 a call each, and per link the issue; audit: per link
the issue, the ticket and its comments).

Why these budgets (defaults): the import needs one Jira read per link and one
Zendesk read per hundred, so Jira's budget binds; Zendesk is given a real
Enterprise plan's 700 req/min and Jira 3,000 (10,000 links: ~3.5 minutes). The
audit needs two Zendesk reads per link, so Zendesk binds; at a real plan's 700
req/min 10,000 links take 29 minutes, so it runs at 3,600 (about 5.5 minutes).
The ratio to the minimum still says what it says at a real budget: whether the
command keeps the budget busy. Every cost that is not a budget wait (latency,
CPU, the database) takes the same time per call at any budget, and a smaller
budget only leaves more time between calls to hide it in; a ratio met at a high
budget is met at a lower one.

The audit seeds ``--drifts`` links of each kind of drift among links otherwise in
sync: a field changed on the ticket (to Jira), a customer reply not mirrored (a
comment missing on Jira), an engineer's comment not mirrored (missing on the
desk), an issue moved to another project (the stored key is stale). It fails
unless the report names exactly those links with exactly that drift.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backlog import set_budget  # noqa: E402
from propagation import say  # noqa: E402

from syncd.drift_seeds import DRIFT_KINDS, link_pairs, mismatches, seed_drift, seed_pairs  # noqa: E402
from syncd.sandbox import World, build_world  # noqa: E402
from syncd.store import Store  # noqa: E402

GOAL_RATIO = 1.1
GOAL_RSS_MB = 200.0
SPAWNED = 0.0   # wall-clock time the command was started
CPU: dict[str, float] = {}


def run_command(world: World, args: Sequence[str], timeout: float) -> tuple[subprocess.CompletedProcess, float, float]:
    """``python -m syncd <args>`` in its own process: the answer, the wall time, the peak RSS (MB).
    CPU seconds of the command and of this process (the simulators) go to ``CPU``."""
    started = time.monotonic()
    own_cpu = time.process_time()
    global SPAWNED
    SPAWNED = time.time()
    done = subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(world.config_path)],
                          env={**os.environ, **world.env}, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - started
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.update(command=child.ru_utime + child.ru_stime, simulators=time.process_time() - own_cpu)
    peak_kb = child.ru_maxrss
    return done, took, peak_kb / 1024.0


def answered(world: World) -> tuple[int, int, int, int]:
    """Zendesk and Jira calls answered (not 429), and the 429s of each."""
    out = []
    for sim in (world.zendesk, world.jira):
        records = [r for r in sim.records() if not r.operation.startswith("_sim")]
        limited = sum(1 for r in records if r.status == 429)
        out += [len(records) - limited, limited]
    return out[0], out[2], out[1], out[3]


def timeline(world: World) -> str:
    """When the command's first and last vendor calls were answered, from its start."""
    stamps = sorted(r.at for sim in (world.zendesk, world.jira) for r in sim.records()
                    if not r.operation.startswith("_sim"))
    if not stamps:
        return "no vendor calls"
    return (f"first vendor call answered {stamps[0] - SPAWNED:.1f} s after the start, last at "
            f"{stamps[-1] - SPAWNED:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["import", "audit"])
    ap.add_argument("--links", type=int, default=10_000)
    ap.add_argument("--drifts", type=int, default=100, help="audit: links seeded with each kind of drift")
    ap.add_argument("--rpm", type=int, default=None,
                    help="Zendesk budget and simulated account limit (default: import 700, audit 3600)")
    ap.add_argument("--jira-rpm", type=int, default=None, help="Jira budget (default: import 3000, audit --rpm)")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds each simulated call takes")
    ap.add_argument("--threads", type=int, default=16, help="the command's --threads")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args(argv)
    args.rpm = args.rpm or (700 if args.what == "import" else 3600)
    jira_rpm = args.jira_rpm or (3000 if args.what == "import" else args.rpm)

    from syncd.logs import configure_logging
    configure_logging("error", "console")
    directory = Path(tempfile.mkdtemp(prefix=f"syncd-bench-{args.what}-"))
    url = args.database_url or f"sqlite:///{directory / 'syncd.db'}"
    world = build_world(directory, database_url=url, zendesk_poll=3600, jira_poll=3600, intercom_poll=3600,
                        log_level="error")
    try:
        set_budget(world, "zendesk", args.rpm)
        set_budget(world, "jira", jira_rpm)
        for sim in (world.zendesk, world.jira):
            sim.knobs.webhooks.drop = 1.0     # no daemon listens: nothing is delivered
        store = Store.open(url)
        store.upgrade()
        say(f"seeding {args.links} pairs …")
        started = time.monotonic()
        pairs = seed_pairs(world, args.links, lambda done: done % 2000 or say(f"  seeded {done} pairs"))
        seeded: dict[str, str] = {}
        if args.what == "import":
            for p in pairs:
                world.zendesk.integration_link(p.ticket, p.issue_id, p.key)
            command = ["links", "import", "--from", "zendesk-integration", "--json", "--threads", str(args.threads)]
            # the integration's pages and show_many, 100 a call; each issue
            floor_zd, floor_jira = len(pairs) // 100 + 1 + -(-len(pairs) // 100), len(pairs)
        else:
            link_pairs(store, pairs)
            seeded = seed_drift(world, pairs, args.drifts)
            command = ["reconcile", "--all", "--dry-run", "--json", "--threads", str(args.threads)]
            floor_zd, floor_jira = 2 * len(pairs), len(pairs)
        store.close()
        say(f"  seeded in {time.monotonic() - started:.0f} s")
        for sim in (world.zendesk, world.jira):
            sim.knobs.latency = (args.latency, args.latency)
            sim.clear_records()
        world.zendesk.knobs.rate_limit = args.rpm
        world.zendesk._window.clear()
        load_before = os.getloadavg()
        say(f"running `syncd {' '.join(command)}` from {time.strftime('%H:%M:%S')}, load {load_before[0]:.2f}")
        done, wall, rss = run_command(world, command, args.timeout)
        load_after = os.getloadavg()
        zd, jira, zd_429, jira_429 = answered(world)
        calls_when = timeline(world)
    finally:
        world.stop()
        shutil.rmtree(directory, ignore_errors=True)

    ok = True
    if args.what == "import":
        report = json.loads(done.stdout) if done.returncode == 0 else None
        totals = (report or {}).get("totals") or {}
        say(f"\nimport of {args.links} Zendesk integration links: exit {done.returncode}, totals {totals}")
        ok = done.returncode == 0 and totals.get("imported") == args.links
        if not ok:
            say(done.stderr[-2000:])
    else:
        report = json.loads(done.stdout) if done.returncode in (0, 3) else None
        say(f"\nreconcile --all --dry-run over {args.links} links: exit {done.returncode}")
        if report is None:
            say(done.stderr[-2000:])
            ok = False
        else:
            missed, extra = mismatches(seeded, report)
            say(f"  seeded drifts: {len(seeded)} links ({args.drifts} of each: {', '.join(DRIFT_KINDS)}); "
                f"reported drifted: {sum(1 for i in report['drifted'] for l in i['links'] if l['drift'])} links; "
                f"errors: {len(report['errors'])}")
            say(f"  every seeded drift reported, nothing else: {'YES' if not missed and not extra else 'NO'}")
            for d, (want, got) in list(missed.items())[:10]:
                say(f"    wrong or missing: {d}: expected {sorted(want)}, reported {sorted(got or ())}")
            for d, got in list(extra.items())[:10]:
                say(f"    not seeded: {d}: {sorted(got)}")
            ok = done.returncode == 3 and not missed and not extra and not report["errors"]

    zd_rate, jira_rate = args.rpm / 60.0, jira_rpm / 60.0
    minimum = max(zd / zd_rate, jira / jira_rate)
    floor = max(floor_zd / zd_rate, floor_jira / jira_rate)
    ratio, floor_ratio = wall / minimum, wall / floor
    say(f"  wall time:        {wall:.1f} s (load average {load_before[0]:.2f} before, {load_after[0]:.2f} / "
        f"{load_after[1]:.2f} / {load_after[2]:.2f} after)")
    say(f"  {calls_when}")
    say(f"  Zendesk calls:    {zd} answered ({zd / args.links:.3f} per link; reads needed {floor_zd}), 429: {zd_429}"
        f"  — budget {args.rpm}/min")
    say(f"  Jira calls:       {jira} answered ({jira / args.links:.3f} per link; reads needed {floor_jira}), "
        f"429: {jira_429}  — budget {jira_rpm}/min")
    say(f"  minimum for the calls made:  {minimum:.1f} s  → wall / minimum = {ratio:.3f} "
        f"(goal <= {GOAL_RATIO}: {'MET' if ratio <= GOAL_RATIO else 'NOT MET'})")
    say(f"  minimum for the reads needed: {floor:.1f} s  → wall / minimum = {floor_ratio:.3f}")
    say(f"  CPU: the command {CPU['command']:.0f} s ({1000 * CPU['command'] / args.links:.1f} ms per link), "
        f"the simulators {CPU['simulators']:.0f} s; {(CPU['command'] + CPU['simulators']) / wall:.2f} cores busy "
        f"on average of the 2 (load average above)")
    say(f"  peak RSS of the command: {rss:.0f} MB (goal <= {GOAL_RSS_MB:.0f}: "
        f"{'MET' if rss <= GOAL_RSS_MB else 'NOT MET'})")
    ok = ok and zd_429 == 0 and jira_429 == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
