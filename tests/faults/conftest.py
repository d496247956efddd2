"""Fixtures for the fault, bad-input, budget, replica and observability tests.

Like tests/e2e: the three simulators, a real syncd runtime, a real database.
Here the world is tuned per test (poll intervals, budgets, lease length), and
daemons are built by a factory so a test can start several (replicas) or one
with a short vendor timeout.

    def test_fault_x(make_world, start_daemon):
        world = make_world(jira_poll=1)
        app = start_daemon(world, vendor_timeout=1.0)
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import structlog

from syncd.testing import Observer, wait_for
from syncd.runtime import App
from syncd.sandbox import World, build_world

__all__ = ["wait_for", "Logs", "escalate", "get", "comments_with"]


@pytest.fixture
def make_world(tmp_path, db_url) -> Iterator[Callable[..., World]]:
    """``make_world(rpm={"zendesk": 600}, lease_seconds=2, **build_world_kwargs)``.

    Pollers default to an hour so that webhooks carry the changes, unless a test
    wants them running."""
    worlds: list[World] = []

    def make(rpm: dict[str, int] | None = None, lease_seconds: int | None = None,
             database_url: str | None = None, **kw: Any) -> World:
        kw = {"zendesk_poll": 3600, "jira_poll": 3600, "intercom_poll": 3600, "log_level": "info", **kw}
        world = build_world(tmp_path / f"world{len(worlds)}", database_url=database_url or db_url, **kw)
        worlds.append(world)
        tune(world, rpm or {}, lease_seconds)
        return world

    yield make
    for w in worlds:
        w.stop()


def tune(world: World, rpm: dict[str, int], lease_seconds: int | None) -> None:
    """Edit the rendered config.toml the way an admin would edit the file."""
    text = world.config_path.read_text()
    for vendor, value in rpm.items():
        text = re.sub(rf"(\[{vendor}\][^\[]*?requests_per_minute = )\d+", rf"\g<1>{value}", text, flags=re.S)
    if lease_seconds is not None:
        text = re.sub(r"lease_seconds = \d+", f"lease_seconds = {lease_seconds}", text)
    world.config_path.write_text(text)


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., App]]:
    """``start_daemon(world, instance="r1", serve_http=True, vendor_timeout=None)``; stopped at teardown.
    ``vendor_timeout`` None: the config's ``vendor_timeout_seconds`` (30 s)."""
    apps: list[App] = []

    def start(world: World, instance: str | None = None, serve_http: bool = True,
              vendor_timeout: float | None = None) -> App:
        settings = world.settings()
        if instance is not None:
            settings = dataclasses.replace(settings, core=dataclasses.replace(settings.core, instance=instance))
        app = App.build(settings, vendor_timeout=vendor_timeout)
        apps.append(app)
        app.start(serve_http=serve_http)
        return app

    yield start
    for app in reversed(apps):
        app.stop()


@pytest.fixture
def look_at() -> Callable[[World], Observer]:
    return Observer


@dataclass(frozen=True)
class Got:
    status: int
    body: Any
    text: str


def get(app: App, path: str) -> Got:
    """GET one of the daemon's own endpoints on its real port."""
    r = httpx.get(f"http://127.0.0.1:{app.http_port}{path}", timeout=10)
    try:
        body = r.json()
    except ValueError:
        body = None
    return Got(r.status_code, body, r.text)


class Logs:
    """Every structlog event of the process while the test runs (all threads)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, _logger: Any, _method: str, event: dict[str, Any]) -> Any:
        with self._lock:
            self.events.append(dict(event))
        raise structlog.DropEvent

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == name]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so a fixture's teardown knows whether the test failed."""
    outcome = yield
    setattr(item, f"report_{call.when}", outcome.get_result())


def _dump_events(request: pytest.FixtureRequest, tmp_path: Path, events: list[dict[str, Any]]) -> None:
    """A failed fault test leaves every event the daemon logged, one JSON object a line:
    a loss seen once under load is diagnosed from what it left, not from a rerun that passes."""
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    path = tmp_path / "events.jsonl"
    with path.open("w") as out:
        for event in events:
            out.write(json.dumps(event, default=repr) + "\n")
    print(f"\n{len(events)} daemon events of the failed test: {path}")


@pytest.fixture
def logs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Logs]:
    captured = Logs()
    old = structlog.get_config()["processors"]
    # Keep the project's processors but the renderer and the level filter (an earlier
    # test may have configured "warning"), and read every event they hand on.
    keep = [p for p in old[:-1] if p is not structlog.stdlib.filter_by_level]
    structlog.configure(processors=[*keep, captured])
    try:
        yield captured
    finally:
        structlog.configure(processors=old)
        _dump_events(request, tmp_path, captured.events)


def escalate(world: World, look: Observer, subject: str = "Checkout fails") -> tuple[int, str]:
    """A ticket escalated by tag; returns (ticket id, Jira key) once the key shows on the ticket."""
    ticket = world.zendesk.create_ticket(subject, "Paying by card fails.")
    world.zendesk.agent_set(ticket, add_tags=["jira_escalate"])
    key_field = f"custom:{world.field_id(9001)}"
    key = wait_for(lambda: look.ticket(ticket).fields.get(key_field))
    assert isinstance(key, str), "the escalation did not show a Jira key on the ticket"
    return ticket, key


def comments_with(world: World, key: str, text: str) -> int:
    """How many comments on the Jira issue hold ``text`` (read from the simulator's state)."""
    with world.jira.lock:
        rec = world.jira.issue(key)
        return sum(1 for c in rec.comments if text in str(c.body))


def notes_with(world: World, ticket: int, text: str) -> int:
    with world.zendesk.lock:
        return sum(1 for c in world.zendesk.tickets[ticket].comments if text in str(c.get("body", "")))


# Backend-independent modules run on SQLite only (the store is not their subject):
#     pytestmark = SQLITE_ONLY
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _hang_up(*socks: Any) -> None:
    """Shut down, then close: a bare close() of a socket another thread is blocked reading
    does not send FIN (the blocked read still holds it), so the server kept the session --
    and its advisory locks -- alive behind a "cut" proxy, which a restart never does."""
    import socket
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


class TcpProxy:
    """A loopback TCP forwarder in front of the shared Postgres. ``cut()`` drops every
    connection and refuses new ones, as a restarting database would, without touching
    the real server other tests use; ``blackhole()`` keeps every connection open but
    moves nothing (new ones are accepted and go nowhere), as a silent network partition
    would; ``restore()`` lets connections through again (held bytes then flow on)."""

    def __init__(self, host: str, port: int):
        import socket
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._flowing = threading.Event()
        self._flowing.set()
        self._pairs: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, name="pg-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: Any) -> None:
        import socket
        self._flowing.wait()          # blackholed: the connection is accepted, then nothing
        try:
            upstream = socket.create_connection(self.target, timeout=3)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self._pairs.append((client, upstream))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()  # blackholed: hold what was read until restored
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(src, dst)

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _hang_up(*pair)

    def blackhole(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._open.set()
        self._flowing.set()

    def close(self) -> None:
        self._stopped = True
        self.cut()
        self._flowing.set()
        self._listener.close()
