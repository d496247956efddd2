"""Jira projects, versions, users and the fixed catalogue (issue types,
priorities, statuses, resolutions, workflow): look-ups, writes and routes.
"""

from __future__ import annotations

from syncd.sim.core import Request, Response, iso
from syncd.sim.jira_catalog import (
    ISSUE_TYPES, PRIORITIES, RESOLUTIONS, STATUSES, STATUS_CATEGORIES, WORKFLOW_NAME, Component, Project,
    Version,
)
from syncd.sim.jira_http import api_version, err
from syncd.sim.jira_render import (
    category_json, component_json, issuetype_json, priority_json, project_json, resolution_json, status_json,
    user_json, version_json,
)
from syncd.sim.jira_state import JiraState
from syncd.sim.jira_webhooks import version_released


def add_component(sim: JiraState, project: Project, name: str) -> Component:
    comp = Component(str(sim.next_id()), project.id, name)
    sim.components[comp.id] = comp
    project.component_ids.append(comp.id)
    return comp


def create_version(sim: JiraState, project: str, name: str, released: bool = False,
                   description: str | None = None, release_date: str | None = None) -> Version:
    with sim.lock:
        proj = sim.project(project)
        if any(v.name == name and v.project_id == proj.id for v in sim.versions.values()):
            raise err(400, errors={"name": "A version with this name already exists in this project."})
        version = Version(str(sim.next_id()), proj.id, name, description, released, False, release_date)
        sim.versions[version.id] = version
        return version


def server_info(sim: JiraState, r: Request) -> Response:
    return Response(200, {
        "baseUrl": sim.base_url, "displayUrl": sim.base_url, "version": "1001.0.0-SNAPSHOT",
        "versionNumbers": [1001, 0, 0], "deploymentType": "Cloud", "buildNumber": 100288,
        "buildDate": "2025-11-01T00:00:00.000+0000", "serverTime": iso(sim.clock.now(), jira=True),
        "scmInfo": "syncd-sim", "serverTitle": "Jira (syncd simulator)"})


def myself(sim: JiraState, r: Request) -> Response:
    return Response(200, user_json(sim, sim.actor(r), api_version(r)))


def find_users(sim: JiraState, r: Request) -> Response:
    q = (r.arg("query") or r.arg("accountId") or r.arg("username") or "").lower()
    found = [user_json(sim, u.account_id, api_version(r)) for u in sim.users.values()
             if q in u.email.lower() or q in u.display_name.lower() or q == u.account_id.lower()]
    start, size = int(r.arg("startAt", "0") or 0), int(r.arg("maxResults", "50") or 50)
    return Response(200, found[start:start + size])


def list_projects(sim: JiraState, r: Request) -> Response:
    return Response(200, [project_json(sim, p, api_version(r)) for p in sim.projects.values()])


def show_project(sim: JiraState, r: Request) -> Response:
    return Response(200, project_json(sim, sim.project(r.params["project"]), api_version(r), full=True))


def project_versions(sim: JiraState, r: Request) -> Response:
    p = sim.project(r.params["project"])
    return Response(200, [version_json(sim, v, api_version(r)) for v in sim.versions.values()
                          if v.project_id == p.id])


def project_components(sim: JiraState, r: Request) -> Response:
    p, ver = sim.project(r.params["project"]), api_version(r)
    return Response(200, [{**component_json(sim, sim.components[c], ver), "project": p.key,
                           "projectId": int(p.id), "assigneeType": "PROJECT_DEFAULT"}
                          for c in p.component_ids])


def create_version_http(sim: JiraState, r: Request) -> Response:
    body = r.json() or {}
    if not body.get("name"):
        raise err(400, errors={"name": "You must specify a valid version name"})
    project = str(body.get("project") or body.get("projectId") or "")
    v = create_version(sim, project, body["name"], bool(body.get("released")),
                            body.get("description"), body.get("releaseDate"))
    return Response(201, version_json(sim, v, api_version(r)))


def version(sim: JiraState, vid: str) -> Version:
    if vid not in sim.versions:
        raise err(404, f"Could not find version for id '{vid}'")
    return sim.versions[vid]


def show_version(sim: JiraState, r: Request) -> Response:
    return Response(200, version_json(sim, version(sim, r.params["id"]), api_version(r)))


def update_version(sim: JiraState, r: Request) -> Response:
    v, body = version(sim, r.params["id"]), r.json() or {}
    was_released = v.released
    for attr, key in (("name", "name"), ("description", "description"), ("archived", "archived"),
                      ("released", "released"), ("release_date", "releaseDate")):
        if key in body:
            setattr(v, attr, body[key])
    if v.released and not was_released:
        version_released(sim, v)
    return Response(200, version_json(sim, v, api_version(r)))


def issue_types(sim: JiraState, r: Request) -> Response:
    return Response(200, [issuetype_json(sim, t, api_version(r)) for t in ISSUE_TYPES])


def priorities(sim: JiraState, r: Request) -> Response:
    return Response(200, [priority_json(sim, p, api_version(r)) for p in PRIORITIES])


def statuses(sim: JiraState, r: Request) -> Response:
    return Response(200, [status_json(sim, s, api_version(r)) for s in STATUSES])


def show_status(sim: JiraState, r: Request) -> Response:
    ref = r.params["id"].lower()
    for sid, (name, _) in STATUSES.items():
        if ref in (sid, name.lower()):
            return Response(200, status_json(sim, sid, api_version(r)))
    raise err(404, f"The status with ID '{r.params['id']}' does not exist.")


def status_categories(sim: JiraState, r: Request) -> Response:
    return Response(200, [category_json(sim, c, api_version(r)) for c in STATUS_CATEGORIES])


def resolutions(sim: JiraState, r: Request) -> Response:
    return Response(200, [resolution_json(sim, x, api_version(r)) for x in RESOLUTIONS])


def workflows(sim: JiraState, r: Request) -> Response:
    return Response(200, [{"name": WORKFLOW_NAME, "description": "To Do, In Progress, Done",
                           "steps": len(STATUSES), "default": True}])
