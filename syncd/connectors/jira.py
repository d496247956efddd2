"""Jira Cloud connector (the ``jira`` 3.10 library, API token auth).

Choices made on purpose:

* **REST v2 for comments**: plain text in, plain text out, on Cloud and on
  Server/Data Center alike; v3 would need an ADF round trip for no gain here.
* **Write markers**: an issue carries, from the create call itself, the label
  ``syncd-zendesk-123`` and the entity property ``syncd`` =
  ``{"origin": "zendesk:123"}``; each mirrored comment carries the property
  ``syncd`` = ``{"source": "..."}``. After a crash the daemon finds what it
  already wrote instead of writing it again. The *label* is what is searched:
  on Jira Cloud, JQL indexes an entity property only when a Connect/Forge app
  declares it, and syncd authenticates with an API token, not as an app.
* The library's ``ResilientSession`` retries every method, POST included, so
  ``max_retries=0``; our :class:`~syncd.connectors.calls.Caller` retries instead.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

import structlog
from jira import JIRA

from ..secrets import Secret, as_secret
from ..budget import Budget
from ..domain import Attachment, Comment, IssueSpec, ItemRef, TrackerIssue, Value, vendor_refs
from ..errors import Landed, Refused, VendorError
from ..retry import RetryPolicy
from .base import FieldFailure, PollPage
from .calls import Caller, keep_connections, raise_on_429, skip_environment_lookups, translate_requests_error

PROPERTY = "syncd"
READ_FIELDS = ("summary", "status", "resolution", "fixVersions", "labels", "priority",
               "components", "updated", "project")


@dataclass(frozen=True)
class JiraAccess:
    url: str
    email: str
    api_token: Secret   # a plain str is wrapped: the repr never shows it
    timeout: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_token", as_secret(self.api_token))


log = structlog.get_logger("syncd.jira")
# A project key (a letter, then letters, digits or _) and an issue number.
ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}-[1-9][0-9]{0,18}")
ISSUE_ID = re.compile(r"[1-9][0-9]{0,18}")

FILE_REF = re.compile(r"\[\^([^\]|]+)\]|!([^!|\s][^!|]*)(?:\|[^!]*)?!")


def _with_files(comments: tuple[Comment, ...], files: list[Mapping[str, Any]]) -> tuple[Comment, ...]:
    """Jira keeps files on the issue; a comment refers to them as ``[^name]`` or
    ``!name!``. Give each comment the files it refers to."""
    by_name = {f["filename"]: Attachment(f["filename"], f.get("content", ""), int(f.get("size") or 0),
                                         f.get("mimeType") or "application/octet-stream") for f in files}
    if not by_name:
        return comments
    out = []
    for c in comments:
        names = [a or b for a, b in FILE_REF.findall(c.body)]
        found = tuple(dict.fromkeys(by_name[n] for n in names if n in by_name))
        out.append(replace(c, attachments=found) if found else c)
    return tuple(out)


def origin_label(origin: str) -> str:
    """``zendesk:123`` → ``syncd-zendesk-123`` (labels may not hold spaces; colons read badly in JQL)."""
    return "syncd-" + origin.replace(":", "-")


def parse_jira_time(text: str) -> datetime:
    """``2021-01-17T12:34:00.000+0000`` (Jira's form, no colon in the offset)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def comment_text(body: Any) -> str:
    """A comment body as plain text: REST v2 answers a string; v3 (and the vendor's
    own example, ../shared/realworld/jira/api/ja-comments-doc.json) an Atlassian
    Document — its text nodes, one line per block."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    lines: list[str] = []

    def walk(node: Any, line: list[str]) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "text" and isinstance(node.get("text"), str):
            line.append(node["text"])
        elif node.get("type") == "hardBreak":
            line.append("\n")
        for child in node.get("content") or []:
            if isinstance(child, dict) and child.get("type") in ("paragraph", "heading", "codeBlock", "blockquote"):
                inner: list[str] = []
                walk(child, inner)
                lines.append("".join(inner))
            else:
                walk(child, line)

    top: list[str] = []
    walk(body, top)
    if top:
        lines.insert(0, "".join(top))
    return "\n".join(lines).strip()


def canonical(value: Any) -> Value:
    """A Jira field value as a canonical syncd value."""
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, list):
        return tuple(sorted(str(canonical(v)) for v in value if canonical(v) is not None)) or None
    if isinstance(value, dict):
        for key in ("name", "value", "displayName", "key"):
            if key in value:
                return str(value[key])
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class JiraConnector:
    system = "jira"

    def __init__(self, access: JiraAccess, budget: Budget | None = None, policy: RetryPolicy | None = None,
                 field_locators: Sequence[str] = (), poll_overlap: float = 120.0):
        """``poll_overlap``: seconds each poll window reaches back before the previous one's
        newest change (``[jira] poll_overlap_seconds``; see :meth:`poll`)."""
        self.access = access
        self.poll_overlap = poll_overlap
        self.call = Caller("jira", translate_requests_error, budget, policy)
        self.client = self.call("serverInfo", lambda: JIRA(
            server=access.url, basic_auth=(access.email, access.api_token.reveal()),
            max_retries=0, timeout=access.timeout, get_server_info=True))
        self.client._session.hooks["response"].append(raise_on_429)
        skip_environment_lookups(self.client._session, access.url)
        keep_connections(self.client._session)
        me = self.call("getCurrentUser", self.client.myself)
        self.account_id: str = me.get("accountId") or me.get("name", "")
        self.time_zone = ZoneInfo(me.get("timeZone") or "UTC")
        self._field_types: dict[str, str] | None = None
        self.extra_fields = tuple(f for f in field_locators if f not in READ_FIELDS)

    # -- plumbing ---------------------------------------------------------
    def _rest(self, operation: str, method: str, path: str, body: Any = None,
              params: Mapping[str, Any] | None = None, idempotent: bool = True) -> Any:
        # A write to one issue names it: Jira's per-issue write limit then holds back that
        # issue's writes only (reads of it are not limited).
        parts = path.split("/")
        target = f"issue:{parts[1]}" if method != "GET" and len(parts) > 1 and parts[0] == "issue" else None
        return self._send(operation, method, self.client._get_url(path), body, params, idempotent, target)

    def _send(self, operation: str, method: str, url: str, body: Any = None,
              params: Mapping[str, Any] | None = None, idempotent: bool = True, target: str | None = None) -> Any:
        session = self.client._session

        def go() -> Any:
            data = json.dumps(body) if body is not None else None
            r = session.request(method, url, data=data, params=params)
            return r.json() if r.content else None

        return self.call(operation, go, idempotent, target=target)

    # -- set-up (syncd webhooks install) -------------------------------------
    def install_webhook(self, name: str, endpoint: str, secret: str, events: Sequence[str]) -> str:
        """Register (or reuse: safe to run again) the admin webhook ``name`` towards
        ``endpoint``, signed with ``secret``; its address. Admin webhooks live outside
        the versioned REST API (``/rest/webhooks/1.0/webhook``)."""
        for hook in self.list_webhooks():
            if hook.get("name") == name and hook.get("url") == endpoint:
                return str(hook.get("self") or hook.get("id"))
        made = self._send("webhook", "POST", self._webhooks_url(), {"name": name, "url": endpoint, "events": list(events),
                                                    "excludeBody": False, "secret": secret})
        return str(made.get("self") or made.get("id"))

    def list_webhooks(self) -> list[Mapping[str, Any]]:
        """Every admin webhook (``syncd doctor`` looks for syncd's)."""
        return list(self._send("webhook", "GET", self._webhooks_url()) or [])

    def _webhooks_url(self) -> str:
        return self.access.url.rstrip("/") + "/rest/webhooks/1.0/webhook"

    def _pages(self, operation: str, fetch: Callable[[dict[str, Any]], Any], items: str,
               by_token: bool = False) -> Iterator[list[Mapping[str, Any]]]:
        """Every page of a Jira listing, first to last: the one place that pages Jira.
        Each page is asked for only when the one before has been used, so a caller that
        stops early (one page, a limit) makes no further call.

        ``fetch(paging)`` makes one request (through :attr:`call`) with ``paging`` added;
        ``items`` names the list in the answer. Jira pages two ways:

        * by offset (``by_token=False``): ``{"startAt": n}``; the answer's ``total`` says
          when the last page was read (comments; search on Server/Data Center);
        * by token (``by_token=True``, Cloud's ``/search/jql``): none on the first page,
          then ``{"nextPageToken": t}`` as the previous answer gave it; no token: last page.

        A vendor that answers the same position again would page forever: that is an
        error (:class:`~syncd.errors.VendorError`), not a silent stop."""
        paging: dict[str, Any] = {} if by_token else {"startAt": 0}
        while True:
            page = fetch(paging) or {}
            found = list(page.get(items) or [])
            yield found
            if by_token:
                token = page.get("nextPageToken") or None
                if token is None:
                    return
                following: dict[str, Any] = {"nextPageToken": token}
            else:
                start = paging["startAt"] + len(found)
                if not found or start >= int(page.get("total") or 0):
                    return
                following = {"startAt": start}
            if following == paging:
                raise VendorError("jira", operation, f"the next page is the same as this one ({following})")
            paging = following

    def _search(self, jql: str, fields: list[str], page_size: int = 100) -> Iterator[list[Mapping[str, Any]]]:
        """The pages of a JQL search (see :meth:`_pages`).

        Jira Cloud pages ``/search/jql`` by ``nextPageToken`` (answer shape:
        ../shared/realworld/jira/api/ja-search-jql-doc.json). Jira Server/Data
        Center has only ``/search``, paged by ``startAt``/``total`` (recorded:
        ../shared/realworld/jira/api/ja-search-v3-amp.json); the client library
        silently answers None to ``enhanced_search_issues`` there, so the
        deployment (serverInfo ``deploymentType``) picks the endpoint."""
        operation = "searchForIssuesUsingJql"
        if self.client._is_cloud:
            return self._pages(operation, lambda paging: self.call(operation, lambda: self.client.enhanced_search_issues(
                jql, fields=fields, maxResults=page_size, nextPageToken=paging.get("nextPageToken"),
                json_result=True)), "issues", by_token=True)
        return self._pages(operation, lambda paging: self.call(operation, lambda: self.client.search_issues(
            jql, startAt=paging["startAt"], fields=fields, maxResults=page_size, json_result=True)), "issues")

    def field_types(self) -> dict[str, str]:
        """Every field's id → its schema type (``number``, ``option``, ...), read once."""
        return self._types()

    def _types(self) -> dict[str, str]:
        if self._field_types is None:
            fields = self.call("getFields", self.client.fields)
            self._field_types = {f["id"]: (f.get("schema") or {}).get("type", "string") for f in fields}
        return self._field_types

    # -- reads ------------------------------------------------------------
    def fetch(self, issue_id: str) -> TrackerIssue | None:
        """By id (``10001``) or key (``ENG-1``), checked before it becomes a URL path:
        ids come from webhooks, the store and Jira's own answers (createIssue, search)."""
        from ..errors import NotFound
        if not (ISSUE_ID.fullmatch(issue_id) or ISSUE_KEY.fullmatch(issue_id)):
            raise Refused("jira", "getIssue", f"{issue_id[:40]!r} is neither a Jira issue id nor a key")
        try:
            # "comment" rides along: one call instead of two when the issue holds them all.
            raw = self._rest("getIssue", "GET", f"issue/{issue_id}",
                             params={"fields": ",".join(READ_FIELDS + self.extra_fields + ("comment", "attachment"))})
        except NotFound:
            return None
        embedded = self._embedded_comments(raw)
        comments = embedded if embedded is not None else self._comments(raw["id"])
        return self._issue(raw, _with_files(comments, (raw.get("fields") or {}).get("attachment") or []))

    def from_delivery(self, raw: Mapping[str, Any], known: tuple[Comment, ...],
                      delivered: Sequence[Mapping[str, Any]]) -> TrackerIssue | None:
        """The issue as a webhook delivery showed it (``issue`` of a ``jira:issue_*``
        delivery: REST v2 shapes, as :meth:`fetch` reads them), or None when it lacks
        anything a read gives (a field the mapping needs, ``updated``, the attachments):
        then it cannot stand in for the read.

        Real Cloud deliveries carry no comments (../shared/realworld/jira/webhook/
        jw-issue-updated-*.json), a Jira Server one may carry the whole page
        (jw-server-issue-updated-commented.json). Without it the comments are ``known``
        (an older read's) plus ``delivered`` (those deliveries carried), and the issue
        says so (``comments_unproven``)."""
        fields = raw.get("fields")
        if not isinstance(fields, dict) or any(name not in fields for name in
                                               READ_FIELDS + self.extra_fields + ("attachment",)):
            return None
        if not ISSUE_ID.fullmatch(str(raw.get("id", ""))) or not isinstance(raw.get("key"), str):
            return None
        try:
            embedded = self._embedded_comments(raw)
            if embedded is None:
                by_id = {c.id: c for c in known}
                for c in delivered:
                    by_id.setdefault(str(c["id"]), self._comment(c))
                comments = tuple(sorted(by_id.values(), key=lambda c: (c.created_at, c.id)))
            else:
                comments = embedded
            issue = self._issue(raw, _with_files(comments, fields.get("attachment") or []))
        except (KeyError, ValueError, TypeError):
            return None
        return replace(issue, comments_unproven=embedded is None)

    def resolve_key(self, key: str) -> TrackerIssue | None:
        """The issue with this key (``ENG-42``); a key is checked before it goes into
        a URL path (``../`` or ``?`` would address another resource)."""
        if not ISSUE_KEY.fullmatch(key):
            raise Refused("jira", "getIssue", f"{key[:40]!r} is not a Jira issue key like ENG-42")
        return self.fetch(key)

    def _issue(self, raw: Mapping[str, Any], comments: tuple[Comment, ...]) -> TrackerIssue:
        f = raw.get("fields") or {}
        fields: dict[str, Value] = {name: canonical(f.get(name)) for name in READ_FIELDS + self.extra_fields
                                    if name not in ("updated", "project")}
        fields["key"] = raw["key"]
        released = tuple(sorted(v["name"] for v in f.get("fixVersions") or [] if v.get("released")))
        return TrackerIssue(
            ref=ItemRef("jira", str(raw["id"])), key=raw["key"],
            url=f"{self.access.url.rstrip('/')}/browse/{raw['key']}",
            summary=f.get("summary") or "", fields=fields, released_versions=released,
            comments=comments, updated_at=parse_jira_time(f["updated"]),
        )

    def _comments(self, issue_id: str) -> tuple[Comment, ...]:
        pages = self._pages("getComments", lambda paging: self._rest(
            "getComments", "GET", f"issue/{issue_id}/comment",
            params={**paging, "maxResults": 100, "orderBy": "created"}), "comments")
        return tuple(self._comment(c) for c in itertools.chain.from_iterable(pages))

    def _embedded_comments(self, raw: Mapping[str, Any]) -> tuple[Comment, ...] | None:
        """The comments getIssue carried, or None when it carried only some (Jira caps
        the embedded page; ``total`` says how many there are) or none at all."""
        page = (raw.get("fields") or {}).get("comment")
        if not isinstance(page, dict):
            return None
        comments = page.get("comments") or []
        if page.get("total", 0) > len(comments):
            return None
        return tuple(self._comment(c) for c in comments)

    def _comment(self, c: Mapping[str, Any]) -> Comment:
        author = c.get("author") or {}
        return Comment(
            id=str(c["id"]), author=author.get("displayName") or "Unknown",
            body=comment_text(c.get("body")), public=True,
            created_at=parse_jira_time(c["created"]),
            by_integration=(author.get("accountId") or author.get("name")) == self.account_id,
        )

    # -- writes -----------------------------------------------------------
    def create_issue(self, spec: IssueSpec, origin: str) -> TrackerIssue:
        fields: dict[str, Any] = {
            "project": {"key": spec.project}, "issuetype": {"name": spec.issue_type},
            "summary": spec.summary, "description": spec.description,
        }
        fields.update(self._field_payload(spec.fields))
        fields["labels"] = sorted(set(fields.get("labels") or []) | {origin_label(origin)})
        properties = [{"key": PROPERTY, "value": {"origin": origin}}]
        try:
            created = self._rest("createIssue", "POST", "issue", body={
                "fields": {**self._field_payload(spec.extra), **fields}, "properties": properties}, idempotent=False)
        except Refused as e:
            if not spec.extra:
                raise
            # Refused outright (400: nothing was created), e.g. a field not on the create
            # screen: create without the optional values; the first sync writes them one
            # by one, where a refused one fails alone.
            log.warning("create_extra_fields_refused", origin=origin, fields=sorted(spec.extra), reason=str(e))
            created = self._rest("createIssue", "POST", "issue", body={"fields": fields, "properties": properties},
                                 idempotent=False)
        # The issue exists from here on: a failed read of it (a 429, a reset) must not pass
        # for a refused create, or the create would be made again (crash loop, seed 11).
        # An answer whose id is not an id is no proof of anything: refused as such (the
        # intent stays pending; recovery finds the issue by its origin label).
        made = str(created.get("id"))
        if not ISSUE_ID.fullmatch(made):
            raise Refused("jira", "createIssue", f"{made[:40]!r} is neither a Jira issue id nor a key")
        try:
            issue = self.fetch(made)
        except VendorError as e:
            raise Landed("jira", "createIssue", f"issue {made} created; reading it failed: {e}", result=made) from e
        if issue is None:
            raise Landed("jira", "createIssue", f"issue {made} created; not found right after", result=made)
        return issue

    def find_created(self, origin: str) -> TrackerIssue | None:
        jql = f'labels = "{origin_label(origin)}" ORDER BY created ASC'
        issues = next(self._search(jql, ["id"], 2), [])   # the first page only
        return self.fetch(str(issues[0]["id"])) if issues else None

    def created_for(self, origin: str, limit: int = 20) -> list[str]:
        """Ids of every issue carrying ``origin``'s label, oldest first (duplicate detection)."""
        jql = f'labels = "{origin_label(origin)}" ORDER BY created ASC'
        issues = list(itertools.islice(itertools.chain.from_iterable(
            self._search(jql, ["id", "created"], limit)), limit))
        # Jira stamps milliseconds; ids grow with creation and break a tie.
        issues.sort(key=lambda raw: (parse_jira_time((raw.get("fields") or {}).get("created") or
                                                     "1970-01-01T00:00:00.000+0000"), int(raw["id"])))
        return [str(raw["id"]) for raw in issues]

    def delete_issue(self, issue_id: str) -> bool:
        """Delete an issue syncd made twice; False when it was already gone."""
        from ..errors import NotFound
        try:
            self._rest("deleteIssue", "DELETE", f"issue/{issue_id}")
            return True
        except NotFound:
            return False

    def update_fields(self, issue_id: str, values: Mapping[str, Value]) -> Sequence[FieldFailure]:
        failures: list[FieldFailure] = []
        plain = {k: v for k, v in values.items() if k != "status"}
        if plain:
            failures.extend(self._edit(issue_id, plain))
        if "status" in values and values["status"] is not None:
            failure = self._transition(issue_id, str(values["status"]))
            if failure is not None:
                failures.append(failure)
        return failures

    def _edit(self, issue_id: str, values: Mapping[str, Value]) -> list[FieldFailure]:
        """One PUT for all fields; when Jira refuses it, one PUT per field, so a
        single bad field (unknown, not on the screen, bad value) fails alone."""
        try:
            self._rest("editIssue", "PUT", f"issue/{issue_id}", body={"fields": self._field_payload(values)})
            return []
        except VendorError as e:
            if e.retryable:
                raise
            if len(values) == 1:
                return [FieldFailure(k, v, str(e)) for k, v in values.items()]
        failures: list[FieldFailure] = []
        for k, v in values.items():
            failures.extend(self._edit(issue_id, {k: v}))
        return failures

    def _transition(self, issue_id: str, status: str) -> FieldFailure | None:
        available = self._rest("getTransitions", "GET", f"issue/{issue_id}/transitions")
        for t in available.get("transitions", []):
            if (t.get("to") or {}).get("name", "").lower() == status.lower():
                self._rest("doTransition", "POST", f"issue/{issue_id}/transitions",
                           body={"transition": {"id": t["id"]}})
                return None
        names = sorted((t.get("to") or {}).get("name", "?") for t in available.get("transitions", []))
        return FieldFailure("status", status, f"workflow allows no transition to {status!r} (allowed: {names})")

    def _field_payload(self, values: Mapping[str, Value]) -> dict[str, Any]:
        types = self._types() if any(k.startswith("customfield_") for k in values) else {}
        out: dict[str, Any] = {}
        for locator, value in values.items():
            items = list(value) if isinstance(value, tuple) else ([] if value is None else [value])
            if locator in ("labels",):
                out[locator] = items
            elif locator in ("fixVersions", "components"):
                out[locator] = [{"name": v} for v in items]
            elif locator == "priority":
                out[locator] = {"name": value} if value else None
            elif locator.startswith("customfield_"):
                out[locator] = self._custom_value(types.get(locator, "string"), value)
            else:
                out[locator] = value
        return out

    @staticmethod
    def _custom_value(kind: str, value: Value) -> Any:
        if value is None:
            return None
        if kind == "number":
            return float(value) if not isinstance(value, tuple) else float(len(value))
        if kind == "option":
            return {"value": value}
        if kind == "array":
            return list(value) if isinstance(value, tuple) else [value]
        return ", ".join(value) if isinstance(value, tuple) else value

    def add_comment(self, issue_id: str, body: str, source: str,
                    attachments: Sequence[Attachment] = ()) -> str:
        # Jira files live on the issue; the comment refers to them as [^name].
        uploaded = [self._attach(issue_id, a) for a in attachments if a.data is not None]
        text = body + "".join(f"\n[^{name}]" for name in uploaded)
        created = self._rest("addComment", "POST", f"issue/{issue_id}/comment", body={
            "body": text, "properties": [{"key": PROPERTY, "value": {"source": source}}]}, idempotent=False)
        return str(created["id"])

    def _attach(self, issue_id: str, attachment: Attachment) -> str:
        data = attachment.data or b""
        made = self.call("addAttachment", lambda: self.client.add_attachment(
            issue_id, io.BytesIO(data), filename=attachment.name), idempotent=False)
        return getattr(made, "filename", attachment.name)

    def download(self, attachment: Attachment) -> bytes:
        def go() -> bytes:
            r = self.client._session.get(attachment.url)
            return r.content
        return self.call("getAttachmentContent", go)

    def find_comment(self, issue_id: str, source: str) -> str | None:
        found = self.find_comments(issue_id, source, first_only=True)
        return found[0] if found else None

    def find_comments(self, issue_id: str, source: str, first_only: bool = False) -> list[str]:
        """Ids of syncd's comments carrying ``source`` as their marker, oldest first."""
        from ..errors import NotFound
        found: list[str] = []
        for c in self._comments(issue_id):
            if not c.by_integration:
                continue
            try:
                prop = self._rest("getCommentProperty", "GET", f"comment/{c.id}/properties/{PROPERTY}")
            except NotFound:
                continue
            if (prop or {}).get("value", {}).get("source") == source:
                found.append(c.id)
                if first_only:
                    break
        return found

    def delete_comment(self, issue_id: str, comment_id: str) -> bool:
        """Delete a comment syncd posted twice; False when it was already gone."""
        from ..errors import NotFound
        try:
            self._rest("deleteComment", "DELETE", f"issue/{issue_id}/comment/{comment_id}")
            return True
        except NotFound:
            return False

    def upsert_remote_link(self, issue_id: str, global_id: str, url: str, title: str) -> None:
        self._rest("createOrUpdateRemoteIssueLink", "POST", f"issue/{issue_id}/remotelink", body={
            "globalId": global_id, "object": {"url": url, "title": title}})

    def issues_with_fix_version(self, version_id: str) -> list[str]:
        pages = self._search(f"fixVersion = {int(version_id)} ORDER BY key ASC", ["id"])
        found, refused = vendor_refs("jira", [raw.get("id") for raw in itertools.chain.from_iterable(pages)])
        if refused:
            log.warning("vendor_id_refused", vendor="jira", operation="searchForIssuesUsingJql", ids=refused)
        return [ref.id for ref in found]

    # -- polling ----------------------------------------------------------
    def poll(self, cursor: str | None, page_size: int = 100) -> PollPage:
        """Issues with ``updated`` in [cursor − :attr:`poll_overlap`, now], oldest first: both
        ends are included (JQL ``>=``, and no upper bound), and the newest ``updated`` seen
        becomes the next cursor. ``None`` starts from now.

        JQL dates have minute resolution in the user's time zone, so the window
        overlaps the previous one; ``seen`` (issue id → updated) within the overlap
        drops the repeats so they are not marked dirty again.

        The cursor's ``t`` is the newest ``updated`` seen, but never older than
        ``overlap`` before this poll began: while nothing changes, the window
        moves on with the clock instead of listing the last changed issues again
        on every poll (at 100 an answer page, that was one search call per 100
        issues changed in the two minutes before the quiet began, every poll,
        for as long as it lasted). An issue this poll could not see yet (search
        lags behind the write) has ``updated`` after ``now - lag``; the next
        window starts at ``now - 2 * overlap`` or earlier, so it is still found
        as long as the search lag plus the difference between Jira's clock and
        ours stays under twice the overlap (240 s by default).
        """
        overlap = self.poll_overlap
        now = datetime.now(timezone.utc)
        if cursor is None:
            return PollPage((), json.dumps({"t": now.timestamp(), "seen": {}}))
        state = json.loads(cursor)
        since = datetime.fromtimestamp(state["t"] - overlap, timezone.utc).astimezone(self.time_zone)
        jql = f'updated >= "{since:%Y-%m-%d %H:%M}" ORDER BY updated ASC'
        seen: dict[str, str] = state.get("seen", {})
        fresh: list[ItemRef] = []
        stamps: dict[ItemRef, datetime] = {}
        counts: dict[ItemRef, int] = {}
        newest = state["t"]
        # "comment" rides along (its page's total): an issue reconciled from a webhook
        # delivery, whose comments were not all read, is trusted only while it matches.
        for raw in itertools.chain.from_iterable(self._search(jql, ["updated", "comment"], page_size)):
            updated = raw["fields"]["updated"]
            found, refused = vendor_refs("jira", [raw.get("id")])
            if refused:
                log.warning("vendor_id_refused", vendor="jira", operation="searchForIssuesUsingJql", ids=refused)
                continue
            ref = found[0]
            if seen.get(ref.id) != updated:
                fresh.append(ref)
                seen[ref.id] = updated
                stamps[ref] = parse_jira_time(updated)
                page = raw["fields"].get("comment")
                if isinstance(page, dict) and isinstance(page.get("total"), int):
                    counts[ref] = page["total"]
            newest = max(newest, parse_jira_time(updated).timestamp())
        newest = max(newest, now.timestamp() - overlap)
        horizon = newest - overlap - 60    # older than any later window's (minute-truncated) start
        seen = {k: v for k, v in seen.items() if parse_jira_time(v).timestamp() >= horizon}
        return PollPage(tuple(fresh), json.dumps({"t": newest, "seen": seen}), stamps=stamps, comment_counts=counts)


__all__ = ["JiraConnector", "JiraAccess"]
