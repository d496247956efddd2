"""Jira entity properties on issues and comments (what syncd uses to mark its
own writes and to find issues by property in JQL).
"""

from __future__ import annotations

from typing import Any

from syncd.sim.core import Request, Response
from syncd.sim.jira_changes import write_gate
from syncd.sim.jira_comments import comment_anywhere
from syncd.sim.jira_http import api_version, err
from syncd.sim.jira_search import snapshot
from syncd.sim.jira_state import JiraState


_MISSING = object()


def _prop_keys(sim: JiraState, props: dict[str, Any], url: str) -> Response:
    return Response(200, {"keys": [{"key": k, "self": f"{url}/{k}"} for k in props]})


def comment_property_keys(sim: JiraState, r: Request) -> Response:
    _, c = comment_anywhere(sim, r.params["id"])
    return _prop_keys(sim, c.properties, sim.url(api_version(r), f"comment/{c.id}/properties"))


def show_comment_property(sim: JiraState, r: Request) -> Response:
    _, c = comment_anywhere(sim, r.params["id"])
    key = r.params["key"]
    if key not in c.properties:
        raise err(404, f"The property with key '{key}' does not exist.")
    return Response(200, {"key": key, "value": c.properties[key]})


def set_comment_property(sim: JiraState, r: Request) -> Response:
    _, c = comment_anywhere(sim, r.params["id"])
    value = _property_value(r)
    created = r.params["key"] not in c.properties
    c.properties[r.params["key"]] = value
    # The document describes a JSON body (untyped) for both statuses.
    return Response(201 if created else 200, {})


def delete_comment_property(sim: JiraState, r: Request) -> Response:
    _, c = comment_anywhere(sim, r.params["id"])
    if c.properties.pop(r.params["key"], _MISSING) is _MISSING:
        raise err(404, f"The property with key '{r.params['key']}' does not exist.")
    return Response(204)


def issue_property_keys(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    return _prop_keys(sim, rec.properties, sim.url(api_version(r), f"issue/{rec.id}/properties"))


def show_issue_property(sim: JiraState, r: Request) -> Response:
    rec, key = sim.issue(r.params["issue"]), r.params["key"]
    if key not in rec.properties:
        raise err(404, f"The property with key '{key}' does not exist.")
    return Response(200, {"key": key, "value": rec.properties[key]})


def set_issue_property(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    value = _property_value(r)
    write_gate(sim, rec)
    created = r.params["key"] not in rec.properties
    rec.properties[r.params["key"]] = value
    if sim.search_lag > 0:
        sim.snapshots.setdefault(rec.id, []).append((sim.clock.now(), snapshot(rec)))
    return Response(201 if created else 200, {})


def delete_issue_property(sim: JiraState, r: Request) -> Response:
    rec = sim.issue(r.params["issue"])
    if rec.properties.pop(r.params["key"], _MISSING) is _MISSING:
        raise err(404, f"The property with key '{r.params['key']}' does not exist.")
    return Response(204)


def _property_value(r: Request) -> Any:
    if not r.body.strip():
        raise err(400, "The property value can not be empty.")
    try:
        value = r.json()
    except ValueError:
        raise err(400, "The property value must be valid JSON.")
    if len(r.body) > 32768:
        raise err(400, "The property value is too big: the limit is 32768 bytes.")
    return value
