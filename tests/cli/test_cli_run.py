"""``syncd run`` as systemd runs it (issue 13, findings 2 and 3): a real subprocess with a
real unix datagram socket as ``$NOTIFY_SOCKET``. READY=1 only once the port answers,
WATCHDOG=1 while the workers turn, STOPPING=1 on SIGTERM; a port that cannot be bound
exits 1 naming the config keys (never a half-alive daemon); a config error exits 78."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from syncd import sdnotify
from syncd.domain import ItemRef
from syncd.sandbox import World, build_world
from syncd.store import Store
from syncd.worker import WorkerPool, WorkerSettings


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = build_world(tmp_path / "world")
    yield w
    w.stop()


class NotifySocket:
    """What systemd listens on: a unix datagram socket (short path: sun_path is 108 bytes)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sdn", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def receive(self, timeout: float) -> str | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return None

    def wait_for(self, field: str, timeout: float = 60.0) -> list[str]:
        """Every message up to and including the first carrying ``field`` (e.g. ``READY=1``)."""
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(max(0.01, deadline - time.monotonic()))
            if message is None:
                break
            seen.append(message)
            if field in message.split("\n"):
                return seen
        raise AssertionError(f"no {field} within {timeout}s; got {seen}")

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    s = NotifySocket()
    yield s
    s.close()


def _run(world: World, config: Path, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, **world.env, **env}
    return subprocess.Popen([sys.executable, "-m", "syncd", "run", "--config", str(config)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return r.status


def test_run_notifies_ready_after_bind_feeds_the_watchdog_and_says_stopping(world: World, notify_socket) -> None:
    proc = _run(world, world.config_path, NOTIFY_SOCKET=notify_socket.path, WATCHDOG_USEC="1000000")
    try:
        ready = notify_socket.wait_for("READY=1")
        assert _healthz(world.http_port) == 200   # ready means the port answers already
        assert "WATCHDOG=1" not in "\n".join(ready[:-1])
        assert f"MAINPID={proc.pid}" in ready[-1]
        for _ in range(2):   # fed every WatchdogSec/2 while the workers turn
            notify_socket.wait_for("WATCHDOG=1", timeout=30)
        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1", timeout=30)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_run_exits_1_when_its_port_cannot_be_bound(world: World, notify_socket) -> None:
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", world.http_port))
    taken.listen()
    try:
        proc = _run(world, world.config_path, NOTIFY_SOCKET=notify_socket.path)
        _, err = proc.communicate(timeout=120)
    finally:
        taken.close()
    assert proc.returncode == 1, err
    assert f"cannot listen on 127.0.0.1:{world.http_port} (http.host, http.port in {world.config_path})" in err
    assert "syncd_started" not in err
    assert notify_socket.receive(0.2) is None   # never READY=1


def test_run_exits_78_on_a_config_error(world: World, tmp_path) -> None:
    bad = world.directory / "bad.toml"
    bad.write_text(world.config_path.read_text().replace("workers = 4", "wrokers = 4"))
    proc = _run(world, bad)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 78, err
    assert f"error: {bad}: syncd.wrokers: a known key" in err


class _StuckEngine:
    """Reconciles block until released: a worker stuck in one item."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def reconcile(self, ref: ItemRef, dry_run: bool = False, outcome: object = None, reported: float | None = None):
        self.release.wait(60)
        return outcome


def test_watchdog_stops_being_fed_while_a_worker_is_stuck(tmp_path, notify_socket) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    store.upgrade()
    engine = _StuckEngine()
    pool = WorkerPool(store, engine, "t", WorkerSettings(threads=1, lease_seconds=30, idle_wait=0.05))  # type: ignore[arg-type]
    stop = threading.Event()
    env = {"NOTIFY_SOCKET": notify_socket.path}
    feeder = threading.Thread(target=sdnotify.feed_watchdog,
                              args=(stop, 0.05, pool.stalled_for, 0.5, lambda m: sdnotify.notify(m, env)))
    pool.start()
    feeder.start()
    try:
        notify_socket.wait_for("WATCHDOG=1", timeout=10)          # idle workers turn: fed
        store.mark_dirty([ItemRef.parse("zendesk:1")], "test")
        pool.wake.set()
        deadline = time.monotonic() + 30
        while pool.stalled_for() < 1.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.stalled_for() >= 1.0, "the worker never took the item"
        while notify_socket.receive(0.01) is not None:             # pings from before the stall
            pass
        assert notify_socket.receive(1.0) is None, "fed while a worker is stuck"
        engine.release.set()
        notify_socket.wait_for("WATCHDOG=1", timeout=10)          # the worker turns again: fed again
    finally:
        engine.release.set()
        stop.set()
        feeder.join()
        pool.stop()
        store.close()


def test_run_answers_head_healthz(world: World) -> None:
    """Load balancers and ``curl -I`` probe with HEAD: 200 like GET, no body."""
    proc = _run(world, world.config_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                _healthz(world.http_port)
                break
            except OSError:
                time.sleep(0.2)
        request = urllib.request.Request(f"http://127.0.0.1:{world.http_port}/healthz", method="HEAD")
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 200 and r.read() == b""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
