"""The validator: one simulator (request, response) pair checked against the
vendor's corrected document (:mod:`contract.loader`)."""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import best_match
from openapi_core.testing import MockRequest, MockResponse

from .corrections import UNDOCUMENTED, Undocumented
from .loader import VENDORS, VendorDoc, _json_schema_of, _Loaded, _Match, _response_of, load
from syncd.sim.core import Request, Response

# Jira offers OAuth2 next to basic auth; openapi-core cannot check OAuth2 and
# warns on every request. Basic auth is what we check, the warning is noise.
warnings.filterwarnings("ignore", message="Unsupported scheme type")


@dataclass(frozen=True)
class Violation:
    vendor: str
    operation: str      # the document's operationId, or "(undocumented)"
    method: str
    path: str           # as served (before .json stripping / aliasing)
    status: int
    part: str           # "request", "response" or "checker"
    problem: str

    def __str__(self) -> str:
        return (f"[{self.vendor}] {self.operation} {self.method} {self.path} -> {self.status}: "
                f"{self.part}: {self.problem}")


# ---------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------

@dataclass
class CheckStats:
    checked: int = 0
    undocumented_allowed: int = 0
    seconds: float = 0.0

    @property
    def mean_ms(self) -> float:
        return 1000.0 * self.seconds / self.checked if self.checked else 0.0


class ContractChecker:
    """Validates one (request, response) pair of a simulator against its vendor document."""

    def __init__(self) -> None:
        self.stats: dict[str, CheckStats] = defaultdict(CheckStats)
        self._stats_lock = threading.Lock()

    def check(self, vendor: str, request: Request, response: Response) -> list[Violation]:
        started = time.perf_counter()
        try:
            return list(self._check(vendor, request, response))
        finally:
            with self._stats_lock:
                stats = self.stats[vendor]
                stats.checked += 1
                stats.seconds += time.perf_counter() - started

    def _check(self, vendor: str, request: Request, response: Response) -> Iterator[Violation]:
        vd = VENDORS[vendor]
        loaded = load(vendor)
        path = _documented_path(vd, loaded, request.path)

        def violation(operation: str, part: str, problem: str) -> Violation:
            return Violation(vendor, operation, request.method, request.path, response.status, part, problem)

        if _allowlisted(vendor, request, path) is not None:
            with self._stats_lock:
                self.stats[vendor].undocumented_allowed += 1
            return
        match = loaded.index.match(request.method, path)
        if not isinstance(match, _Match):
            why = ("the document lists this path but not this method" if match == "method"
                   else "the document has no such path and it is not in UNDOCUMENTED")
            yield violation("(undocumented)", "request", why)
            return

        op = match.operation_id
        mock_request = _mock_request(vd, match, request)
        with loaded.lock:
            # A request the simulator refused with a 4xx was refused as the real
            # service would refuse it (tests provoke 400/401/404 on purpose); a
            # request it accepted — or that met an injected 429/5xx — must be one
            # the real service accepts too.
            if not (400 <= response.status < 500 and response.status != 429):
                for error in loaded.requests.iter_errors(mock_request):
                    yield violation(op, "request", _explain(error))
            if response.status == 0:   # connection reset on purpose: nothing answered
                return
            for part, problem in _response_problems(loaded, match, mock_request, response):
                yield violation(op, part, problem)


def _documented_path(vd: VendorDoc, loaded: _Loaded, path: str) -> str:
    if vd.strip_json_suffix and path.endswith(".json"):
        path = path[: -len(".json")]
    for served, documented in loaded.aliases:
        if path.startswith(served):
            path = documented + path[len(served):]
    return path


def _allowlisted(vendor: str, request: Request, path: str) -> Undocumented | None:
    for entry in UNDOCUMENTED:
        if (entry.vendor == vendor and re.fullmatch(entry.method, request.method)
                and re.fullmatch(entry.path, path)
                and (entry.header is None or request.header(entry.header[0]) == entry.header[1])):
            return entry
    return None


def _mock_request(vd: VendorDoc, match: _Match, request: Request) -> MockRequest:
    headers = dict(request.headers)
    headers.pop("host", None)
    return MockRequest(
        vd.server, request.method.lower(), match.template,
        path_pattern=match.template, args=request.query, view_args=match.params,
        headers=headers, data=request.body,
        content_type=request.header("content-type") or "application/json",
    )


def _header(response: Response, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _response_problems(loaded: _Loaded, match: _Match, mock_request: MockRequest,
                       response: Response) -> Iterator[tuple[str, str]]:
    status = response.status
    body = response.encoded()
    content_type = _header(response, "content-type") or "application/json"
    is_json = "json" in content_type and bool(body)
    documented = _response_of(loaded.doc, match.operation.get("responses") or {}, status)
    documented_schema = _json_schema_of(documented) if documented is not None else None

    if status >= 400 and documented is not None and not is_json and _lists_media(documented, content_type):
        return   # a non-JSON error body the document describes (e.g. Jira's XSRF 403)
    if status >= 400 and (documented_schema is None or not is_json):
        # Errors the operation does not describe (injected 5xx, 429, most Jira
        # 4xx) must still be JSON in the vendor's error shape.
        yield from _error_shape_problems(loaded, body, is_json)
        return
    if documented is None:
        listed = ", ".join(sorted(match.operation.get("responses") or {}))
        yield "response", f"status {status} is not documented (documented: {listed})"
        return
    if not body:
        # HTTP 204 never has a body, even where the document lists a media type for it.
        if documented_schema is not None and status != 204:
            yield "response", f"empty body, but the document describes a JSON body for {status}"
        return
    if not is_json:
        return   # only JSON bodies are validated
    mock_response = MockResponse(body, status, headers=dict(response.headers), content_type=content_type)
    for error in loaded.responses.iter_errors(mock_request, mock_response):
        yield "response", _explain(error)


def _lists_media(documented: dict, content_type: str) -> bool:
    mimetype = content_type.split(";")[0].strip().lower()
    return mimetype in {m.lower() for m in (documented.get("content") or {})}


def _error_shape_problems(loaded: _Loaded, body: bytes, is_json: bool) -> Iterator[tuple[str, str]]:
    if not is_json:
        yield "response", "error answer is not JSON (the vendor answers errors in JSON)"
        return
    try:
        data = json.loads(body)
    except ValueError as e:
        yield "response", f"error answer is not valid JSON: {e}"
        return
    for error in loaded.error_validator.iter_errors(data):
        yield "response", f"error body not in the vendor's error shape: {_schema_error(error)}"


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

_MAX = 300


def _short(text: str) -> str:
    return text if len(text) <= _MAX else text[: _MAX - 3] + "..."


def _schema_error(error: Any, depth: int = 0) -> str:
    where = "/".join(str(p) for p in getattr(error, "absolute_path", ())) or "(root)"
    context = getattr(error, "context", None)
    if context and depth < 2:
        # anyOf/oneOf: the generic "not valid under any" says nothing; say why
        # each alternative failed (its most relevant error).
        branches: dict[Any, list[Any]] = defaultdict(list)
        for sub in context:
            branches[sub.relative_schema_path[0] if sub.relative_schema_path else 0].append(sub)
        reasons = [f"#{k}: {_schema_error(best_match(errs), depth + 1)}" for k, errs in list(branches.items())[:4]]
        return f"at {where}: matches none of the {error.validator} alternatives ({'; '.join(reasons)})"
    return f"at {where}: {_short(str(getattr(error, 'message', error)))}"


def _explain(error: BaseException) -> str:
    """One line naming what is wrong, down to the schema path."""
    name = type(error).__name__
    nested = getattr(error, "errors", None) or getattr(error, "context", None)
    if nested and isinstance(nested, (list, tuple)):
        return f"{name}: " + "; ".join(_explain(e) for e in nested)
    cause = error.__cause__
    schema_errors = getattr(error, "schema_errors", None) or getattr(cause, "schema_errors", None)
    if schema_errors:
        return f"{name}: " + "; ".join(_schema_error(e) for e in schema_errors)
    text = _short(str(error).removeprefix(f"{name}: "))
    if cause is not None and str(cause) not in text:
        text += f" ({_short(str(cause))})"
    return f"{name}: {text}"
