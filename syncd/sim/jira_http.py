"""Request and answer helpers the Jira route modules share: Jira's error body, the
API version of a request, repeated/comma-separated query parameters, 429 answers.
"""

from __future__ import annotations

from typing import Any

from syncd.sim.core import Request, Response, SimError, iso
from syncd.sim.jira_state import JiraState


ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def err(status: int, *messages: str, errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None) -> SimError:
    return SimError(status, {"errorMessages": list(messages), "errors": errors or {}}, headers)


def api_version(request: Request) -> str:
    """``2`` or ``3``; ``latest`` is v2 on Jira Cloud."""
    ver = request.path.split("/")[3] if request.path.startswith("/rest/api/") else "2"
    return "3" if ver == "3" else "2"


def too_many(sim: JiraState, reason: str, retry_after: float, limit: int) -> Response:
    seconds = max(1, int(retry_after + 0.999))
    headers = {"Retry-After": str(seconds), "RateLimit-Reason": reason,
               "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": iso(sim.clock.now() + seconds).replace("Z", "+0000")}
    return Response(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, headers)


def as_error(resp: Response) -> SimError:
    """An answer built as a Response, raised from deep inside a write."""
    return SimError(resp.status, resp.body, resp.headers)


def multi(r: Request, name: str) -> list[str]:
    """A query parameter given repeated and/or comma-separated."""
    return [part.strip() for value in r.query.get(name, []) for part in value.split(",") if part.strip()]


def int_arg(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
