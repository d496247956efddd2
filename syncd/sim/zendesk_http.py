"""Request and answer helpers the Zendesk route modules share: body objects,
path ids, validation errors and Zendesk's two paging styles."""

from __future__ import annotations

import base64

from syncd.sim.core import JSON, Request, SimError


def body(request: Request, key: str) -> dict[str, JSON]:
    """The ``key`` object of a JSON body (``{"ticket": {...}}``), or 400."""
    try:
        data = request.json() or {}
    except ValueError:
        raise SimError(400, {"error": "InvalidJSON", "description": "The request body is not valid JSON"})
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise SimError(400, {"error": "InvalidEndpoint", "description": f"The request must contain a '{key}' object"})
    return value


def int_param(request: Request, name: str) -> int:
    """A numeric path parameter; anything else is a 404, as on Zendesk."""
    try:
        return int(request.params[name])
    except ValueError:
        raise not_found()


def not_found() -> SimError:
    return SimError(404, {"error": "RecordNotFound", "description": "Not found"})


def invalid(attribute: str, message: str, code: str = "InvalidValue") -> SimError:
    """422 ``RecordInvalid`` naming one attribute."""
    return SimError(422, {"error": "RecordInvalid", "description": "Record validation errors",
                          "details": {attribute: [{"description": message, "error": code}]}})


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def unb64(text: str) -> str:
    """The text of an opaque cursor; a cursor that is not ours is a 400."""
    if not text:
        return ""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise SimError(400, {"error": "InvalidPaginationParameter", "description": "invalid cursor"})


def page(request: Request, key: str, items: list[JSON], url: str) -> dict[str, JSON]:
    """Cursor paging when the client asks with ``page[size]``/``page[after]``,
    offset paging (``page``, ``per_page``) otherwise, as Zendesk does. ``url`` is
    the list's own API URL."""
    if request.arg("page[size]") is not None or request.arg("page[after]") is not None:
        size = max(1, min(100, int(request.arg("page[size]") or 100)))
        start = int(unb64(request.arg("page[after]") or "") or 0)
        chunk = items[start:start + size]
        end = start + len(chunk)
        has_more = end < len(items)
        after = b64(str(end)) if chunk else None
        before = b64(str(start)) if chunk else None
        return {key: chunk,
                "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                "links": {"next": f"{url}?page[size]={size}&page[after]={after}" if has_more else None,
                          "prev": f"{url}?page[size]={size}&page[before]={before}" if start else None}}
    per_page = max(1, min(100, int(request.arg("per_page") or 100)))
    number = max(1, int(request.arg("page") or 1))
    start = (number - 1) * per_page
    chunk = items[start:start + per_page]
    more = start + per_page < len(items)
    return {key: chunk, "count": len(items),
            "next_page": f"{url}?page={number + 1}&per_page={per_page}" if more else None,
            "previous_page": f"{url}?page={number - 1}&per_page={per_page}" if number > 1 else None}
