"""A real Postgres server restarts (or stops for a few seconds) while the daemon works.

The shared Postgres at SYNCD_TEST_PG_URL serves everyone's tests, so it is never
touched: each run starts a private throwaway cluster (``initdb`` into a temp
directory, its own port and socket directory) and restarts *that* one with
``pg_ctl``. Skipped when the server binaries are not installed; with
``SYNCD_REQUIRE_PG=1`` (CI) a cluster that exists on disk but cannot start fails.

What the vendors see: a delivery that arrives while the database is down is
answered 503 and retried by the vendor; none is acknowledged before it is stored.
The pollers are off (one hour), so every change below reaches the daemon only by
webhook: exactly-once on the other side proves that no refused delivery was lost.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from syncd.sandbox import World, free_port

from .conftest import comments_with, get, notes_with, wait_for
from .test_fault_budget import _escalate_many

pytestmark = pytest.mark.postgres

REQUIRED = os.environ.get("SYNCD_REQUIRE_PG") == "1"


def _pg_bindir() -> Path | None:
    """Where initdb/pg_ctl/postgres live: pg_config's answer, else the newest Debian layout."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    for path in candidates:
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _give_up(message: str) -> None:
    if REQUIRED:
        pytest.fail(f"SYNCD_REQUIRE_PG=1 and the Postgres binaries are installed, but {message}")
    pytest.skip(message)


@dataclass
class PrivateCluster:
    """A Postgres cluster of our own: ``restart()``, ``stop()``, ``start()`` as an admin would."""

    bindir: Path
    base: Path
    port: int
    user: str | None                      # run the server as this user (we are root), else as ourselves
    log: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kw: dict[str, Any] = {}
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                  "env": {**os.environ, "HOME": str(self.base), "USER": self.user, "LOGNAME": self.user}}
        started = time.monotonic()
        # Output to a file, not a pipe: a server that pg_ctl starts inherits it and would
        # keep a pipe open (and us waiting for its end) for as long as it runs.
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run([str(self.bindir / args[0]), *args[1:]], stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, timeout=timeout, cwd=self.base, **kw)
            out.seek(0)
            done.stdout, done.stderr = out.read(), ""
        self.log.append(f"{' '.join(args[:2])}: rc={done.returncode} in {time.monotonic() - started:.2f}s")
        return done

    def initdb(self) -> subprocess.CompletedProcess[str]:
        return self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale=C", "--no-sync")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base / 'sock'} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        done = self._run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "30", "-l",
                         str(self.base / "server.log"), "-o", options)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}{self.server_log()}")

    def stop(self, mode: str = "fast") -> None:
        done = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stdout}{done.stderr}")

    def restart(self) -> None:
        done = self._run("pg_ctl", "restart", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "-l",
                         str(self.base / "server.log"))
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {done.stdout}{done.stderr}{self.server_log()}")

    def server_log(self) -> str:
        try:
            return (self.base / "server.log").read_text()[-3000:]
        except OSError:
            return ""

    def destroy(self) -> None:
        """Always: stop whatever runs (immediate), and fall back to the pid file if pg_ctl cannot."""
        pid_file = self.data / "postmaster.pid"
        try:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "20")
        except (OSError, subprocess.SubprocessError):
            pass
        try:
            pid = int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None
        except (OSError, ValueError, IndexError):
            pid = None
        if pid is not None:
            try:
                os.kill(pid, 9)   # our own postmaster, by its pid; its children exit with it
            except OSError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivateCluster]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("Postgres server binaries (initdb, pg_ctl, postgres) are not installed: "
                    "looked at `pg_config --bindir` and /usr/lib/postgresql/*/bin")
    user = None
    if os.geteuid() == 0:   # Postgres refuses to run as root
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            _give_up("we run as root and there is no 'postgres' user to run a private server as")
    base = Path(tempfile.mkdtemp(prefix="syncd-pg-"))   # under /tmp: the server's user can reach it
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    cluster = PrivateCluster(bindir, base, free_port(), user)
    try:
        done = cluster.initdb()
        if done.returncode != 0:
            _give_up(f"initdb failed (rc {done.returncode}): {done.stdout.strip()[-1500:]}")
        (base / "sock").mkdir()
        if user is not None:
            os.chown(base / "sock", pw.pw_uid, pw.pw_gid)
        try:
            cluster.start()
        except (RuntimeError, subprocess.SubprocessError) as err:
            _give_up(f"the private cluster did not start: {err}")
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def db_url(private_pg: PrivateCluster) -> Iterator[str]:
    """A fresh database in the private cluster (overrides the shared-server ``db_url``)."""
    name = f"syncd_{os.getpid()}_{int(time.monotonic() * 1000)}"
    admin = sa.create_engine(private_pg.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    yield private_pg.url(name)


class Traffic:
    """Customers and engineers keep writing on every link, one change every ``pace`` seconds,
    on a thread of its own, until ``stop()``; each change has a unique text."""

    def __init__(self, world: World, pairs: list[tuple[int, str]], pace: float = 0.1):
        self.world, self.pairs, self.pace = world, pairs, pace
        self.desk: list[tuple[str, str]] = []      # (issue key, text) that must land in Jira
        self.tracker: list[tuple[int, str]] = []   # (ticket, text) that must land on the ticket
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> "Traffic":
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            ticket, key = self.pairs[n % len(self.pairs)]
            if n % 2 == 0:
                text = f"Customer message {n} on {ticket}."
                self.world.zendesk.customer_reply(ticket, text)
                self.desk.append((key, text))
            else:
                text = f"Engineer note {n} on {key}."
                self.world.jira.engineer_comment(key, text)
                self.tracker.append((ticket, text))
            n += 1
            self._stop.wait(self.pace)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def landed(self) -> tuple[int, int, list[str]]:
        """(changes landed once, changes expected, problems: missing or doubled)."""
        problems: list[str] = []
        for key, text in self.desk:
            if (n := comments_with(self.world, key, text)) != 1:
                problems.append(f"{text!r} on {key}: {n}")
        for ticket, text in self.tracker:
            if (n := notes_with(self.world, ticket, text)) != 1:
                problems.append(f"{text!r} on ticket {ticket}: {n}")
        total = len(self.desk) + len(self.tracker)
        return total - len(problems), total, problems


class ReadyWatch:
    """Asks /readyz every 50 ms on a thread, keeping every answer that was not 200."""

    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.unready: list[tuple[float, int, Any]] = []
        self.asked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readyz-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = get(self.daemon, "/readyz")
                self.asked += 1
                if r.status != 200:
                    self.unready.append((time.monotonic(), r.status, r.body))
            except Exception as e:   # the daemon's HTTP must keep answering: record it as a failure
                self.unready.append((time.monotonic(), 0, repr(e)))
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _senders(world: World) -> list[Any]:
    return [world.zendesk.webhooks, world.jira.webhooks]


def _patient_vendors(world: World) -> None:
    """Real vendors retry a refused delivery for hours; the simulators' default (5 tries
    within ~3 s) would give up during a 4 s outage. 9 tries at 0.2 s doubling span ~50 s."""
    for sender in _senders(world):
        sender.max_attempts = 9


def _slow_vendors(world: World) -> None:
    """Vendor answers take 50-150 ms, so a reconcile takes a while and the outage begins
    while workers are in the middle of some (between a vendor write and its intent update)."""
    world.zendesk.knobs.latency = world.jira.knobs.latency = (0.05, 0.15)


def _delivery_figures(world: World) -> dict[str, int]:
    results = [r for s in _senders(world) for r in s.results]
    return {"attempts": len(results),
            "ok": sum(1 for r in results if r.status is not None and 200 <= r.status < 300),
            "503": sum(1 for r in results if r.status == 503),
            "other_5xx": sum(1 for r in results if r.status is not None and r.status >= 500 and r.status != 503),
            "4xx": sum(1 for r in results if r.status is not None and 400 <= r.status < 500),
            "no_answer": sum(1 for r in results if r.status is None),
            "gave_up": sum(1 for s in _senders(world) for r in s.results
                           if r.attempt >= s.max_attempts and not (r.status and 200 <= r.status < 300))}


def _alive(daemon: Any) -> None:
    assert all(t.is_alive() for t in daemon.workers._threads), "a worker thread died with the database"
    assert all(p._thread is not None and p._thread.is_alive() for p in daemon.pollers), "a poller thread died"
    assert daemon._server_thread is not None and daemon._server_thread.is_alive(), "the HTTP server stopped"
    assert get(daemon, "/healthz").status == 200


def _settle_and_check(world: World, daemon: Any, traffic: Traffic) -> tuple[int, int]:
    for sender in _senders(world):
        assert sender.flush(timeout=60), "the vendors still hold deliveries a minute later"
    # Generous for a busy machine; an intent cut off by the outage no longer waits out its
    # settle window (test_fault_database.py::..._lost_between_intent_and_write_...).
    assert wait_for(lambda: not traffic.landed()[2], timeout=60), traffic.landed()[2][:10]
    assert wait_for(lambda: daemon.store.queue_depth() == 0, timeout=15)
    time.sleep(1.0)   # anything doubled late would show now
    landed, total, problems = traffic.landed()
    assert not problems, problems[:10]
    assert daemon.store.count_dead_letters() == 0, daemon.store.dead_letters()
    assert wait_for(lambda: get(daemon, "/readyz").status == 200, timeout=10), get(daemon, "/readyz").body
    return landed, total


def _worker_figures(logs: Any) -> str:
    given_back = [e for e in logs.named("item_deferred") if str(e.get("reason", "")).startswith("database_")]
    return (f"items given back without an attempt: {len(given_back)}, settle_failed: {len(logs.named('settle_failed'))}, "
            f"item_failed: {len(logs.named('item_failed'))}, claim_failed: {len(logs.named('claim_failed'))}, "
            f"intents recovered/replayed: {len(logs.named('intent_recovered'))}/{len(logs.named('intent_replayed'))}")


def _database_problems(watch: ReadyWatch) -> list[str]:
    return [p for _, status, body in watch.unready if status == 503 and isinstance(body, dict)
            for p in body.get("problems", []) if p.startswith("database: ")]


def _flowing(make_world, start_daemon) -> tuple:
    """A daemon with four escalated pairs, slow vendors, a /readyz watcher and traffic under way."""
    world = make_world(workers=4)
    _patient_vendors(world)
    daemon = start_daemon(world)
    pairs = _escalate_many(world, 4)
    _slow_vendors(world)
    return world, daemon, ReadyWatch(daemon), Traffic(world, pairs).start()


def test_fault_postgres_restart_fast_mid_run(private_pg, make_world, start_daemon, logs):
    world, daemon, watch, traffic = _flowing(make_world, start_daemon)
    try:
        time.sleep(1.5)                       # work is flowing
        started = time.monotonic()
        private_pg.restart()                  # pg_ctl restart -m fast: every session is terminated
        restart_seconds = time.monotonic() - started
        time.sleep(1.5)                       # and keeps flowing after it
    finally:
        traffic.stop()
        watch.stop()
    _alive(daemon)
    landed, total = _settle_and_check(world, daemon, traffic)

    failures = logs.named("store_unavailable")
    assert failures, "the restart went unnoticed: nothing was using the database?"
    assert {e["reason"] for e in failures} == {"database_unreachable"}, failures[:5]
    # What /readyz reports is the store's outage record: it was raised and cleared by itself.
    # (/readyz itself is asserted in the next test: a 0.3 s restart falls between its answers.)
    said = logs.named("database_unavailable")
    assert said and said[0]["reason"] == "database_unreachable", said[:3]
    assert logs.named("database_recovered"), "the daemon never said the database was back"
    problems = _database_problems(watch)
    figures = _delivery_figures(world)
    assert figures["gave_up"] == 0, figures
    assert figures["other_5xx"] == 0 and figures["no_answer"] == 0, figures
    print(f"\nrestart -m fast took {restart_seconds:.2f}s; changes landed once: {landed}/{total}; "
          f"deliveries: {figures}; store failures logged: {len(failures)}; {_worker_figures(logs)}; "
          f"/readyz asked {watch.asked}x, unready {len(watch.unready)}x ({len(problems)} naming the database); "
          f"reasons: {sorted({e.get('reason') for e in failures})}; "
          f"problems seen: {sorted({p[:70] for _, _, b in watch.unready if isinstance(b, dict) for p in b['problems']})}")


def test_fault_postgres_stopped_for_seconds_refuses_deliveries_and_recovers(private_pg, make_world, start_daemon,
                                                                            logs):
    world, daemon, watch, traffic = _flowing(make_world, start_daemon)
    try:
        time.sleep(1.0)
        private_pg.stop("fast")
        stopped_at = time.monotonic()
        sent_before = len(traffic.desk) + len(traffic.tracker)
        # Down for 4 s while customers and engineers keep writing.
        ready = wait_for(lambda: (r := get(daemon, "/readyz")).status == 503 and r, timeout=4)
        time.sleep(max(0.0, 4.0 - (time.monotonic() - stopped_at)))
        sent_during = len(traffic.desk) + len(traffic.tracker) - sent_before
        private_pg.start()
        down_seconds = time.monotonic() - stopped_at
        time.sleep(1.0)
    finally:
        traffic.stop()
        watch.stop()

    assert ready, "/readyz kept answering 200 with the database stopped"
    assert ready.body["problems"][0].startswith("database: database_unreachable: "), ready.body
    refused = [e for e in logs.named("webhook_refused") if e["reason"] == "store_unavailable"]
    assert refused and all(e["status"] == 503 for e in refused), refused[:3]
    _alive(daemon)
    landed, total = _settle_and_check(world, daemon, traffic)
    assert logs.named("database_recovered"), "the daemon never said the database was back"
    figures = _delivery_figures(world)
    assert figures["503"] >= 1 and figures["gave_up"] == 0, figures
    assert figures["other_5xx"] == 0 and figures["no_answer"] == 0, figures
    print(f"\ndown {down_seconds:.1f}s; changes made while down: {sent_during}; landed once: {landed}/{total}; "
          f"deliveries: {figures}; webhook refusals logged: {len(refused)}; {_worker_figures(logs)}; "
          f"/readyz unready {len(watch.unready)}x of {watch.asked}")
