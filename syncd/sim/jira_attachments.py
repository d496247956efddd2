"""Jira attachments: multipart upload (XSRF header required), metadata, content.
"""

from __future__ import annotations

import email.parser
import email.policy

from syncd.sim.core import Request, Response
from syncd.sim.jira_catalog import Attachment
from syncd.sim.jira_changes import touched, write_gate
from syncd.sim.jira_http import api_version, err
from syncd.sim.jira_render import attachment_json
from syncd.sim.jira_state import Change, JiraState


def add_attachments(sim: JiraState, r: Request) -> Response:
    if (r.header("x-atlassian-token") or "").lower() != "no-check":
        return Response(403, b"XSRF check failed", {"Content-Type": "text/plain"})
    rec = sim.issue(r.params["issue"])
    files = _multipart_files(r)
    if not files:
        raise err(400, "No files were attached: send multipart/form-data with a 'file' part.")
    write_gate(sim, rec)
    change, out, actor = Change(), [], sim.actor(r)
    for filename, mime, content in files:
        a = Attachment(sim.next_id(), rec.id, filename, mime, content, actor, sim.clock.now())
        sim.attachments[a.id] = a
        rec.attachment_ids.append(a.id)
        change.add("attachment", "Attachment", None, None, a.id, filename)
        out.append(attachment_json(sim, a, api_version(r)))
    touched(sim, rec, actor, change, "jira:issue_updated", "issue_updated")
    return Response(200, out)


def attachment(sim: JiraState, aid: str) -> Attachment:
    if not aid.isdigit() or int(aid) not in sim.attachments:
        raise err(404, f"The attachment with id '{aid}' does not exist")
    return sim.attachments[int(aid)]


def show_attachment(sim: JiraState, r: Request) -> Response:
    a = attachment(sim, r.params["id"])
    out = attachment_json(sim, a, api_version(r))
    out["id"] = a.id   # AttachmentMetadata types the id as an integer
    return Response(200, out)


def attachment_content(sim: JiraState, r: Request) -> Response:
    a = attachment(sim, r.params["id"])
    return Response(200, a.content, {"Content-Type": a.mime_type,
                                     "Content-Disposition": f'attachment; filename="{a.filename}"'})


def _multipart_files(r: Request) -> list[tuple[str, str, bytes]]:
    ctype = r.header("content-type") or ""
    if not ctype.startswith("multipart/"):
        return []
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + r.body)
    out = []
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") != "file":
            continue
        filename = part.get_filename() or "attachment"
        out.append((filename, part.get_content_type(), part.get_payload(decode=True) or b""))
    return out
