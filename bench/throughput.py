"""Mirrored changes per second (issue 5, point 7).

The simulators run in this process with zero latency; the daemon runs as real
``syncd run`` child processes, so its CPU is its own (one process = one GIL).
A generator keeps every linked pair busy with one change at a time (customer
replies, engineer comments, field and status edits on both sides) and counts
the changes that land on the other side. At most one change per pair is in
flight, so no change is "mirrored" for free by coalescing with another.

    .venv/bin/python bench/throughput.py                       # one process on SQLite, then 1/2/4 replicas on Postgres
    .venv/bin/python bench/throughput.py --modes sqlite --seconds 60
    .venv/bin/python bench/throughput.py --modes sqlite --count-sql    # store transactions per reconcile
    SYNCD_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python bench/throughput.py --modes pg:2

Also printed: the CPU the daemon processes and this process (simulators and
generator) used, so a reader can tell who the bottleneck was.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import Change, Pair, ZendeskDesk, say  # noqa: E402

from syncd.sandbox import World, build_world, free_port  # noqa: E402
from syncd.store import Store  # noqa: E402

GOAL = 300.0
SQLCOUNT = Path(__file__).resolve().parent / "sqlcount"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def syncd_command() -> list[str]:
    script = Path(sys.executable).with_name("syncd")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from syncd.cli import main; main()"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Replica:
    name: str
    config: Path
    port: int
    proc: subprocess.Popen | None = None

    def start(self, world: World, count_sql: bool = False) -> None:
        log = open(world.directory / f"{self.name}.log", "wb")
        env = {**os.environ, **world.env}
        if count_sql:   # bench/sqlcount: the store's transactions and statements, written at exit
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SQLCOUNT), env.get("PYTHONPATH")]))
            env["SYNCD_SQL_COUNT_FILE"] = str(self.sql_counts(world))
        self.proc = subprocess.Popen([*syncd_command(), "run", "--config", str(self.config)],
                                     env=env, stdout=log, stderr=subprocess.STDOUT, cwd=world.directory)

    def sql_counts(self, world: World) -> Path:
        return world.directory / f"{self.name}-sql.json"

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def replicas_for(world: World, n: int, rpm: int | None) -> list[Replica]:
    """The first replica listens where the vendors' webhooks point; the others
    only claim work from the shared queue (a load balancer would spread the
    deliveries too, but receiving one is cheap next to reconciling it).

    ``rpm``: every vendor's request budget. The world's 6,000 req/min (100 calls/s)
    would cap Zendesk at ~35 changes/s and the bench would measure the budget, not the
    daemon; None keeps the world's budget."""
    text = world.config_path.read_text()
    if rpm is not None:
        text = re.sub(r"(?m)^requests_per_minute = \d+$", f"requests_per_minute = {rpm}", text)
    out = []
    for i in range(n):
        port = world.http_port if i == 0 else free_port()
        cfg = re.sub(r"(?m)^port = \d+$", f"port = {port}", text)
        cfg = cfg.replace("[syncd]\n", f'[syncd]\ninstance = "bench-{i}"\n', 1)
        path = world.directory / f"config-{i}.toml"
        path.write_text(cfg)
        out.append(Replica(f"replica-{i}", path, port))
    return out


@dataclass(frozen=True)
class Figures:
    mode: str
    links: int
    seconds: float
    landed: int
    in_flight: int   # changes made but not landed when the window closed
    daemon_cpu: float
    bench_cpu: float
    sql: "SqlCounts | None" = None

    @property
    def rate(self) -> float:
        return self.landed / self.seconds

    @property
    def per_daemon_cpu_second(self) -> float:
        return self.landed / self.daemon_cpu if self.daemon_cpu else float("nan")


@dataclass(frozen=True)
class SqlCounts:
    """What the daemons' store did over the whole run (set-up included): bench/sqlcount."""
    transactions: dict[str, int]
    statements: dict[str, int]

    @classmethod
    def read(cls, paths: Sequence[Path]) -> "SqlCounts":
        tx: dict[str, int] = {}
        st: dict[str, int] = {}
        for path in paths:
            doc = json.loads(path.read_text())
            for into, part in ((tx, doc["transactions"]), (st, doc["statements"])):
                for k, v in part.items():
                    into[k] = into.get(k, 0) + v
        return cls(tx, st)

    @property
    def reconciles(self) -> int:
        return self.transactions.get("complete (write)", 0)

    def report(self) -> list[str]:
        n = max(self.reconciles, 1)
        lines = [f"  {self.reconciles} reconciles completed; per reconcile: "
                 f"{sum(self.transactions.values()) / n:.2f} store transactions "
                 f"({sum(v for k, v in self.transactions.items() if k.endswith('(write)')) / n:.2f} write), "
                 f"{sum(self.statements.values()) / n:.2f} SQL statements"]
        lines += [f"    {v / n:6.2f}  {k}" for k, v in sorted(self.transactions.items(), key=lambda kv: -kv[1])
                  if v / n >= 0.01]
        return lines


def drive(desk: ZendeskDesk, pairs: list[Pair], seconds: float, warmup: float,
          daemon_cpu: Callable[[], float], backlog: Callable[[], str] = lambda: "") -> tuple[int, int, float, float, float]:
    """Keep every pair busy for ``warmup + seconds``; count what lands in the last ``seconds``.
    Returns (landed, still in flight at the end, window seconds, daemon CPU, this process's CPU)."""
    flights: dict[int, tuple[Pair, Change]] = {}
    kinds = desk.kinds
    made = landed = 0
    started = time.monotonic()
    window_start: float | None = None
    cpu0 = bench0 = 0.0
    last_report = started
    while True:
        now = time.monotonic()
        if window_start is None and now - started >= warmup:
            window_start, landed = now, 0
            cpu0, bench0 = daemon_cpu(), time.process_time()
        if window_start is not None and now - window_start >= seconds:
            break
        for idx, (pair, change) in list(flights.items()):
            if change.landed():
                del flights[idx]
                landed += 1
        for idx, pair in enumerate(pairs):
            if idx in flights:
                continue
            pair.n += 1
            change = desk.change(pair, kinds[made % len(kinds)], f"{pair.desk}#{pair.n}")
            if change is None:
                continue
            change.act()
            flights[idx] = (pair, change)
            made += 1
        if now - last_report >= 10:
            last_report = now
            say(f"    {now - started:5.0f}s  {made} changes made, {landed} landed in the window, "
                f"{len(flights)} in flight{backlog()}")
        time.sleep(0.002)
    window = time.monotonic() - window_start
    return landed, len(flights), window, daemon_cpu() - cpu0, time.process_time() - bench0


def run_mode(mode: str, links: int, seconds: float, warmup: float, workers: int, pg_url: str,
             rpm: int | None, senders: int, count_sql: bool = False) -> Figures:
    import sqlalchemy as sa
    directory = Path(tempfile.mkdtemp(prefix="syncd-bench-tp-"))
    replicas_n, db_url, pg_db, admin = 1, None, None, None
    if mode.startswith("pg:"):
        replicas_n = int(mode.split(":", 1)[1])
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        pg_db = f"syncd_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{pg_db}"'))
        db_url = sa.make_url(pg_url).set(database=pg_db).render_as_string(hide_password=False)
    world = build_world(directory, database_url=db_url, workers=workers, zendesk_poll=3600, jira_poll=3600,
                        intercom_poll=3600, log_level="error")
    world.zendesk.configure({"ticket_update_limit": None})   # Zendesk's 30/ticket/10 min would gate the bench
    for sim in (world.zendesk, world.jira, world.intercom):
        # One sender thread delivers ~100 webhooks/s and would be the bottleneck (vendors send in parallel).
        sim.webhooks.stop()
        sim.webhooks.start(threads=senders)
    replicas = replicas_for(world, replicas_n, rpm)
    store: Store | None = None
    try:
        for r in replicas:
            r.start(world, count_sql)
            deadline = time.monotonic() + 30
            while not r.ready():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{r.name} not ready in 30 s")
                time.sleep(0.1)
        store = Store.open(db_url or f"sqlite:///{directory / 'syncd.db'}")
        desk = ZendeskDesk(world)
        say(f"  {mode}: escalating {links} tickets …")
        pairs = desk.create_pairs(None, links)  # type: ignore[arg-type]
        _settle(store)
        pids = [r.proc.pid for r in replicas if r.proc is not None]
        say(f"  {mode}: driving for {warmup:.0f}s warm-up + {seconds:.0f}s …")
        landed, in_flight, window, dcpu, bcpu = drive(desk, pairs, seconds, warmup,
                                                      lambda: sum(cpu_seconds(p) for p in pids),
                                                      lambda: _backlog(world, store))
        figures = Figures(mode, links, window, landed, in_flight, dcpu, bcpu)
        for r in replicas:
            r.stop()
        return replace(figures, sql=SqlCounts.read([r.sql_counts(world) for r in replicas])) if count_sql \
            else figures
    finally:
        if store is not None:
            store.close()
        for r in replicas:
            r.stop()
        world.stop()
        if admin is not None and pg_db is not None:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(directory, ignore_errors=True)


def _backlog(world: World, store: Store) -> str:
    """Where the changes in flight wait: in the simulators' webhook senders, or in the daemon's queue."""
    senders = ", ".join(f"{sim.vendor} {sim.webhooks.pending()}" for sim in (world.zendesk, world.jira))
    return f" (webhooks not yet delivered: {senders}; dirty queue {store.queue_depth()})"


def _settle(store: Store, quiet: float = 1.0, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < deadline:
        if store.queue_depth() == 0:
            since = since or time.monotonic()
            if time.monotonic() - since >= quiet:
                return
        else:
            since = None
        time.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="sqlite,pg:1,pg:2,pg:4",
                    help="comma separated: sqlite (one process) and pg:N (N replicas on Postgres)")
    ap.add_argument("--links", type=int, default=100, help="linked pairs kept busy (default 100)")
    ap.add_argument("--seconds", type=float, default=12.0, help="measured window per mode (default 12)")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=4, help="worker threads per daemon process")
    ap.add_argument("--rpm", type=int, default=1_000_000,
                    help="every vendor's requests_per_minute budget (default 1,000,000: the daemon, not the "
                         "budget, is measured); 0 keeps the world's 6,000")
    ap.add_argument("--senders", type=int, default=8,
                    help="webhook sender threads per simulator (default 8; 1 = the simulators' default)")
    ap.add_argument("--pg-url", default=os.environ.get("SYNCD_TEST_PG_URL", DEFAULT_PG))
    ap.add_argument("--count-sql", action="store_true",
                    help="count the daemons' store transactions and SQL statements per reconcile "
                         "(bench/sqlcount; the counting costs CPU, so the CPU figures are not comparable)")
    args = ap.parse_args(argv)
    from syncd.logs import configure_logging
    configure_logging("error", "console")   # the simulators log every request at debug
    results = []
    for mode in args.modes.split(","):
        say(f"{mode}:")
        results.append(run_mode(mode, args.links, args.seconds, args.warmup, args.workers, args.pg_url,
                                args.rpm or None, args.senders, args.count_sql))
    say("")
    say(f"throughput: zero-latency simulators in this process, daemon(s) as `syncd run` children, "
        f"{args.workers} workers each, {args.links} pairs kept busy, {os.cpu_count()} cores, "
        f"budget {args.rpm or 6000} req/min per vendor, {args.senders} webhook senders per simulator")
    say(f"{'mode':10}{'changes/s':>11}{'landed':>8}{'window s':>9}{'daemon CPU s':>14}"
        f"{'bench CPU s':>13}{'changes per daemon CPU s':>26}")
    for f in results:
        say(f"{f.mode:10}{f.rate:11.1f}{f.landed:8}{f.seconds:9.1f}{f.daemon_cpu:14.1f}{f.bench_cpu:13.1f}"
            f"{f.per_daemon_cpu_second:26.1f}")
    for f in results:
        if f.sql is not None:
            say(f"{f.mode}: the store, counted over the whole run (set-up included):")
            for line in f.sql.report():
                say(line)
    one = next((f for f in results if f.mode in ("sqlite", "pg:1")), None)
    if one is not None:
        say(f"goal >= {GOAL:.0f} changes/s for one process: {'MET' if one.rate >= GOAL else 'NOT MET'} "
            f"({one.rate:.1f}/s, {one.mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
