"""Zendesk uploads and attachments: files uploaded for a comment, the
attachment records, and their content URL (a capability URL, no auth).

Route handlers of :class:`syncd.sim.zendesk.ZendeskSim`; the state lives on the
sim (``sim.uploads``, ``sim.attachments``, ``sim.files``).
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from syncd.sim import zendesk_http
from syncd.sim.core import Request, Response, SimError, iso
from syncd.sim.zendesk_state import Upload, ZendeskState


def upload(sim: ZendeskState, request: Request) -> Response:
    name = request.arg("filename")
    if not name:
        raise SimError(400, {"error": "InvalidEndpoint", "description": "filename is required"})
    ctype = request.header("content-type") or "application/octet-stream"
    att_token = secrets.token_urlsafe(18)
    aid = sim.next_id("attachment")
    url = f"{sim.base_url}/attachments/token/{att_token}/?name={quote(name)}"
    att = {"id": aid, "url": sim.url(f"attachments/{aid}.json"), "file_name": name,
           "content_url": url, "mapped_content_url": url, "content_type": ctype,
           "size": len(request.body), "inline": False, "deleted": False,
           "malware_access_override": False, "malware_scan_result": "malware_not_found", "thumbnails": []}
    sim.files[att_token] = (request.body, ctype)
    sim.attachments[aid] = att
    token = request.arg("token")
    upload = sim.uploads.get(token) if token else None
    if upload is None:
        upload = Upload(secrets.token_urlsafe(18), [], sim.clock.now() + 3 * 86400)
        sim.uploads[upload.token] = upload
    upload.attachments.append(att)
    return Response(201, {"upload": {"token": upload.token, "expires_at": iso(upload.expires),
                                     "attachment": att, "attachments": list(upload.attachments)}})


def delete_upload(sim: ZendeskState, request: Request) -> Response:
    if sim.uploads.pop(request.params["token"], None) is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return Response(204)


def show_attachment(sim: ZendeskState, request: Request) -> Response:
    att = sim.attachments.get(zendesk_http.int_param(request, "attachment_id"))
    if att is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return Response(200, {"attachment": att})


def download(sim: ZendeskState, request: Request) -> Response:
    stored = sim.files.get(request.params["token"])
    if stored is None:
        raise SimError(404, {"error": "RecordNotFound", "description": "Not found"})
    return Response(200, stored[0], {"Content-Type": stored[1]})
