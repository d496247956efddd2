"""Jira workflow transitions: the one transition path (status, resolution,
fields) and the transition routes.
"""

from __future__ import annotations

from typing import Any

from syncd.sim.core import Request, Response
from syncd.sim.jira_catalog import DONE_RESOLUTION, DONE_STATUS, RESOLUTIONS, STATUSES, TRANSITIONS, IssueRec
from syncd.sim.jira_changes import fire_comment, new_comment, touched, write_gate
from syncd.sim.jira_fields import apply_fields, pick, rich_text
from syncd.sim.jira_http import api_version, err
from syncd.sim.jira_render import status_json
from syncd.sim.jira_state import Change, JiraState


def transition(sim: JiraState, rec: IssueRec, transition_id: str, actor: str, fields: dict[str, Any] | None = None,
               ver: str = "2") -> None:
    allowed = {t.id: t for t in TRANSITIONS if t.source == rec.status_id}
    t = allowed.get(str(transition_id))
    if t is None:
        raise err(400, f"Transition id '{transition_id}' is not valid for this issue.")
    write_gate(sim, rec)
    change = Change()
    old = rec.status_id
    change.add("status", "status", old, STATUSES[old][0], t.target, STATUSES[t.target][0])
    rec.status_id = t.target
    if STATUSES[old][1] != STATUSES[t.target][1]:
        rec.status_changed = sim.clock.now()
    if t.target == DONE_STATUS and rec.resolution_id is None:
        res = (fields or {}).get("resolution")
        rid = pick(res, RESOLUTIONS, lambda k: RESOLUTIONS[k][0]) if res else DONE_RESOLUTION
        change.add("resolution", "resolution", None, None, rid, RESOLUTIONS[rid][0])
        rec.resolution_id, rec.resolution_date = rid, sim.clock.now()
    elif t.target != DONE_STATUS and rec.resolution_id is not None:
        change.add("resolution", "resolution", rec.resolution_id, RESOLUTIONS[rec.resolution_id][0], None, None)
        rec.resolution_id, rec.resolution_date = None, None
    rest = {k: v for k, v in (fields or {}).items() if k != "resolution"}
    apply_fields(sim, rec, rest, ver, change)
    touched(sim, rec, actor, change, "jira:issue_updated", "issue_generic")


def transition_json(sim: JiraState, t: Any, ver: str) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "to": status_json(sim, t.target, ver), "hasScreen": False,
            "isGlobal": False, "isInitial": False, "isAvailable": True, "isConditional": False,
            "isLooped": False}


def list_transitions(sim: JiraState, r: Request) -> Response:
    rec, ver = sim.issue(r.params["issue"]), api_version(r)
    only = r.arg("transitionId")
    found = [transition_json(sim, t, ver) for t in TRANSITIONS
             if t.source == rec.status_id and (only is None or t.id == only)]
    return Response(200, {"expand": "transitions", "transitions": found})


def do_transition(sim: JiraState, r: Request) -> Response:
    rec, body = sim.issue(r.params["issue"]), r.json() or {}
    tid = str((body.get("transition") or {}).get("id") or "")
    actor, ver = sim.actor(r), api_version(r)
    transition(sim, rec, tid, actor, body.get("fields") or {}, ver)
    for op in (body.get("update") or {}).get("comment") or []:
        try:
            doc = rich_text(sim, (op.get("add") or {}).get("body"), ver)
        except ValueError as e:
            raise err(400, errors={"comment": str(e)})
        if doc is not None:
            fire_comment(sim, rec, new_comment(sim, rec, actor, doc, {}), actor, "comment_created")
    return Response(204)
