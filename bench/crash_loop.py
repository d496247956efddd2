"""Seeded randomised crash loop: people act, the daemon is SIGKILLed at random
failpoints, restarted, and at the end nothing may be lost or doubled.

    .venv/bin/python bench/crash_loop.py --rounds 40 --seed 7          # `make crash-loop`
    .venv/bin/python bench/crash_loop.py --rounds 5 --db postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python bench/crash_loop.py --rounds 20 --chaos      # vendors misbehave too (below)
    .venv/bin/python bench/crash_loop.py --rounds 20 --replicas 3 --db postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python bench/crash_loop.py --rounds 40 --mode stall      # freeze (SIGSTOP) past the lease, then SIGCONT
    .venv/bin/python bench/crash_loop.py --rounds 40 --mode mixed      # each round a kill or a stall, from the seed

``--mode stall`` freezes the daemon at the failpoint instead of killing it (a VM
pause, a long GC, a laptop lid): it stays frozen past its lease (its claims run out;
with replicas another replica takes them), then it is resumed and carries on where
it stood — possibly sending a request it had checked its claim for before freezing.
The stall points include the moment right after that check
(``before_vendor_write:<operation>``). With replicas each round's actions are chosen
to pass the round's failpoint, several of them, so the victim (a third of the
workers) meets it in most rounds.

With ``--chaos`` the vendors misbehave all along, each round differently (the
rates are drawn from the seed): 5xx answers, connection resets, 429s with
``Retry-After``, stalled answers, Zendesk safe updates refused with 409, and webhooks duplicated, reordered and dropped
(the Zendesk poller then has to find what a dropped delivery carried).

Prints the counts (kills, deliveries, duplicates found, losses found); exits 1
when a duplicate or a loss was found. ``tests/crash/test_crash_loop.py`` runs a
short loop in CI.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "crash"))

from harness import (
    LEASE_SECONDS,
    Books,
    Daemon,
    Switchboard,
    Verdict,
    check,
    crash_world,
    replica_daemons,
    issue_bodies,
    issues_for_origin,
    mentions,
    settle,
    ticket_bodies,
    wait_for,
)

from syncd.sim.core import Fault
from syncd.sandbox import World
from syncd.store import Store

# Where a kill hurts; mid_poll_page only for Jira, whose poller runs every second here.
FAILPOINTS = ("after_delivery_stored", "after_issue_create", "after_comment_post", "after_note_post",
              "after_field_write", "mid_poll_page:jira")
# Where a freeze hurts: the same moments, plus right after the claim check before each
# non-idempotent request (the window no check can close: the duplicate is repaired after).
STALL_POINTS = ("after_issue_create", "after_comment_post", "after_note_post", "after_field_write",
                "before_vendor_write:createIssue", "before_vendor_write:addComment",
                "before_vendor_write:updateTicket", "mid_poll_page:jira")
# The action that makes a worker pass a point (replica rounds aim the work at it).
AIMED = {"after_issue_create": "escalate", "before_vendor_write:createIssue": "escalate",
         "after_comment_post": "reply", "before_vendor_write:addComment": "reply",
         "after_note_post": "engineer", "before_vendor_write:updateTicket": "engineer",
         "after_field_write": "priority"}
STALL_EXTRA = 3.0   # seconds a stall lasts beyond the lease
PRIORITIES = ("low", "normal", "high", "urgent")
CHAOS_VENDOR_TIMEOUT = 2.0


@dataclass
class LoopResult:
    seed: int
    rounds: int
    kills: int = 0
    clean_stops: int = 0
    deliveries: int = 0
    actions: int = 0
    fired: dict[str, int] = field(default_factory=dict)
    verdict: Verdict = field(default_factory=Verdict)
    seconds: float = 0.0
    chaos: bool = False
    replicas: int = 1
    mode: str = "kill"
    stalls: int = 0
    stalled: dict[str, int] = field(default_factory=dict)
    repaired: int = 0          # duplicate_repaired events in the daemons' logs

    def summary(self) -> str:
        fired = ", ".join(f"{k}×{v}" for k, v in sorted(self.fired.items())) or "none"
        stalled = ", ".join(f"{k}×{v}" for k, v in sorted(self.stalled.items())) or "none"
        how = "".join((f" of {self.replicas} replicas" if self.replicas > 1 else "", " with chaos" if self.chaos else "",
                       f" mode={self.mode}"))
        return (f"crash loop{how} seed={self.seed} rounds={self.rounds}: kills={self.kills} ({fired}), "
                f"stalls={self.stalls} ({stalled}), repairs={self.repaired}, "
                f"clean stops={self.clean_stops}, actions={self.actions}, deliveries={self.deliveries}, "
                f"duplicates found={len(self.verdict.duplicates)}, losses found={len(self.verdict.losses)}, "
                f"{self.seconds:.1f}s")


class Actors:
    """Random people: new escalations, customer replies, engineer comments, priority edits."""

    def __init__(self, world: World, store: Store, books: Books, rng: random.Random):
        self.world, self.store, self.books, self.rng = world, store, books, rng
        self.n = 0

    def linked(self) -> list[int]:
        """Tickets whose link exists: a reply written before it would be history, not mirrored."""
        return [t for t in sorted(self.books.escalated) if issues_for_origin(self.world, f"zendesk:{t}")
                and self.store.links_for_desk(_ref(t))]

    def act(self, aim: str | None = None) -> None:
        """One person's action; ``aim`` picks it (when a linked ticket exists for it)."""
        self.n += 1
        token = f"loop-{self.n:05d}"   # fixed width: "loop-2" would also count "loop-201"
        linked = self.linked()
        choice = self.rng.choice(("escalate", "reply", "engineer", "priority")) if linked else "escalate"
        if aim is not None and (linked or aim == "escalate"):
            choice = aim
        z, j = self.world.zendesk, self.world.jira
        if choice == "escalate":
            ticket = z.create_ticket(f"Problem {token}", f"Something broke ({token}).")
            z.agent_set(ticket, add_tags=["jira_escalate"])
            self.books.escalated.add(ticket)
        elif choice == "reply":
            ticket = self.rng.choice(linked)
            z.customer_reply(ticket, f"Customer adds ({token}).")
            self.books.to_jira.append((ticket, token))
        elif choice == "engineer":
            ticket = self.rng.choice(linked)
            issue = issues_for_origin(self.world, f"zendesk:{ticket}")[0]
            j.engineer_comment(str(issue), f"Engineer says ({token}).")
            self.books.to_zendesk.append((ticket, token))
        else:
            z.agent_set(self.rng.choice(linked), priority=self.rng.choice(PRIORITIES))


def misbehave(world: World, rng: random.Random) -> str:
    """Vendor trouble for one round; returns what was set, for the round's line."""
    rates = {"5xx": rng.uniform(0.0, 0.08), "reset": rng.uniform(0.0, 0.04), "429": rng.uniform(0.0, 0.05),
             "stall": rng.uniform(0.0, 0.02), "lost_answer": rng.uniform(0.0, 0.15),
             "duplicate": rng.uniform(0.0, 0.3), "drop": rng.uniform(0.0, 0.15),
             "conflict": rng.uniform(0.0, 0.1)}
    for sim in (world.zendesk, world.jira):
        sim.clear_faults()
        sim.inject(Fault("status", fraction=rates["5xx"], status=rng.choice((500, 502, 503))))
        sim.inject(Fault("reset", fraction=rates["reset"]))
        sim.inject(Fault("429", fraction=rates["429"], retry_after=rng.choice((0.5, 1.0, 2.0))))
        # Around the daemon's vendor timeout (CHAOS_VENDOR_TIMEOUT): some answers come late, some
        # after the daemon gave up on them although the vendor carried the call out.
        sim.inject(Fault("timeout", fraction=rates["stall"], stall=rng.uniform(0.5, 3.0)))
    # Zendesk refuses a safe update now and then (409: the ticket changed since it was read):
    # the reconcile must leave its item dirty, never drop the change (issue 10, finding 8).
    world.zendesk.inject(Fault("status", operation="UpdateTicket", status=409, fraction=rates["conflict"]))
    # The writes that cannot carry a marker of their own are the risky ones: the vendor
    # carries them out but answers after the daemon gave up (an ambiguous write).
    for sim, operation in ((world.jira, "createIssue"), (world.jira, "addComment"), (world.zendesk, "UpdateTicket")):
        sim.inject(Fault("timeout", operation=operation, fraction=rates["lost_answer"],
                         stall=CHAOS_VENDOR_TIMEOUT + rng.uniform(0.2, 1.5)))
        with sim.lock:
            sim.knobs.webhooks.duplicate = rates["duplicate"]
            sim.knobs.webhooks.drop = rates["drop"]
            sim.knobs.webhooks.reorder = True
    return " ".join(f"{k}={v:.2f}" for k, v in rates.items())


def calm(world: World) -> None:
    for sim in (world.zendesk, world.jira):
        sim.clear_faults()
        with sim.lock:
            sim.knobs.webhooks.duplicate = sim.knobs.webhooks.drop = 0.0
            sim.knobs.webhooks.reorder = False


def _ref(ticket: int):
    from syncd.domain import ItemRef
    return ItemRef("zendesk", str(ticket))


def _start(daemon: Daemon, failpoints: str) -> bool:
    """Start; False when the failpoint fired (or froze it) before the daemon was even ready."""
    daemon.start(failpoints, wait_ready=False)
    try:
        daemon.wait_ready()
        return True
    except AssertionError:
        if daemon.alive() and daemon.stopped_at() is not None:
            return False
        if daemon.alive() or daemon.fired() is None:
            raise
        return False


def _frozen(daemon: Daemon) -> bool:
    return daemon.alive() and daemon.stopped_at() is not None and daemon._state() == "T"


def _repairs(daemons: list[Daemon]) -> int:
    return sum(log.read_text(errors="replace").count('"duplicate_repaired"') for d in daemons for log in d.logs)


def _arrived(world: World, books: Books) -> bool:
    for ticket, token in books.to_jira:
        issues = issues_for_origin(world, f"zendesk:{ticket}")
        if not issues or not mentions(issue_bodies(world, issues[0]), token):
            return False
    return all(mentions(ticket_bodies(world, t), token) for t, token in books.to_zendesk)


def run_loop(directory: Path, database_url: str, seed: int, rounds: int,
             actions_per_round: int = 3, echo=print, chaos: bool = False, replicas: int = 1,
             mode: str = "kill", vendor_timeout: float | None = None) -> LoopResult:
    """With ``replicas`` > 1 (Postgres), that many daemons share the work; each round one
    of them, in turn, runs with the failpoint while the others keep going. ``mode``:
    ``kill`` (SIGKILL at the point), ``stall`` (SIGSTOP there, SIGCONT after the lease)
    or ``mixed`` (each round one or the other, from the seed). ``vendor_timeout``: the
    daemons' ``vendor_timeout_seconds`` (default: the configuration's 30 s; with chaos
    always CHAOS_VENDOR_TIMEOUT). A kill between an intent and its request leaves a write
    nobody may make again before the intent's settle window, which grows with it (80 s at
    30 s): the short loops of the test suite set 5 s and wait 30 s instead."""
    if mode not in ("kill", "stall", "mixed"):
        raise ValueError(f"mode: kill, stall or mixed, not {mode!r}")
    if replicas > 1 and not database_url.startswith("postgresql"):
        raise ValueError("replicas share a Postgres database; SQLite serves one daemon")
    started = time.monotonic()
    rng = random.Random(seed)
    result = LoopResult(seed, rounds, chaos=chaos, replicas=replicas, mode=mode)
    # Under chaos Zendesk drops deliveries too: its poller must run to find them.
    world = crash_world(directory, database_url, jira_poll=1.0, zendesk_poll=10.0 if chaos else 3600.0)
    if chaos:   # some stalls (0.5-3 s) outlast the client: timed-out writes are ambiguous and must not double
        vendor_timeout = CHAOS_VENDOR_TIMEOUT
    if vendor_timeout is not None:
        world.config_path.write_text(world.config_path.read_text().replace(
            "[syncd]\n", f"[syncd]\nvendor_timeout_seconds = {vendor_timeout}\n", 1))
    # Replicas: the webhooks go to each round's victim (see Switchboard), so it takes most
    # of the round's work and meets its failpoint.
    board = Switchboard(world.http_port) if replicas > 1 else None
    daemons = replica_daemons(world, replicas, switchboard=True) if replicas > 1 else [Daemon(world)]
    books = Books()
    store: Store | None = None
    try:
        for n in range(rounds):
            stall = mode == "stall" or (mode == "mixed" and rng.random() < 0.5)
            point = rng.choice(STALL_POINTS if stall else FAILPOINTS)
            # With replicas the victim does only part of the work: fire at its first pass.
            passes = 1 if replicas > 1 else rng.randint(1, 2) if stall else rng.randint(1, 3)
            spec = f"{point}={passes}" + ("@stop" if stall else "")
            trouble = misbehave(world, rng) if chaos else ""
            # Round-robin, not drawn: how much the rng is used in a round depends on timing,
            # and every replica should be a victim in turn.
            daemon = daemons[n % len(daemons)]
            for other in daemons:
                if other is not daemon and not other.alive():
                    other.start()
            if daemon.alive():   # it ran without a failpoint last round: a clean restart with one
                code = daemon.terminate()
                assert code == 0, f"{daemon.name}: SIGTERM: exit {code}\n{daemon.tail()}"
            if board is not None:
                board.route(daemon.port or world.http_port)
            ready = _start(daemon, spec)
            store = store or Store.open(database_url)
            actors = Actors(world, store, books, rng)
            actors.n = n * 100
            # Replica rounds aim most actions at the point, and more of them: the victim
            # takes only its share of the items.
            aim = AIMED.get(point) if replicas > 1 or stall else None
            count = actions_per_round * (2 if replicas > 1 else 1)
            if ready:
                for _ in range(count):
                    actors.act(aim if aim and rng.random() < 0.8 else None)
                    result.actions += 1
                    time.sleep(rng.uniform(0.0, 0.3))
                    if not daemon.alive() or _frozen(daemon):
                        break
                hit = wait_for(lambda: not daemon.alive() or _frozen(daemon),
                               timeout=rng.uniform(1.0, 3.0) * (2 if replicas > 1 else 1))
            else:
                hit = True
            outcome = "clean stop"
            if hit and _frozen(daemon):
                # Frozen past its lease: its claims run out (another replica may take them),
                # then it carries on from where it stood.
                time.sleep(LEASE_SECONDS + STALL_EXTRA)
                daemon.resume()
                result.stalls += 1
                where = daemon.stopped_at() or "?"
                result.stalled[where] = result.stalled.get(where, 0) + 1
                outcome = "stalled, resumed"
                time.sleep(rng.uniform(0.5, 2.0))
                code = daemon.terminate()
                assert code == 0, f"{daemon.name}: SIGTERM after the stall: exit {code}\n{daemon.tail()}"
            elif hit:
                fired = daemon.wait_killed(timeout=1.0)
                result.kills += 1
                result.fired[fired] = result.fired.get(fired, 0) + 1
                outcome = "killed"
            else:
                code = daemon.terminate()
                # The failpoint may still fire while the stop drains the items in hand: a kill.
                died = code != 0 and daemon.fired() is not None
                assert died or code == 0, f"SIGTERM: exit {code}\n{daemon.tail()}"
                if died:
                    fired = daemon.wait_killed(timeout=1.0)
                    result.kills += 1
                    result.fired[fired] = result.fired.get(fired, 0) + 1
                    outcome = "killed"
                else:
                    result.clean_stops += 1
            who = f"{daemon.name}: " if replicas > 1 else ""
            echo(f"round {n + 1}/{rounds}: {who}{spec} → {outcome}" + (f" ({trouble})" if trouble else ""))
        calm(world)   # the outage ends; what it held back must now arrive, once
        for daemon in daemons:
            if not daemon.alive():
                daemon.start()
        if board is not None:
            board.route(daemons[0].port or world.http_port)
        assert store is not None
        wait_for(lambda: _arrived(world, books), timeout=60)   # poll leases of dead leaders run out first
        # A kill between an intent and its request (another thread's failpoint) leaves a pending
        # create that nobody may repeat before its settle window (retry budget + 2 vendor
        # timeouts: 80 s at the default 30 s timeout) has passed.
        settle(world, store, timeout=150)
        result.verdict = check(world, store, books)
        result.repaired = _repairs(daemons)
        result.deliveries = sum(1 for s in (world.zendesk, world.jira) for r in s.webhooks.results
                                if r.status is not None and 200 <= r.status < 300)
        for daemon in daemons:
            code = daemon.terminate()
            assert code == 0, f"{daemon.name}: SIGTERM: exit {code}\n{daemon.tail()}"
    finally:
        for daemon in daemons:
            daemon.kill()
        if board is not None:
            board.close()
        if store is not None:
            store.close()
        world.stop()
    result.seconds = time.monotonic() - started
    return result


@contextmanager
def _database(url: str | None, directory: Path) -> Iterator[str]:
    """SQLite in ``directory``, or a fresh schema in the given Postgres database
    (dropped afterwards), so a loop never reads another run's links."""
    if url is None or not url.startswith("postgresql"):
        yield url or f"sqlite:///{directory / 'syncd.db'}"
        return
    import uuid

    import sqlalchemy as sa
    schema = f"syncd_crash_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the directory with the daemon logs")
    parser.add_argument("--chaos", action="store_true", help="vendors answer 5xx/429, reset, stall, and "
                        "duplicate, reorder and drop webhooks while the daemon is being killed")
    parser.add_argument("--mode", choices=("kill", "stall", "mixed"), default="kill",
                        help="kill (SIGKILL) at the failpoint, stall (SIGSTOP past the lease, then SIGCONT), or mixed")
    parser.add_argument("--replicas", type=int, default=1, help="daemons sharing the work (needs --db postgresql…); "
                        "each round one of them runs with the failpoint")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="syncd-crash-loop-"))
    try:
        with _database(args.db, directory) as url:
            result = run_loop(directory / "world", url, args.seed, args.rounds, chaos=args.chaos,
                              replicas=args.replicas, mode=args.mode)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    print(result.summary())
    for problem in result.verdict.duplicates + result.verdict.losses:
        print(f"  {problem}")
    return 0 if result.verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
