"""Crash harness: the real ``syncd run`` as a subprocess, killed at failpoints.

The simulators run in the calling process (``build_world``); the daemon is a
child process with the world's secrets in its environment and, when asked,
``SYNCD_FAILPOINTS`` — so it SIGKILLs itself at the named moment. Then it is
started again without failpoints and the books are checked from the outside:
vendor state (what a person would see) and the daemon's own store.

Used by ``tests/crash/test_crash_*.py`` and ``bench/crash_loop.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from syncd.connectors.jira import origin_label
from syncd.domain import ItemRef
from syncd.failpoints import ENV as FAILPOINTS_ENV
from syncd.sim.jira_adf import adf_to_text
from syncd.sim.jira_catalog import PRIORITIES
from syncd.sandbox import World, build_world, free_port
from syncd.store import Store
from syncd.testing import wait_for_strict as wait_for  # re-exported: a check that raises fails at once

READY_TIMEOUT = 20.0
LEASE_SECONDS = 5   # the config's minimum
FIRED = "SYNCD_FAILPOINT_FIRED"
STOPPED = "SYNCD_FAILPOINT_STOPPED"
ESCALATION_NOTE = "Escalated to Jira:"   # the shipped mapping's escalation.note
SHIPPED_PRIORITY = {"urgent": "Highest", "high": "High", "normal": "Medium", "low": "Low"}   # its priority table


def crash_world(directory: Path, database_url: str, *, jira_poll: float = 3600.0, zendesk_poll: float = 3600.0,
                workers: int = 2) -> World:
    """A world whose vendors keep retrying webhooks while the daemon is down, the
    way Zendesk and Jira do (minutes, not the simulators' default 3 s). Pollers are
    off (an hour) unless asked: then only webhooks carry changes, deterministically."""
    world = build_world(directory, database_url=database_url, workers=workers, zendesk_poll=zendesk_poll,
                        jira_poll=jira_poll, intercom_poll=3600.0, log_level="info")
    for sim in (world.zendesk, world.jira, world.intercom):
        sim.webhooks.max_attempts = 12
        sim.webhooks.backoff = 0.1
    # A killed worker's claim is freed when its lease runs out: keep that short so a
    # test waits seconds, not the production 30 s.
    text = world.config_path.read_text()
    assert "lease_seconds = 30\n" in text
    world.config_path.write_text(text.replace("lease_seconds = 30\n", f"lease_seconds = {LEASE_SECONDS}\n"))
    return world


def replica_daemons(world: World, n: int, switchboard: bool = False) -> list[Daemon]:
    """``n`` daemons sharing the world's (Postgres) database. The first listens where the
    vendors send their webhooks; the others only claim work from the shared queue and take
    turns leading the pollers. With ``switchboard`` every replica listens on a port of its
    own and a :class:`Switchboard` on the vendors' port decides which one gets the webhooks."""
    text = world.config_path.read_text()
    daemons = []
    for i in range(n):
        port = world.http_port if i == 0 and not switchboard else free_port()
        config = re.sub(r"(?m)^port = \d+$", f"port = {port}", text).replace(
            "[syncd]\n", f'[syncd]\ninstance = "replica-{i}"\nreplicas = {n}\n', 1)
        path = world.directory / f"config-replica-{i}.toml"
        path.write_text(config)
        daemons.append(Daemon(world, name=f"replica-{i}", config_path=path, port=port))
    return daemons


class Switchboard:
    """A TCP forwarder on the port the vendors send webhooks to, towards one replica at a
    time (:meth:`route`). The replica that receives a webhook wakes its own workers at once
    and so takes most of the work: routing the webhooks to a round's victim makes it meet
    the round's failpoint. A connection to a frozen replica hangs, as it would."""

    def __init__(self, port: int):
        import socket
        import threading
        self._target: int | None = None
        self._listener = socket.create_server(("127.0.0.1", port))
        self._stopped = False
        threading.Thread(target=self._accept, name="switchboard", daemon=True).start()

    def route(self, port: int) -> None:
        self._target = port

    def _accept(self) -> None:
        import socket
        import threading
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target or 0), timeout=3)
            except OSError:
                client.close()   # the replica is down: the vendor sees a failed delivery and retries
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:   # type: ignore[no-untyped-def]
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stopped = True
        self._listener.close()


def _syncd_command() -> list[str]:
    script = Path(sys.executable).with_name("syncd")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from syncd.cli import main; main()"]


@dataclass
class Daemon:
    """One ``syncd run`` child at a time, restarted as often as a test likes."""

    world: World
    proc: subprocess.Popen | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)
    name: str = "daemon"
    config_path: Path | None = None   # default: the world's; a replica has its own (instance, port)
    port: int | None = None           # where its /healthz answers; default: the world's
    # Its Postgres sessions' application_name: unique, so a test finds its own in pg_stat_activity.
    app_name: str = field(default_factory=lambda: f"syncd-{uuid.uuid4().hex[:12]}")

    def start(self, failpoints: str = "", wait_ready: bool = True) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        self.starts += 1
        log_path = self.world.directory / f"{self.name}-{self.starts}.log"
        self.logs.append(log_path)
        # PGAPPNAME (read by libpq): its Postgres sessions carry the daemon's name (pg_stat_activity).
        env = {**os.environ, **self.world.env, FAILPOINTS_ENV: failpoints, "PYTHONFAULTHANDLER": "1",
               "PGAPPNAME": self.app_name}
        with open(log_path, "wb") as out:
            config = self.config_path or self.world.config_path
            self.proc = subprocess.Popen([*_syncd_command(), "run", "--config", str(config)],
                                         env=env, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=self.world.directory)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        url = f"http://127.0.0.1:{self.port or self.world.http_port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before ready:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready in {timeout}s:\n{self.tail()}")

    def wait_killed(self, timeout: float = 20.0) -> str:
        """Wait for the child to die at its failpoint; returns the failpoint's name."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"failpoint never fired in {timeout}s:\n{self.tail()}") from None
        assert code == -signal.SIGKILL, f"daemon exited {code}, not by SIGKILL:\n{self.tail()}"
        fired = self.fired()
        assert fired is not None, f"killed, but not by a failpoint:\n{self.tail()}"
        return fired

    def fired(self) -> str | None:
        for line in self.logs[-1].read_text(errors="replace").splitlines():
            if line.startswith(FIRED):
                return line.split()[1]
        return None

    def stopped_at(self) -> str | None:
        """The failpoint at which the child froze itself (``point@stop``), if it did."""
        for line in self.logs[-1].read_text(errors="replace").splitlines():
            if line.startswith(STOPPED):
                return line.split()[1]
        return None

    def wait_stopped(self, timeout: float = 20.0) -> str:
        """Wait for the child to freeze at its ``@stop`` failpoint; returns the point's name."""
        point = wait_for(lambda: self.stopped_at() if self._state() == "T" else None, timeout=timeout)
        assert point, f"the daemon never froze at its failpoint in {timeout}s:\n{self.tail()}"
        return str(point)

    def _state(self) -> str:
        """The process state letter from /proc (T: stopped)."""
        assert self.proc is not None
        try:
            return Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return "?"

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: a frozen process carries on where it stood (its next step is a vendor request)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM, as systemd stops it; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while True:
            # A frozen child must run to see the SIGTERM; and a stop point it meets while
            # draining freezes it again after our SIGCONT (the crash loop with stalls hung
            # there for good: a stopped process does not act on SIGABRT either). So keep
            # waking it until it exits.
            self.proc.send_signal(signal.SIGCONT)
            try:
                return self.proc.wait(0.5)
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    break
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGABRT)   # faulthandler: every thread's stack into the log
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        raise AssertionError(f"no clean stop in {timeout}s after SIGTERM:\n{self.tail(150)}")

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        if not self.logs:
            return ""
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-lines:])


# -- waiting ------------------------------------------------------------------

def settle(world: World, store: Store, timeout: float = 40.0, quiet: float = 0.5) -> None:
    """Until the queue is empty and no webhook is in flight, continuously for ``quiet`` s
    (a write of ours comes back as a webhook, which dirties the item once more)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        busy = store.queue_depth() > 0 or any(s.webhooks.pending() for s in (world.zendesk, world.jira))
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet:
            return
        time.sleep(0.05)
    raise AssertionError(f"queue did not drain in {timeout}s (depth {store.queue_depth()})")


# -- what a person would see ------------------------------------------------------

def ticket_bodies(world: World, ticket_id: int) -> list[str]:
    with world.zendesk.lock:
        return [str(c.get("plain_body") or c.get("body") or "") for c in world.zendesk.tickets[ticket_id].comments]


def issue_bodies(world: World, issue_id: int) -> list[str]:
    with world.jira.lock:
        return [adf_to_text(c.body) for c in world.jira.issues[issue_id].comments]


def issues_for_origin(world: World, origin: str) -> list[int]:
    label = origin_label(origin)
    with world.jira.lock:
        return [i.id for i in world.jira.issues.values() if label in i.labels]


def mentions(bodies: Iterable[str], token: str) -> int:
    return sum(1 for b in bodies if token in b)


@dataclass
class Books:
    """What should be there, kept by whoever drives the actors."""

    escalated: set[int] = field(default_factory=set)                       # ticket ids
    to_jira: list[tuple[int, str]] = field(default_factory=list)           # (ticket id, token) said on the ticket
    to_zendesk: list[tuple[int, str]] = field(default_factory=list)        # (ticket id, token) said in Jira


@dataclass
class Verdict:
    duplicates: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.duplicates and not self.losses

    def __str__(self) -> str:
        return f"duplicates={self.duplicates} losses={self.losses}"


def check(world: World, store: Store, books: Books) -> Verdict:
    """Every invariant of issue 5 point 1, from the vendors' side and the store's."""
    v = Verdict()
    for ticket in sorted(books.escalated):
        origin = f"zendesk:{ticket}"
        issues = issues_for_origin(world, origin)
        if len(issues) > 1:
            v.duplicates.append(f"{origin}: {len(issues)} Jira issues")
        if not issues:
            v.losses.append(f"{origin}: no Jira issue")
            continue
        links = store.links_for_desk(ItemRef.parse(origin))
        if [l.issue_id for l in links] != [str(issues[0])]:
            v.losses.append(f"{origin}: links {[l.issue_id for l in links]}, issue {issues[0]}")
        _tally(v, f"{origin}: escalation note", mentions(ticket_bodies(world, ticket), ESCALATION_NOTE))
        first = ticket_bodies(world, ticket)[0]   # already the issue's description
        if mentions(issue_bodies(world, issues[0]), first):
            v.duplicates.append(f"{origin}: first comment also posted as a Jira comment")
    for ticket, token in books.to_jira:
        issues = issues_for_origin(world, f"zendesk:{ticket}")
        n = mentions(issue_bodies(world, issues[0]), token) if issues else 0
        _tally(v, f"comment {token} on the Jira issue of #{ticket}", n)
    for ticket, token in books.to_zendesk:
        n = mentions(ticket_bodies(world, ticket), token)
        _tally(v, f"note {token} on ticket #{ticket}", n)
    for ticket in sorted(books.escalated):
        for body, n in Counter(ticket_bodies(world, ticket)).items():
            if n > 1:
                v.duplicates.append(f"#{ticket}: {body[:50]!r} ×{n}")
        for issue in issues_for_origin(world, f"zendesk:{ticket}")[:1]:
            for body, n in Counter(issue_bodies(world, issue)).items():
                if n > 1:
                    v.duplicates.append(f"issue {issue}: {body[:50]!r} ×{n}")
    for ticket in sorted(books.escalated):   # a field change is not lost either: priorities agree
        issues = issues_for_origin(world, f"zendesk:{ticket}")[:1]
        with world.zendesk.lock, world.jira.lock:
            desk = world.zendesk.tickets[ticket].priority
            tracker = PRIORITIES[world.jira.issues[issues[0]].priority_id] if issues else None
        if issues and desk is not None and SHIPPED_PRIORITY[desk] != tracker:
            v.losses.append(f"#{ticket}: priority {desk} on the ticket, {tracker} on the issue")
    if store.dead_letters():
        v.losses.extend(f"dead letter {d.ref}: {d.error}" for d in store.dead_letters())
    return v


def _tally(v: Verdict, what: str, n: int) -> None:
    if n == 0:
        v.losses.append(f"{what}: missing")
    elif n > 1:
        v.duplicates.append(f"{what}: ×{n}")


def pending_intents(store: Store) -> list[str]:
    """Intents recorded but never finished (a clean stop must leave none)."""
    return store.pending_intents()


__all__ = ["Books", "Daemon", "Switchboard", "replica_daemons", "Verdict", "check", "crash_world", "issue_bodies", "issues_for_origin",
           "mentions", "pending_intents", "settle", "ticket_bodies", "wait_for"]
