"""Zendesk's ways to hide a comment it will not delete: ``MakeTicketCommentPrivate``
and ``RedactTicketCommentInAgentWorkspace`` (vendor-specs/zendesk-support.yaml,
``/api/v2/tickets/{ticket_id}/comments/{ticket_comment_id}/make_private`` and
``/api/v2/comment_redactions/{ticket_comment_id}``).

What the reference says and this follows: make_private answers 200 with an empty
string; a redaction takes ``ticket_id`` and the comment's ``html_body`` with the parts
to remove wrapped in ``<redact>`` (elements such as links and images marked with a
``redact`` attribute), replaces each character inside with ▇, removes the marked
elements, and answers ``{"comment": ...}`` with the result (example
``TicketCommentsRedactionInAgentWorkspaceResponseExample``: ``plain_body`` "My ID number
is ▇▇▇▇!"). Not documented, so our choice: an ``html_body`` that is not the comment's
own once the marks are taken out is refused with 422 (a redaction cannot rewrite a
comment), and a comment of another ticket is 404.
"""

from __future__ import annotations

import html as htmllib
import re

from syncd.sim import zendesk_http
from syncd.sim.core import JSON, Request, Response, SimError
from syncd.sim.zendesk_state import ZendeskState

BLOCK = "▇"
_REDACT = re.compile(r"<redact>(.*?)</redact>", re.S)
_MARKED = re.compile(r"<(a|img)\b([^>]*?)\sredact(\s[^>]*)?>", re.S)


def make_private(sim: ZendeskState, request: Request) -> Response:
    comment = _comment(sim, zendesk_http.int_param(request, "ticket_id"),
                       zendesk_http.int_param(request, "ticket_comment_id"))
    comment["public"] = False
    return Response(200, "")


def redact(sim: ZendeskState, request: Request) -> Response:
    try:
        data = request.json() or {}
    except ValueError:
        raise SimError(400, {"error": "InvalidJSON", "description": "The request body is not valid JSON"})
    ticket_id = data.get("ticket_id") if isinstance(data, dict) else None
    if not isinstance(ticket_id, int):
        raise zendesk_http.invalid("ticket_id", "Ticket: is required")
    comment = _comment(sim, ticket_id, zendesk_http.int_param(request, "ticket_comment_id"))
    marked = data.get("html_body")
    if not isinstance(marked, str) or not marked:
        return Response(200, {"comment": comment})
    if _unmarked(marked) != comment["html_body"]:
        raise zendesk_http.invalid("html_body", "Html body: does not match the comment")
    redacted = _MARKED.sub("", _REDACT.sub(lambda m: BLOCK * _chars(m.group(1)), marked))
    plain = htmllib.unescape(re.sub(r"<[^>]+>", "", redacted)).strip()
    comment.update({"html_body": redacted, "body": plain, "plain_body": plain})
    return Response(200, {"comment": comment})


def _comment(sim: ZendeskState, ticket_id: int, comment_id: int) -> dict[str, JSON]:
    t = sim.ticket(ticket_id)
    found = next((c for c in t.comments if c["id"] == comment_id), None)
    if found is None:
        raise zendesk_http.not_found()
    return found


def _unmarked(marked: str) -> str:
    """The html without the redaction marks: what the comment must already say."""
    text = marked.replace("<redact>", "").replace("</redact>", "")
    return re.sub(r"<(a|img)\b([^>]*?)\sredact(?=[\s>/])", r"<\1\2", text)


def _chars(fragment: str) -> int:
    """Characters a reader sees in ``fragment`` (an entity is one)."""
    return len(htmllib.unescape(re.sub(r"<[^>]+>", "", fragment)))
