"""The machinery every vendor simulator shares.

A simulator is a real HTTP/1.1 server on 127.0.0.1 (stdlib ``ThreadingHTTPServer``,
so the simulators add no dependency) with:

* a route table of ``(method, path regex, operationId, handler)``; the operationId is
  the vendor's own name for the operation in its OpenAPI document;
* a controllable :class:`Clock` shared by the state and the webhook sender;
* :class:`Knobs` — latency, injected faults (5xx, 429, timeouts, connection resets),
  account rate limits, webhook faults (drop, duplicate, delay, reorder);
* accounting: every request is recorded as a :class:`Recorded` row;
* observers: callables that see every (request, response) pair — the contract
  checker hangs off this;
* a control API under ``/_sim/`` on the same port (knobs, clock, request log, reset);
* a :class:`~syncd.sim.webhook_sender.WebhookSender` (its own module) that delivers
  signed webhooks on its own thread and retries a non-2xx answer the way the real
  services do.

Vendor modules subclass :class:`SimServer`, add routes and state, and override
:meth:`SimServer.rate_limited` to answer 429 with the vendor's own headers.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from syncd.sim.webhook_sender import WebhookKnobs, WebhookSender

JSON = Any


class Clock:
    """Wall-clock time plus an offset the tests may move forward.

    Real time keeps flowing (the daemon's own timers run on real time), but a
    test can jump the vendors' notion of "now" — e.g. past Zendesk's one-minute
    export exclusion — with :meth:`advance`.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def set(self, epoch_seconds: float) -> None:
        with self._lock:
            self._offset = epoch_seconds - time.time()


@dataclass(frozen=True)
class Recorded:
    vendor: str
    operation: str
    method: str
    path: str
    status: int
    latency_ms: float
    at: float


@dataclass
class Fault:
    """One injected fault rule.

    ``kind``: ``"status"`` (answer ``status``, e.g. 500/503), ``"429"`` (rate limited,
    vendor headers, ``retry_after`` seconds), ``"timeout"`` (stall ``stall`` seconds
    before answering), ``"reset"`` (close the connection with RST, no answer).
    Applies to ``operation`` (an operationId; ``None`` = every operation) with
    probability ``fraction``, at most ``count`` times (``None`` = unbounded).
    """

    kind: str
    operation: str | None = None
    fraction: float = 1.0
    count: int | None = None
    status: int = 503
    retry_after: float = 1.0
    stall: float = 30.0

    def matches(self, operation: str, rng: random.Random) -> bool:
        if self.operation is not None and self.operation != operation:
            return False
        if self.count is not None and self.count <= 0:
            return False
        return rng.random() < self.fraction


@dataclass
class Knobs:
    latency: tuple[float, float] = (0.0, 0.0)   # seconds, uniform in [lo, hi]
    faults: list[Fault] = field(default_factory=list)
    rate_limit: int | None = None               # requests per rate_window, whole account
    rate_window: float = 60.0
    webhooks: WebhookKnobs = field(default_factory=WebhookKnobs)
    seed: int = 0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]   # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    operation: str = ""

    def json(self) -> JSON:
        if not self.body:
            return None
        return json.loads(self.body)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: JSON | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class SimError(Exception):
    """Raised by handlers to answer an error in the vendor's own error shape."""

    def __init__(self, status: int, body: JSON, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.response = Response(status, body, headers or {})


Handler = Callable[[Request], Response]
Observer = Callable[["SimServer", Request, Response], None]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler


class _ResetConnection(Exception):
    pass


class SimServer:
    """Base class of the three vendor simulators."""

    vendor = "sim"
    # Observers of every simulator in the process (the contract checker installs one).
    global_observers: list[Observer] = []

    def __init__(self, clock: Clock | None = None, host: str = "127.0.0.1", port: int = 0):
        self.clock = clock or Clock()
        self.knobs = Knobs()
        self.lock = threading.RLock()          # guards vendor state
        self._rng = random.Random(0)
        self._routes: list[Route] = []
        self._records: list[Recorded] = []
        self._records_lock = threading.Lock()
        self._window: list[float] = []         # request times in the current rate window
        self.observers: list[Observer] = []
        self.webhooks = WebhookSender(self, rng=self._rng)
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._add_control_routes()
        self.setup_routes()

    # -- life cycle -------------------------------------------------------
    def setup_routes(self) -> None:  # overridden by vendors
        pass

    def start(self) -> "SimServer":
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sim-{self.vendor}", daemon=True)
        self._thread.start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        self.webhooks.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "SimServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "simulator not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- routing ----------------------------------------------------------
    def route(self, method: str, path: str, operation: str, handler: Handler) -> None:
        """Register ``path`` (``{name}`` segments become params; ``.json`` optional
        where the path says ``{.json}``)."""
        regex = re.escape(path).replace(r"\{\.json\}", r"(?:\.json)?")
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+?)", regex)
        self._routes.append(Route(method.upper(), re.compile(f"^{regex}$"), operation, handler))

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for r in self._routes:
            if r.method != method:
                continue
            m = r.pattern.match(path)
            if m:
                return r, m.groupdict()
        return None, {}

    # -- accounting -------------------------------------------------------
    def records(self) -> list[Recorded]:
        with self._records_lock:
            return list(self._records)

    def count(self, operation: str | None = None, method: str | None = None) -> int:
        return sum(
            1 for r in self.records()
            if (operation is None or r.operation == operation)
            and (method is None or r.method == method)
            and not r.operation.startswith("_sim")
        )

    def counts(self) -> Counter[str]:
        return Counter(r.operation for r in self.records() if not r.operation.startswith("_sim"))

    def writes(self) -> int:
        return sum(1 for r in self.records()
                   if r.method in ("POST", "PUT", "PATCH", "DELETE") and not r.operation.startswith("_sim")
                   and r.operation not in self.read_only_posts)

    # POST operations that only read (searches); not counted by :meth:`writes`.
    read_only_posts: frozenset[str] = frozenset()

    def clear_records(self) -> None:
        with self._records_lock:
            self._records.clear()

    # -- knobs ------------------------------------------------------------
    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.knobs.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.knobs.faults.clear()

    def rate_limited(self, request: Request, retry_after: float) -> Response:
        """A 429 in the vendor's own shape; vendors override the headers/body."""
        return Response(429, {"error": "rate limited"}, {"Retry-After": str(max(1, round(retry_after)))})

    def _pick_fault(self, operation: str) -> Fault | None:
        with self.lock:
            for f in self.knobs.faults:
                if f.matches(operation, self._rng):
                    if f.count is not None:
                        f.count -= 1
                    return f
        return None

    def _account_rate(self, request: Request) -> Response | None:
        limit = self.knobs.rate_limit
        if limit is None:
            return None
        now = time.monotonic()
        with self.lock:
            window = self.knobs.rate_window
            self._window = [t for t in self._window if now - t < window]
            if len(self._window) >= limit:
                retry_after = window - (now - self._window[0])
                return self.rate_limited(request, retry_after)
            self._window.append(now)
        return None

    def rate_remaining(self) -> tuple[int | None, int | None]:
        limit = self.knobs.rate_limit
        if limit is None:
            return None, None
        now = time.monotonic()
        with self.lock:
            used = sum(1 for t in self._window if now - t < self.knobs.rate_window)
        return limit, max(0, limit - used)

    # -- dispatch ---------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        route, params = self._match(request.method, request.path)
        if route is None:
            request.operation = "_unknown"
            return self.not_found(request)
        request.params = params
        request.operation = route.operation
        if route.operation.startswith("_sim"):
            return route.handler(request)
        lo, hi = self.knobs.latency
        if hi > 0:
            time.sleep(self._rng.uniform(lo, hi))
        fault = self._pick_fault(route.operation)
        if fault is not None:
            if fault.kind == "reset":
                raise _ResetConnection()
            if fault.kind == "timeout":
                time.sleep(fault.stall)
            elif fault.kind == "429":
                return self.rate_limited(request, fault.retry_after)
            else:
                return Response(fault.status, self.error_body(fault.status, "injected fault"))
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        limited = self._account_rate(request)
        if limited is not None:
            return limited
        try:
            with self.lock:
                return route.handler(request)
        except SimError as e:
            return e.response

    def not_found(self, request: Request) -> Response:
        return Response(404, self.error_body(404, f"no route for {request.method} {request.path}"))

    def error_body(self, status: int, message: str) -> JSON:
        return {"error": message}

    def sign_webhook(self, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """Headers for one delivery attempt, signature included; vendors override."""
        return headers

    def authenticate(self, request: Request) -> Response | None:
        """Return a 401 answer when the request's credentials are wrong; vendors override."""
        return None

    # -- control API ------------------------------------------------------
    def _add_control_routes(self) -> None:
        self.route("GET", "/_sim/requests", "_sim.requests", self._ctl_requests)
        self.route("POST", "/_sim/knobs", "_sim.knobs", self._ctl_knobs)
        self.route("POST", "/_sim/faults", "_sim.faults", self._ctl_faults)
        self.route("DELETE", "/_sim/faults", "_sim.faults.clear", lambda r: (self.clear_faults(), Response(204))[1])
        self.route("POST", "/_sim/clock", "_sim.clock", self._ctl_clock)
        self.route("GET", "/_sim/clock", "_sim.clock.get", lambda r: Response(200, {"now": self.clock.now()}))
        self.route("POST", "/_sim/webhooks/flush", "_sim.webhooks.flush", lambda r: (self.webhooks.flush(), Response(204))[1])

    def _ctl_requests(self, request: Request) -> Response:
        rows = [r.__dict__ for r in self.records()]
        return Response(200, {"requests": rows, "counts": dict(self.counts())})

    def _ctl_knobs(self, request: Request) -> Response:
        body = request.json() or {}
        with self.lock:
            if "latency" in body:
                lat = body["latency"]
                self.knobs.latency = (float(lat), float(lat)) if isinstance(lat, (int, float)) else (float(lat[0]), float(lat[1]))
            if "rate_limit" in body:
                self.knobs.rate_limit = body["rate_limit"]
            if "rate_window" in body:
                self.knobs.rate_window = float(body["rate_window"])
            for key, value in (body.get("webhooks") or {}).items():
                if not hasattr(self.knobs.webhooks, key):
                    raise SimError(400, {"error": f"unknown webhook knob {key}"})
                setattr(self.knobs.webhooks, key, value)
            self.configure(body)
        return Response(200, {"ok": True})

    def configure(self, body: dict[str, JSON]) -> None:
        """Vendor-specific knobs from ``POST /_sim/knobs``; vendors override."""

    def _ctl_faults(self, request: Request) -> Response:
        body = request.json() or {}
        self.inject(Fault(**body))
        return Response(201, {"ok": True})

    def _ctl_clock(self, request: Request) -> Response:
        body = request.json() or {}
        if "advance" in body:
            self.clock.advance(float(body["advance"]))
        if "set" in body:
            self.clock.set(float(body["set"]))
        return Response(200, {"now": self.clock.now()})

    def _record(self, request: Request, response: Response, started: float) -> None:
        row = Recorded(self.vendor, request.operation, request.method, request.path,
                       response.status, (time.monotonic() - started) * 1000.0, time.time())
        with self._records_lock:
            self._records.append(row)
        if not request.operation.startswith("_sim"):
            for observer in [*SimServer.global_observers, *self.observers]:
                observer(self, request, response)


def _make_handler(sim: SimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"syncd-sim-{sim.vendor}"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; with Nagle's algorithm the
            # second waits for the client's delayed ACK (~40 ms a request).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _handle(self) -> None:
            started = time.monotonic()
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                # The client hung up before its body arrived whole (a daemon killed mid-request in
                # the crash loops): a real server discards it; dispatching the stub would act on (and
                # the contract checker judge) a request nobody sent.
                self.close_connection = True
                return
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                response = sim.dispatch(request)
            except _ResetConnection:
                sim._record(request, Response(0), started)
                self._reset()
                return
            except Exception as e:  # a simulator bug: answer 500 loudly, keep serving
                import traceback
                traceback.print_exc()
                response = Response(500, sim.error_body(500, f"simulator error: {type(e).__name__}: {e}"))
            payload = response.encoded()
            # Recorded before the answer leaves, so a client that has its answer
            # always finds the request in the accounting (no race in tests).
            sim._record(request, response, started)
            try:
                self.send_response(response.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload and self.command != "HEAD":
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout): as on a real server, nothing to do.
                self.close_connection = True

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST: the client sees
            # "connection reset by peer", as with a dropped load balancer connection.
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                self.close_connection = True
                self.connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    return Handler


def iso(ts: float, *, millis: bool = False, jira: bool = False) -> str:
    """Format an epoch timestamp the way each vendor does.

    Zendesk/Intercom-style ``2024-01-02T03:04:05Z``; Jira ``2024-01-02T03:04:05.000+0000``.
    """
    t = time.gmtime(ts)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", t)
    if jira:
        return f"{base}.{int((ts % 1) * 1000):03d}+0000"
    if millis:
        return f"{base}.{int((ts % 1) * 1000):03d}Z"
    return base + "Z"


def paginate(items: Iterable[JSON], start: int, size: int) -> tuple[list[JSON], int | None]:
    """Slice a list; returns (page, next start or None)."""
    items = list(items)
    page = items[start:start + size]
    nxt = start + size if start + size < len(items) else None
    return page, nxt
