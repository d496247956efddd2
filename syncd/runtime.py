"""The composition root: settings → store → connectors → engine → workers,
pollers and the webhook server. The connectors come from :mod:`syncd.wiring`,
the one place that builds vendor clients (with budgets and timeouts)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn

import sqlalchemy.exc as sa_exc

from . import learned, sdnotify
from .budget import Budget
from .config import Settings
from .connectors.base import DeskConnector, TrackerConnector
from .connectors.calls import last_success
from .errors import VendorError
from .engine import Engine
from .errors import SyncdError
from .failpoints import failpoint
from .http_server import server_config
from .issue_hints import IssueHints
from .locks import LinkLocks
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import METRICS
from .poll_stamps import ReconciledStamps, same_as_view
from .pollers import Poller, PollSource
from .readiness import ReadinessProbe
from . import memory
from .retention import Housekeeper
from .retry import RetryPolicy
from .snapshots import SnapshotCache
from .store import Store, StoreUnavailable
from .webhook_flow import WebhookFlow
from .webhooks import Response, WebhookConfig, make_app
from .wiring import Clients, build_budgets, mappings
from .worker import WorkerPool, WorkerSettings

log = structlog.get_logger("syncd.runtime")


class BindFailed(SyncdError):
    """The HTTP port could not be bound: ``syncd run`` exits 1 naming http.host/http.port."""


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (OSError when it cannot be had)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(False)
    return listener


def watchdog_stuck_after(settings: Settings) -> float:
    """A worker that has not gone round its loop for this long is stuck: stop feeding
    systemd's watchdog. Longer than a reconcile may legitimately take (a lease is lost
    after ``lease_seconds``; each vendor call may wait ``vendor_timeout_seconds``)."""
    return max(2.0 * settings.core.lease_seconds, 10.0 * settings.core.vendor_timeout_seconds)


def _still_holds(poller: Poller, database_ok_at: float) -> bool:
    """A poller's last error stays until its next poll, which after failures waits up to
    300 s; report it only while nothing shows it has cleared: a database error clears
    once the database answered after it, a vendor error once the same vendor operation
    succeeded after it (any caller's -- e.g. a reconcile's search)."""
    error, at = poller.last_exception, poller.last_error_at
    if error is None or at is None:
        return True
    if isinstance(error, VendorError):
        return last_success(error.vendor, error.operation) <= at
    if isinstance(error, (StoreUnavailable, sa_exc.DBAPIError)):
        return database_ok_at <= at
    return True


def intent_settle_seconds(vendor_timeout: float) -> float:
    """How long a pending comment/note intent must be old before recovery, not finding
    the write on the vendor side, writes it again. The call that recorded it may have
    retried inside itself (a 429, a 5xx) for up to the retry policy's time budget before
    its last attempt, which may land as late as one timeout after it was given up on:
    the crash loop with chaos doubled a comment when this counted from the intent's
    creation with 2 timeouts only (429 wait, then an answer lost past the timeout)."""
    return RetryPolicy().total_budget + 2 * vendor_timeout


def _keep_learned_facts(store: Store, desks: dict[str, DeskConnector]) -> None:
    """What a desk connector learns of its account (so far: what Zendesk's comment count
    counts) is kept in the store, so a restarted daemon trusts poll views at once."""
    zendesk = desks.get("zendesk")
    counts = getattr(zendesk, "comment_count", None)
    if zendesk is not None and counts is not None:
        learned.keep(store, counts, learned.fact_key("zendesk", "comment_count", zendesk.access.url))  # type: ignore[attr-defined]


def _poll_sources(settings: Settings, desks: dict[str, DeskConnector], tracker: TrackerConnector) -> list[PollSource]:
    sources = [PollSource("jira", tracker.poll, settings.jira.poll_interval_seconds)]
    if "zendesk" in desks and settings.zendesk is not None:
        sources.append(PollSource("zendesk", desks["zendesk"].poll, settings.zendesk.poll_interval_seconds))
    if "intercom" in desks and settings.intercom is not None:
        sources.append(PollSource("intercom", desks["intercom"].poll, settings.intercom.poll_interval_seconds))
    return sources


@dataclass
class App:
    settings: Settings
    store: Store
    engine: Engine
    workers: WorkerPool
    pollers: list[Poller]
    owner: str
    budgets: dict[str, Budget] = field(default_factory=dict)
    poll_stamps: ReconciledStamps | None = None    # what reconciles last saw: polls skip the unchanged
    server: uvicorn.Server | None = None
    admin_server: uvicorn.Server | None = None    # the read-only admin page ([admin] listen), when configured
    last_webhook_at: float | None = None
    webhook_flow: WebhookFlow = field(default_factory=WebhookFlow)
    _server_thread: threading.Thread | None = field(default=None, repr=False)
    _admin_thread: threading.Thread | None = field(default=None, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    # Set by SIGTERM/SIGINT in run_forever: a server that ends during start because of it is a clean stop.
    _stop_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    readiness_probe: ReadinessProbe = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.readiness_probe = ReadinessProbe(self.readiness)

    @classmethod
    def build(cls, settings: Settings, migrate: bool = True, vendor_timeout: float | None = None,
              role: str = "daemon") -> "App":
        """``vendor_timeout``: overrides ``[syncd] vendor_timeout_seconds`` (tests)."""
        if vendor_timeout is None:
            vendor_timeout = settings.core.vendor_timeout_seconds
        c = settings.core
        store = Store.open(c.database_url, busy_timeout=c.database_busy_timeout_seconds,
                           connect_timeout=c.database_connect_timeout_seconds,
                           statement_timeout=c.database_statement_timeout_seconds)
        if migrate:
            store.upgrade()
        budgets = build_budgets(settings, store, role)
        desks, tracker = Clients.of(settings, vendor_timeout, budgets).connectors()
        _keep_learned_facts(store, desks)
        owner = settings.core.instance
        settle = intent_settle_seconds(vendor_timeout)
        # What a reconcile last saw of each item: a poll that finds it unchanged since queues nothing.
        reconciled = ReconciledStamps(capacity=settings.core.poll_stamps_max_items)
        snapshots = SnapshotCache(max_comments=settings.core.snapshot_max_comments, on_put=reconciled.remember)
        # A poll view that proves a desk item unchanged settles the engine's copy of it.
        reconciled.on_settled = lambda view: METRICS.inc(
            "snapshot_settled_by_poll", snapshots.settle(view, same_as_view(view)))
        engine = Engine(store, desks, tracker, mappings(settings),
                        locks=LinkLocks(store.link_lock), intent_settle_seconds=settle,
                        snapshots=snapshots,
                        hints=IssueHints(max_bytes=settings.core.issue_hints_max_bytes),
                        # The same reasoning for a create, but never under Jira search's own lag.
                        create_settle_seconds=max(10.0, settle))
        c = settings.core
        workers = WorkerPool(store, engine, owner, WorkerSettings(
            threads=c.workers, lease_seconds=c.lease_seconds, max_attempts=c.max_attempts,
            backoff_base=c.backoff_base_seconds, backoff_max=c.backoff_max_seconds))
        pollers = [Poller(store, s, owner, on_items=workers.wake.set, lease_ttl=max(float(c.lease_seconds), s.interval * 3),
                          accounted=reconciled.covers)
                   for s in _poll_sources(settings, desks, tracker)]  # type: ignore[arg-type]
        app = cls(settings, store, engine, workers, pollers, owner, budgets, reconciled)
        app._register_metrics()
        return app

    def _register_metrics(self) -> None:
        METRICS.gauge("queue_depth", self.store.queue_depth)
        METRICS.gauge("oldest_dirty_age_seconds", lambda: self.store.oldest_dirty_age() or 0.0)   # 0: nothing waits
        METRICS.gauge("dead_letters", self.store.count_dead_letters)
        METRICS.gauge("workers_busy", lambda: self.workers.busy)
        # The memories that fill with traffic up to their bounds (a soak watches them level off).
        METRICS.gauge("snapshot_comments", lambda: self.engine.snapshots.comments_held)
        METRICS.gauge("issue_hints_bytes", lambda: self.engine.hints.bytes_held)
        stamps = self.poll_stamps
        if stamps is not None:
            METRICS.gauge("poll_stamps", lambda: len(stamps))
        METRICS.labelled_gauge("budget_requests_per_minute", "vendor",
                               lambda: {v: b.per_minute for v, b in self.budgets.items()})
        # They only grow: counters (syncd_budget_*_total), so rate() works on them.
        METRICS.labelled_counter("budget_used_requests", "vendor", lambda: {v: b.used for v, b in self.budgets.items()})
        METRICS.labelled_counter("budget_wait_seconds", "vendor",
                               lambda: {v: round(b.waited, 3) for v, b in self.budgets.items()})

    # -- HTTP -------------------------------------------------------------
    def asgi(self) -> Any:
        s = self.settings
        config = WebhookConfig(
            zendesk_secret=s.zendesk.webhook_secret.reveal().encode() if s.zendesk else None,
            jira_secret=s.jira.webhook_secret.reveal().encode(),
            intercom_secret=s.intercom.client_secret.reveal().encode() if s.intercom else None,
            max_body_bytes=s.http.max_body_bytes, own_actors=self._own_actors(),
            body_timeout=s.http.body_timeout_seconds, max_headers=s.http.max_headers)
        routes = {("GET", "/readyz"): self._readyz, ("GET", "/metrics"): self._metrics}
        return make_app(self.store, config, extra_routes=routes, on_stored=self._on_stored, flow=self.webhook_flow,
                        hints=self.engine.hints, echo=self.engine.echo_delivered)

    def _own_actors(self) -> dict[str, str]:
        """syncd's own account on each vendor whose webhooks name the actor."""
        own = {"jira": self.engine.tracker.account_id,
               **{name: desk.own_actor for name, desk in self.engine.desks.items()}}
        return {k: v for k, v in own.items() if v}

    def _on_stored(self, refs: tuple[Any, ...]) -> None:
        self.last_webhook_at = time.time()
        METRICS.inc("webhooks_stored")
        if refs:   # syncd's own echo is stored for dedupe but queues nothing: no one to wake
            self.workers.wake.set()

    def readiness(self) -> dict[str, Any]:
        """What /readyz answers and ``syncd status`` prints: each problem names its part
        (``database``, ``poller jira``, ``worker``) and the error as the part saw it."""
        problems: list[str] = []
        try:
            depth, age, dead = self.store.queue_depth(), self.store.oldest_dirty_age(), self.store.count_dead_letters()
        except Exception as e:
            reason = getattr(e, "reason", "database_unavailable")
            return {"status": "unready", "problems": [f"database: {reason}: {e}"], "reason": reason}
        # Reads work but writes fail (a full disk, a read-only or locked file): deliveries are
        # refused meanwhile, so the daemon is not ready even with an empty queue.
        outage = self.store.check_outage()
        if outage is not None:
            problems.append(f"database: {outage.reason}: {outage.error}")
        checked_at = time.time()   # the database answered the reads above, just now
        for p in self.pollers:
            if p.last_error and _still_holds(p, checked_at):
                problems.append(f"poller {p.source.name}: {p.last_error}")
        if self.workers.claim_error:
            problems.append(f"database: {self.workers.claim_error}")
        if self.workers.last_error and depth:
            # With the queue drained, the item that failed has since been reconciled (or is
            # a dead letter, counted below): the error no longer holds.
            problems.append(f"worker: {self.workers.last_error}")
        webhook_age = None if self.last_webhook_at is None else round(time.time() - self.last_webhook_at, 1)
        status = "unready" if outage is not None else "degraded" if problems else "ready"
        return {"status": status, "problems": problems, "queue_depth": depth,
                "oldest_dirty_age_seconds": None if age is None else round(age, 1), "dead_letters": dead,
                "last_webhook_age_seconds": webhook_age,
                # Warnings do not make the daemon unready: a forger could otherwise cause them.
                "warnings": self.webhook_flow.warnings(), "webhooks": self.webhook_flow.report(),
                "pollers": {p.source.name: {"leader": p.leader, "last_success": p.last_success} for p in self.pollers},
                **({"reason": outage.reason} if outage is not None else {})}

    async def _readyz(self) -> Response:
        body = await self.readiness_probe.answer()
        return Response.json(200 if body["status"] == "ready" else 503, body)

    def _metrics(self) -> Response:
        return Response(200, METRICS.render().encode(), METRICS_CONTENT_TYPE)

    # -- life cycle -------------------------------------------------------
    def start(self, serve_http: bool = True) -> None:
        self.store.acquire_daemon_lock()   # SQLite: refuse to be the second daemon on the file
        if self.store.holds_daemon_lock:
            # The lock proves the daemon before us is gone (the kernel dropped its flock): its
            # claims and poll leadership are taken at once, not waited out. Pending intents
            # still follow their settle rule. (Postgres replicas keep lease semantics.)
            claims, polls = self.store.take_over_dead_process()
            if claims or polls:
                log.info("previous_daemon_taken_over", claims=claims, poll_leases=polls)
        # Bind first: a port that cannot be bound stops the start with an error (exit 1),
        # never a daemon without webhooks, health or metrics that looks alive.
        listener = self._bind() if serve_http else None
        admin = self.settings.admin
        admin_listener = self._bind_admin(listener) if serve_http and admin.listen else None
        self.workers.start()
        for p in self.pollers:
            p.start()
        threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True).start()
        if listener is not None:
            self.server, self._server_thread = self._serve(self.asgi(), listener, "http")
            if not self.server.started:
                self.stop()
                if self._stop_requested.is_set():
                    # SIGTERM arrived while starting (seen in the crash loop: the process was frozen
                    # before its HTTP server came up and told to stop as it resumed): a clean stop.
                    log.info("stopped_while_starting")
                    return
                raise BindFailed(f"the HTTP server on {self.settings.http.host}:{self.settings.http.port} "
                                 "(http.host, http.port) did not start; see the log above")
        if admin_listener is not None:
            from .admin import make_admin_app
            from .admin_current import CurrentValues
            current = CurrentValues(self.engine.snapshots, mappings(self.settings))
            self.admin_server, self._admin_thread = self._serve(
                make_admin_app(self.store, admin, self.readiness, current), admin_listener, "admin")
            if not self.admin_server.started:
                self.stop()
                if self._stop_requested.is_set():
                    log.info("stopped_while_starting")
                    return
                raise BindFailed(f"the admin page on {admin.listen} (admin.listen) did not start; see the log above")
            log.info("admin_page_serving", listen=admin.listen)
        log.info("syncd_started", owner=self.owner, workers=self.settings.core.workers,
                 pollers=[p.source.name for p in self.pollers])

    def _serve(self, app: Any, listener: socket.socket, name: str) -> tuple[uvicorn.Server, threading.Thread]:
        """uvicorn on ``listener`` in a thread of its own; returns once it started (or gave up)."""
        server = uvicorn.Server(server_config(app, self.settings.http))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=name, daemon=True)
        thread.start()
        failpoint("http_starting")
        # Up to 10 s of this process's own time, counted in naps rather than by the clock: a
        # process frozen while starting (SIGSTOP, a paused VM) must not wake past a deadline
        # and give up on a server that is about to start (crash loop seed 7101, round 7).
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.02)
        return server, thread

    def _bind(self) -> socket.socket:
        h = self.settings.http
        try:
            return _listen(h.host, h.port)
        except OSError as e:
            self.store.release_daemon_lock()
            raise BindFailed(f"cannot listen on {h.host}:{h.port} (http.host, http.port in "
                             f"{self.settings.path}): {e.strerror or e}") from None

    def _bind_admin(self, http_listener: socket.socket | None) -> socket.socket:
        a = self.settings.admin
        try:
            return _listen(a.host, a.port)
        except OSError as e:
            if http_listener is not None:
                http_listener.close()
            self.store.release_daemon_lock()
            raise BindFailed(f"cannot listen on {a.listen} (admin.listen in {self.settings.path}): "
                             f"{e.strerror or e}") from None

    @property
    def http_port(self) -> int | None:
        if self.server is None or not self.server.servers:
            return None
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def admin_port(self) -> int | None:
        if self.admin_server is None or not self.admin_server.servers:
            return None
        return self.admin_server.servers[0].sockets[0].getsockname()[1]

    def _housekeeping(self) -> None:
        """Retention (:mod:`syncd.retention`): settled intents, processed inbox bodies,
        old delivery ids, audit rows and dead letters, every ``[retention] every_seconds``."""
        keeper = Housekeeper(self.store, self.settings.retention, self.engine.intent_settle_seconds)
        while not self._stopped.wait(self.settings.retention.every_seconds):
            try:
                keeper.run()
            except Exception as e:   # the database may be down: try again next round
                log.warning("housekeeping_failed", error=f"{type(e).__name__}: {e}")
            # Retention just freed rows and bodies: hand the arenas' free pages back (syncd/memory.py).
            memory.trim()

    def stop(self) -> None:
        """Clean stop: no new deliveries, pollers stop, workers finish what they hold."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        for server, thread in ((self.admin_server, self._admin_thread), (self.server, self._server_thread)):
            if server is not None:
                server.should_exit = True
                if thread is not None:
                    thread.join(10)
        for p in self.pollers:
            p.stop()
        self.workers.stop()
        self.store.close()
        log.info("syncd_stopped", owner=self.owner)

    def run_forever(self) -> None:
        """``syncd run``: until SIGTERM/SIGINT."""
        stop = self._stop_requested
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        if self._stopped.is_set():   # told to stop while starting
            return
        # Type=notify: ready only now, migrated (build) and bound (start).
        sdnotify.notify(f"READY=1\nSTATUS=serving on {self.settings.http.host}:{self.http_port}\nMAINPID={os.getpid()}")
        interval = sdnotify.watchdog_interval()
        if interval is not None:
            threading.Thread(target=sdnotify.feed_watchdog, name="watchdog", daemon=True,
                             args=(self._stopped, interval, self.workers.stalled_for,
                                   watchdog_stuck_after(self.settings))).start()
        stop.wait()
        sdnotify.notify("STOPPING=1")
        self.stop()
