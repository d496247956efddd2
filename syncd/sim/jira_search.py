"""Jira search: JQL validation against the simulator's world, the enhanced
search routes (``nextPageToken``, ``reconcileIssues``), the search index with
its ``search_lag`` snapshots, and JQL matching for webhook filters.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any, Callable

from syncd.sim import jql
from syncd.sim.core import Request, Response
from syncd.sim.jira_catalog import (
    CUSTOM_FIELDS, ISSUE_TYPES, PRIORITIES, RESOLUTIONS, STATUSES, STATUS_CATEGORIES, IssueRec,
)
from syncd.sim.jira_http import api_version, err, int_arg, multi
from syncd.sim.jira_render import issue_json, wanted_fields
from syncd.sim.jira_state import JiraState


_MISSING = object()


def jql_matches(sim: JiraState, text: str, rec: IssueRec) -> bool:
    try:
        query = jql.parse(text)
    except jql.JqlError:
        return False
    return jql.evaluate(query.where, _Facts(sim, rec), sim.clock.now())


def parse_jql(sim: JiraState, text: str) -> jql.Query:
    try:
        query = jql.parse(text)
    except jql.JqlError as e:
        raise err(400, str(e))
    for c in jql.clauses(query.where):
        if c.field == "project":
            for v in c.values:
                if not any(v.lower() in (p.key.lower(), p.id, p.name.lower()) for p in sim.projects.values()):
                    raise err(400, f"The value '{v}' does not exist for the field 'project'.")
        known = {"project", "key", "id", "updated", "created", "resolutiondate", "labels", "status",
                 "statuscategory", "resolution", "priority", "assignee", "reporter", "summary",
                 "fixversion", "component", "issuetype", "type", "issue.property"}
        if c.field in jql.DATE_FIELDS:
            for v in c.values:
                try:
                    jql.date_literal(v, sim.clock.now())
                except jql.JqlError as e:
                    raise err(400, str(e))
        if c.field not in known and c.field not in _CUSTOM_CLAUSES:
            raise err(400, f"Field '{c.field}' does not exist or you do not have permission to view it.")
    return query


def search_http(sim: JiraState, r: Request) -> Response:
    if r.method == "POST":
        body = r.json() or {}
        fields = body.get("fields") or []
        props, expand = body.get("properties") or [], body.get("expand") or ""
        reconcile = [int(x) for x in body.get("reconcileIssues") or []]
        text, token, size = body.get("jql") or "", body.get("nextPageToken"), body.get("maxResults")
    else:
        fields, props, expand = multi(r, "fields"), multi(r, "properties"), ",".join(multi(r, "expand"))
        reconcile = [int(x) for x in multi(r, "reconcileIssues") if x.strip().isdigit()]
        text, token, size = r.arg("jql") or "", r.arg("nextPageToken"), r.arg("maxResults")
    if isinstance(fields, str):
        fields = fields.split(",")
    if isinstance(props, str):
        props = props.split(",")
    query = parse_jql(sim, text)
    wanted = wanted_fields(list(fields), default_all=False)
    only_ids = wanted == set() and "key" not in fields
    cap = 5000 if only_ids else 100
    size = min(max(int_arg(size, 50), 1), cap)
    start = _decode_token(token, text)
    hits = search(sim, query, set(reconcile))
    page = hits[start:start + size]
    ver = api_version(r)
    issues = [{"id": str(rec.id)} if only_ids and not props else
              issue_json(sim, rec, ver, wanted or set(), list(props)) for rec in page]
    out: dict[str, Any] = {"issues": issues, "isLast": start + size >= len(hits)}
    if not out["isLast"]:
        out["nextPageToken"] = _encode_token(start + size, text)
    if "changelog" in expand:
        for item, rec in zip(issues, page):
            item["changelog"] = issue_json(sim, rec, ver, set(), changelog=True)["changelog"]
    return Response(200, out)


def search(sim: JiraState, query: jql.Query, reconcile: set[int]) -> list[IssueRec]:
    now = sim.clock.now()
    hits = []
    for rec in sim.issues.values():
        view = rec if rec.id in reconcile else _indexed(sim, rec, now)
        if view is not None and jql.evaluate(query.where, _Facts(sim, view), now):
            hits.append(view)
    return _ordered(hits, query.order)


def _indexed(sim: JiraState, rec: IssueRec, now: float) -> IssueRec | None:
    """The issue as the search index knows it: ``search_lag`` seconds behind.

    Every write stores a snapshot; search sees the newest snapshot old enough,
    so a new issue is invisible and an edited one shows its previous state.
    """
    if sim.search_lag <= 0:
        return rec
    snaps = sim.snapshots.get(rec.id)
    if not snaps:
        return rec
    visible = [i for i, (at, _) in enumerate(snaps) if now - at >= sim.search_lag]
    if not visible:
        return None
    del snaps[:visible[-1]]          # older visible snapshots can never be seen again
    return snaps[0][1]


_CUSTOM_CLAUSES = {f"cf[{cf.number}]": cf.id for cf in CUSTOM_FIELDS.values()}


class _Facts:
    """An issue as the JQL evaluator sees it."""

    def __init__(self, sim: JiraState, rec: IssueRec):
        self.sim, self.rec = sim, rec

    def values(self, name: str) -> list[Any]:
        rec, sim = self.rec, self.sim
        if name in _CUSTOM_CLAUSES:
            value = rec.custom.get(_CUSTOM_CLAUSES[name])
            cf = CUSTOM_FIELDS[_CUSTOM_CLAUSES[name]]
            if value is None:
                return []
            return [value, dict(cf.options)[value]] if cf.kind == "select" else [value]
        project = sim.projects[rec.project_id]
        status_name, cat = STATUSES[rec.status_id]
        user = lambda a: [] if a is None else [a, sim.users[a].email, sim.users[a].display_name]  # noqa: E731
        table: dict[str, Callable[[], list[Any]]] = {
            "project": lambda: [project.key, project.id, project.name],
            "key": lambda: [rec.key, *rec.old_keys],
            "id": lambda: [rec.id],
            "updated": lambda: [rec.updated],
            "created": lambda: [rec.created],
            "resolutiondate": lambda: [] if rec.resolution_date is None else [rec.resolution_date],
            "labels": lambda: list(rec.labels),
            "status": lambda: [status_name, rec.status_id],
            "statuscategory": lambda: [STATUS_CATEGORIES[cat][1], STATUS_CATEGORIES[cat][0], cat],
            "resolution": lambda: [] if rec.resolution_id is None else [rec.resolution_id, RESOLUTIONS[rec.resolution_id][0]],
            "priority": lambda: [rec.priority_id, PRIORITIES[rec.priority_id]],
            "assignee": lambda: user(rec.assignee),
            "reporter": lambda: user(rec.reporter),
            "summary": lambda: [rec.summary],
            "fixversion": lambda: [x for v in rec.fix_version_ids for x in (v, sim.versions[v].name)],
            "component": lambda: [x for c in rec.component_ids for x in (c, sim.components[c].name)],
            "issuetype": lambda: [rec.issuetype_id, ISSUE_TYPES[rec.issuetype_id][0]],
            "type": lambda: [rec.issuetype_id, ISSUE_TYPES[rec.issuetype_id][0]],
        }
        return table[name]() if name in table else []

    def property_values(self, key: str, path: str) -> list[Any]:
        node: Any = self.rec.properties.get(key, _MISSING)
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return []
            node = node[part]
        values = node if isinstance(node, list) else [node]
        return [json.dumps(v) if isinstance(v, (dict, bool)) else v for v in values if v is not None]


def _ordered(hits: list[IssueRec], order: tuple[tuple[str, bool], ...]) -> list[IssueRec]:
    if not order:
        order = (("created", False), ("id", False))
    result = list(hits)
    for name, asc in reversed(order):
        result.sort(key=_sort_key(name), reverse=not asc)
    return result


def _sort_key(name: str) -> Callable[[IssueRec], Any]:
    if name in ("key", "issuekey"):
        return lambda rec: (rec.key.split("-")[0], int(rec.key.split("-")[1]))
    if name in ("updated", "created", "id"):
        return lambda rec: getattr(rec, name)
    if name == "priority":
        return lambda rec: int(rec.priority_id)
    if name in ("resolutiondate", "resolved"):
        return lambda rec: rec.resolution_date or 0.0
    raise err(400, f"Not able to sort using field '{name}'.")


def snapshot(rec: IssueRec) -> IssueRec:
    return copy.deepcopy(rec)


def _encode_token(offset: int, text: str) -> str:
    raw = json.dumps({"o": offset, "q": hashlib.sha1(text.encode()).hexdigest()[:10]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str | None, text: str) -> int:
    if not token:
        return 0
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if raw["q"] != hashlib.sha1(text.encode()).hexdigest()[:10]:
            raise ValueError("token for another query")
        return int(raw["o"])
    except (ValueError, KeyError, TypeError):
        raise err(400, "The provided next page token is invalid or expired.")
